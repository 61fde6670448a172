package main

// Running a parsed batch against the stand-in's databases. Errors carry SQL
// Server's message numbers and texts; the first error ends the batch (SQL
// Server goes on after some statement-level errors, such as a duplicate key,
// which no caller of the stand-in relies on). Errors that do not end the
// batch, as DBCC CHECKDB's consistency errors, go into the output in order.

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"sqlserver-backup/standins/internal/sqlwire"
)

type sqlError struct {
	number  int
	state   int // 0 is reported as 1
	message string
	line    int
}

func fault(number int, format string, arguments ...any) *sqlError {
	return &sqlError{number: number, message: fmt.Sprintf(format, arguments...)}
}

// withState sets the state SQL Server reports with the error.
func (e *sqlError) withState(state int) *sqlError {
	e.state = state
	return e
}

// severities holds the level SQL Server reports for each message number used
// here; anything else is 16.
var severities = map[int]int{102: 15, 105: 15, 195: 15, 1105: 17, 2627: 14, 3701: 11, 4060: 11, 5011: 14, 18456: 14}

func severity(number int) int {
	if level, found := severities[number]; found {
		return level
	}
	return 16
}

// batch is one batch's run: the database context it is in and what it sent.
type batch struct {
	server   *server
	database string
	response *sqlwire.Response
	dirty    bool
	line     int    // of the statement running, for the errors it reports
	faults   faults // the test faults in force for this batch
}

// run parses and runs one batch in the given database.
func (s *server) run(database, sql string) *sqlwire.Response {
	response := &sqlwire.Response{Database: database}
	statements, err := parseBatch(sql)
	var syntax *syntaxError
	var unclosed *unclosedError
	switch {
	case errors.As(err, &syntax):
		return fail(response, &sqlError{number: 102, message: syntax.Error(), line: syntax.line})
	case errors.As(err, &unclosed):
		return fail(response, &sqlError{number: 105, message: unclosed.Error(), line: unclosed.line})
	}
	b := &batch{server: s, database: database, response: response, faults: s.readFaults()}
	var problem *sqlError
	for _, parsed := range statements {
		if problem = b.execute(parsed); problem != nil {
			break
		}
	}
	response.Database = b.database
	if b.dirty {
		if err := s.save(); err != nil && problem == nil {
			problem = fault(5120, "Unable to write the databases: %v", err)
		}
	}
	if problem != nil {
		return fail(response, problem)
	}
	return response
}

func fail(response *sqlwire.Response, problem *sqlError) *sqlwire.Response {
	response.Error, response.Number, response.Severity = problem.message, problem.number, severity(problem.number)
	response.State, response.Line = max(problem.state, 1), max(problem.line, 1)
	return response
}

// message sends an informational message (severity 10 or less), as PRINT does.
func (b *batch) message(format string, arguments ...any) {
	b.response.Output = append(b.response.Output, sqlwire.Output{Kind: "message", Message: fmt.Sprintf(format, arguments...)})
}

// report sends an error that does not end the batch.
func (b *batch) report(problem *sqlError) {
	b.response.Output = append(b.response.Output, sqlwire.Output{
		Kind: "error", Message: problem.message, Number: problem.number, Severity: severity(problem.number),
		State: max(problem.state, 1), Line: max(b.line, 1),
	})
}

func (b *batch) execute(parsed statement) *sqlError {
	outer := b.line
	b.line = parsed.lineNumber()
	defer func() { b.line = outer }()
	problem := b.statement(parsed)
	if problem != nil && problem.line == 0 {
		problem.line = parsed.lineNumber()
	}
	return problem
}

