// Command sqlcmd stands in for Microsoft's sqlcmd against the SQL Server
// stand-in: -S server[,port] -U user -P password [-d database] -Q query
// [-C] [-b] [-h -1] [-W] [-o file]. Rows print one per line, columns joined by
// -s (default a space); errors print as "Msg N, Level 16, ..." and exit 1.
// Without -P the password comes from SQLCMDPASSWORD, as with the real sqlcmd.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

func main() {
	options := map[string]string{"-s": " "}
	arguments := os.Args[1:]
	for i := 0; i < len(arguments); i++ {
		switch flag := arguments[i]; flag {
		case "-C", "-b", "-W", "-N", "-I":
			options[flag] = "true"
		case "-S", "-U", "-P", "-d", "-Q", "-q", "-o", "-h", "-s", "-l", "-t":
			if i+1 >= len(arguments) {
				fmt.Fprintf(os.Stderr, "Sqlcmd: '%s': Missing argument. Enter '-?' for help.\n", flag)
				os.Exit(1)
			}
			options[flag] = arguments[i+1]
			i++
		case "-?":
			fmt.Println("usage: sqlcmd -S server -U user -P password [-d database] -Q query")
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
	response, err := sqlwire.Call(options["-S"], sqlwire.Request{
		Op: "query", User: options["-U"], Password: options["-P"], Database: options["-d"], SQL: query,
	}, 5*time.Second)
	var sqlError *sqlwire.Error
	switch {
	case errors.As(err, &sqlError):
		host, _ := sqlwire.SplitServer(options["-S"])
		fmt.Fprintf(os.Stderr, "Msg %d, Level 16, State 1, Server %s, Line 1\n%s\n", sqlError.Number, host, sqlError.Message)
		os.Exit(1)
	case err != nil:
		fmt.Fprintf(os.Stderr, "Sqlcmd: Error: Microsoft ODBC Driver 18 for SQL Server : Login timeout expired. %v.\n", err)
		os.Exit(1)
	}
	for _, row := range response.Rows {
		fmt.Fprintln(output, strings.Join(row, options["-s"]))
	}
}
