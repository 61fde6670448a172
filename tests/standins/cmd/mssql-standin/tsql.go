package main

// The T-SQL the stand-in understands: a tokenizer and a recursive-descent
// parser for the statements the project's scripts and tools send. A batch is
// parsed whole before any of it runs, as SQL Server compiles a batch first,
// so a syntax error anywhere in it runs nothing.

import (
	"fmt"
	"strings"
	"unicode"
)

type tokenKind int

const (
	wordToken   tokenKind = iota // keyword or plain identifier
	quotedToken                  // [identifier] or "identifier"
	stringToken                  // 'text' or N'text'
	numberToken
	symbolToken
	endToken
)

type token struct {
	kind tokenKind
	text string // the identifier, string or number without quotes
	line int
}

// syntaxError is SQL Server's message 102, "Incorrect syntax near ...".
type syntaxError struct {
	line int
	near string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("Incorrect syntax near '%s'.", e.near) }

func tokenize(sql string) ([]token, error) {
	var tokens []token
	runes := []rune(sql)
	line := 1
	for i := 0; i < len(runes); {
		r := runes[i]
		switch {
		case r == '\n':
			line++
			i++
		case unicode.IsSpace(r):
			i++
		case r == '-' && i+1 < len(runes) && runes[i+1] == '-':
			for i < len(runes) && runes[i] != '\n' {
				i++
			}
		case r == '/' && i+1 < len(runes) && runes[i+1] == '*':
			end := strings.Index(string(runes[i+2:]), "*/")
			if end < 0 {
				return nil, &syntaxError{line: line, near: "/*"}
			}
			comment := []rune(string(runes[i+2:])[:end])
			line += strings.Count(string(comment), "\n")
			i += 2 + len(comment) + 2
		case r == '\'' || ((r == 'N' || r == 'n') && i+1 < len(runes) && runes[i+1] == '\''):
			start := line
			if r != '\'' {
				i++
			}
			var text strings.Builder
			closed := false
			for i++; i < len(runes); i++ {
				if runes[i] == '\'' {
					if i+1 < len(runes) && runes[i+1] == '\'' {
						text.WriteRune('\'')
						i++
						continue
					}
					closed = true
					i++
					break
				}
				if runes[i] == '\n' {
					line++
				}
				text.WriteRune(runes[i])
			}
			if !closed {
				return nil, &unclosedError{line: start, text: text.String()}
			}
			tokens = append(tokens, token{kind: stringToken, text: text.String(), line: start})
		case r == '[' || r == '"':
			closing := ']'
			if r == '"' {
				closing = '"'
			}
			var text strings.Builder
			closed := false
			for i++; i < len(runes); i++ {
				if runes[i] == closing {
					if i+1 < len(runes) && runes[i+1] == closing {
						text.WriteRune(closing)
						i++
						continue
					}
					closed = true
					i++
					break
				}
				text.WriteRune(runes[i])
			}
			if !closed {
				return nil, &unclosedError{line: line, text: text.String()}
			}
			tokens = append(tokens, token{kind: quotedToken, text: text.String(), line: line})
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(runes) && unicode.IsDigit(runes[i+1])):
			start := i
			for i < len(runes) && (unicode.IsDigit(runes[i]) || runes[i] == '.') {
				i++
			}
			tokens = append(tokens, token{kind: numberToken, text: string(runes[start:i]), line: line})
		case unicode.IsLetter(r) || r == '_' || r == '@' || r == '#':
			start := i
			for i < len(runes) && (unicode.IsLetter(runes[i]) || unicode.IsDigit(runes[i]) || strings.ContainsRune("_@#$", runes[i])) {
				i++
			}
			tokens = append(tokens, token{kind: wordToken, text: string(runes[start:i]), line: line})
		case strings.ContainsRune("(),;.*=+-<>!", r):
			tokens = append(tokens, token{kind: symbolToken, text: string(r), line: line})
			i++
		default:
			return nil, &syntaxError{line: line, near: string(r)}
		}
	}
	return append(tokens, token{kind: endToken, line: line}), nil
}

