// Command sqlpackage stands in for Microsoft's sqlpackage: /Version,
// /Action:Export and /Action:Import with the real parameter names (and their
// short forms), against the SQL Server stand-in. A .bacpac it writes is a zip
// shaped like the real one (model.xml, Origin.xml, Data/<table>/*.BCP) whose
// data round-trips through Import. Import goes as the real one's does: it
// creates the database and its schema, then loads the tables one at a time,
// printing each; a failure part-way leaves the database as far as it got, and
// the error ("*** Error importing database:...") on stderr. Exit code 0 on
// success, 1 on failure.
package main

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

// version is set at build time to the version the artifact is named after.
var version = "170.4.83.3"

var shortNames = map[string]string{
	"a": "action", "ssn": "sourceservername", "sdn": "sourcedatabasename", "su": "sourceuser",
	"sp": "sourcepassword", "stsc": "sourcetrustservercertificate", "tf": "targetfile",
	"sf": "sourcefile", "tsn": "targetservername", "tdn": "targetdatabasename", "tu": "targetuser",
	"tp": "targetpassword", "ttsc": "targettrustservercertificate", "p": "p",
}

type options struct {
	values     map[string]string
	properties map[string]string
}

func parse(arguments []string) (*options, error) {
	parsed := &options{values: map[string]string{}, properties: map[string]string{}}
	for _, argument := range arguments {
		if !strings.HasPrefix(argument, "/") && !strings.HasPrefix(argument, "-") {
			return nil, fmt.Errorf("'%s' is not a valid argument", argument)
		}
		name, value, _ := strings.Cut(argument[1:], ":")
		key := strings.ToLower(name)
		if long, found := shortNames[key]; found {
			key = long
		}
		if key == "p" {
			property, propertyValue, found := strings.Cut(value, "=")
			if !found {
				return nil, fmt.Errorf("'%s' is not a valid property; use /p:Name=Value", value)
			}
			parsed.properties[strings.ToLower(property)] = propertyValue
			continue
		}
		parsed.values[key] = value
	}
	return parsed, nil
}

// modelXML is the part of a real bacpac's model.xml the stand-in writes:
// SqlTable elements with their SqlSimpleColumn children, bracket-quoted.
type modelXML struct {
	XMLName  xml.Name       `xml:"DataSchemaModel"`
	Xmlns    string         `xml:"xmlns,attr"`
	Elements []modelElement `xml:"Model>Element"`
}

type modelElement struct {
	Type    string       `xml:"Type,attr"`
	Name    string       `xml:"Name,attr"`
	Columns []modelEntry `xml:"Relationship>Entry"`
}

type modelEntry struct {
	Column struct {
		Type string `xml:"Type,attr"`
		Name string `xml:"Name,attr"`
	} `xml:"Element"`
}

const dacNamespace = "http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"

// quoted turns dbo.Customers into [dbo].[Customers].
func quoted(parts ...string) string {
	return "[" + strings.Join(parts, "].[") + "]"
}

func unquoted(name string) []string {
	return strings.Split(strings.Trim(name, "[]"), "].[")
}

func fail(action, message string) {
	fmt.Fprintf(os.Stderr, "*** Error %s database:%s\n", action, message)
	os.Exit(1)
}

func describe(err error) string {
	var connectError *sqlwire.ConnectError
	var sqlError *sqlwire.Error
	switch {
	case errors.As(err, &connectError):
		return "Could not connect to database server.\n" + connectError.Error()
	case errors.As(err, &sqlError):
		return fmt.Sprintf("Could not connect to database server.\n%s (Microsoft.Data.SqlClient, Error Number:%d)", sqlError.Message, sqlError.Number)
	}
	return err.Error()
}

func commandTimeout(o *options) time.Duration {
	seconds, err := strconv.Atoi(o.properties["commandtimeout"])
	if err != nil || seconds <= 0 {
		seconds = 60
	}
	return time.Duration(seconds) * time.Second
}

// untrusted is the error of a connection to SQL Server's self-signed
// certificate that was not told to trust it, as the real sqlpackage
// (Encrypt=True by default since 161) reports it.
const untrusted = "Could not connect to database server.\nA connection was successfully established with the server, but then an error occurred during the login process. (provider: SSL Provider, error: 0 - The certificate chain was issued by an authority that is not trusted.)"

