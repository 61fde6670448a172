// Command sqlcmd stands in for Microsoft's sqlcmd against the SQL Server
// stand-in: -S server[,port] -U user -P password [-d database] (-Q query |
// -i file) [-C] [-b] [-h -1] [-W] [-o file]. A -i script is split into
// batches on lines holding only GO (or "GO n", which runs the batch n times)
// and sent one batch at a time; a USE carries over to the next batch. PRINT
// messages and rows print in order, one row per line, columns joined by -s
// (default a space); errors print as "Msg N, Level L, State 1, Server S,
// Line L" and the message. With -b the first error above severity 10 ends the
// run with exit code 1; without -b sqlcmd goes on with the next batch and
// exits 0, as the real one does. A failed login always exits 1. Without -P
// the password comes from SQLCMDPASSWORD, as with the real sqlcmd; --version
// prints the version.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

// version is the go-sqlcmd release this stands in for; the real one sets it
// at build time from its git tag.
var version = "v1.10.0"

// separator is a batch separator line: GO, in any case, with an optional count.
var separator = regexp.MustCompile(`(?i)^\s*go(?:\s+(\d+))?\s*$`)

// batches splits a script on its GO lines; a batch followed by "GO n" appears n times.
func batches(script string) []string {
	var result []string
	var current []string
	for _, line := range strings.Split(strings.ReplaceAll(script, "\r\n", "\n"), "\n") {
		match := separator.FindStringSubmatch(line)
		if match == nil {
			current = append(current, line)
			continue
		}
		count := 1
		if match[1] != "" {
			count, _ = strconv.Atoi(match[1])
		}
		for range count {
			result = append(result, strings.Join(current, "\n"))
		}
		current = nil
	}
	return append(result, strings.Join(current, "\n"))
}

// loginErrors are answered before any batch runs: the connection fails.
var loginErrors = map[int]bool{18456: true, 4060: true}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		// As go-sqlcmd answers --version: banner, version, legal notes, exit 0.
		fmt.Printf("sqlcmd: Install/Create/Query SQL Server, Azure SQL, and Tools\n\nVersion: %s\n\n", version)
		fmt.Println("Legal docs and information: aka.ms/SqlcmdLegal\nThird party notices: aka.ms/SqlcmdNotices")
		return
	}
	options := map[string]string{"-s": " "}
	arguments := os.Args[1:]
	for i := 0; i < len(arguments); i++ {
		switch flag := arguments[i]; flag {
		case "-C", "-b", "-W", "-N", "-I":
			options[flag] = "true"
		case "-S", "-U", "-P", "-d", "-Q", "-q", "-i", "-o", "-h", "-s", "-l", "-t":
			if i+1 >= len(arguments) {
				fmt.Fprintf(os.Stderr, "Sqlcmd: '%s': Missing argument. Enter '-?' for help.\n", flag)
				os.Exit(1)
			}
			options[flag] = arguments[i+1]
			i++
		case "-?":
			fmt.Println("usage: sqlcmd -S server -U user -P password [-d database] (-Q query | -i file)")
			return
		default:
			fmt.Fprintf(os.Stderr, "Sqlcmd: '%s': Unknown Option. Enter '-?' for help.\n", flag)
			os.Exit(1)
		}
	}
	if _, given := options["-P"]; !given {
		options["-P"] = os.Getenv("SQLCMDPASSWORD") // as sqlcmd does: keeps it off the command line
	}
	query := options["-Q"]
	if query == "" {
		query = options["-q"]
	}
	script := []string{query}
	if path, given := options["-i"]; given {
		if query != "" {
			fmt.Fprintln(os.Stderr, "Sqlcmd: The i and the Q options are mutually exclusive.")
			os.Exit(1)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Sqlcmd: Error: Error occurred while opening or operating on file %s (Reason: %v).\n", path, err)
			os.Exit(1)
		}
		script = batches(string(content))
	}
	var output io.Writer = os.Stdout
	if path := options["-o"]; path != "" && path != "/dev/stdout" {
		file, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Sqlcmd: Error: Error occurred while opening or operating on file %s (Reason: %v).\n", path, err)
			os.Exit(1)
		}
		defer file.Close()
		output = file
	}
	database := options["-d"]
	for _, batch := range script {
		if strings.TrimSpace(batch) == "" && options["-i"] != "" {
			continue // sqlcmd sends no empty batch
		}
		response, err := sqlwire.Call(options["-S"], sqlwire.Request{
			Op: "query", User: options["-U"], Password: options["-P"], Database: database, SQL: batch,
		}, 5*time.Second)
		var sqlError *sqlwire.Error
		if err != nil && !errors.As(err, &sqlError) {
			fmt.Fprintf(os.Stderr, "Sqlcmd: Error: Microsoft ODBC Driver 18 for SQL Server : Login timeout expired. %v.\n", err)
			os.Exit(1)
		}
		for _, result := range response.Output {
			if result.Kind == "message" {
				fmt.Fprintln(output, result.Message)
				continue
			}
			for _, row := range result.Rows {
				fmt.Fprintln(output, strings.Join(row, options["-s"]))
			}
		}
		if response.Database != "" {
			database = response.Database
		}
		if sqlError != nil {
			host, _ := sqlwire.SplitServer(options["-S"])
			fmt.Fprintf(os.Stderr, "Msg %d, Level %d, State 1, Server %s, Line %d\n%s\n", sqlError.Number, sqlError.Severity, host, sqlError.Line, sqlError.Message)
			if loginErrors[sqlError.Number] || (options["-b"] != "" && sqlError.Severity > 10) {
				os.Exit(1)
			}
		}
	}
}
