package main

// DBCC CHECKDB, with SQL Server's messages. What it finds are real
// invariants of the stored data: a row whose value count differs from its
// table's column count (its page is damaged: Msg 8939 and 8928), a PRIMARY
// KEY value stored twice (Msg 2511, keys out of order), and, as a test fault,
// a damaged first table in a database the fault file names.

import (
	"strconv"
	"strings"

	"sqlserver-backup/standins/internal/sqlwire"
)

// checkOptions are the WITH options of DBCC CHECKDB the stand-in accepts;
// only NO_INFOMSGS changes what it prints.
var checkOptions = map[string]bool{
	"NO_INFOMSGS": true, "ALL_ERRORMSGS": true, "PHYSICAL_ONLY": true, "DATA_PURITY": true, "TABLOCK": true,
	"EXTENDED_LOGICAL_CHECKS": true, "MAXDOP": true,
}

// serviceBrokerChecks are the lines CHECKDB prints for the Service Broker
// metadata every database carries.
var serviceBrokerChecks = []string{
	"Service Broker Msg 9675, State 1: Message Types analyzed: 14.",
	"Service Broker Msg 9676, State 1: Service Contracts analyzed: 6.",
	"Service Broker Msg 9667, State 1: Services analyzed: 3.",
	"Service Broker Msg 9668, State 1: Service Queues analyzed: 3.",
	"Service Broker Msg 9669, State 1: Conversation Endpoints analyzed: 0.",
	"Service Broker Msg 9674, State 1: Conversation Groups analyzed: 0.",
	"Service Broker Msg 9670, State 1: Remote Service Bindings analyzed: 0.",
	"Service Broker Msg 9605, State 1: Conversation Priorities analyzed: 0.",
}

const (
	repairRebuild       = "repair_rebuild"
	repairAllowDataLoss = "repair_allow_data_loss"
)

func (b *batch) dbcc(parsed *dbccStatement) *sqlError {
	if parsed.command != "CHECKDB" {
		return fault(2526, "Incorrect DBCC statement. Check the documentation for the correct DBCC syntax and options.").withState(3)
	}
	quiet := false
	for _, option := range parsed.options {
		if !checkOptions[option] {
			return fault(195, "'%s' is not a recognized option.", strings.ToLower(option)).withState(4)
		}
		quiet = quiet || option == "NO_INFOMSGS"
	}
	for position, argument := range parsed.arguments {
		if argument != "NOINDEX" {
			return fault(2560, "Parameter %d is incorrect for this DBCC statement.", position+2)
		}
	}
	database, problem := b.checkTarget(parsed.target)
	if problem != nil {
		return problem
	}
	if !quiet {
		b.message("DBCC results for '%s'.", database.Name)
		for _, line := range serviceBrokerChecks {
			b.message("%s", line)
		}
	}
	damaged := matches(b.faults.CheckDB, database.Name)
	total, repair := 0, ""
	if damaged && len(database.Tables) == 0 {
		b.report(fault(8939, "Table error: Object ID 0, index ID -1, partition ID 0, alloc unit ID 72057594038321152 (type Unknown), page (1:153). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4.").withState(98))
		b.message("CHECKDB found 0 allocation errors and 1 consistency errors not associated with any single object.")
		total, repair = 1, repairAllowDataLoss
	}
	for position, table := range database.Tables {
		shown := displayName(table.Name)
		if !quiet {
			b.message("DBCC results for '%s'.", shown)
		}
		found, level := tableErrors(&table, position, damaged && position == 0)
		for _, problem := range found {
			b.report(problem)
		}
		if !quiet {
			b.message("There are %d rows in %d pages for object \"%s\".", len(table.Rows), dataPages(&table), shown)
		}
		if len(found) > 0 {
			b.message("CHECKDB found 0 allocation errors and %d consistency errors in table '%s' (object ID %d).", len(found), shown, objectID(position))
			total += len(found)
			if repair != repairAllowDataLoss {
				repair = level
			}
		}
	}
	if !quiet || total > 0 {
		b.message("CHECKDB found 0 allocation errors and %d consistency errors in database '%s'.", total, database.Name)
	}
	if total > 0 {
		b.message("%s is the minimum repair level for the errors found by DBCC CHECKDB (%s).", repair, database.Name)
	}
	if !quiet {
		b.message("DBCC execution completed. If DBCC printed error messages, contact your system administrator.")
	}
	return nil
}