func requireTrust(o *options, key, action string) {
	if !strings.EqualFold(o.values[key], "true") {
		fail(action, untrusted)
	}
}

func export(o *options) {
	server, database, target := o.values["sourceservername"], o.values["sourcedatabasename"], o.values["targetfile"]
	for key, value := range map[string]string{"SourceServerName": server, "SourceDatabaseName": database, "TargetFile": target} {
		if value == "" {
			fail("exporting", "The "+key+" argument is required for the Export action.")
		}
	}
	if !strings.HasSuffix(strings.ToLower(target), ".bacpac") {
		fail("exporting", "The TargetFile argument must name a .bacpac file.")
	}
	started := time.Now()
	fmt.Printf("Connecting to database '%s' on server '%s'.\n", database, server)
	requireTrust(o, "sourcetrustservercertificate", "exporting")
	response, err := sqlwire.Call(server, sqlwire.Request{
		Op: "export", User: o.values["sourceuser"], Password: o.values["sourcepassword"], Database: database,
	}, commandTimeout(o))
	if err != nil {
		fail("exporting", describe(err))
	}
	fmt.Println("Extracting schema")
	fmt.Println("Extracting schema from database")
	fmt.Println("Exporting data")
	if err := writeBacpac(target, response.Data, tableDataDirectory(o)); err != nil {
		var pathError *os.PathError
		if errors.Is(err, syscall.ENOSPC) && errors.As(err, &pathError) {
			// .NET's IOException for ENOSPC, as the real one reports it.
			fail("exporting", fmt.Sprintf("Could not export package.\nNo space left on device : '%s'", pathError.Path))
		}
		fail("exporting", fmt.Sprintf("Could not write the file '%s': %v", target, err))
	}
	fmt.Printf("Successfully exported database and saved it to file '%s'.\n", target)
	fmt.Printf("Time elapsed %s\n", time.Since(started).Round(time.Millisecond))
}

// tableDataDirectory is where the export buffers each table's data before it
// goes into the package: /p:TempDirectoryForTableData, else TMPDIR, as the
// real one (which needs about twice the largest table there).
func tableDataDirectory(o *options) string {
	if directory := o.properties["tempdirectoryfortabledata"]; directory != "" {
		return directory
	}
	return os.TempDir()
}

// bufferedRows writes a table's rows to a file in directory and reads them
// back, as the real export streams table data through a temp file.
func bufferedRows(directory string, rows [][]string) ([]byte, error) {
	body, err := json.Marshal(rows)
	if err != nil {
		return nil, err
	}
	buffer, err := os.CreateTemp(directory, "TableData-*.BCP")
	if err != nil {
		return nil, err
	}
	defer os.Remove(buffer.Name())
	defer buffer.Close()
	if _, err := buffer.Write(body); err != nil {
		return nil, err
	}
	if err := buffer.Sync(); err != nil {
		return nil, err
	}
	return os.ReadFile(buffer.Name())
}