func (b *batch) statement(parsed statement) *sqlError {
	s := b.server
	switch parsed := parsed.(type) {
	case *setOption:
		return nil // NOCOUNT and friends change nothing the stand-in prints
	case *ifStatement:
		if b.holds(parsed.condition) {
			return b.execute(parsed.then)
		}
		if parsed.otherwise != nil {
			return b.execute(parsed.otherwise)
		}
		return nil
	case *block:
		for _, inner := range parsed.body {
			if problem := b.execute(inner); problem != nil {
				return problem
			}
		}
		return nil
	case *printMessage:
		b.message("%s", parsed.text)
		return nil
	case *useDatabase:
		database, found := s.lookup(parsed.name)
		if !found {
			return fault(911, "Database '%s' does not exist. Make sure that the name is entered correctly.", parsed.name)
		}
		b.database = database.Name
		return nil
	case *createDatabase:
		if _, found := s.lookup(parsed.name); found {
			return fault(1801, "Database '%s' already exists. Choose a different database name.", parsed.name).withState(3)
		}
		if parsed.snapshotOf != "" {
			return b.createSnapshot(parsed)
		}
		file := ""
		if len(parsed.files) > 0 {
			file = parsed.files[0].name
		}
		s.create(parsed.name, file)
		b.dirty = true
		return nil
	case *renameDatabase:
		return b.rename(parsed)
	case *dbccStatement:
		return b.dbcc(parsed)
	case *dropDatabase:
		existing, found := s.lookup(parsed.name)
		if !found {
			return fault(3701, "Cannot drop the database '%s', because it does not exist or you do not have permission.", parsed.name)
		}
		for _, system := range systemDatabases {
			if strings.EqualFold(system, existing.Name) {
				return fault(3708, "Cannot drop the database '%s' because it is a system database.", parsed.name)
			}
		}
		if strings.EqualFold(existing.Name, b.database) {
			return fault(3702, "Cannot drop database \"%s\" because it is currently in use.", existing.Name).withState(3)
		}
		for _, snapshot := range s.databases {
			if snapshot.SourceID == existing.ID {
				return fault(3709, "Cannot drop the database while the database snapshot \"%s\" refers to it. Drop that database first.", snapshot.Name)
			}
		}
		delete(s.databases, existing.Name)
		b.dirty = true
		return nil
	case *createTable:
		return b.createTable(parsed)
	case *insertRows:
		return b.insert(parsed)
	case *selectRows:
		return b.selectRows(parsed)
	}
	return fault(102, "Incorrect syntax near '%T'.", parsed)
}

// resolve finds the database and the schema-qualified name a table name means.
func (b *batch) resolve(name objectName) (*sqlwire.Database, string, bool) {
	parts := append(objectName{}, name...)
	database := b.database
	if len(parts) == 3 {
		database, parts = parts[0], parts[1:]
	}
	if len(parts) == 1 {
		parts = objectName{"dbo", parts[0]}
	}
	found, exists := b.server.lookup(database)
	return found, parts.String(), exists
}

func (b *batch) table(name objectName) (*sqlwire.Table, *sqlError) {
	database, qualified, found := b.resolve(name)
	if found {
		for i := range database.Tables {
			if strings.EqualFold(database.Tables[i].Name, qualified) {
				return &database.Tables[i], nil
			}
		}
	}
	return nil, fault(208, "Invalid object name '%s'.", name)
}

func (b *batch) holds(condition existence) bool {
	found := false
	switch condition.function {
	case "DB_ID":
		_, found = b.server.lookup(condition.name)
	case "OBJECT_ID":
		// Tables are the only objects here, so any type but U finds nothing.
		if condition.kind == "" || condition.kind == "U" {
			name, err := (&parser{tokens: mustTokens(condition.name)}).objectName()
			if err == nil {
				_, problem := b.table(name)
				found = problem == nil
			}
		}
	}
	return found != condition.isNull
}

func mustTokens(text string) []token {
	tokens, err := tokenize(text)
	if err != nil {
		return []token{{kind: endToken}}
	}
	return tokens
}

