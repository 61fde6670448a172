// Command mssql-standin plays SQL Server for the tests: it listens on 1433
// (or MSSQL_TCP_PORT), checks the sa login against MSSQL_SA_PASSWORD as the
// real image does, runs the T-SQL subset in tsql.go, and keeps its databases
// in a JSON file under /var/opt/mssql (or MSSQL_DATA_DIR), so they survive
// container restarts. Like the real image it starts with the system
// databases only.
//
// It answers only the T-SQL the project and GoBackup send, as SQL Server 2022
// does (message texts, numbers, severities and states): CREATE/DROP/USE
// DATABASE, CREATE TABLE, INSERT, SELECT with WHERE (=, <>, <, >, <=, >=,
// [NOT] IN, IS [NOT] NULL, joined by AND) and ORDER BY; sys.databases (name,
// database_id, source_database_id, state_desc, create_date; ids are kept in
// the databases file), sys.tables and sys.dm_db_partition_stats; database
// snapshots (CREATE DATABASE s ON (NAME = ..., FILENAME = ...) AS SNAPSHOT OF
// d); DBCC CHECKDB (dbcc.go); ALTER DATABASE d MODIFY NAME = n. An import
// (sqlpackage) creates the database and its schema, then loads one table at a
// time: a failure leaves the part already imported behind, as with the real
// sqlpackage.
//
// Fault injection, for the tests only (the product never writes the file):
// on every request the server re-reads <data dir>/standin-faults.json, if
// there is one, for glob patterns (path.Match syntax, case-insensitive) of
// database names:
//
//	{"checkdb": ["Sales*"], "modify_name": ["*_restoring_*"], "import": ["*_drill_*"]}
//
// checkdb: DBCC CHECKDB of a matching database reports its first table's page
// as damaged (Msg 8939 and 8928, severity 16; 2 consistency errors).
// modify_name: ALTER DATABASE [match] MODIFY NAME fails with Msg 5030 ("The
// database could not be exclusively locked to perform the operation.").
// import: importing into a matching database fails loading its last table
// (Msg 1105, the PRIMARY filegroup is full), the tables before it loaded.
// A file that is not valid JSON of this shape injects nothing and says why
// in the server's log.
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
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

var systemDatabases = []string{"master", "model", "msdb", "tempdb"}

type server struct {
	mu        sync.Mutex
	path      string // the databases file
	faultPath string // the test fault file; "" injects none
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

// load reads the databases file, or starts a new instance, and gives each
// database its catalog entry (see catalogue).
func (s *server) load() error {
	content, err := os.ReadFile(s.path)
	switch {
	case os.IsNotExist(err):
		s.databases = initial()
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(content, &s.databases); err != nil {
			return err
		}
	}
	if s.catalogue(time.Now()) || os.IsNotExist(err) {
		return s.save()
	}
	return nil
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
		data := request.Data
		if data == nil {
			data = &sqlwire.Database{}
		}
		return s.importSchema(name, data)
	case "load":
		database, found := s.lookup(name)
		if !found {
			return failure(4060, "Cannot open database \"%s\" requested by the login. The login failed.", name)
		}
		if request.Data == nil || len(request.Data.Tables) != 1 {
			return failure(50000, "a load carries exactly one table")
		}
		return s.loadTable(database, &request.Data.Tables[0], s.readFaults())
	case "query":
		database, found := s.lookup(name)
		if !found {
			return failure(4060, "Cannot open database \"%s\" requested by the login. The login failed.", name)
		}
		return s.run(database.Name, request.SQL)
	}
	return failure(50000, "unknown operation %q", request.Op)
}

// importSchema is the first step of an import: it creates the database
// (unless an empty one is there) and the tables of the package, empty, and
// keeps them. Rows sent along (a client that imports in one call) are then
// loaded table by table, as "load" does.
func (s *server) importSchema(name string, data *sqlwire.Database) *sqlwire.Response {
	database, found := s.lookup(name)
	switch {
	case found && len(database.Tables) > 0:
		return failure(1801, "Data cannot be imported into target because it contains one or more user objects. Import should be performed against a new, empty database.")
	case found && database.SourceID != 0:
		return fail(&sqlwire.Response{}, readOnly(database))
	case !found:
		database = s.create(name, "")
	}
	for _, table := range data.Tables {
		database.Tables = append(database.Tables, sqlwire.Table{
			Name: table.Name, Columns: table.Columns, Types: table.Types, Key: table.Key, Rows: [][]string{},
		})
	}
	if err := s.save(); err != nil {
		return failure(5120, "Unable to write database %s: %v", name, err)
	}
	injected := s.readFaults()
	if len(data.Tables) == 0 && matches(injected.Import, database.Name) {
		return fail(&sqlwire.Response{}, filegroupFull(database, "dbo.sysschobjs"))
	}
	withRows := false
	for _, table := range data.Tables {
		withRows = withRows || len(table.Rows) > 0
	}
	for i := range data.Tables {
		if !withRows {
			break
		}
		if response := s.loadTable(database, &data.Tables[i], injected); response.Error != "" {
			return response
		}
	}
	return &sqlwire.Response{}
}

// loadTable bulk-loads one table's rows into an imported database's empty
// table, all or nothing, and keeps them. Rows whose value count differs from
// the table's column count (a damaged package) fail the load as SQL Server's
// bulk load does, and so does the import fault on the database's last table.
func (s *server) loadTable(database *sqlwire.Database, incoming *sqlwire.Table, injected faults) *sqlwire.Response {
	position := -1
	for i := range database.Tables {
		if strings.EqualFold(database.Tables[i].Name, incoming.Name) {
			position = i
		}
	}
	if position < 0 {
		return failure(208, "Invalid object name '%s'.", incoming.Name)
	}
	table := &database.Tables[position]
	if position == len(database.Tables)-1 && matches(injected.Import, database.Name) {
		return fail(&sqlwire.Response{}, filegroupFull(database, table.Name))
	}
	for number, row := range incoming.Rows {
		switch {
		case len(row) < len(table.Columns):
			return failure(4832, "Bulk load: An unexpected end of file was encountered in the data file.")
		case len(row) > len(table.Columns):
			return failure(4863, "Bulk load data conversion error (truncation) for row %d, column %d (%s).", number+1, len(table.Columns), table.Columns[len(table.Columns)-1])
		}
	}
	table.Rows = append(table.Rows, incoming.Rows...)
	if err := s.save(); err != nil {
		return failure(5120, "Unable to write database %s: %v", database.Name, err)
	}
	return &sqlwire.Response{}
}

// filegroupFull is Msg 1105, how the import fault fails a load.
func filegroupFull(database *sqlwire.Database, object string) *sqlError {
	return fault(1105, "Could not allocate space for object '%s' in database '%s' because the 'PRIMARY' filegroup is full. Create disk space by deleting unneeded files, dropping objects in the filegroup, adding additional files to the filegroup, or setting autogrowth on for existing files in the filegroup.", object, database.Name).withState(2)
}

func (s *server) serve(connection net.Conn) {
	defer connection.Close()
	var request sqlwire.Request
	if err := json.NewDecoder(bufio.NewReader(connection)).Decode(&request); err != nil {
		return
	}
	response := s.handle(request)
	if response.Error != "" {
		log.Printf("Error: %d, Severity: %d, State: %d. %s (op %s, database %q)", response.Number, response.Severity, response.State, response.Error, request.Op, request.Database)
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
	s := &server{
		path:      filepath.Join(dataDir, "standin-databases.json"),
		faultPath: filepath.Join(dataDir, "standin-faults.json"),
		password:  password,
	}
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