func writeBacpac(target string, database *sqlwire.Database, tempDirectory string) error {
	file, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	archive := zip.NewWriter(file)
	model := modelXML{Xmlns: dacNamespace}
	for _, table := range database.Tables {
		element := modelElement{Type: "SqlTable", Name: quoted(strings.Split(table.Name, ".")...)}
		for _, column := range table.Columns {
			var entry modelEntry
			entry.Column.Type = "SqlSimpleColumn"
			entry.Column.Name = quoted(append(strings.Split(table.Name, "."), column)...)
			element.Columns = append(element.Columns, entry)
		}
		model.Elements = append(model.Elements, element)
	}
	modelBytes, err := xml.MarshalIndent(model, "", "  ")
	if err != nil {
		return err
	}
	modelFile := append([]byte(xml.Header), modelBytes...)
	entries := []struct {
		name string
		body []byte
	}{
		{"[Content_Types].xml", []byte(`<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="text/xml" /><Default Extension="BCP" ContentType="application/octet-stream" /></Types>`)},
		{"model.xml", modelFile},
		{"DacMetadata.xml", []byte(fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><DacType xmlns="http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"><Name>%s</Name><Version>1.0.0.0</Version></DacType>`, database.Name))},
		{"Origin.xml", []byte(fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><DacOrigin xmlns="http://schemas.microsoft.com/sqlserver/dac/Serialization/2012/02"><PackageProperties><Version>3.1.0.0</Version></PackageProperties><Operation><Identity>standin</Identity><Start>%s</Start><ProductName>Microsoft.Data.Tools.Schema.Tasks.Sql, Version=%s (stand-in)</ProductName></Operation><Checksums><Checksum Uri="/model.xml">%X</Checksum></Checksums></DacOrigin>`, time.Now().UTC().Format(time.RFC3339), version, sha256.Sum256(modelFile)))},
	}
	for _, table := range database.Tables {
		rows, err := bufferedRows(tempDirectory, table.Rows)
		if err != nil {
			return err
		}
		entries = append(entries, struct {
			name string
			body []byte
		}{path.Join("Data", table.Name, "TableData-000-00000.BCP"), rows})
	}
	for _, entry := range entries {
		writer, err := archive.Create(entry.name)
		if err != nil {
			return err
		}
		if _, err := writer.Write(entry.body); err != nil {
			return err
		}
	}
	if err := archive.Close(); err != nil {
		return err
	}
	if err := file.Sync(); err != nil {
		return err
	}
	return file.Close()
}

func readBacpac(source string) (*sqlwire.Database, error) {
	archive, err := zip.OpenReader(source)
	if err != nil {
		return nil, err
	}
	defer archive.Close()
	read := func(name string) ([]byte, error) {
		entry, err := archive.Open(name)
		if err != nil {
			return nil, fmt.Errorf("the package is missing %s: %w", name, err)
		}
		defer entry.Close()
		return io.ReadAll(entry)
	}
	modelBytes, err := read("model.xml")
	if err != nil {
		return nil, err
	}
	// As the real one does: the package's model must match the SHA-256
	// Origin.xml recorded for it when it was exported.
	originBytes, err := read("Origin.xml")
	if err != nil {
		return nil, err
	}
	var origin struct {
		Checksums []struct {
			URI   string `xml:"Uri,attr"`
			Value string `xml:",chardata"`
		} `xml:"Checksums>Checksum"`
	}
	if err := xml.Unmarshal(originBytes, &origin); err != nil {
		return nil, fmt.Errorf("Origin.xml is not valid: %w", err)
	}
	want := ""
	for _, checksum := range origin.Checksums {
		if checksum.URI == "/model.xml" {
			want = strings.TrimSpace(checksum.Value)
		}
	}
	if got := fmt.Sprintf("%X", sha256.Sum256(modelBytes)); !strings.EqualFold(got, want) {
		return nil, errors.New("the checksum of model.xml does not match the one recorded in Origin.xml")
	}
	var model modelXML
	if err := xml.Unmarshal(modelBytes, &model); err != nil {
		return nil, fmt.Errorf("model.xml is not valid: %w", err)
	}
	database := &sqlwire.Database{}
	for _, element := range model.Elements {
		if element.Type != "SqlTable" {
			continue
		}
		name := strings.Join(unquoted(element.Name), ".")
		rowBytes, err := read(path.Join("Data", name, "TableData-000-00000.BCP"))
		if err != nil {
			return nil, err
		}
		restored := sqlwire.Table{Name: name}
		for _, entry := range element.Columns {
			parts := unquoted(entry.Column.Name)
			restored.Columns = append(restored.Columns, parts[len(parts)-1])
		}
		if err := json.Unmarshal(rowBytes, &restored.Rows); err != nil {
			return nil, fmt.Errorf("table data of %s is not valid: %w", name, err)
		}
		database.Tables = append(database.Tables, restored)
	}
	return database, nil
}

// call reaches the SQL Server stand-in; tests replace it.
var call = sqlwire.Call

// userObjects is the real one's error for a target that is not empty.
const userObjects = "Data cannot be imported into target because it contains one or more user objects. Import should be performed against a new, empty database."

