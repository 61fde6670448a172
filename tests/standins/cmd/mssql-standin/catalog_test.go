package main

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

// lines is what a batch sent, in order: messages and rows as must returns
// them, errors that did not end the batch as "Msg N, Level L, State S: text".
func lines(response *sqlwire.Response) []string {
	var got []string
	for _, output := range response.Output {
		switch output.Kind {
		case "message":
			got = append(got, output.Message)
		case "error":
			got = append(got, msg(output.Number, output.Severity, output.State, output.Message))
		}
		for _, row := range output.Rows {
			got = append(got, strings.Join(row, "|"))
		}
	}
	return got
}

func msg(number, severity, state int, text string) string {
	return fmt.Sprintf("Msg %d, Level %d, State %d: %s", number, severity, state, text)
}

// failing runs a batch that has to end with the given error and returns it.
func failing(t *testing.T, s *server, database, sql string, number int) *sqlwire.Response {
	t.Helper()
	response := s.run(database, sql)
	if response.Number != number {
		t.Fatalf("%q: got Msg %d (%s), want Msg %d", sql, response.Number, response.Error, number)
	}
	return response
}

func TestSysDatabasesHasTheRealColumns(t *testing.T) {
	s := newServer(t)
	got := must(t, s, "master", "SELECT * FROM sys.databases")
	if got[0] != "name|database_id|source_database_id|state_desc|create_date" {
		t.Fatalf("columns %q", got[0])
	}
	row := regexp.MustCompile(`^(master|tempdb|model|msdb)\|([1-4])\|NULL\|ONLINE\|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$`)
	for i, line := range got[1:] {
		match := row.FindStringSubmatch(line)
		if match == nil || match[2] != strconv.Itoa(i+1) {
			t.Errorf("row %q", line)
		}
	}
	if len(got) != 5 {
		t.Fatalf("rows %v", got)
	}
}

func TestUserDatabasesTakeTheLowestFreeIDAndKeepItAcrossRestarts(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE A; CREATE DATABASE B; CREATE DATABASE C; DROP DATABASE B; CREATE DATABASE D")
	query := "SELECT name, database_id, create_date FROM sys.databases WHERE database_id > 4"
	before := must(t, s, "master", query)
	if ids := must(t, s, "master", "SELECT name, database_id FROM sys.databases WHERE database_id > 4"); !reflect.DeepEqual(ids, []string{"A|5", "D|6", "C|7"}) {
		t.Fatalf("ids %v", ids)
	}
	restarted := &server{path: s.path}
	if err := restarted.load(); err != nil {
		t.Fatal(err)
	}
	if after := must(t, restarted, "master", query); !reflect.DeepEqual(after, before) {
		t.Fatalf("after a restart %v, before %v", after, before)
	}
}

func TestDatabasesOfAnEarlierStandInGetTheirCatalogEntry(t *testing.T) {
	s := newServer(t)
	s.databases["Sales"] = &sqlwire.Database{Name: "Sales"} // as stored before database_id existed
	s.databases["Inventory"] = &sqlwire.Database{Name: "Inventory"}
	for _, database := range s.databases {
		if isSystem(database.Name) {
			database.ID, database.File, database.Created = 0, "", ""
		}
	}
	if !s.catalogue(time.Now()) {
		t.Fatal("nothing changed")
	}
	got := must(t, s, "master", "SELECT name, database_id, source_database_id FROM sys.databases")
	want := []string{"master|1|NULL", "tempdb|2|NULL", "model|3|NULL", "msdb|4|NULL", "Inventory|5|NULL", "Sales|6|NULL"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sys.databases %v, want %v", got, want)
	}
}

