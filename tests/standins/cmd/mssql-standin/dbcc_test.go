package main

import (
	"bytes"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	completed = "DBCC execution completed. If DBCC printed error messages, contact your system administrator."
	// The consistency errors of the first table (object 245575913, a heap)
	// of a database, its first data page damaged.
	pageError     = "Table error: Object ID 245575913, index ID 0, partition ID 72057594043236352, alloc unit ID 72057594049658880 (type In-row data), page (1:312). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4."
	pageUnchecked = "Object ID 245575913, index ID 0, partition ID 72057594043236352, alloc unit ID 72057594049658880 (type In-row data): Page (1:312) could not be processed.  See other errors for details."
)

// shop is a server with the database Shop and its two tables of 2 and 0 rows.
func shop(t *testing.T) *server {
	t.Helper()
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE [Shop]")
	must(t, s, "Shop", "CREATE TABLE dbo.Items (Id INT, Label NVARCHAR(10)); CREATE TABLE sales.Orders (Id INT PRIMARY KEY)")
	must(t, s, "Shop", "INSERT dbo.Items VALUES (1, 'one'), (2, 'two')")
	return s
}

func TestCheckdbOfACleanDatabase(t *testing.T) {
	s := shop(t)
	for _, sql := range []string{
		"DBCC CHECKDB ([Shop]) WITH NO_INFOMSGS, ALL_ERRORMSGS",
		"DBCC CHECKDB (N'shop') WITH NO_INFOMSGS",
		"DBCC CHECKDB (5) WITH ALL_ERRORMSGS, NO_INFOMSGS, MAXDOP = 1",
	} {
		if got := must(t, s, "master", sql); got != nil {
			t.Errorf("%s printed %v", sql, got)
		}
	}
	want := append(append([]string{"DBCC results for 'Shop'."}, serviceBrokerChecks...),
		"DBCC results for 'Items'.",
		`There are 2 rows in 1 pages for object "Items".`,
		"DBCC results for 'sales.Orders'.",
		`There are 0 rows in 0 pages for object "sales.Orders".`,
		"CHECKDB found 0 allocation errors and 0 consistency errors in database 'Shop'.",
		completed)
	for _, c := range []struct{ database, sql string }{
		{"master", "DBCC CHECKDB ([Shop])"},
		{"master", "DBCC CHECKDB ('Shop') WITH ALL_ERRORMSGS"},
		{"Shop", "DBCC CHECKDB"},
		{"Shop", "DBCC CHECKDB (0)"},
	} {
		if got := must(t, s, c.database, c.sql); !reflect.DeepEqual(got, want) {
			t.Errorf("%s printed\n%s\nwant\n%s", c.sql, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestCheckdbErrors(t *testing.T) {
	cases := []struct {
		sql      string
		number   int
		severity int
		message  string
	}{
		{"DBCC CHECKDB ([Nope]) WITH NO_INFOMSGS, ALL_ERRORMSGS", 2520, 16, "Could not find database 'Nope'. The database either does not exist, or was dropped before a statement tried to use it. Verify if the database exists by querying the sys.databases catalog view."},
		{"DBCC CHECKDB (42)", 2521, 16, "Could not find database ID 42. The database ID either does not exist, or the database was dropped before a statement tried to use it. Verify if the database ID exists by querying the sys.databases catalog view."},
		{"DBCC CHECKDB (Shop) WITH NO_INFOMSG", 195, 15, "'no_infomsg' is not a recognized option."},
		{"DBCC CHECKDB (Shop, REPAIR_ALLOW_DATA_LOSS)", 2560, 16, "Parameter 2 is incorrect for this DBCC statement."},
		{"DBCC CHECKALLOC (Shop)", 2526, 16, "Incorrect DBCC statement. Check the documentation for the correct DBCC syntax and options."},
	}
	for _, c := range cases {
		s := shop(t)
		if response := failing(t, s, "master", c.sql, c.number); response.Error != c.message || response.Severity != c.severity || len(response.Output) != 0 {
			t.Errorf("%s: Msg %d level %d: %s (output %v)", c.sql, response.Number, response.Severity, response.Error, response.Output)
		}
	}
}

func TestCheckdbFindsADamagedRow(t *testing.T) {
	s := shop(t)
	shopDatabase, _ := s.lookup("Shop")
	items := &shopDatabase.Tables[0]
	items.Rows = append(items.Rows, []string{"3"}) // one value for two columns
	response := s.run("master", "DBCC CHECKDB ([Shop]) WITH NO_INFOMSGS, ALL_ERRORMSGS; PRINT 'the batch goes on'")
	want := []string{
		msg(8939, 16, 98, pageError),
		msg(8928, 16, 1, pageUnchecked),
		"CHECKDB found 0 allocation errors and 2 consistency errors in table 'Items' (object ID 245575913).",
		"CHECKDB found 0 allocation errors and 2 consistency errors in database 'Shop'.",
		"repair_allow_data_loss is the minimum repair level for the errors found by DBCC CHECKDB (Shop).",
		"the batch goes on",
	}
	if got := lines(response); response.Error != "" || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\n%v\nwant\n%v", response.Error, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The damaged row reads as NULL where it has no value, and nothing crashes.
	if got := must(t, s, "Shop", "SELECT Label FROM dbo.Items WHERE Id = 3"); !reflect.DeepEqual(got, []string{"NULL"}) {
		t.Fatalf("the damaged row: %v", got)
	}
}

func TestCheckdbFindsADuplicateKey(t *testing.T) {
	s := shop(t)
	must(t, s, "Shop", "INSERT sales.Orders VALUES (1), (2)")
	shopDatabase, _ := s.lookup("Shop")
	orders := &shopDatabase.Tables[1]
	orders.Rows = append(orders.Rows, []string{"1"})
	response := s.run("master", "DBCC CHECKDB ([Shop])")
	got := lines(response)
	want := []string{
		"DBCC results for 'sales.Orders'.",
		msg(2511, 16, 1, "Table error: Object ID 245575929, index ID 1, partition ID 72057594043301888, alloc unit ID 72057594049724416 (type In-row data). Keys out of order on page (1:320), slots 0 and 2."),
		`There are 3 rows in 1 pages for object "sales.Orders".`,
		"CHECKDB found 0 allocation errors and 1 consistency errors in table 'sales.Orders' (object ID 245575929).",
		"CHECKDB found 0 allocation errors and 1 consistency errors in database 'Shop'.",
		"repair_rebuild is the minimum repair level for the errors found by DBCC CHECKDB (Shop).",
		completed,
	}
	if len(got) < len(want) || !reflect.DeepEqual(got[len(got)-len(want):], want) {
		t.Fatalf("got\n%s\nwant it to end with\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// withFaults writes the test fault file next to the server's databases.
func withFaults(t *testing.T, s *server, content string) {
	t.Helper()
	s.faultPath = filepath.Join(filepath.Dir(s.path), "standin-faults.json")
	if err := os.WriteFile(s.faultPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTheCheckdbFaultDamagesTheFirstTable(t *testing.T) {
	s := shop(t)
	must(t, s, "master", "CREATE DATABASE [Empty]; CREATE DATABASE [Other]")
	withFaults(t, s, `{"checkdb": ["sh*", "EMPTY"]}`)
	got := lines(s.run("master", "DBCC CHECKDB ([Shop]) WITH NO_INFOMSGS, ALL_ERRORMSGS"))
	if len(got) != 5 || got[0] != msg(8939, 16, 98, pageError) || got[1] != msg(8928, 16, 1, pageUnchecked) {
		t.Fatalf("Shop: %v", strings.Join(got, "\n"))
	}
	want := []string{
		msg(8939, 16, 98, "Table error: Object ID 0, index ID -1, partition ID 0, alloc unit ID 72057594038321152 (type Unknown), page (1:153). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4."),
		"CHECKDB found 0 allocation errors and 1 consistency errors not associated with any single object.",
		"CHECKDB found 0 allocation errors and 1 consistency errors in database 'Empty'.",
		"repair_allow_data_loss is the minimum repair level for the errors found by DBCC CHECKDB (Empty).",
	}
	if got := lines(s.run("master", "DBCC CHECKDB ([Empty]) WITH NO_INFOMSGS")); !reflect.DeepEqual(got, want) {
		t.Fatalf("Empty, without a table: %v", strings.Join(got, "\n"))
	}
	if got := must(t, s, "master", "DBCC CHECKDB ([Other]) WITH NO_INFOMSGS"); got != nil {
		t.Fatalf("Other is not named: %v", got)
	}
	// The file is read at each request: without it, nothing is damaged.
	if err := os.Remove(s.faultPath); err != nil {
		t.Fatal(err)
	}
	if got := must(t, s, "master", "DBCC CHECKDB ([Shop]) WITH NO_INFOMSGS"); got != nil {
		t.Fatalf("after the fault file is gone: %v", got)
	}
}

func TestTheRenameFaultLocksTheDatabase(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE [Sales_restoring_20261201120000]; CREATE DATABASE [Sales]")
	withFaults(t, s, `{"modify_name": ["*_RESTORING_*"]}`)
	response := failing(t, s, "master", "ALTER DATABASE [Sales_restoring_20261201120000] MODIFY NAME = [Sales_new]", 5030)
	if response.Error != "The database could not be exclusively locked to perform the operation." || response.Severity != 16 || response.State != 2 {
		t.Fatalf("got %+v", response)
	}
	must(t, s, "master", "ALTER DATABASE [Sales] MODIFY NAME = [Sales_replaced_20261201120000]")
	if got := must(t, s, "master", "SELECT COUNT(*) FROM sys.databases WHERE name = 'Sales_restoring_20261201120000'"); got[0] != "1" {
		t.Fatal("the locked database was renamed")
	}
}

func TestAFaultFileThatIsNotValidInjectsNothing(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	for _, content := range []string{`{"checkdb": ["Shop"]`, `{"check_db": ["Shop"]}`, `{"checkdb": ["[Shop"]}`} {
		logged.Reset()
		s := shop(t)
		withFaults(t, s, content)
		if got := must(t, s, "master", "DBCC CHECKDB ([Shop]) WITH NO_INFOMSGS"); got != nil {
			t.Errorf("%s: %v", content, got)
		}
		if !strings.Contains(logged.String(), "Test faults in "+s.faultPath+" ignored: ") {
			t.Errorf("%s: the log says %q", content, logged.String())
		}
	}
}
