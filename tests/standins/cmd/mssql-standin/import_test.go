package main

import (
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

// salesPackage is what sqlpackage reads from a .bacpac: two tables with rows.
func salesPackage() *sqlwire.Database {
	return &sqlwire.Database{Name: "Sales", Tables: []sqlwire.Table{
		{Name: "dbo.Customers", Columns: []string{"Id", "Name"}, Rows: [][]string{{"1", "Ada"}, {"2", "Bob"}}},
		{Name: "dbo.Orders", Columns: []string{"Id", "Customer"}, Rows: [][]string{{"10", "1"}}},
	}}
}

func request(op, database string, data *sqlwire.Database) sqlwire.Request {
	return sqlwire.Request{Op: op, User: "sa", Password: "x", Database: database, Data: data}
}

// importInSteps imports a package as sqlpackage does: the schema, then one
// load per table; it returns the first failure.
func importInSteps(s *server, database string, data *sqlwire.Database) *sqlwire.Response {
	schema := &sqlwire.Database{Name: data.Name}
	for _, table := range data.Tables {
		schema.Tables = append(schema.Tables, sqlwire.Table{Name: table.Name, Columns: table.Columns})
	}
	if response := s.handle(request("import", database, schema)); response.Error != "" {
		return response
	}
	for _, table := range data.Tables {
		if response := s.handle(request("load", database, &sqlwire.Database{Tables: []sqlwire.Table{table}})); response.Error != "" {
			return response
		}
	}
	return &sqlwire.Response{}
}

// counts are the row counts of Sales_restored's tables, or nil without it.
func counts(t *testing.T, s *server) []string {
	t.Helper()
	if _, found := s.lookup("Sales_restored"); !found {
		return nil
	}
	return must(t, s, "Sales_restored", "SELECT COUNT(*) FROM dbo.Customers; SELECT COUNT(*) FROM dbo.Orders")
}

func TestAnImportCreatesTheDatabaseThenLoadsEachTable(t *testing.T) {
	s := newServer(t)
	schema := &sqlwire.Database{Tables: []sqlwire.Table{{Name: "dbo.Customers", Columns: []string{"Id", "Name"}}, {Name: "dbo.Orders", Columns: []string{"Id", "Customer"}}}}
	if response := s.handle(request("import", "Sales_restored", schema)); response.Error != "" {
		t.Fatal(response.Error)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"0", "0"}) {
		t.Fatalf("after the schema: %v", got)
	}
	data := salesPackage()
	if response := s.handle(request("load", "Sales_restored", &sqlwire.Database{Tables: data.Tables[:1]})); response.Error != "" {
		t.Fatal(response.Error)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "0"}) {
		t.Fatalf("after the first table: %v", got)
	}
	if response := s.handle(request("load", "Sales_restored", &sqlwire.Database{Tables: data.Tables[1:]})); response.Error != "" {
		t.Fatal(response.Error)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "1"}) {
		t.Fatalf("after the second table: %v", got)
	}
	if got := must(t, s, "master", "SELECT database_id, source_database_id FROM sys.databases WHERE name = 'Sales_restored'"); !reflect.DeepEqual(got, []string{"5|NULL"}) {
		t.Fatalf("catalog entry %v", got)
	}
	if got := must(t, s, "master", "DBCC CHECKDB ([Sales_restored]) WITH NO_INFOMSGS, ALL_ERRORMSGS"); got != nil {
		t.Fatalf("CHECKDB of the import: %v", got)
	}
}

func TestADamagedPackageLeavesTheTablesLoadedBeforeIt(t *testing.T) {
	cases := []struct {
		row     []string
		number  int
		message string
	}{
		{[]string{"11"}, 4832, "Bulk load: An unexpected end of file was encountered in the data file."},
		{[]string{"11", "1", "x"}, 4863, "Bulk load data conversion error (truncation) for row 2, column 2 (Customer)."},
	}
	for _, c := range cases {
		s := newServer(t)
		data := salesPackage()
		data.Tables[1].Rows = append(data.Tables[1].Rows, c.row)
		response := importInSteps(s, "Sales_restored", data)
		if response.Number != c.number || response.Error != c.message || response.Severity != 16 {
			t.Errorf("%v: Msg %d level %d: %s", c.row, response.Number, response.Severity, response.Error)
		}
		if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "0"}) {
			t.Errorf("%v: left %v rows, want the first table's 2 and none of the second", c.row, got)
		}
	}
}

