package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sqlserver-backup/standins/internal/sqlwire"
)

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{path: filepath.Join(t.TempDir(), "databases.json"), password: "x"}
	if err := s.load(); err != nil {
		t.Fatal(err)
	}
	return s
}

// must runs a batch that has to succeed and returns what it printed.
func must(t *testing.T, s *server, database, sql string) []string {
	t.Helper()
	response := s.run(database, sql)
	if response.Error != "" {
		t.Fatalf("%q failed: Msg %d: %s", sql, response.Number, response.Error)
	}
	var lines []string
	for _, output := range response.Output {
		if output.Kind == "message" {
			lines = append(lines, output.Message)
		}
		for _, row := range output.Rows {
			lines = append(lines, strings.Join(row, "|"))
		}
	}
	return lines
}

func TestStartsWithTheSystemDatabasesOnly(t *testing.T) {
	s := newServer(t)
	got := must(t, s, "master", "SELECT name FROM sys.databases")
	// In database_id order, as SQL Server lists them without ORDER BY.
	if want := []string{"master", "tempdb", "model", "msdb"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("databases %v, want %v", got, want)
	}
}

func TestGuardedCreationRunsOnce(t *testing.T) {
	s := newServer(t)
	script := `
		IF DB_ID(N'Shop') IS NULL
		BEGIN
			CREATE DATABASE [Shop];
			PRINT 'created database Shop';
		END`
	if got := must(t, s, "master", script); !reflect.DeepEqual(got, []string{"created database Shop"}) {
		t.Fatalf("first run printed %v", got)
	}
	if got := must(t, s, "master", script); got != nil {
		t.Fatalf("second run printed %v", got)
	}
	table := `
		IF OBJECT_ID(N'dbo.Items', N'U') IS NULL
		BEGIN
			CREATE TABLE dbo.Items (Id INT NOT NULL PRIMARY KEY, Label NVARCHAR(10) NULL, Price DECIMAL(10, 2));
			INSERT INTO dbo.Items (Id, Price, Label) VALUES (1, 2.5, N'one'), (2, -3, 'it''s');
		END`
	must(t, s, "Shop", table)
	must(t, s, "Shop", table)
	got := must(t, s, "Shop", "SELECT * FROM Items; SELECT COUNT(*) FROM [Shop].[dbo].[Items]")
	want := []string{"Id|Label|Price", "1|one|2.50", "2|it's|-3.00", "2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
}

func TestUseChangesTheContextTheBatchEndsIn(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Shop")
	if response := s.run("master", "USE [Shop];"); response.Database != "Shop" {
		t.Fatalf("context after USE is %q", response.Database)
	}
	response := s.run("master", "USE Nowhere")
	if response.Number != 911 || response.Database != "master" {
		t.Fatalf("USE of a missing database: %+v", response)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		sql    string
		number int
		line   int
	}{
		{"INSERT INTO dbo.Items VALUES (1, 'x', 1)", 2627, 1},
		{"INSERT INTO dbo.Items (Id) VALUES (NULL)", 515, 1},
		{"INSERT INTO dbo.Items (Id, Nope) VALUES (3, 1)", 207, 1},
		{"INSERT INTO dbo.Items (Id, Label) VALUES (3)", 109, 1},
		{"INSERT INTO dbo.Items VALUES (3, 'x')", 213, 1},
		{"INSERT INTO dbo.Items VALUES ('three', 'x', 1)", 245, 1},
		{"INSERT INTO dbo.Items VALUES (3, 'far too long', 1)", 2628, 1},
		{"INSERT INTO dbo.Items VALUES (3, 'x', 123456789)", 8115, 1},
		{"INSERT INTO dbo.Missing VALUES (1)", 208, 1},
		{"PRINT 'a'\nCREATE TABLE dbo.Items (Id INT)", 2714, 2},
		{"SELECT 1\nSELECT * FROM", 102, 2},
		{"PRINT 'open", 105, 1},
		{"DROP DATABASE master", 3708, 1},
		{"DROP DATABASE Shop", 3702, 1},
		{"CREATE DATABASE [Shop]", 1801, 1},
	}
	for _, c := range cases {
		s := newServer(t)
		must(t, s, "master", "CREATE DATABASE Shop")
		must(t, s, "Shop", "CREATE TABLE dbo.Items (Id INT PRIMARY KEY, Label NVARCHAR(5), Price DECIMAL(5,2)); INSERT INTO dbo.Items VALUES (1, 'a', 1)")
		response := s.run("Shop", c.sql)
		if response.Number != c.number || response.Line != c.line || response.Severity == 0 {
			t.Errorf("%q: got Msg %d line %d (%s), want Msg %d line %d", c.sql, response.Number, response.Line, response.Error, c.number, c.line)
		}
		if got := must(t, s, "Shop", "SELECT COUNT(*) FROM dbo.Items"); got[0] != "1" {
			t.Errorf("%q changed the table: %v rows", c.sql, got)
		}
	}
}

func TestSyntaxErrorRunsNothing(t *testing.T) {
	s := newServer(t)
	response := s.run("master", "CREATE DATABASE Shop; PRINT 'x' SELECT FROM")
	if response.Number != 102 || len(response.Output) != 0 {
		t.Fatalf("got %+v", response)
	}
	if _, found := s.lookup("Shop"); found {
		t.Fatal("a batch with a syntax error ran")
	}
}

func TestDatabasesSurviveARestart(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Shop")
	must(t, s, "Shop", "CREATE TABLE t (Id INT PRIMARY KEY); INSERT t VALUES (1), (2)")
	restarted := &server{path: s.path}
	if err := restarted.load(); err != nil {
		t.Fatal(err)
	}
	if got := must(t, restarted, "Shop", "SELECT COUNT(*) FROM dbo.t"); got[0] != "2" {
		t.Fatalf("after a restart: %v", got)
	}
	if response := restarted.run("Shop", "INSERT t VALUES (2)"); response.Number != 2627 {
		t.Fatalf("the key was not kept: %+v", response)
	}
}

func TestLoginIsChecked(t *testing.T) {
	s := newServer(t)
	response := s.handle(sqlwire.Request{Op: "query", User: "sa", Password: "wrong", SQL: "SELECT 1"})
	if response.Number != 18456 {
		t.Fatalf("got %+v", response)
	}
	response = s.handle(sqlwire.Request{Op: "query", User: "sa", Password: "x", Database: "Nowhere", SQL: "SELECT 1"})
	if response.Number != 4060 {
		t.Fatalf("got %+v", response)
	}
}

func TestWhereFiltersByEquality(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE Shop")
	must(t, s, "Shop", "CREATE TABLE t (Id INT PRIMARY KEY, Sku NVARCHAR(10), Price DECIMAL(5,2)); INSERT t VALUES (1, 'a-1', 1.5), (2, 'B-2', 1.5), (3, NULL, 2)")
	cases := map[string][]string{
		"SELECT Id FROM t WHERE Price = 1.50":              {"1", "2"},
		"SELECT Id FROM t WHERE Sku = 'b-2'":               {"2"},
		"SELECT Id FROM t WHERE Price = 1.5 AND Id = 2":    {"2"},
		"SELECT COUNT(*) FROM t WHERE Sku = NULL":          {"0"},
		"SELECT Sku, Price FROM dbo.t WHERE Id = 3":        {"NULL|2.00"},
		"SELECT name FROM sys.tables WHERE name = 'other'": nil,
	}
	for query, want := range cases {
		if got := must(t, s, "Shop", query); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
}

func TestPartitionStatsCountThePagesOfEachTable(t *testing.T) {
	s := newServer(t)
	must(t, s, "master", "CREATE DATABASE [Shop]")
	must(t, s, "Shop", "CREATE TABLE dbo.Small (id INT); CREATE TABLE dbo.Big (id INT, note NVARCHAR(4000))")
	must(t, s, "Shop", "INSERT INTO dbo.Small (id) VALUES (1)")
	note := strings.Repeat("x", 4000)
	for i := 0; i < 10; i++ {
		must(t, s, "Shop", "INSERT INTO dbo.Big (id, note) VALUES (1, N'"+note+"')")
	}
	got := must(t, s, "Shop", "SET NOCOUNT ON; SELECT object_id, used_page_count FROM sys.dm_db_partition_stats")
	if len(got) != 2 || !strings.HasSuffix(got[0], "|2") || !strings.HasSuffix(got[1], "|6") {
		t.Fatalf("partition stats %v, want one page plus the IAM page for Small, five plus one for Big", got)
	}
	if empty := must(t, s, "master", "SELECT used_page_count FROM sys.dm_db_partition_stats"); empty != nil {
		t.Fatalf("master holds no user table, got %v", empty)
	}
}