func (b *batch) createTable(parsed *createTable) *sqlError {
	database, qualified, found := b.resolve(parsed.name)
	if !found {
		return fault(2702, "Database '%s' does not exist.", parsed.name[0])
	}
	if problem := readOnly(database); problem != nil {
		return problem
	}
	for _, existing := range database.Tables {
		if strings.EqualFold(existing.Name, qualified) {
			return fault(2714, "There is already an object named '%s' in the database.", parsed.name[len(parsed.name)-1])
		}
	}
	table := sqlwire.Table{Name: qualified, Key: parsed.key, Rows: [][]string{}}
	for _, definition := range parsed.columns {
		if index(table.Columns, definition.name) >= 0 {
			return fault(2705, "Column names in each table must be unique. Column name '%s' in table '%s' is specified more than once.", definition.name, qualified)
		}
		table.Columns = append(table.Columns, definition.name)
		table.Types = append(table.Types, definition.dataType)
	}
	if table.Key != "" && index(table.Columns, table.Key) < 0 {
		return fault(1911, "Column name '%s' does not exist in the target table or view.", table.Key)
	}
	database.Tables = append(database.Tables, table)
	b.dirty = true
	return nil
}

func index(columns []string, name string) int {
	for i, column := range columns {
		if strings.EqualFold(column, name) {
			return i
		}
	}
	return -1
}

// insert adds all rows or, on any error, none: one INSERT is one statement.
func (b *batch) insert(parsed *insertRows) *sqlError {
	table, problem := b.table(parsed.table)
	if problem != nil {
		return problem
	}
	if database, _, _ := b.resolve(parsed.table); database != nil {
		if problem := readOnly(database); problem != nil {
			return problem
		}
	}
	targets := make([]int, 0, len(table.Columns))
	if parsed.columns == nil {
		for i := range table.Columns {
			targets = append(targets, i)
		}
	}
	for _, name := range parsed.columns {
		position := index(table.Columns, name)
		if position < 0 {
			return fault(207, "Invalid column name '%s'.", name)
		}
		targets = append(targets, position)
	}
	key := index(table.Columns, table.Key)
	keys := map[string]bool{}
	if key >= 0 {
		for _, row := range table.Rows {
			keys[row[key]] = true
		}
	}
	var added [][]string
	for _, values := range parsed.rows {
		switch {
		case parsed.columns == nil && len(values) != len(targets):
			return fault(213, "Column name or number of supplied values does not match table definition.")
		case len(values) < len(targets):
			return fault(109, "There are more columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement.")
		case len(values) > len(targets):
			return fault(110, "There are fewer columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement.")
		}
		row := make([]string, len(table.Columns))
		for i := range row {
			row[i] = "NULL"
		}
		for i, value := range values {
			converted, problem := convert(value, table, targets[i])
			if problem != nil {
				return problem
			}
			row[targets[i]] = converted
		}
		if key >= 0 {
			if row[key] == "NULL" {
				return fault(515, "Cannot insert the value NULL into column '%s', table '%s.%s'; column does not allow nulls. INSERT fails.", table.Columns[key], b.database, table.Name)
			}
			if keys[row[key]] {
				return fault(2627, "Violation of PRIMARY KEY constraint 'PK_%s'. Cannot insert duplicate key in object '%s'. The duplicate key value is (%s).", table.Name[strings.LastIndex(table.Name, ".")+1:], table.Name, row[key])
			}
			keys[row[key]] = true
		}
		added = append(added, row)
	}
	table.Rows = append(table.Rows, added...)
	b.dirty = true
	return nil
}

// convert turns a constant into the column's text as SELECT would show it.
func convert(value literal, table *sqlwire.Table, position int) (string, *sqlError) {
	if value.isNull || position >= len(table.Types) {
		return value.text, nil
	}
	dataType, arguments, _ := strings.Cut(strings.TrimSuffix(table.Types[position], ")"), "(")
	text := strings.TrimSpace(value.text)
	switch dataType {
	case "INT", "BIGINT", "SMALLINT", "TINYINT", "BIT":
		whole, _, _ := strings.Cut(text, ".")
		if !value.isText {
			text = whole // a numeric constant is truncated, as CONVERT(int, 2.7) is 2
		}
		number, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return "", fault(245, "Conversion failed when converting the varchar value '%s' to data type %s.", value.text, strings.ToLower(dataType))
		}
		return strconv.FormatInt(number, 10), nil
	case "DECIMAL", "NUMERIC":
		precision, scale := 18, 0
		if arguments != "" {
			first, second, _ := strings.Cut(arguments, ",")
			precision, _ = strconv.Atoi(first)
			scale, _ = strconv.Atoi(second)
		}
		number, ok := new(big.Rat).SetString(text)
		if !ok {
			return "", fault(8114, "Error converting data type varchar to numeric.")
		}
		formatted := number.FloatString(scale)
		whole, _, _ := strings.Cut(strings.TrimPrefix(formatted, "-"), ".")
		if len(strings.TrimLeft(whole, "0")) > precision-scale {
			return "", fault(8115, "Arithmetic overflow error converting numeric to data type numeric.")
		}
		return formatted, nil
	case "NVARCHAR", "VARCHAR", "NCHAR", "CHAR":
		limit, err := strconv.Atoi(arguments)
		if arguments == "" {
			limit, err = 1, nil
		}
		if err == nil && utf8.RuneCountInString(value.text) > limit {
			return "", fault(2628, "String or binary data would be truncated in table '%s', column '%s'. Truncated value: '%s'.", table.Name, table.Columns[position], string([]rune(value.text)[:limit]))
		}
	}
	return value.text, nil
}

