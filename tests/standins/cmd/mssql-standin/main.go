// Command mssql-standin plays SQL Server for the tests: it listens on 1433
// (or MSSQL_TCP_PORT), checks the sa login against MSSQL_SA_PASSWORD as the
// real image does, runs the T-SQL subset in tsql.go, and keeps its databases
// in a JSON file under /var/opt/mssql (or MSSQL_DATA_DIR), so they survive
// container restarts. Like the real image it starts with the system
// databases only.
package main

import (
	"bufio"
	"encoding/json"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"sqlserver-backup/standins/internal/sqlwire"
)

var systemDatabases = []string{"master", "model", "msdb", "tempdb"}

type server struct {
	mu        sync.Mutex
	path      string
	password  string
	databases map[string]*sqlwire.Database
}

// initial is what a new instance holds: the system databases only, as the
// real image starts. Sample databases come from the scripts run against it.
func initial() map[string]*sqlwire.Database {
	databases := map[string]*sqlwire.Database{}
	for _, name := range systemDatabases {
		databases[name] = &sqlwire.Database{Name: name}
	}
	return databases
}

func (s *server) load() error {
	content, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		s.databases = initial()
		return s.save()
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(content, &s.databases)
}

func (s *server) save() error {
	content, err := json.MarshalIndent(s.databases, "", " ")
	if err != nil {
		return err
	}
	temporary := s.path + ".tmp"
	if err := os.WriteFile(temporary, content, 0o600); err != nil {
		return err
	}
	return os.Rename(temporary, s.path)
}

func failure(number int, format string, arguments ...any) *sqlwire.Response {
	return fail(&sqlwire.Response{}, fault(number, format, arguments...))
}

func (s *server) lookup(name string) (*sqlwire.Database, bool) {
	for key, database := range s.databases {
		if strings.EqualFold(key, name) {
			return database, true
		}
	}
	return nil, false
}

func (s *server) handle(request sqlwire.Request) *sqlwire.Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strings.EqualFold(request.User, "sa") || request.Password != s.password {
		return failure(18456, "Login failed for user '%s'.", request.User)
	}
	name := request.Database
	if name == "" {
		name = "master"
	}
	switch request.Op {
	case "export":
		database, found := s.lookup(name)
		if !found {
			return failure(4060, "Cannot open database \"%s\" requested by the login. The login failed.", name)
		}
		return &sqlwire.Response{Data: database}
	case "import":
		if existing, found := s.lookup(name); found && len(existing.Tables) > 0 {
			return failure(1801, "Data cannot be imported into target because it contains one or more user objects. Import should be performed against a new, empty database.")
		}
		restored := *request.Data
		restored.Name = name
		s.databases[name] = &restored
		if err := s.save(); err != nil {
			return failure(5120, "Unable to write database %s: %v", name, err)
		}
		return &sqlwire.Response{}
	case "query":
		database, found := s.lookup(name)
		if !found {
			return failure(4060, "Cannot open database \"%s\" requested by the login. The login failed.", name)
		}
		return s.run(database.Name, request.SQL)
	}
	return failure(50000, "unknown operation %q", request.Op)
}

func (s *server) serve(connection net.Conn) {
	defer connection.Close()
	var request sqlwire.Request
	if err := json.NewDecoder(bufio.NewReader(connection)).Decode(&request); err != nil {
		return
	}
	response := s.handle(request)
	if response.Error != "" {
		log.Printf("Error: %d, Severity: %d, State: 1. %s (op %s, database %q)", response.Number, response.Severity, response.Error, request.Op, request.Database)
	}
	_ = json.NewEncoder(connection).Encode(response)
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if os.Getenv("ACCEPT_EULA") != "Y" {
		log.Fatal("The SQL Server End-User License Agreement (EULA) must be accepted before SQL Server can start. Set ACCEPT_EULA=Y.")
	}
	password := os.Getenv("MSSQL_SA_PASSWORD")
	if password == "" {
		log.Fatal("The MSSQL_SA_PASSWORD environment variable must be set.")
	}
	dataDir := os.Getenv("MSSQL_DATA_DIR")
	if dataDir == "" {
		dataDir = "/var/opt/mssql"
	}
	s := &server{path: filepath.Join(dataDir, "standin-databases.json"), password: password}
	if err := s.load(); err != nil {
		log.Fatalf("cannot load databases: %v", err)
	}
	port := os.Getenv("MSSQL_TCP_PORT") // as the real image: the port to listen on
	if port == "" {
		port = "1433"
	}
	listener, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("SQL Server stand-in is now ready for client connections on port %s (%d databases).", port, len(s.databases))
	for {
		connection, err := listener.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go s.serve(connection)
	}
}