func TestTheImportFaultFailsTheLastTable(t *testing.T) {
	s := newServer(t)
	withFaults(t, s, `{"import": ["*_RESTORED"]}`)
	response := importInSteps(s, "Sales_restored", salesPackage())
	want := "Could not allocate space for object 'dbo.Orders' in database 'Sales_restored' because the 'PRIMARY' filegroup is full. Create disk space by deleting unneeded files, dropping objects in the filegroup, adding additional files to the filegroup, or setting autogrowth on for existing files in the filegroup."
	if response.Number != 1105 || response.Severity != 17 || response.Error != want {
		t.Fatalf("Msg %d level %d: %s", response.Number, response.Severity, response.Error)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "0"}) {
		t.Fatalf("left %v rows", got)
	}
	// A package without tables fails once its database is created.
	if response := importInSteps(s, "Empty_restored", &sqlwire.Database{}); response.Number != 1105 {
		t.Fatalf("an empty package: %+v", response)
	}
	if _, found := s.lookup("Empty_restored"); !found {
		t.Fatal("the database an import created was not left behind")
	}
	if response := importInSteps(s, "Sales_copy", salesPackage()); response.Error != "" {
		t.Fatalf("a database the fault does not name: %s", response.Error)
	}
}

func TestAnImportInOneCallLoadsTableByTableToo(t *testing.T) {
	s := newServer(t)
	if response := s.handle(request("import", "Sales_restored", salesPackage())); response.Error != "" {
		t.Fatal(response.Error)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "1"}) {
		t.Fatalf("rows %v", got)
	}
	s = newServer(t)
	data := salesPackage()
	data.Tables[1].Rows[0] = []string{"10"}
	if response := s.handle(request("import", "Sales_restored", data)); response.Number != 4832 {
		t.Fatalf("a damaged package: %+v", response)
	}
	if got := counts(t, s); !reflect.DeepEqual(got, []string{"2", "0"}) {
		t.Fatalf("left %v rows", got)
	}
}

func TestImportTargets(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Full; CREATE DATABASE Empty")
	must(t, s, "Full", "CREATE TABLE t (Id INT)")
	must(t, s, "master", "CREATE DATABASE Snap ON (NAME = Empty, FILENAME = '/tmp/snap.ss') AS SNAPSHOT OF Empty")
	if response := importInSteps(s, "Full", salesPackage()); response.Number != 1801 || response.Error != "Data cannot be imported into target because it contains one or more user objects. Import should be performed against a new, empty database." {
		t.Errorf("into a database with tables: %+v", response)
	}
	if response := importInSteps(s, "Snap", salesPackage()); response.Number != 3906 {
		t.Errorf("into a snapshot: %+v", response)
	}
	if response := importInSteps(s, "Empty", salesPackage()); response.Error != "" {
		t.Errorf("into an empty database: %s", response.Error)
	}
	if got := must(t, s, "master", "SELECT database_id FROM sys.databases WHERE name = 'Empty'"); got[0] != "6" {
		t.Errorf("the empty database was replaced: id %v", got)
	}
	if response := s.handle(request("load", "Nowhere", salesPackage())); response.Number != 4060 {
		t.Errorf("a load into no database: %+v", response)
	}
	if response := s.handle(request("load", "Empty", &sqlwire.Database{Tables: []sqlwire.Table{{Name: "dbo.Nope"}}})); response.Number != 208 {
		t.Errorf("a load into no table: %+v", response)
	}
}

// TestTheWireCarriesErrorsThatDoNotEndTheBatch runs a batch over TCP, as
// sqlcmd does, and reads back every error with its number, level and state.
func TestTheWireCarriesErrorsThatDoNotEndTheBatch(t *testing.T) {
	s := newServer(t)
	s.password = "x"
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			connection, err := listener.Accept()
			if err != nil {
				return
			}
			go s.serve(connection)
		}
	}()
	host, port, _ := net.SplitHostPort(listener.Addr().String())
	response, err := sqlwire.Call(host+","+port, sqlwire.Request{Op: "query", User: "sa", Password: "x", SQL: "ALTER DATABASE Nope MODIFY NAME = x"}, 5*time.Second)
	var sqlError *sqlwire.Error
	if !errors.As(err, &sqlError) || sqlError.Number != 5069 || sqlError.State != 1 || sqlError.Severity != 16 {
		t.Fatalf("error %#v", err)
	}
	if len(response.Output) != 1 || response.Output[0].Kind != "error" || response.Output[0].Number != 5011 || response.Output[0].Severity != 14 || response.Output[0].State != 5 || response.Output[0].Line != 1 {
		t.Fatalf("output %+v", response.Output)
	}
}
