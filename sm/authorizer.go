package sm

import (
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// observe records, from the authorizer's calls while a client statement is
// prepared, whether it writes rows of a client table. DDL edits only the
// schema table, and DROP TABLE announces a DELETE of the table it drops,
// neither of which changes sqlite3_changes().
func (s *StateMachine) observe(op int, table string) {
	if schemaOp(op, table) {
		s.schemaChanged, s.sawSchema, s.ddlSeen = true, true, true
	}
	switch op {
	case sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW:
		s.schemaDirty = true
		return
	}
	switch op {
	case sqlite3.SQLITE_DROP_TABLE:
		s.dropping = table
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE:
		if strings.HasPrefix(strings.ToLower(table), "sqlite_") || (op == sqlite3.SQLITE_DELETE && table == s.dropping) {
			return
		}
		s.sawWrite = true
		if op == sqlite3.SQLITE_INSERT {
			s.sawInsert = true
		}
	}
}

// schemaOp reports whether an authorizer call announces a schema change:
// DDL, or a write of the schema table (every DDL writes it).
func schemaOp(op int, table string) bool {
	switch op {
	case sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW,
		sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_TRIGGER,
		sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_DROP_VTABLE, sqlite3.SQLITE_ALTER_TABLE:
		return true
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE:
		t := strings.ToLower(table)
		return t == "sqlite_master" || t == "sqlite_schema"
	}
	return false
}