// unclosedError is SQL Server's message 105 for a string or name left open.
type unclosedError struct {
	line int
	text string
}

func (e *unclosedError) Error() string {
	return fmt.Sprintf("Unclosed quotation mark after the character string '%s'.", e.text)
}

// objectName is a one- to three-part name: [database.][schema.]object.
type objectName []string

func (n objectName) String() string { return strings.Join(n, ".") }

// literal is a constant: a string, a number or NULL.
type literal struct {
	text   string
	isText bool
	isNull bool
}

type column struct {
	name     string
	dataType string
}

type statement interface{ lineNumber() int }

type at struct{ line int }

func (a at) lineNumber() int { return a.line }

type setOption struct {
	at
	option string
	on     bool
}

// existence is DB_ID(name) or OBJECT_ID(name[, type]) compared with NULL.
type existence struct {
	function string // DB_ID or OBJECT_ID
	name     string
	kind     string // OBJECT_ID's object type, e.g. U
	isNull   bool
}

type ifStatement struct {
	at
	condition existence
	then      statement
	otherwise statement
}

type block struct {
	at
	body []statement
}

// createDatabase is CREATE DATABASE name [ON (NAME = ..., FILENAME = ...), ...]
// [AS SNAPSHOT OF source].
type createDatabase struct {
	at
	name       string
	files      []fileSpec
	snapshotOf string
}

// fileSpec is one file of CREATE DATABASE ... ON: its logical name and path.
type fileSpec struct {
	name, fileName string
}

// renameDatabase is ALTER DATABASE name MODIFY NAME = newName.
type renameDatabase struct {
	at
	name, newName string
}

// dbccStatement is DBCC command [(target[, argument ...])] [WITH option, ...].
type dbccStatement struct {
	at
	command   string   // upper case, e.g. CHECKDB
	target    *literal // nil: the current database; a name or a database id
	arguments []string // what follows the target, e.g. NOINDEX
	options   []string // upper case, e.g. NO_INFOMSGS
}

type dropDatabase struct {
	at
	name string
}

type useDatabase struct {
	at
	name string
}

type createTable struct {
	at
	name    objectName
	columns []column
	key     string
}

type insertRows struct {
	at
	table   objectName
	columns []string
	rows    [][]literal
}

type printMessage struct {
	at
	text string
}

// selectItem is *, COUNT(*), a column name or a constant.
type selectItem struct {
	star, count bool
	column      string
	constant    *literal
}

// predicate is one condition of a WHERE clause: "column op constant" (op one
// of =, <>, <, >, <=, >=), "column [NOT] IN (constants)" or "column IS [NOT]
// NULL".
type predicate struct {
	column string
	op     string // a comparison, IN or IS
	values []literal
	negate bool // NOT IN, IS NOT NULL
}

// ordering is one column of an ORDER BY.
type ordering struct {
	column     string
	descending bool
}

type selectRows struct {
	at
	items   []selectItem
	from    objectName
	where   []predicate // all must hold
	orderBy []ordering
}

type parser struct {
	tokens   []token
	position int
}

func parseBatch(sql string) ([]statement, error) {
	tokens, err := tokenize(sql)
	if err != nil {
		return nil, err
	}
	p := &parser{tokens: tokens}
	var statements []statement
	for {
		for p.symbol(";") {
		}
		if p.peek().kind == endToken {
			return statements, nil
		}
		parsed, err := p.statement()
		if err != nil {
			return nil, err
		}
		statements = append(statements, parsed)
	}
}

func (p *parser) peek() token { return p.tokens[p.position] }

func (p *parser) next() token {
	current := p.tokens[p.position]
	if current.kind != endToken {
		p.position++
	}
	return current
}

func (p *parser) unexpected() error {
	current := p.peek()
	if current.kind == endToken && p.position > 0 {
		return &syntaxError{line: current.line, near: p.tokens[p.position-1].text}
	}
	return &syntaxError{line: current.line, near: current.text}
}

