// Command portref is the reference for two of the project's ports of Go
// behaviour (image/sqlserver_backup/go_time_duration.py, go_godotenv.py). It
// reads a JSON array of texts on stdin and prints a JSON array with what the
// Go function named by its argument makes of each:
//
//	portref duration: time.ParseDuration
//	  [{"ok": true, "nanoseconds": 5400000000000}, ...]
//	portref dotenv: godotenv v1.4.0's Parse (GoBackup v3.1.1 loads .env with it)
//	  [{"ok": true, "values": {"K": "v"}}, {"ok": false, "values": {}}, ...]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

type result struct {
	OK          bool              `json:"ok"`
	Nanoseconds int64             `json:"nanoseconds,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
}

func duration(text string) result {
	parsed, err := time.ParseDuration(text)
	return result{OK: err == nil, Nanoseconds: int64(parsed)}
}

func dotenv(text string) result {
	values, err := godotenv.Parse(strings.NewReader(text))
	if err != nil {
		values = map[string]string{}
	}
	return result{OK: err == nil, Values: values}
}

func main() {
	functions := map[string]func(string) result{"duration": duration, "dotenv": dotenv}
	var texts []string
	function, known := functions[strings.Join(os.Args[1:], " ")]
	if err := json.NewDecoder(os.Stdin).Decode(&texts); !known || err != nil {
		fmt.Fprintln(os.Stderr, "usage: portref duration|dotenv < JSON array of strings")
		os.Exit(2)
	}
	results := []result{}
	for _, text := range texts {
		results = append(results, function(text))
	}
	_ = json.NewEncoder(os.Stdout).Encode(results)
}