// elapsed is a duration as .NET prints a TimeSpan and sqlpackage its
// "Time elapsed": h:mm:ss.ff.
func elapsed(duration time.Duration) string {
	hundredths := int64(duration / (10 * time.Millisecond))
	return fmt.Sprintf("%d:%02d:%02d.%02d", hundredths/360000, hundredths/6000%60, hundredths/100%60, hundredths%100)
}

// importPackage runs /Action:Import and returns the exit code.
func importPackage(o *options, stdout, stderr io.Writer) int {
	server, database, source := o.values["targetservername"], o.values["targetdatabasename"], o.values["sourcefile"]
	started := time.Now()
	failed := func(message string) int {
		fmt.Fprintf(stderr, "*** Error importing database:%s\n", message)
		fmt.Fprintf(stdout, "Time elapsed %s\n", elapsed(time.Since(started)))
		return 1
	}
	for _, key := range []string{"TargetServerName", "TargetDatabaseName", "SourceFile"} {
		if o.values[strings.ToLower(key)] == "" {
			return failed("The " + key + " argument is required for the Import action.")
		}
	}
	data, err := readBacpac(source)
	if err != nil {
		return failed(fmt.Sprintf("The package '%s' could not be read: %v", source, err))
	}
	fmt.Fprintf(stdout, "Importing to database '%s' on server '%s'.\n", database, server)
	fmt.Fprintln(stdout, "Creating deployment plan")
	fmt.Fprintln(stdout, "Initializing deployment")
	if !strings.EqualFold(o.values["targettrustservercertificate"], "true") {
		return failed(untrusted)
	}
	for _, step := range []string{"Verifying deployment plan", "Analyzing deployment plan", "Importing package schema and data into database", "Updating database"} {
		fmt.Fprintln(stdout, step)
	}
	request := sqlwire.Request{Op: "import", User: o.values["targetuser"], Password: o.values["targetpassword"], Database: database}
	request.Data = &sqlwire.Database{Name: data.Name}
	for _, table := range data.Tables {
		request.Data.Tables = append(request.Data.Tables, sqlwire.Table{Name: table.Name, Columns: table.Columns, Types: table.Types, Key: table.Key})
	}
	var sqlError *sqlwire.Error
	if _, err := call(server, request, commandTimeout(o)); err != nil {
		if errors.As(err, &sqlError) && sqlError.Number == 1801 {
			return failed(userObjects + "\nError SQL71659: " + userObjects)
		}
		return failed(describe(err))
	}
	fmt.Fprintln(stdout, "Importing data")
	fmt.Fprintln(stdout, "Processing Import.")
	if len(data.Tables) > 0 {
		fmt.Fprintln(stdout, "Disabling indexes.")
	}
	for _, table := range data.Tables {
		fmt.Fprintf(stdout, "Processing Table '%s'.\n", quoted(strings.Split(table.Name, ".")...))
		request.Op, request.Data = "load", &sqlwire.Database{Name: data.Name, Tables: []sqlwire.Table{table}}
		if _, err := call(server, request, commandTimeout(o)); err != nil {
			if errors.As(err, &sqlError) {
				return failed("Data plan execution failed with message One or more errors occurred. (" + sqlError.Message + ")")
			}
			return failed(describe(err))
		}
	}
	if len(data.Tables) > 0 {
		fmt.Fprintln(stdout, "Enabling indexes.")
	}
	fmt.Fprintln(stdout, "Successfully imported database.")
	fmt.Fprintln(stdout, "Changes to connection setting default values were incorporated in a recent release.  More information is available at https://aka.ms/dacfx-connection")
	fmt.Fprintf(stdout, "Time elapsed %s\n", elapsed(time.Since(started)))
	return 0
}

func main() {
	parsed, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "*** %v\n", err)
		os.Exit(1)
	}
	if _, found := parsed.values["version"]; found {
		fmt.Println(version)
		return
	}
	switch strings.ToLower(parsed.values["action"]) {
	case "export":
		export(parsed)
	case "import":
		os.Exit(importPackage(parsed, os.Stdout, os.Stderr))
	case "":
		fmt.Fprintln(os.Stderr, "*** The Action argument is required. Use /Action:Export or /Action:Import.")
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "*** '%s' is not a valid action for this stand-in (Export, Import).\n", parsed.values["action"])
		os.Exit(1)
	}
}