// keyword consumes the next token if it is the given keyword.
func (p *parser) keyword(word string) bool {
	if current := p.peek(); current.kind == wordToken && strings.EqualFold(current.text, word) {
		p.position++
		return true
	}
	return false
}

func (p *parser) symbol(text string) bool {
	if current := p.peek(); current.kind == symbolToken && current.text == text {
		p.position++
		return true
	}
	return false
}

func (p *parser) expectKeyword(words ...string) error {
	for _, word := range words {
		if !p.keyword(word) {
			return p.unexpected()
		}
	}
	return nil
}

func (p *parser) expectSymbol(text string) error {
	if !p.symbol(text) {
		return p.unexpected()
	}
	return nil
}

func (p *parser) identifier() (string, error) {
	current := p.peek()
	if current.kind == quotedToken || (current.kind == wordToken && !reserved[strings.ToUpper(current.text)]) {
		p.position++
		return current.text, nil
	}
	return "", p.unexpected()
}

func (p *parser) objectName() (objectName, error) {
	var parts objectName
	for {
		part, err := p.identifier()
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		if len(parts) == 3 || !p.symbol(".") {
			return parts, nil
		}
	}
}

func (p *parser) literal() (literal, error) {
	negative := p.symbol("-")
	current := p.peek()
	switch {
	case current.kind == numberToken:
		p.position++
		if negative {
			return literal{text: "-" + current.text}, nil
		}
		return literal{text: current.text}, nil
	case negative:
		return literal{}, p.unexpected()
	case current.kind == stringToken:
		p.position++
		text := current.text
		for p.symbol("+") { // 'a' + 'b'
			more := p.peek()
			if more.kind != stringToken {
				return literal{}, p.unexpected()
			}
			p.position++
			text += more.text
		}
		return literal{text: text, isText: true}, nil
	case p.keyword("NULL"):
		return literal{text: "NULL", isNull: true}, nil
	}
	return literal{}, p.unexpected()
}

// reserved words cannot be plain identifiers; they end a statement's list.
var reserved = map[string]bool{
	"BEGIN": true, "CREATE": true, "DATABASE": true, "DROP": true, "ELSE": true, "END": true, "FROM": true,
	"IF": true, "INSERT": true, "INTO": true, "IS": true, "KEY": true, "NOT": true, "NULL": true, "PRIMARY": true,
	"PRINT": true, "SELECT": true, "SET": true, "TABLE": true, "USE": true, "VALUES": true, "WHERE": true, "AND": true,
	"ALTER": true, "BY": true, "DBCC": true, "IN": true, "ORDER": true,
}

