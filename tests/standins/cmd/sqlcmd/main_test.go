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
