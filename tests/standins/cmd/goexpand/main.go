// Command goexpand prints each argument expanded by Go's os.Expand against
// the environment, one per line in JSON: the reference the tests compare the
// image's Python re-implementation (image/sqlserver_backup/go_os_expand.py) with.
package main

import (
	"encoding/json"
	"os"
)

func main() {
	expanded := []string{}
	for _, argument := range os.Args[1:] {
		expanded = append(expanded, os.ExpandEnv(argument))
	}
	_ = json.NewEncoder(os.Stdout).Encode(expanded)
}