func TestTheQueriesOfGoBackupAndOfTheCoverageCheck(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Sales; CREATE DATABASE [Inventory]")
	must(t, s, "master", "CREATE DATABASE [Sales_snap] ON (NAME = N'Sales', FILENAME = N'/var/opt/mssql/data/Sales_snap.ss') AS SNAPSHOT OF [Sales]")
	// GoBackup v3.1.1's all_databases: snapshots are not left out.
	goBackup := must(t, s, "master", "SET NOCOUNT ON; SELECT name FROM sys.databases WHERE name NOT IN ('master', 'tempdb', 'model', 'msdb')")
	if want := []string{"Sales", "Inventory", "Sales_snap"}; !reflect.DeepEqual(goBackup, want) {
		t.Errorf("GoBackup's query: %v, want %v", goBackup, want)
	}
	coverage := must(t, s, "master", "SELECT name FROM sys.databases WHERE database_id > 4 AND source_database_id IS NULL ORDER BY name")
	if want := []string{"Inventory", "Sales"}; !reflect.DeepEqual(coverage, want) {
		t.Errorf("the coverage query: %v, want %v", coverage, want)
	}
	snapshots := must(t, s, "master", "SELECT name, source_database_id FROM sys.databases WHERE source_database_id IS NOT NULL")
	if want := []string{"Sales_snap|5"}; !reflect.DeepEqual(snapshots, want) {
		t.Errorf("snapshots: %v, want %v", snapshots, want)
	}
}

func TestWhereConditions(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Sales; CREATE DATABASE Inventory")
	must(t, s, "master", "CREATE DATABASE s1 ON (NAME = Sales, FILENAME = '/tmp/s1.ss') AS SNAPSHOT OF Sales")
	cases := map[string][]string{
		"name IN ('sales', N'MSDB')":                        {"msdb", "Sales"},
		"name NOT IN ('master', 'tempdb', 'model', 'msdb')": {"Sales", "Inventory", "s1"},
		"name NOT IN ('master', NULL)":                      nil,
		"database_id <> 1 AND database_id != 2":             {"model", "msdb", "Sales", "Inventory", "s1"},
		"database_id < 3":                                   {"master", "tempdb"},
		"database_id <= 2":                                  {"master", "tempdb"},
		"database_id >= 6":                                  {"Inventory", "s1"},
		"database_id > 4 AND source_database_id IS NULL":    {"Sales", "Inventory"},
		"source_database_id = 5":                            {"s1"},
		"source_database_id IS NOT NULL":                    {"s1"},
		"source_database_id = NULL":                         nil,
		"source_database_id <> 5":                           nil, // NULL <> 5 is unknown
		"state_desc = 'online' AND name > 'r'":              {"tempdb", "Sales", "s1"},
	}
	for condition, want := range cases {
		if got := must(t, s, "master", "SELECT name FROM sys.databases WHERE "+condition); !reflect.DeepEqual(got, want) {
			t.Errorf("WHERE %s: %v, want %v", condition, got, want)
		}
	}
	failing(t, s, "master", "SELECT name FROM sys.databases WHERE nope IS NULL", 207)
	failing(t, s, "master", "SELECT name FROM sys.databases WHERE name NOT LIKE 'x'", 102)
}

