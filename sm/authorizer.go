package sm

import (
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// authzScratch is what the writer's authorizer records while a client
// statement is prepared (SQLite calls it once per object the statement
// touches): the request path clears it before each statement and reads it
// after. A cached write restores it from its first prepare (execCached).
type authzScratch struct {
	// user is set while client SQL runs: Skiff's own bookkeeping on the
	// writer is neither authorized nor observed nor captured.
	user bool
	// write and insert: the statement writes rows of a client table, by
	// INSERT for insert (what sqlite3_changes() and last_insert_rowid()
	// then mean, see normalize).
	write, insert bool
	// dropping is the table a DROP TABLE drops: the DELETE of it that SQLite
	// announces writes no row a client sees.
	dropping string
	// schema: the statement being prepared is DDL (execCached does not
	// cache it).
	schema bool
	// ddl: the statement just run changed the schema, so the write cache
	// is cleared.
	ddl bool
	// sql is the client's statement string being prepared: ALTER TABLE
	// ... RENAME TO names its new table there only.
	sql string
}

// startStatement forgets what the previous statement wrote.
func (a *authzScratch) startStatement() { a.write, a.insert, a.dropping = false, false, "" }

// authorizeWrite is the writer's authorizer: client SQL gets the policy of
// authorize, total_changes() refused (it counts from the connection's
// opening, which differs between replicas), and what the statement does is
// recorded (observe) for its result and for the caches.
func (s *StateMachine) authorizeWrite(op int, a1, a2, db string) int {
	if !s.authz.user {
		return sqlite3.SQLITE_OK
	}
	s.observe(op, a1)
	s.cap.mark() // a statement is being prepared: its changes start here
	if op == sqlite3.SQLITE_FUNCTION && strings.EqualFold(a2, "total_changes") {
		return sqlite3.SQLITE_DENY
	}
	if op == sqlite3.SQLITE_ALTER_TABLE && containsFold(s.authz.sql, internalPrefix) {
		// A rename into Skiff's names (the authorizer is never told the
		// new name; a mention anywhere in the string is refused).
		return sqlite3.SQLITE_DENY
	}
	return authorize(op, a1, a2, db)
}

// observe records, from the authorizer's calls while a client statement is
// prepared, whether it writes rows of a client table. DDL edits only the
// schema table, and DROP TABLE announces a DELETE of the table it drops,
// neither of which changes sqlite3_changes().
func (s *StateMachine) observe(op int, table string) {
	if schemaOp(op, table) {
		s.schemaChanged, s.authz.schema, s.authz.ddl = true, true, true
	}
	switch op {
	case sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW:
		s.schemaDirty = true
		return
	}
	switch op {
	case sqlite3.SQLITE_DROP_TABLE:
		s.authz.dropping = table
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE:
		if strings.HasPrefix(strings.ToLower(table), "sqlite_") || (op == sqlite3.SQLITE_DELETE && table == s.authz.dropping) {
			return
		}
		s.authz.write = true
		if op == sqlite3.SQLITE_INSERT {
			s.authz.insert = true
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

// pragmaArgOK lists the PRAGMAs a client may give an argument to: the
// introspection ones, which take a table or index name, and the two that
// write a value into the database file itself (so every replica stores it).
// Every other PRAGMA with an argument sets a per-connection setting (cache
// size, recursive triggers, ignore_check_constraints, ...) or the file's
// durability and locking (journal_mode, synchronous, locking_mode, ...).
// On the writer such a setting would outlive the entry that set it and
// apply to later entries on this replica only, after a restart not at all;
// on a pooled reader it would leak into other clients' reads.
var pragmaArgOK = map[string]bool{
	"table_info": true, "table_xinfo": true, "index_info": true, "index_xinfo": true,
	"index_list": true, "foreign_key_list": true, "foreign_key_check": true,
	"integrity_check": true, "quick_check": true, "table_list": true,
	"user_version": true, "application_id": true,
	// A no-op inside a transaction, where every client write runs; SQL
	// dumps (rqlite's own included) start with it.
	"foreign_keys": true,
}

// pragmaActs lists PRAGMAs that act even without an argument: a checkpoint,
// or an ANALYZE chosen from this connection's query history.
var pragmaActs = map[string]bool{
	"wal_checkpoint": true, "optimize": true, "incremental_vacuum": true,
	"shrink_memory": true, "writable_schema": true,
}

// pragmaAllowed reports whether client SQL may run PRAGMA name with value
// (empty when the PRAGMA only reads).
func pragmaAllowed(name, value string) bool {
	name = strings.ToLower(name)
	if value != "" {
		return pragmaArgOK[name]
	}
	return !pragmaActs[name]
}

// authorize is the SQLite authorizer applied to client SQL. Transaction
// control is refused because every client statement runs inside the batch's
// own transaction: a client COMMIT or ROLLBACK would split or undo other
// clients' entries and the applied index with them. TEMP objects are
// refused because they live in one connection, not in the replicated file:
// a replica restored from a snapshot would not have them, and a TEMP
// trigger on Skiff's own tables would fire inside its bookkeeping.
func authorize(op int, a1, a2, db string) int {
	isInternal := func(t string) bool { return strings.HasPrefix(strings.ToLower(t), internalPrefix) }
	switch op {
	case sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION:
	case sqlite3.SQLITE_UPDATE:
		// ALTER TABLE ... RENAME edits the TEMP schema's triggers and views
		// too: SQLite's own nested UPDATE of sqlite_temp_master, which no
		// client statement can make (SQLite refuses it), and a no-op here,
		// where clients cannot create TEMP objects.
		if strings.EqualFold(db, "temp") && !strings.EqualFold(a1, "sqlite_temp_master") {
			return sqlite3.SQLITE_DENY
		}
	default:
		// CREATE TABLE temp.x is announced as a plain CREATE TABLE.
		if strings.EqualFold(db, "temp") {
			return sqlite3.SQLITE_DENY
		}
	}
	switch op {
	case sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT, sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH,
		sqlite3.SQLITE_CREATE_TEMP_INDEX, sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
		sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_DROP_TEMP_INDEX, sqlite3.SQLITE_DROP_TEMP_TABLE,
		sqlite3.SQLITE_DROP_TEMP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_VIEW:
		return sqlite3.SQLITE_DENY
	case sqlite3.SQLITE_PRAGMA:
		if !pragmaAllowed(a1, a2) {
			return sqlite3.SQLITE_DENY
		}
	case sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE:
		if isInternal(a1) {
			return sqlite3.SQLITE_DENY
		}
	case sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TRIGGER:
		if isInternal(a2) {
			return sqlite3.SQLITE_DENY
		}
	case sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TRIGGER:
		// The new object's name, and its table's: backups leave Skiff's
		// names out, so a client object by such a name would be lost.
		if isInternal(a1) || isInternal(a2) {
			return sqlite3.SQLITE_DENY
		}
	case sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_CREATE_VTABLE:
		if isInternal(a1) {
			return sqlite3.SQLITE_DENY
		}
	}
	return sqlite3.SQLITE_OK
}
