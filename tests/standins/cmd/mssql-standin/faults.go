package main

// Fault injection for the tests (see the package comment): the stand-in
// re-reads <data dir>/standin-faults.json on every request.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path"
	"strings"
)

// faults lists, per operation, glob patterns (path.Match syntax, matched
// without regard to case) of the database names it fails for.
type faults struct {
	CheckDB    []string `json:"checkdb"`     // DBCC CHECKDB reports a consistency error
	ModifyName []string `json:"modify_name"` // ALTER DATABASE ... MODIFY NAME fails with Msg 5030
	Import     []string `json:"import"`      // an import fails loading its last table
}

// readFaults reads the fault file; a missing file injects nothing, and so
// does a file that is not valid, with a line in the server's log saying why.
func (s *server) readFaults() faults {
	var injected faults
	if s.faultPath == "" {
		return injected
	}
	content, err := os.ReadFile(s.faultPath)
	if os.IsNotExist(err) {
		return injected
	}
	if err == nil {
		decoder := json.NewDecoder(bytes.NewReader(content))
		decoder.DisallowUnknownFields()
		err = decoder.Decode(&injected)
	}
	if err == nil {
		for _, pattern := range append(append(append([]string{}, injected.CheckDB...), injected.ModifyName...), injected.Import...) {
			if _, bad := path.Match(pattern, ""); bad != nil {
				err = fmt.Errorf("pattern %q: %w", pattern, bad)
				break
			}
		}
	}
	if err != nil {
		log.Printf("Test faults in %s ignored: %v", s.faultPath, err)
		return faults{}
	}
	return injected
}

// matches tells whether a database name matches one of the patterns.
func matches(patterns []string, name string) bool {
	for _, pattern := range patterns {
		if found, _ := path.Match(strings.ToLower(pattern), strings.ToLower(name)); found {
			return true
		}
	}
	return false
}
