package main

import (
	"reflect"
	"testing"
)

func TestBatchesSplitOnGoLines(t *testing.T) {
	script := "SET NOCOUNT ON;\r\nGO\nPRINT 'go'\n  go  \nSELECT 1 -- GO\nGo 2\nPRINT 'last'\n"
	want := []string{"SET NOCOUNT ON;", "PRINT 'go'", "SELECT 1 -- GO", "SELECT 1 -- GO", "PRINT 'last'\n"}
	if got := batches(script); !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
}

func TestValuesAttachedToTheirFlagAsGoSqlcmdTakesThem(t *testing.T) {
	// GoBackup v3.1.1 lists databases with "-h-1" written without a space.
	for _, arguments := range [][]string{
		{"-S", "db,1433", "-Q", "SELECT 1", "-h-1", "-W"},
		{"-S", "db,1433", "-Q", "SELECT 1", "-h", "-1", "-W"},
		{"-Sdb,1433", "-QSELECT 1", "-h=-1", "-W"},
	} {
		options, err := parseArguments(arguments)
		if err != nil {
			t.Fatalf("%q: %v", arguments, err)
		}
		want := map[string]string{"-S": "db,1433", "-Q": "SELECT 1", "-h": "-1", "-W": "true", "-s": " "}
		if !reflect.DeepEqual(options, want) {
			t.Errorf("%q: options %v, want %v", arguments, options, want)
		}
	}
	if options, err := parseArguments([]string{"-s|", "-dSales"}); err != nil || options["-s"] != "|" || options["-d"] != "Sales" {
		t.Errorf("-s| -dSales: %v %v", options, err)
	}
}

func TestArgumentErrorsAreGoSqlcmds(t *testing.T) {
	cases := map[string][]string{
		"Sqlcmd: '-h': Missing argument. Enter '-?' for help.": {"-Q", "SELECT 1", "-h"},
		"Sqlcmd: '-x': Unknown Option. Enter '-?' for help.":   {"-x"},
		"Sqlcmd: '--h': Unknown Option. Enter '-?' for help.":  {"--h"},
	}
	for want, arguments := range cases {
		if _, err := parseArguments(arguments); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", arguments, err, want)
		}
	}
}