func (p *parser) statement() (statement, error) {
	start := p.peek()
	where := at{line: start.line}
	switch {
	case p.keyword("SET"):
		option := p.next()
		if option.kind != wordToken || !settable[strings.ToUpper(option.text)] {
			return nil, &syntaxError{line: option.line, near: option.text}
		}
		switch {
		case p.keyword("ON"):
			return &setOption{at: where, option: strings.ToUpper(option.text), on: true}, nil
		case p.keyword("OFF"):
			return &setOption{at: where, option: strings.ToUpper(option.text)}, nil
		}
		return nil, p.unexpected()
	case p.keyword("IF"):
		condition, err := p.condition()
		if err != nil {
			return nil, err
		}
		then, err := p.statement()
		if err != nil {
			return nil, err
		}
		parsed := &ifStatement{at: where, condition: condition, then: then}
		for p.symbol(";") {
		}
		if p.keyword("ELSE") {
			if parsed.otherwise, err = p.statement(); err != nil {
				return nil, err
			}
		}
		return parsed, nil
	case p.keyword("BEGIN"):
		parsed := &block{at: where}
		for {
			for p.symbol(";") {
			}
			if p.keyword("END") {
				return parsed, nil
			}
			if p.peek().kind == endToken {
				return nil, p.unexpected()
			}
			inner, err := p.statement()
			if err != nil {
				return nil, err
			}
			parsed.body = append(parsed.body, inner)
		}
	case p.keyword("CREATE"):
		switch {
		case p.keyword("DATABASE"):
			return p.createDatabase(where)
		case p.keyword("TABLE"):
			return p.createTable(where)
		}
		return nil, p.unexpected()
	case p.keyword("DROP"):
		if err := p.expectKeyword("DATABASE"); err != nil {
			return nil, err
		}
		name, err := p.identifier()
		return &dropDatabase{at: where, name: name}, err
	case p.keyword("USE"):
		name, err := p.identifier()
		return &useDatabase{at: where, name: name}, err
	case p.keyword("ALTER"):
		parsed := &renameDatabase{at: where}
		if err := p.expectKeyword("DATABASE"); err != nil {
			return nil, err
		}
		var err error
		if parsed.name, err = p.identifier(); err != nil {
			return nil, err
		}
		if err := p.expectKeyword("MODIFY", "NAME"); err != nil {
			return nil, err
		}
		if err := p.expectSymbol("="); err != nil {
			return nil, err
		}
		parsed.newName, err = p.identifier()
		return parsed, err
	case p.keyword("DBCC"):
		return p.dbcc(where)
	case p.keyword("INSERT"):
		return p.insert(where)
	case p.keyword("PRINT"):
		value, err := p.literal()
		return &printMessage{at: where, text: value.text}, err
	case p.keyword("SELECT"):
		return p.selectRows(where)
	}
	return nil, p.unexpected()
}

var settable = map[string]bool{"NOCOUNT": true, "XACT_ABORT": true, "ANSI_NULLS": true, "QUOTED_IDENTIFIER": true}

func (p *parser) condition() (existence, error) {
	var parsed existence
	function := p.next()
	parsed.function = strings.ToUpper(function.text)
	if function.kind != wordToken || (parsed.function != "DB_ID" && parsed.function != "OBJECT_ID") {
		return parsed, &syntaxError{line: function.line, near: function.text}
	}
	if err := p.expectSymbol("("); err != nil {
		return parsed, err
	}
	name, err := p.literal()
	if err != nil || !name.isText {
		return parsed, p.unexpected()
	}
	parsed.name = name.text
	if parsed.function == "OBJECT_ID" && p.symbol(",") {
		kind, err := p.literal()
		if err != nil || !kind.isText {
			return parsed, p.unexpected()
		}
		parsed.kind = strings.ToUpper(strings.TrimSpace(kind.text))
	}
	if err := p.expectSymbol(")"); err != nil {
		return parsed, err
	}
	if err := p.expectKeyword("IS"); err != nil {
		return parsed, err
	}
	parsed.isNull = !p.keyword("NOT")
	return parsed, p.expectKeyword("NULL")
}

// createTable reads "name (column type [constraints], ... [, table constraint])".
func (p *parser) createTable(where at) (statement, error) {
	name, err := p.objectName()
	if err != nil {
		return nil, err
	}
	parsed := &createTable{at: where, name: name}
	if err := p.expectSymbol("("); err != nil {
		return nil, err
	}
	for {
		if p.keyword("CONSTRAINT") {
			if _, err := p.identifier(); err != nil {
				return nil, err
			}
		}
		if p.keyword("PRIMARY") {
			if err := p.expectKeyword("KEY"); err != nil {
				return nil, err
			}
			p.keyword("CLUSTERED")
			p.keyword("NONCLUSTERED")
			keys, err := p.nameList()
			if err != nil {
				return nil, err
			}
			if len(keys) == 1 {
				parsed.key = keys[0]
			}
		} else {
			columnName, err := p.identifier()
			if err != nil {
				return nil, err
			}
			dataType, err := p.dataType()
			if err != nil {
				return nil, err
			}
			parsed.columns = append(parsed.columns, column{name: columnName, dataType: dataType})
			if err := p.columnConstraints(parsed, columnName); err != nil {
				return nil, err
			}
		}
		if p.symbol(")") {
			return parsed, nil
		}
		if err := p.expectSymbol(","); err != nil {
			return nil, err
		}
	}
}

