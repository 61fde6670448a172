// Package sqlwire is the tiny line-delimited JSON protocol between the SQL
// Server stand-in and the sqlpackage and sqlcmd stand-ins. Real SQL Server
// speaks TDS; the project never talks to it directly, only through those two
// tools, so this protocol only has to carry what they need.
package sqlwire

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// Table holds a table's columns and rows as text, like a BCP export. Types
// and Key are known only for tables made by CREATE TABLE; a table restored
// from a package has none, and the server then checks nothing on INSERT.
type Table struct {
	Name    string     `json:"name"`
	Columns []string   `json:"columns"`
	Types   []string   `json:"types,omitempty"` // e.g. INT, NVARCHAR(100), DECIMAL(10,2)
	Key     string     `json:"key,omitempty"`   // the PRIMARY KEY column, if any
	Rows    [][]string `json:"rows"`
}

// Database is a whole database: what an export carries and an import
// restores. The server also keeps a database's catalog entry in it (its
// sys.databases columns and the logical name of its data file); an export
// carries those along and an import ignores them.
type Database struct {
	Name     string  `json:"name"`
	Tables   []Table `json:"tables"`
	ID       int     `json:"database_id,omitempty"`
	SourceID int     `json:"source_database_id,omitempty"` // a snapshot's source database; 0 is NULL
	Created  string  `json:"create_date,omitempty"`        // as sqlcmd prints a datetime: 2006-01-02 15:04:05.000
	File     string  `json:"file,omitempty"`               // logical name of the data file (a rename keeps it)
}

// Request is one client call; every call carries its credentials. A query
// carries one batch (the text between two GO lines); Database is the context
// it starts in, which is how a client keeps a USE across batches. An import
// goes as real sqlpackage does it: "import" creates the database and the
// schema of Data's tables, then one "load" per table (Data holding that one
// table with its rows) bulk-loads its data; whatever was stored before a
// failure stays.
type Request struct {
	Op       string    `json:"op"` // export, import, load, query
	User     string    `json:"user"`
	Password string    `json:"password"`
	Database string    `json:"database,omitempty"`
	SQL      string    `json:"sql,omitempty"`
	Data     *Database `json:"data,omitempty"`
}

// Output is one thing a batch sends back, in order: a message (PRINT and
// other severity 0-10 messages), the rows of one result set, or an error
// that did not end the batch (DBCC CHECKDB reports each consistency error
// so and carries on), with its number, severity, state and line.
type Output struct {
	Kind     string     `json:"kind"` // message, rows or error
	Message  string     `json:"message,omitempty"`
	Rows     [][]string `json:"rows,omitempty"`
	Number   int        `json:"number,omitempty"`
	Severity int        `json:"severity,omitempty"`
	State    int        `json:"state,omitempty"`
	Line     int        `json:"line,omitempty"`
}

// Response carries what a call produced and, if it failed, a SQL Server style
// error (Number, Severity and the batch Line it came from). Output sent
// before an error still reaches the client, as with TDS. Database is the
// context the batch ended in (TDS sends it as an ENVCHANGE after a USE).
type Response struct {
	Error    string    `json:"error,omitempty"`
	Number   int       `json:"number,omitempty"`
	Severity int       `json:"severity,omitempty"`
	State    int       `json:"state,omitempty"`
	Line     int       `json:"line,omitempty"`
	Output   []Output  `json:"output,omitempty"`
	Database string    `json:"database,omitempty"`
	Data     *Database `json:"data,omitempty"`
}

// Error is a SQL Server error as the client tools report it.
type Error struct {
	Number   int
	Severity int
	State    int
	Line     int
	Message  string
}

func (e *Error) Error() string { return e.Message }

// ConnectError reports that no server answered at the address.
type ConnectError struct {
	Server string
	Err    error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("A network-related or instance-specific error occurred while establishing a connection to SQL Server (%s): %v", e.Server, e.Err)
}

// SplitServer parses "host,port", "tcp:host,port" or "host" (port 1433).
func SplitServer(server string) (string, string) {
	server = strings.TrimPrefix(server, "tcp:")
	if host, port, found := strings.Cut(server, ","); found {
		return host, port
	}
	return server, "1433"
}

// Call sends one request to the server at "host,port" and waits for the answer.
func Call(server string, request Request, timeout time.Duration) (*Response, error) {
	host, port := SplitServer(server)
	connection, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), timeout)
	if err != nil {
		return nil, &ConnectError{Server: server, Err: err}
	}
	defer connection.Close()
	_ = connection.SetDeadline(time.Now().Add(10 * timeout))
	if err := json.NewEncoder(connection).Encode(request); err != nil {
		return nil, &ConnectError{Server: server, Err: err}
	}
	reader := bufio.NewReaderSize(connection, 1<<20)
	var response Response
	if err := json.NewDecoder(reader).Decode(&response); err != nil {
		return nil, &ConnectError{Server: server, Err: err}
	}
	if response.Error != "" {
		return &response, &Error{Number: response.Number, Severity: response.Severity, State: max(response.State, 1), Line: response.Line, Message: response.Error}
	}
	return &response, nil
}
