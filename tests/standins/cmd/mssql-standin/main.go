// Command mssql-standin plays SQL Server for the tests: it listens on 1433,
// checks the sa login against MSSQL_SA_PASSWORD as the real image does, and
// keeps a few small databases (SalesDemo and InventoryDemo to start with) in
// a JSON file under /var/opt/mssql, so they survive container restarts.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
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

func seed() map[string]*sqlwire.Database {
	customers := sqlwire.Table{Name: "dbo.Customers", Columns: []string{"Id", "Name", "City"}}
	for i, name := range []string{"Contoso", "Fabrikam", "Northwind", "Adventure Works", "Tailspin"} {
		customers.Rows = append(customers.Rows, []string{strconv.Itoa(i + 1), name, []string{"Seattle", "Berlin", "Oslo", "Lyon", "Porto"}[i]})
	}
	orders := sqlwire.Table{Name: "dbo.Orders", Columns: []string{"Id", "CustomerId", "Amount"}}
	for i := 1; i <= 40; i++ {
		orders.Rows = append(orders.Rows, []string{strconv.Itoa(i), strconv.Itoa(i%5 + 1), fmt.Sprintf("%d.%02d", 10*i, i%100)})
	}
	products := sqlwire.Table{Name: "dbo.Products", Columns: []string{"Sku", "Stock"}}
	for i := 1; i <= 12; i++ {
		products.Rows = append(products.Rows, []string{fmt.Sprintf("SKU-%03d", i), strconv.Itoa(i * 7)})
	}
	databases := map[string]*sqlwire.Database{
		"SalesDemo":     {Name: "SalesDemo", Tables: []sqlwire.Table{customers, orders}},
		"InventoryDemo": {Name: "InventoryDemo", Tables: []sqlwire.Table{products}},
	}
	for _, name := range systemDatabases {
		databases[name] = &sqlwire.Database{Name: name}
	}
	return databases
}

func (s *server) load() error {
	content, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		s.databases = seed()
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
	return &sqlwire.Response{Number: number, Error: fmt.Sprintf(format, arguments...)}
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
		return s.query(database, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(request.SQL), ";")))
	}
	return failure(50000, "unknown operation %q", request.Op)
}

var (
	selectOne   = regexp.MustCompile(`(?i)^SELECT\s+1$`)
	listDBs     = regexp.MustCompile(`(?i)^SELECT\s+name\s+FROM\s+sys\.databases$`)
	countRows   = regexp.MustCompile(`(?i)^SELECT\s+COUNT\(\*\)\s+FROM\s+(\S+)$`)
	selectAll   = regexp.MustCompile(`(?i)^SELECT\s+\*\s+FROM\s+(\S+)$`)
	listTables  = regexp.MustCompile(`(?i)^SELECT\s+name\s+FROM\s+sys\.tables$`)
	dropDB      = regexp.MustCompile(`(?i)^DROP\s+DATABASE\s+(\S+)$`)
	createDB    = regexp.MustCompile(`(?i)^CREATE\s+DATABASE\s+(\S+)$`)
	insertRow   = regexp.MustCompile(`(?i)^INSERT\s+INTO\s+(\S+)\s+VALUES\s*\((.*)\)$`)
	nameBracket = strings.NewReplacer("[", "", "]", "")
)

func tableName(raw string) string {
	name := nameBracket.Replace(raw)
	if !strings.Contains(name, ".") {
		name = "dbo." + name
	}
	return name
}

func (s *server) table(database *sqlwire.Database, raw string) (*sqlwire.Table, *sqlwire.Response) {
	name := tableName(raw)
	for i := range database.Tables {
		if strings.EqualFold(database.Tables[i].Name, name) {
			return &database.Tables[i], nil
		}
	}
	return nil, failure(208, "Invalid object name '%s'.", raw)
}

func (s *server) query(database *sqlwire.Database, sql string) *sqlwire.Response {
	switch {
	case selectOne.MatchString(sql):
		return &sqlwire.Response{Rows: [][]string{{"1"}}}
	case listDBs.MatchString(sql):
		names := make([]string, 0, len(s.databases))
		for name := range s.databases {
			names = append(names, name)
		}
		sort.Strings(names)
		rows := [][]string{}
		for _, name := range names {
			rows = append(rows, []string{name})
		}
		return &sqlwire.Response{Rows: rows}
	case listTables.MatchString(sql):
		rows := [][]string{}
		for _, table := range database.Tables {
			rows = append(rows, []string{table.Name})
		}
		return &sqlwire.Response{Rows: rows}
	case countRows.MatchString(sql):
		table, problem := s.table(database, countRows.FindStringSubmatch(sql)[1])
		if problem != nil {
			return problem
		}
		return &sqlwire.Response{Rows: [][]string{{strconv.Itoa(len(table.Rows))}}}
	case selectAll.MatchString(sql):
		table, problem := s.table(database, selectAll.FindStringSubmatch(sql)[1])
		if problem != nil {
			return problem
		}
		return &sqlwire.Response{Rows: append([][]string{table.Columns}, table.Rows...)}
	case insertRow.MatchString(sql):
		match := insertRow.FindStringSubmatch(sql)
		table, problem := s.table(database, match[1])
		if problem != nil {
			return problem
		}
		values := []string{}
		for _, value := range strings.Split(match[2], ",") {
			values = append(values, strings.Trim(strings.TrimSpace(value), "'"))
		}
		if len(values) != len(table.Columns) {
			return failure(213, "Column name or number of supplied values does not match table definition.")
		}
		table.Rows = append(table.Rows, values)
		return s.saved(&sqlwire.Response{Rows: [][]string{{"1"}}})
	case dropDB.MatchString(sql):
		name := nameBracket.Replace(dropDB.FindStringSubmatch(sql)[1])
		existing, found := s.lookup(name)
		if !found {
			return failure(3701, "Cannot drop the database '%s', because it does not exist or you do not have permission.", name)
		}
		for _, system := range systemDatabases {
			if strings.EqualFold(system, existing.Name) {
				return failure(3708, "Cannot drop the database '%s' because it is a system database.", name)
			}
		}
		delete(s.databases, existing.Name)
		return s.saved(&sqlwire.Response{})
	case createDB.MatchString(sql):
		name := nameBracket.Replace(createDB.FindStringSubmatch(sql)[1])
		if _, found := s.lookup(name); found {
			return failure(1801, "Database '%s' already exists. Choose a different database name.", name)
		}
		s.databases[name] = &sqlwire.Database{Name: name}
		return s.saved(&sqlwire.Response{})
	}
	return failure(102, "Incorrect syntax near '%s'.", sql)
}

func (s *server) saved(response *sqlwire.Response) *sqlwire.Response {
	if err := s.save(); err != nil {
		return failure(5120, "Unable to write the databases: %v", err)
	}
	return response
}

func (s *server) serve(connection net.Conn) {
	defer connection.Close()
	var request sqlwire.Request
	if err := json.NewDecoder(bufio.NewReader(connection)).Decode(&request); err != nil {
		return
	}
	response := s.handle(request)
	if response.Error != "" {
		log.Printf("Error: %d, Severity: 14, State: 1. %s (op %s, database %q)", response.Number, response.Error, request.Op, request.Database)
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
	listener, err := net.Listen("tcp", ":1433")
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("SQL Server stand-in is now ready for client connections on port 1433 (%d databases).", len(s.databases))
	for {
		connection, err := listener.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go s.serve(connection)
	}
}