// dataType reads INT, NVARCHAR(100), NVARCHAR(MAX) or DECIMAL(10,2).
func (p *parser) dataType() (string, error) {
	current := p.next()
	if current.kind != wordToken || !dataTypes[strings.ToUpper(current.text)] {
		return "", &syntaxError{line: current.line, near: current.text}
	}
	dataType := strings.ToUpper(current.text)
	if !p.symbol("(") {
		return dataType, nil
	}
	var arguments []string
	for {
		argument := p.next()
		if argument.kind != numberToken && !(argument.kind == wordToken && strings.EqualFold(argument.text, "MAX")) {
			return "", &syntaxError{line: argument.line, near: argument.text}
		}
		arguments = append(arguments, strings.ToUpper(argument.text))
		if p.symbol(")") {
			return dataType + "(" + strings.Join(arguments, ",") + ")", nil
		}
		if err := p.expectSymbol(","); err != nil {
			return "", err
		}
	}
}

var dataTypes = map[string]bool{
	"INT": true, "BIGINT": true, "SMALLINT": true, "TINYINT": true, "BIT": true, "DECIMAL": true, "NUMERIC": true,
	"MONEY": true, "FLOAT": true, "REAL": true, "NVARCHAR": true, "VARCHAR": true, "NCHAR": true, "CHAR": true,
	"DATE": true, "DATETIME2": true, "DATETIME": true, "UNIQUEIDENTIFIER": true,
}

// columnConstraints reads what follows a column's type up to the next comma:
// NULL, NOT NULL, PRIMARY KEY, IDENTITY(1,1), DEFAULT x, REFERENCES t(c) ...
func (p *parser) columnConstraints(parsed *createTable, columnName string) error {
	for {
		current := p.peek()
		switch {
		case current.kind == endToken:
			return p.unexpected()
		case current.kind == symbolToken && (current.text == "," || current.text == ")"):
			return nil
		case p.keyword("PRIMARY"):
			if err := p.expectKeyword("KEY"); err != nil {
				return err
			}
			parsed.key = columnName
		case p.keyword("REFERENCES"):
			if _, err := p.objectName(); err != nil {
				return err
			}
			if current := p.peek(); current.kind == symbolToken && current.text == "(" {
				if _, err := p.nameList(); err != nil {
					return err
				}
			}
		case p.symbol("("): // IDENTITY(1,1), DEFAULT (0), CHECK (...)
			for depth := 1; depth > 0; {
				switch inner := p.next(); {
				case inner.kind == endToken:
					return p.unexpected()
				case inner.kind == symbolToken && inner.text == "(":
					depth++
				case inner.kind == symbolToken && inner.text == ")":
					depth--
				}
			}
		default:
			p.next()
		}
	}
}

func (p *parser) nameList() ([]string, error) {
	if err := p.expectSymbol("("); err != nil {
		return nil, err
	}
	var names []string
	for {
		name, err := p.identifier()
		if err != nil {
			return nil, err
		}
		p.keyword("ASC")
		p.keyword("DESC")
		names = append(names, name)
		if p.symbol(")") {
			return names, nil
		}
		if err := p.expectSymbol(","); err != nil {
			return nil, err
		}
	}
}

// insert reads "[INTO] table [(columns)] VALUES (values), (values) ...".
func (p *parser) insert(where at) (statement, error) {
	p.keyword("INTO")
	table, err := p.objectName()
	if err != nil {
		return nil, err
	}
	parsed := &insertRows{at: where, table: table}
	if current := p.peek(); current.kind == symbolToken && current.text == "(" {
		if parsed.columns, err = p.nameList(); err != nil {
			return nil, err
		}
	}
	if err := p.expectKeyword("VALUES"); err != nil {
		return nil, err
	}
	for {
		if err := p.expectSymbol("("); err != nil {
			return nil, err
		}
		var row []literal
		for {
			value, err := p.literal()
			if err != nil {
				return nil, err
			}
			row = append(row, value)
			if p.symbol(")") {
				break
			}
			if err := p.expectSymbol(","); err != nil {
				return nil, err
			}
		}
		parsed.rows = append(parsed.rows, row)
		if !p.symbol(",") {
			return parsed, nil
		}
	}
}