func TestOrderBy(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Shop")
	must(t, s, "Shop", "CREATE TABLE t (Id INT, Label NVARCHAR(10)); INSERT t VALUES (10, 'b'), (9, NULL), (100, 'A'), (9, 'c')")
	cases := map[string][]string{
		"SELECT Id FROM t ORDER BY Id":                                       {"9", "9", "10", "100"},
		"SELECT Label FROM t ORDER BY Label":                                 {"NULL", "A", "b", "c"},
		"SELECT Label FROM t ORDER BY Label DESC":                            {"c", "b", "A", "NULL"},
		"SELECT Id, Label FROM t ORDER BY Id DESC, Label ASC":                {"100|A", "10|b", "9|NULL", "9|c"},
		"SELECT name FROM sys.databases WHERE database_id < 5 ORDER BY name": {"master", "model", "msdb", "tempdb"},
	}
	for query, want := range cases {
		if got := must(t, s, "Shop", query); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
	failing(t, s, "Shop", "SELECT Id FROM t ORDER BY Nope", 207)
}

func TestASnapshotIsAReadOnlyCopyOfItsSource(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE [Sales]")
	must(t, s, "Sales", "CREATE TABLE dbo.Orders (Id INT PRIMARY KEY); INSERT dbo.Orders VALUES (1), (2)")
	must(t, s, "master", `CREATE DATABASE [Sales_snap] ON (NAME = N'Sales', FILENAME = N'/var/opt/mssql/data/Sales_snap.ss')
		AS SNAPSHOT OF [Sales]`)
	must(t, s, "Sales", "INSERT dbo.Orders VALUES (3)")
	if got := must(t, s, "Sales_snap", "SELECT COUNT(*) FROM dbo.Orders"); got[0] != "2" {
		t.Fatalf("the snapshot holds %v rows, want the 2 of when it was made", got)
	}
	failing(t, s, "Sales_snap", "INSERT dbo.Orders VALUES (4)", 3906)
	if response := s.run("Sales_snap", "CREATE TABLE t (Id INT)"); response.Error != `Failed to update database "Sales_snap" because the database is read-only.` {
		t.Fatalf("CREATE TABLE in a snapshot: %+v", response)
	}
	dropped := failing(t, s, "master", "DROP DATABASE [Sales]", 3709)
	if dropped.Error != `Cannot drop the database while the database snapshot "Sales_snap" refers to it. Drop that database first.` {
		t.Fatalf("DROP of a snapshot's source: %s", dropped.Error)
	}
	must(t, s, "master", "DROP DATABASE [Sales_snap]; DROP DATABASE [Sales]")
}

func TestSnapshotErrors(t *testing.T) {
	cases := []struct {
		sql     string
		number  int
		message string
	}{
		{"CREATE DATABASE s ON (NAME = N'Other', FILENAME = N'/tmp/s.ss') AS SNAPSHOT OF Sales", 5014, "The file 'Other' does not exist in database 'Sales'."},
		{"CREATE DATABASE s AS SNAPSHOT OF Sales", 5127, `All files must be specified for database snapshot creation. Missing the file "Sales".`},
		{"CREATE DATABASE s ON (NAME = x, FILENAME = '/tmp/s.ss') AS SNAPSHOT OF Nope", 911, "Database 'Nope' does not exist. Make sure that the name is entered correctly."},
		{"CREATE DATABASE [sales] ON (NAME = Sales, FILENAME = '/tmp/s.ss') AS SNAPSHOT OF Sales", 1801, "Database 'sales' already exists. Choose a different database name."},
		{"CREATE DATABASE s2 ON (NAME = Sales, FILENAME = '/tmp/s2.ss') AS SNAPSHOT OF s1", 5093, "The operation cannot be performed on a database snapshot."},
	}
	for _, c := range cases {
		s := newServer(t)
		must(t, s, "master", "CREATE DATABASE Sales; CREATE DATABASE s1 ON (NAME = Sales, FILENAME = '/tmp/s1.ss') AS SNAPSHOT OF Sales")
		if response := failing(t, s, "master", c.sql, c.number); response.Error != c.message || response.Severity != 16 {
			t.Errorf("%s: Msg %d level %d: %s", c.sql, response.Number, response.Severity, response.Error)
		}
	}
}

func TestRenameKeepsTheDatabaseAndTakesTheNewCase(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE [Sales_restoring_20261201120000]; CREATE DATABASE [Sales]")
	must(t, s, "Sales", "CREATE TABLE t (Id INT); INSERT t VALUES (1)")
	got := must(t, s, "master", "ALTER DATABASE [SALES] MODIFY NAME = [Sales_replaced_20261201120000]")
	if want := []string{"The database name 'Sales_replaced_20261201120000' has been set."}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rename printed %v, want %v", got, want)
	}
	must(t, s, "master", "ALTER DATABASE [Sales_restoring_20261201120000] MODIFY NAME = [Sales]")
	want := []string{"Sales|5", "Sales_replaced_20261201120000|6"}
	if got := must(t, s, "master", "SELECT name, database_id FROM sys.databases WHERE database_id > 4 ORDER BY name"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the swap %v, want %v", got, want)
	}
	if got := must(t, s, "Sales_replaced_20261201120000", "SELECT COUNT(*) FROM t"); got[0] != "1" {
		t.Fatalf("the renamed database lost its rows: %v", got)
	}
	must(t, s, "master", "ALTER DATABASE sales MODIFY NAME = SALES")
	if got := must(t, s, "master", "SELECT name FROM sys.databases WHERE database_id = 5"); got[0] != "SALES" {
		t.Fatalf("a change of case only: %v", got)
	}
	// The data file keeps its logical name: a snapshot names the old one.
	failing(t, s, "master", "CREATE DATABASE x ON (NAME = SALES, FILENAME = '/tmp/x.ss') AS SNAPSHOT OF SALES", 5014)
	must(t, s, "master", "CREATE DATABASE x ON (NAME = Sales_restoring_20261201120000, FILENAME = '/tmp/x.ss') AS SNAPSHOT OF SALES")
}

