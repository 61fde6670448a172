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

// Table holds a table's columns and rows as text, like a BCP export.
type Table struct {
	Name    string     `json:"name"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Database is a whole database: what an export carries and an import restores.
type Database struct {
	Name   string  `json:"name"`
	Tables []Table `json:"tables"`
}

// Request is one client call; every call carries its credentials.
type Request struct {
	Op       string    `json:"op"` // export, import, query
	User     string    `json:"user"`
	Password string    `json:"password"`
	Database string    `json:"database,omitempty"`
	SQL      string    `json:"sql,omitempty"`
	Data     *Database `json:"data,omitempty"`
}

// Response carries either a result or a SQL Server style error.
type Response struct {
	Error  string     `json:"error,omitempty"`
	Number int        `json:"number,omitempty"`
	Rows   [][]string `json:"rows,omitempty"`
	Data   *Database  `json:"data,omitempty"`
}

// Error is a SQL Server error as the client tools report it.
type Error struct {
	Number  int
	Message string
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
		return &response, &Error{Number: response.Number, Message: response.Error}
	}
	return &response, nil
}