// selectRows reads "SELECT items [FROM name [WHERE condition [AND ...]] [ORDER BY
// column [ASC | DESC], ...]]".
func (p *parser) selectRows(where at) (statement, error) {
	parsed := &selectRows{at: where}
	for {
		var item selectItem
		current := p.peek()
		switch {
		case p.symbol("*"):
			item.star = true
		case current.kind == wordToken && strings.EqualFold(current.text, "COUNT"):
			p.next()
			for _, part := range []string{"(", "*", ")"} {
				if err := p.expectSymbol(part); err != nil {
					return nil, err
				}
			}
			item.count = true
		case current.kind == numberToken || current.kind == stringToken || (current.kind == symbolToken && current.text == "-"):
			value, err := p.literal()
			if err != nil {
				return nil, err
			}
			item.constant = &value
		default:
			name, err := p.identifier()
			if err != nil {
				return nil, err
			}
			item.column = name
		}
		parsed.items = append(parsed.items, item)
		if !p.symbol(",") {
			break
		}
	}
	if p.keyword("FROM") {
		from, err := p.objectName()
		if err != nil {
			return nil, err
		}
		parsed.from = from
		if p.keyword("WHERE") {
			for {
				condition, err := p.predicate()
				if err != nil {
					return nil, err
				}
				parsed.where = append(parsed.where, condition)
				if !p.keyword("AND") {
					break
				}
			}
		}
		if p.keyword("ORDER") {
			if err := p.expectKeyword("BY"); err != nil {
				return nil, err
			}
			for {
				name, err := p.identifier()
				if err != nil {
					return nil, err
				}
				descending := p.keyword("DESC")
				if !descending {
					p.keyword("ASC")
				}
				parsed.orderBy = append(parsed.orderBy, ordering{column: name, descending: descending})
				if !p.symbol(",") {
					break
				}
			}
		}
	}
	return parsed, nil
}

// predicate reads one condition of a WHERE clause.
func (p *parser) predicate() (predicate, error) {
	name, err := p.identifier()
	if err != nil {
		return predicate{}, err
	}
	parsed := predicate{column: name}
	switch {
	case p.keyword("IS"):
		parsed.op, parsed.negate = "IS", p.keyword("NOT")
		return parsed, p.expectKeyword("NULL")
	case p.keyword("NOT"):
		if err := p.expectKeyword("IN"); err != nil {
			return parsed, err
		}
		parsed.negate = true
		fallthrough
	case p.keyword("IN"):
		parsed.op = "IN"
		if err := p.expectSymbol("("); err != nil {
			return parsed, err
		}
		for {
			value, err := p.literal()
			if err != nil {
				return parsed, err
			}
			parsed.values = append(parsed.values, value)
			if p.symbol(")") {
				return parsed, nil
			}
			if err := p.expectSymbol(","); err != nil {
				return parsed, err
			}
		}
	}
	if parsed.op, err = p.comparison(); err != nil {
		return parsed, err
	}
	value, err := p.literal()
	parsed.values = []literal{value}
	return parsed, err
}

// comparison reads =, <>, !=, <, >, <= or >=; != is read as <>.
func (p *parser) comparison() (string, error) {
	switch {
	case p.symbol("="):
		return "=", nil
	case p.symbol("<"):
		switch {
		case p.symbol(">"):
			return "<>", nil
		case p.symbol("="):
			return "<=", nil
		}
		return "<", nil
	case p.symbol(">"):
		if p.symbol("=") {
			return ">=", nil
		}
		return ">", nil
	case p.symbol("!"):
		if p.symbol("=") {
			return "<>", nil
		}
	}
	return "", p.unexpected()
}

