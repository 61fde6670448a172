// Command sqlcmd stands in for Microsoft's sqlcmd against the SQL Server
// stand-in: -S server[,port] -U user -P password [-d database] (-Q query |
// -i file) [-C] [-b] [-h -1] [-W] [-o file]. As go-sqlcmd's flag parser does,
// it also takes a value attached to its flag: -h-1, -h=-1, -s"|". A -i script
// is split into batches on lines holding only GO (or "GO n", which runs the
// batch n times) and sent one batch at a time; a USE carries over to the next
// batch. PRINT messages and rows print in order, one row per line, columns
// joined by -s (default a space); errors print as "Msg N, Level L, State S,
// Server H, Line L" and the message. With -b the first error above severity
// 10 ends the run with exit code 1 (what the batch sent after it is not
// printed); without -b sqlcmd goes on with the next batch and exits 0, as the
// real one does. A failed login always exits 1. Without -P the password comes
// from SQLCMDPASSWORD, as with the real sqlcmd; --version prints the version.
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

// switches take no value; valueFlags take one.
var (
	switches   = map[string]bool{"-C": true, "-b": true, "-W": true, "-N": true, "-I": true, "-?": true}
	valueFlags = map[string]bool{
		"-S": true, "-U": true, "-P": true, "-d": true, "-Q": true, "-q": true, "-i": true, "-o": true, "-h": true,
		"-s": true, "-l": true, "-t": true,
	}
)

// parseArguments reads the command line as go-sqlcmd's flag parser (pflag)
// does: "-h -1", "-h-1" and "-h=-1" all set -h to -1. A switch is "true".
func parseArguments(arguments []string) (map[string]string, error) {
	options := map[string]string{"-s": " "}
	for i := 0; i < len(arguments); i++ {
		argument := arguments[i]
		flag := argument
		if len(argument) > 2 && argument[0] == '-' && argument[1] != '-' {
			flag = argument[:2]
		}
		switch {
		case switches[argument]:
			options[argument] = "true"
		case valueFlags[flag] && flag != argument:
			options[flag] = strings.TrimPrefix(argument[2:], "=")
		case valueFlags[argument]:
			if i+1 >= len(arguments) {
				return nil, fmt.Errorf("Sqlcmd: '%s': Missing argument. Enter '-?' for help.", argument)
			}
			options[argument] = arguments[i+1]
			i++
		default:
			return nil, fmt.Errorf("Sqlcmd: '%s': Unknown Option. Enter '-?' for help.", argument)
		}
	}
	return options, nil
}

// printError prints a server error as sqlcmd does.
func printError(server string, number, severity, state, line int, message string) {
	host, _ := sqlwire.SplitServer(server)
	fmt.Fprintf(os.Stderr, "Msg %d, Level %d, State %d, Server %s, Line %d\n%s\n", number, severity, max(state, 1), host, line, message)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		// As go-sqlcmd answers --version: banner, version, legal notes, exit 0.
		fmt.Printf("sqlcmd: Install/Create/Query SQL Server, Azure SQL, and Tools\n\nVersion: %s\n\n", version)
		fmt.Println("Legal docs and information: aka.ms/SqlcmdLegal\nThird party notices: aka.ms/SqlcmdNotices")
		return
	}
	options, err := parseArguments(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if options["-?"] != "" {
		fmt.Println("usage: sqlcmd -S server -U user -P password [-d database] (-Q query | -i file)")
		return
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
			switch result.Kind {
			case "message":
				fmt.Fprintln(output, result.Message)
			case "error":
				printError(options["-S"], result.Number, result.Severity, result.State, result.Line, result.Message)
				if options["-b"] != "" && result.Severity > 10 {
					os.Exit(1)
				}
			default:
				for _, row := range result.Rows {
					fmt.Fprintln(output, strings.Join(row, options["-s"]))
				}
			}
		}
		if response.Database != "" {
			database = response.Database
		}
		if sqlError != nil {
			printError(options["-S"], sqlError.Number, sqlError.Severity, sqlError.State, sqlError.Line, sqlError.Message)
			if loginErrors[sqlError.Number] || (options["-b"] != "" && sqlError.Severity > 10) {
				os.Exit(1)
			}
		}
	}
}
