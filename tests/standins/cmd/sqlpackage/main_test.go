package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

func TestElapsedIsATimeSpan(t *testing.T) {
	cases := map[time.Duration]string{
		2*time.Minute + 44*time.Second + 169*time.Millisecond: "0:02:44.16",
		time.Hour + 5*time.Millisecond:                        "1:00:00.00",
		39*time.Second + 170*time.Millisecond:                 "0:00:39.17",
	}
	for duration, want := range cases {
		if got := elapsed(duration); got != want {
			t.Errorf("%v: %s, want %s", duration, got, want)
		}
	}
}

// server stands in for the SQL Server stand-in: it records the requests and
// answers the load of a table named in failAt with an error.
type server struct {
	requests []sqlwire.Request
	failAt   string
	failWith *sqlwire.Error
}

func (s *server) call(_ string, request sqlwire.Request, _ time.Duration) (*sqlwire.Response, error) {
	s.requests = append(s.requests, request)
	if s.failWith != nil && (request.Op == "import" && s.failAt == "" || request.Op == "load" && request.Data.Tables[0].Name == s.failAt) {
		return &sqlwire.Response{Error: s.failWith.Message}, s.failWith
	}
	return &sqlwire.Response{}, nil
}

// runImport imports a package of two tables with the given arguments (by
// default the ones the project passes) and returns the exit code, stdout and
// stderr.
func runImport(t *testing.T, fake *server, arguments ...string) (int, string, string) {
	t.Helper()
	bacpac := filepath.Join(t.TempDir(), "Sales.bacpac")
	data := &sqlwire.Database{Name: "Sales", Tables: []sqlwire.Table{
		{Name: "dbo.Customers", Columns: []string{"Id", "Name"}, Rows: [][]string{{"1", "Ada"}}},
		{Name: "sales.Orders", Columns: []string{"Id"}, Rows: [][]string{{"10"}, {"11"}}},
	}}
	if err := writeBacpac(bacpac, data, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if arguments == nil {
		arguments = []string{"/TargetServerName:mssql-restore,1433", "/TargetDatabaseName:Sales_drill_20261201120000",
			"/TargetUser:sa", "/TargetPassword:x", "/TargetTrustServerCertificate:True"}
	}
	o, err := parse(append([]string{"/a:Import", "/sf:" + bacpac}, arguments...))
	if err != nil {
		t.Fatal(err)
	}
	original := call
	call = fake.call
	t.Cleanup(func() { call = original })
	var stdout, stderr bytes.Buffer
	code := importPackage(o, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var timeElapsed = regexp.MustCompile(`(?m)^Time elapsed \d+:\d\d:\d\d\.\d\d\n\z`)

func TestImportPrintsWhatTheRealOnePrints(t *testing.T) {
	fake := &server{}
	code, stdout, stderr := runImport(t, fake)
	want := `Importing to database 'Sales_drill_20261201120000' on server 'mssql-restore,1433'.
Creating deployment plan
Initializing deployment
Verifying deployment plan
Analyzing deployment plan
Importing package schema and data into database
Updating database
Importing data
Processing Import.
Disabling indexes.
Processing Table '[dbo].[Customers]'.
Processing Table '[sales].[Orders]'.
Enabling indexes.
Successfully imported database.
Changes to connection setting default values were incorporated in a recent release.  More information is available at https://aka.ms/dacfx-connection
`
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, want) || !timeElapsed.MatchString(stdout) {
		t.Fatalf("exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}
	// The schema first, without rows, then one load per table with its rows.
	if len(fake.requests) != 3 || fake.requests[0].Op != "import" || len(fake.requests[0].Data.Tables) != 2 || len(fake.requests[0].Data.Tables[1].Rows) != 0 {
		t.Fatalf("requests %+v", fake.requests)
	}
	for i, table := range []string{"dbo.Customers", "sales.Orders"} {
		load := fake.requests[i+1]
		if load.Op != "load" || load.Database != "Sales_drill_20261201120000" || len(load.Data.Tables) != 1 || load.Data.Tables[0].Name != table || len(load.Data.Tables[0].Rows) != i+1 {
			t.Fatalf("load %d: %+v", i, load)
		}
	}
}

func TestAFailedLoadStopsTheImportWithTheRealOnesError(t *testing.T) {
	fake := &server{failAt: "sales.Orders", failWith: &sqlwire.Error{Number: 4832, Severity: 16, Message: "Bulk load: An unexpected end of file was encountered in the data file."}}
	code, stdout, stderr := runImport(t, fake)
	if code != 1 || stderr != "*** Error importing database:Data plan execution failed with message One or more errors occurred. (Bulk load: An unexpected end of file was encountered in the data file.)\n" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "Processing Table '[sales].[Orders]'.\nTime elapsed ") || strings.Contains(stdout, "Successfully") || !timeElapsed.MatchString(stdout) {
		t.Fatalf("stdout\n%s", stdout)
	}
}

func TestAnImportIntoADatabaseWithObjectsIsRefused(t *testing.T) {
	fake := &server{failWith: &sqlwire.Error{Number: 1801, Severity: 16, Message: userObjects}}
	code, stdout, stderr := runImport(t, fake)
	want := "*** Error importing database:" + userObjects + "\nError SQL71659: " + userObjects + "\n"
	if code != 1 || stderr != want || strings.Contains(stdout, "Processing Table") || len(fake.requests) != 1 {
		t.Fatalf("exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}
}

func TestAnImportThatDoesNotTrustTheCertificateConnectsNowhere(t *testing.T) {
	fake := &server{}
	code, stdout, stderr := runImport(t, fake, "/tsn:db", "/tdn:Sales")
	if code != 1 || stderr != "*** Error importing database:"+untrusted+"\n" || !strings.HasSuffix(strings.Split(stdout, "Time elapsed")[0], "Initializing deployment\n") || len(fake.requests) != 0 {
		t.Fatalf("exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}
}

func TestAnImportOfAPackageThatCannotBeReadConnectsNowhere(t *testing.T) {
	fake := &server{}
	original := call
	call = fake.call
	t.Cleanup(func() { call = original })
	o, _ := parse([]string{"/a:Import", "/sf:/nonexistent.bacpac", "/tsn:db", "/tdn:Sales", "/ttsc:True"})
	var stdout, stderr bytes.Buffer
	if code := importPackage(o, &stdout, &stderr); code != 1 || !strings.HasPrefix(stderr.String(), "*** Error importing database:The package '/nonexistent.bacpac' could not be read") || len(fake.requests) != 0 {
		t.Fatalf("exit %d, %s", code, stderr.String())
	}
}