// compare orders a stored value against a constant: as numbers when both
// are, else as text, ignoring case as SQL Server's default collation does.
// known is false when either is NULL: NULL compared with anything is unknown.
func compare(stored string, value literal) (order int, known bool) {
	if value.isNull || stored == "NULL" {
		return 0, false
	}
	left, leftIsNumber := new(big.Rat).SetString(stored)
	right, rightIsNumber := new(big.Rat).SetString(value.text)
	if leftIsNumber && rightIsNumber && !value.isText {
		return left.Cmp(right), true
	}
	return strings.Compare(strings.ToLower(stored), strings.ToLower(value.text)), true
}

// holdsFor tells whether a row's value meets a WHERE condition.
func (condition predicate) holdsFor(stored string) bool {
	switch condition.op {
	case "IS":
		return (stored == "NULL") != condition.negate
	case "IN":
		// x NOT IN (..., NULL) is unknown for every x, as in SQL Server.
		found, unknown := false, false
		for _, value := range condition.values {
			order, known := compare(stored, value)
			found = found || (known && order == 0)
			unknown = unknown || !known
		}
		if condition.negate {
			return !found && !unknown
		}
		return found
	}
	order, known := compare(stored, condition.values[0])
	if !known {
		return false
	}
	switch condition.op {
	case "=":
		return order == 0
	case "<>":
		return order != 0
	case "<":
		return order < 0
	case ">":
		return order > 0
	case "<=":
		return order <= 0
	}
	return order >= 0 // >=
}

// sortRows orders rows by ORDER BY's columns; NULL sorts first, as in SQL Server.
func sortRows(source *sqlwire.Table, orderBy []ordering) *sqlError {
	positions := make([]int, len(orderBy))
	for i, column := range orderBy {
		if positions[i] = index(source.Columns, column.column); positions[i] < 0 {
			return fault(207, "Invalid column name '%s'.", column.column)
		}
	}
	rows := append([][]string{}, source.Rows...)
	sort.SliceStable(rows, func(i, j int) bool {
		for k, position := range positions {
			left, right := cell(rows[i], position), cell(rows[j], position)
			var order int
			switch {
			case left == "NULL" || right == "NULL":
				order = notNull(left) - notNull(right)
			default:
				order, _ = compare(left, literal{text: right})
			}
			if orderBy[k].descending {
				order = -order
			}
			if order != 0 {
				return order < 0
			}
		}
		return false
	})
	source.Rows = rows
	return nil
}

// cell is a row's value in a column; a damaged row (see DBCC CHECKDB) that
// lacks it reads as NULL.
func cell(row []string, position int) string {
	if position < len(row) {
		return row[position]
	}
	return "NULL"
}

func notNull(value string) int {
	if value == "NULL" {
		return 0
	}
	return 1
}