func TestRenamingTheCurrentDatabaseMovesTheContext(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Old")
	if response := s.run("Old", "ALTER DATABASE Old MODIFY NAME = New"); response.Error != "" || response.Database != "New" {
		t.Fatalf("got %+v", response)
	}
}

func TestRenameErrors(t *testing.T) {
	cases := []struct {
		sql      string
		number   int
		severity int
		message  string
	}{
		{"ALTER DATABASE [Sales] MODIFY NAME = [Inventory]", 1801, 16, "Database 'Inventory' already exists. Choose a different database name."},
		{"ALTER DATABASE [msdb] MODIFY NAME = [x]", 5016, 16, "Cannot change the name of the system database msdb."},
		{"ALTER DATABASE [s1] MODIFY NAME = [x]", 5093, 16, "The operation cannot be performed on a database snapshot."},
		{"ALTER DATABASE [Sales] SET SINGLE_USER", 102, 15, "Incorrect syntax near 'SET'."},
	}
	for _, c := range cases {
		s := newServer(t)
		must(t, s, "master", "CREATE DATABASE Sales; CREATE DATABASE Inventory; CREATE DATABASE s1 ON (NAME = Sales, FILENAME = '/tmp/s1.ss') AS SNAPSHOT OF Sales")
		if response := failing(t, s, "master", c.sql, c.number); response.Error != c.message || response.Severity != c.severity {
			t.Errorf("%s: Msg %d level %d: %s", c.sql, response.Number, response.Severity, response.Error)
		}
		if got := must(t, s, "master", "SELECT COUNT(*) FROM sys.databases WHERE name IN ('Sales', 'Inventory', 's1')"); got[0] != "3" {
			t.Errorf("%s changed the databases", c.sql)
		}
	}
}

func TestRenamingAMissingDatabaseSendsBothErrorsOfSQLServer(t *testing.T) {
	s := newServer(t)
	response := failing(t, s, "master", "PRINT 'before'\nALTER DATABASE [Nope] MODIFY NAME = [x]", 5069)
	want := []string{"before", msg(5011, 14, 5, "User does not have permission to alter database 'Nope', the database does not exist, or the database is not in a state that allows access checks.")}
	if got := lines(response); !reflect.DeepEqual(got, want) {
		t.Fatalf("output %v, want %v", got, want)
	}
	if response.Error != "ALTER DATABASE statement failed." || response.Severity != 16 || response.Line != 2 || response.Output[1].Line != 2 {
		t.Fatalf("the last error: %+v", response)
	}
}