// checkTarget finds the database DBCC CHECKDB checks: the current one when
// none (or 0) is given, else by name or database_id.
func (b *batch) checkTarget(target *literal) (*sqlwire.Database, *sqlError) {
	s := b.server
	if target != nil && !target.isText && target.text != "0" {
		id, _ := strconv.Atoi(target.text)
		for _, database := range s.databases {
			if database.ID == id {
				return database, nil
			}
		}
		return nil, fault(2521, "Could not find database ID %s. The database ID either does not exist, or the database was dropped before a statement tried to use it. Verify if the database ID exists by querying the sys.databases catalog view.", target.text).withState(10)
	}
	name := b.database
	if target != nil && target.isText {
		name = target.text
	}
	database, found := s.lookup(name)
	if !found {
		return nil, fault(2520, "Could not find database '%s'. The database either does not exist, or was dropped before a statement tried to use it. Verify if the database exists by querying the sys.databases catalog view.", name).withState(11)
	}
	return database, nil
}

// displayName is how DBCC names a table: without its schema when that is dbo.
func displayName(qualified string) string {
	if schema, name, found := strings.Cut(qualified, "."); found && strings.EqualFold(schema, "dbo") {
		return name
	}
	return qualified
}

// The ids DBCC reports for the table at a position in its database: its
// object id (as sys.dm_db_partition_stats reports it), partition, allocation
// unit and first data page.
func objectID(position int) int { return 245575913 + 16*position }

func partitionID(position int) int64 { return 72057594043236352 + 65536*int64(position) }

func allocationUnitID(position int) int64 { return 72057594049658880 + 65536*int64(position) }

func firstPage(position int) int { return 312 + 8*position }

// rowBytes is the size of a row on its page, roughly: header, null bitmap
// and offsets, then the values.
func rowBytes(row []string) int {
	size := 9
	for _, value := range row {
		size += len(value)
	}
	return size
}

// dataPages is the number of 8 KiB pages whose 8060 bytes of row space hold
// the table's rows.
func dataPages(table *sqlwire.Table) int {
	size := 0
	for _, row := range table.Rows {
		size += rowBytes(row)
	}
	return (size + 8059) / 8060
}

// tableErrors checks one table and returns its consistency errors and the
// repair level they need.
func tableErrors(table *sqlwire.Table, position int, damaged bool) ([]*sqlError, string) {
	index := 0
	if table.Key != "" {
		index = 1 // the clustered index of the PRIMARY KEY
	}
	unit := strconv.Itoa(objectID(position)) + ", index ID " + strconv.Itoa(index) +
		", partition ID " + strconv.FormatInt(partitionID(position), 10) +
		", alloc unit ID " + strconv.FormatInt(allocationUnitID(position), 10) + " (type In-row data)"
	page, offset, badPage := firstPage(position), 0, -1
	if damaged {
		badPage = page
	}
	pages := make([]int, len(table.Rows)) // the page each row is on
	for slot, row := range table.Rows {
		if offset+rowBytes(row) > 8060 {
			page, offset = page+1, 0
		}
		pages[slot], offset = page, offset+rowBytes(row)
		if len(row) != len(table.Columns) && badPage < 0 {
			badPage = page
		}
	}
	var found []*sqlError
	level := ""
	if badPage >= 0 {
		found = append(found,
			fault(8939, "Table error: Object ID %s, page (1:%d). Test (IS_OFF (BUF_IOERR, pBUF->bstat)) failed. Values are 133129 and -4.", unit, badPage).withState(98),
			fault(8928, "Object ID %s: Page (1:%d) could not be processed.  See other errors for details.", unit, badPage))
		level = repairAllowDataLoss
	}
	if key := indexOf(table.Columns, table.Key); key >= 0 {
		seen := map[string]int{}
		for slot, row := range table.Rows {
			if key >= len(row) {
				continue
			}
			if earlier, duplicate := seen[strings.ToLower(row[key])]; duplicate {
				found = append(found, fault(2511, "Table error: Object ID %s. Keys out of order on page (1:%d), slots %d and %d.", unit, pages[slot], earlier, slot))
				if level == "" {
					level = repairRebuild
				}
			}
			seen[strings.ToLower(row[key])] = slot
		}
	}
	return found, level
}

// indexOf is index, for a name that may be empty (a table without a key).
func indexOf(columns []string, name string) int {
	if name == "" {
		return -1
	}
	return index(columns, name)
}
