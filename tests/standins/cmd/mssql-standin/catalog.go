package main

// The server's catalog: sys.databases, database snapshots and renames.

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"sqlserver-backup/standins/internal/sqlwire"
)

// systemIDs are the database_id of the system databases on every SQL Server;
// user databases get the lowest free id from 5 on.
var systemIDs = map[string]int{"master": 1, "tempdb": 2, "model": 3, "msdb": 4}

// systemFiles are the logical names of the system databases' data files.
var systemFiles = map[string]string{"master": "master", "tempdb": "tempdev", "model": "modeldev", "msdb": "MSDBData"}

// systemCreated are the create_date of the system databases that come with
// the SQL Server 2022 image; tempdb is created anew at each start.
var systemCreated = map[string]string{"master": "2003-04-08 09:13:36.390", "model": "2003-04-08 09:13:36.390", "msdb": "2022-10-08 06:31:57.550"}

// dateLayout is a datetime as sqlcmd prints it.
const dateLayout = "2006-01-02 15:04:05.000"

func isSystem(name string) bool {
	_, found := systemIDs[strings.ToLower(name)]
	return found
}

// freeID is the lowest database_id no database holds, as SQL Server reuses
// the id of a dropped database.
func (s *server) freeID() int {
	used := map[int]bool{}
	for _, database := range s.databases {
		used[database.ID] = true
	}
	id := 5
	for used[id] {
		id++
	}
	return id
}

// create adds an empty database, as CREATE DATABASE does; its data file's
// logical name is the database's unless given.
func (s *server) create(name, file string) *sqlwire.Database {
	if file == "" {
		file = name
	}
	database := &sqlwire.Database{Name: name, ID: s.freeID(), Created: time.Now().UTC().Format(dateLayout), File: file}
	s.databases[name] = database
	return database
}

// catalogue gives every database its catalog entry: the fixed ids of the
// system databases, an id for each user database a stand-in of an earlier
// version stored without one, and tempdb a create_date of now, since SQL
// Server creates tempdb at each start. It reports whether anything changed.
func (s *server) catalogue(started time.Time) bool {
	names := make([]string, 0, len(s.databases))
	for name := range s.databases {
		names = append(names, name)
	}
	sort.Strings(names)
	changed := false
	for _, name := range names {
		database, key := s.databases[name], strings.ToLower(name)
		if id, system := systemIDs[key]; system && database.ID != id {
			database.ID, changed = id, true
		}
		if database.File == "" {
			database.File, changed = name, true
			if file, system := systemFiles[key]; system {
				database.File = file
			}
		}
		if created, system := systemCreated[key]; system && database.Created == "" {
			database.Created, changed = created, true
		}
	}
	for _, name := range names {
		if database := s.databases[name]; database.ID == 0 {
			database.ID, changed = s.freeID(), true
		}
		if database := s.databases[name]; database.Created == "" || strings.EqualFold(name, "tempdb") {
			database.Created, changed = started.UTC().Format(dateLayout), true
		}
	}
	return changed
}

// databasesView is sys.databases: one row per database in database_id
// order, as SQL Server lists it without an ORDER BY.
func (s *server) databasesView() *sqlwire.Table {
	view := &sqlwire.Table{Columns: []string{"name", "database_id", "source_database_id", "state_desc", "create_date"}}
	databases := make([]*sqlwire.Database, 0, len(s.databases))
	for _, database := range s.databases {
		databases = append(databases, database)
	}
	sort.Slice(databases, func(i, j int) bool { return databases[i].ID < databases[j].ID })
	for _, database := range databases {
		source := "NULL"
		if database.SourceID != 0 {
			source = strconv.Itoa(database.SourceID)
		}
		view.Rows = append(view.Rows, []string{database.Name, strconv.Itoa(database.ID), source, "ONLINE", database.Created})
	}
	return view
}

// readOnly refuses a write into a database snapshot, which is read-only.
func readOnly(database *sqlwire.Database) *sqlError {
	if database.SourceID != 0 {
		return fault(3906, "Failed to update database \"%s\" because the database is read-only.", database.Name)
	}
	return nil
}

// createSnapshot is CREATE DATABASE ... AS SNAPSHOT OF: a read-only copy of
// the source's tables as they are now. As in SQL Server, the ON clause must
// name the source's data file by its logical name, which is the name the
// source was created with (a rename keeps it).
func (b *batch) createSnapshot(parsed *createDatabase) *sqlError {
	s := b.server
	source, found := s.lookup(parsed.snapshotOf)
	if !found {
		return fault(911, "Database '%s' does not exist. Make sure that the name is entered correctly.", parsed.snapshotOf)
	}
	if source.SourceID != 0 {
		return fault(5093, "The operation cannot be performed on a database snapshot.")
	}
	named := false
	for _, file := range parsed.files {
		if !strings.EqualFold(file.name, source.File) {
			return fault(5014, "The file '%s' does not exist in database '%s'.", file.name, source.Name)
		}
		named = true
	}
	if !named {
		return fault(5127, "All files must be specified for database snapshot creation. Missing the file \"%s\".", source.File)
	}
	snapshot := s.create(parsed.name, source.File)
	snapshot.SourceID = source.ID
	for _, table := range source.Tables {
		copied := table
		copied.Rows = make([][]string, len(table.Rows))
		for i, row := range table.Rows {
			copied.Rows[i] = append([]string{}, row...)
		}
		snapshot.Tables = append(snapshot.Tables, copied)
	}
	b.dirty = true
	return nil
}

// rename is ALTER DATABASE ... MODIFY NAME. The database keeps its id, its
// tables and its data file's logical name; the new name keeps its case.
func (b *batch) rename(parsed *renameDatabase) *sqlError {
	s := b.server
	existing, found := s.lookup(parsed.name)
	if !found {
		b.report(fault(5011, "User does not have permission to alter database '%s', the database does not exist, or the database is not in a state that allows access checks.", parsed.name).withState(5))
		return fault(5069, "ALTER DATABASE statement failed.")
	}
	if isSystem(existing.Name) {
		return fault(5016, "Cannot change the name of the system database %s.", existing.Name)
	}
	if existing.SourceID != 0 {
		return fault(5093, "The operation cannot be performed on a database snapshot.")
	}
	if other, taken := s.lookup(parsed.newName); taken && other != existing {
		return fault(1801, "Database '%s' already exists. Choose a different database name.", parsed.newName).withState(3)
	}
	if matches(b.faults.ModifyName, existing.Name) {
		return fault(5030, "The database could not be exclusively locked to perform the operation.").withState(2)
	}
	delete(s.databases, existing.Name)
	if strings.EqualFold(b.database, existing.Name) {
		b.database = parsed.newName
	}
	existing.Name = parsed.newName
	s.databases[existing.Name] = existing
	b.dirty = true
	b.message("The database name '%s' has been set.", parsed.newName)
	return nil
}