// createDatabase reads what follows CREATE DATABASE: the name, the files of
// an ON clause (only their NAME and FILENAME matter here) and AS SNAPSHOT OF.
func (p *parser) createDatabase(where at) (statement, error) {
	name, err := p.identifier()
	if err != nil {
		return nil, err
	}
	parsed := &createDatabase{at: where, name: name}
	if p.keyword("ON") {
		p.keyword("PRIMARY")
		for {
			file, err := p.fileSpec()
			if err != nil {
				return nil, err
			}
			parsed.files = append(parsed.files, file)
			if !p.symbol(",") {
				break
			}
		}
	}
	if p.keyword("AS") {
		if err := p.expectKeyword("SNAPSHOT", "OF"); err != nil {
			return nil, err
		}
		if parsed.snapshotOf, err = p.identifier(); err != nil {
			return nil, err
		}
	}
	return parsed, nil
}

// fileSpec reads "(NAME = name, FILENAME = 'path'[, SIZE = 8MB ...])".
func (p *parser) fileSpec() (fileSpec, error) {
	var parsed fileSpec
	if err := p.expectSymbol("("); err != nil {
		return parsed, err
	}
	for {
		option := p.next()
		if option.kind != wordToken {
			return parsed, &syntaxError{line: option.line, near: option.text}
		}
		if err := p.expectSymbol("="); err != nil {
			return parsed, err
		}
		switch strings.ToUpper(option.text) {
		case "NAME":
			if current := p.peek(); current.kind == stringToken {
				p.position++
				parsed.name = current.text
			} else {
				name, err := p.identifier()
				if err != nil {
					return parsed, err
				}
				parsed.name = name
			}
		case "FILENAME":
			value, err := p.literal()
			if err != nil || !value.isText {
				return parsed, p.unexpected()
			}
			parsed.fileName = value.text
		default: // SIZE = 8MB, FILEGROWTH = 10% ...: read and ignored
			for current := p.peek(); current.kind != endToken && !(current.kind == symbolToken && (current.text == "," || current.text == ")")); current = p.peek() {
				p.position++
			}
		}
		if p.symbol(")") {
			return parsed, nil
		}
		if err := p.expectSymbol(","); err != nil {
			return parsed, err
		}
	}
}

// dbcc reads "DBCC command [(target[, argument ...])] [WITH option[, ...]]";
// the target is a name, N'name' or a database id.
func (p *parser) dbcc(where at) (statement, error) {
	command := p.next()
	if command.kind != wordToken {
		return nil, &syntaxError{line: command.line, near: command.text}
	}
	parsed := &dbccStatement{at: where, command: strings.ToUpper(command.text)}
	if p.symbol("(") {
		var target literal
		switch current := p.peek(); current.kind {
		case numberToken, stringToken:
			value, err := p.literal()
			if err != nil {
				return nil, err
			}
			target = value
		default:
			name, err := p.identifier()
			if err != nil {
				return nil, err
			}
			target = literal{text: name, isText: true}
		}
		parsed.target = &target
		for p.symbol(",") {
			argument := p.next()
			if argument.kind != wordToken && argument.kind != numberToken {
				return nil, &syntaxError{line: argument.line, near: argument.text}
			}
			parsed.arguments = append(parsed.arguments, strings.ToUpper(argument.text))
		}
		if err := p.expectSymbol(")"); err != nil {
			return nil, err
		}
	}
	if p.keyword("WITH") {
		for {
			option := p.next()
			if option.kind != wordToken {
				return nil, &syntaxError{line: option.line, near: option.text}
			}
			parsed.options = append(parsed.options, strings.ToUpper(option.text))
			if p.symbol("=") { // MAXDOP = n
				if _, err := p.literal(); err != nil {
					return nil, err
				}
			}
			if !p.symbol(",") {
				break
			}
		}
	}
	return parsed, nil
}