// selectRows answers SELECT of constants, or of *, COUNT(*) or columns from a
// table, sys.databases, sys.tables or sys.dm_db_partition_stats, filtered by
// WHERE and sorted by ORDER BY. A result set's first row holds the column
// names for SELECT * only, as the stand-in always has.
func (b *batch) selectRows(parsed *selectRows) *sqlError {
	var source *sqlwire.Table
	switch {
	case parsed.from == nil:
		source = &sqlwire.Table{Rows: [][]string{{}}}
	case len(parsed.from) == 2 && strings.EqualFold(parsed.from.String(), "sys.databases"):
		source = b.server.databasesView()
	case len(parsed.from) == 2 && strings.EqualFold(parsed.from.String(), "sys.tables"):
		source = &sqlwire.Table{Columns: []string{"name"}}
		if database, found := b.server.lookup(b.database); found {
			for _, table := range database.Tables {
				source.Rows = append(source.Rows, []string{table.Name[strings.LastIndex(table.Name, ".")+1:]})
			}
		}
	case len(parsed.from) == 2 && strings.EqualFold(parsed.from.String(), "sys.dm_db_partition_stats"):
		source = b.partitionStats()
	default:
		table, problem := b.table(parsed.from)
		if problem != nil {
			return problem
		}
		source = table
	}
	if len(parsed.where) > 0 {
		filtered := &sqlwire.Table{Name: source.Name, Columns: source.Columns}
		for _, row := range source.Rows {
			matches := true
			for _, condition := range parsed.where {
				position := index(source.Columns, condition.column)
				if position < 0 {
					return fault(207, "Invalid column name '%s'.", condition.column)
				}
				matches = matches && condition.holdsFor(cell(row, position))
			}
			if matches {
				filtered.Rows = append(filtered.Rows, row)
			}
		}
		source = filtered
	}
	if len(parsed.orderBy) > 0 {
		sorted := *source
		if problem := sortRows(&sorted, parsed.orderBy); problem != nil {
			return problem
		}
		source = &sorted
	}
	if len(parsed.items) == 1 && parsed.items[0].count {
		b.response.Output = append(b.response.Output, sqlwire.Output{Kind: "rows", Rows: [][]string{{strconv.Itoa(len(source.Rows))}}})
		return nil
	}
	if len(parsed.items) == 1 && parsed.items[0].star {
		if parsed.from == nil {
			return fault(263, "Must specify table to select from.")
		}
		rows := append([][]string{source.Columns}, source.Rows...)
		b.response.Output = append(b.response.Output, sqlwire.Output{Kind: "rows", Rows: rows})
		return nil
	}
	rows := make([][]string, 0, len(source.Rows))
	for _, sourceRow := range source.Rows {
		row := make([]string, 0, len(parsed.items))
		for _, item := range parsed.items {
			switch {
			case item.constant != nil:
				row = append(row, item.constant.text)
			case item.column != "":
				position := index(source.Columns, item.column)
				if position < 0 {
					return fault(207, "Invalid column name '%s'.", item.column)
				}
				row = append(row, cell(sourceRow, position))
			default:
				return fault(8120, "Column is invalid in the select list because it is not contained in either an aggregate function or the GROUP BY clause.")
			}
		}
		rows = append(rows, row)
	}
	b.response.Output = append(b.response.Output, sqlwire.Output{Kind: "rows", Rows: rows})
	return nil
}

// partitionStats is sys.dm_db_partition_stats of the current database: one
// heap partition per table, its rows stored on 8 KiB pages of which 8060
// bytes hold row data, as SQL Server stores them (plus the IAM page).
func (b *batch) partitionStats() *sqlwire.Table {
	stats := &sqlwire.Table{Columns: []string{"object_id", "index_id", "partition_number", "row_count", "used_page_count", "reserved_page_count"}}
	database, found := b.server.lookup(b.database)
	if !found {
		return stats
	}
	for position, table := range database.Tables {
		bytes := 0
		for _, row := range table.Rows {
			bytes += 9 // row header, null bitmap and offsets, roughly
			for _, value := range row {
				bytes += len(value)
			}
		}
		pages := strconv.Itoa((bytes+8059)/8060 + 1)
		stats.Rows = append(stats.Rows, []string{
			strconv.Itoa(245575913 + 16*position), "0", "1", strconv.Itoa(len(table.Rows)), pages, pages,
		})
	}
	return stats
}
