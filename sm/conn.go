package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// internalPrefix names Skiff's own tables inside the user's database. They
// must live in the same file as the user's tables: in WAL mode a commit that
// spans attached databases is not atomic across them.
const internalPrefix = "__skiff_"

const (
	metaTable    = internalPrefix + "meta"
	localTable   = internalPrefix + "local"
	dedupTable   = internalPrefix + "dedup"
	scratchTable = internalPrefix + "scratch"
	// cdcTable holds the CDC high-water mark, replicated (CDC_HWM entries)
	// and carried by snapshots, so that a node that installed one knows
	// what the sink already acknowledged.
	cdcTable = internalPrefix + "cdc"
)

// internalTables are the tables schema creates, which a backup copy leaves
// out and a booted file is given afresh.
var internalTables = []string{metaTable, localTable, dedupTable, scratchTable, nodesTable, cdcTable}

// schema creates the internal tables. __skiff_local exists only so that Sync
// has a page to dirty (a same-value UPDATE writes nothing); __skiff_scratch
// only so that a request's connection state can be reset (execRequest).
var schema = []string{
	`CREATE TABLE IF NOT EXISTS ` + metaTable + ` (id INTEGER PRIMARY KEY CHECK (id = 1), applied INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO ` + metaTable + ` (id, applied) VALUES (1, 0)`,
	`CREATE TABLE IF NOT EXISTS ` + localTable + ` (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO ` + localTable + ` (id, n) VALUES (1, 0)`,
	`CREATE TABLE IF NOT EXISTS ` + dedupTable + ` (idx INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, response BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS ` + scratchTable + ` (id INTEGER PRIMARY KEY)`,
	`CREATE TABLE IF NOT EXISTS ` + cdcTable + ` (id INTEGER PRIMARY KEY CHECK (id = 1), hwm INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO ` + cdcTable + ` (id, hwm) VALUES (1, 0)`,
	nodesSchema,
}

// uriPath escapes the characters that end or alter a SQLite URI filename.
func uriPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// openWriter opens the single writer connection. synchronous=NORMAL in WAL
// mode never corrupts and loses at most a suffix of commits on power loss,
// which the Raft log replays; Sync is the real barrier (DRAGONBOAT.md 6.4).
func openWriter(path string, fk bool) (*sqlite3.SQLiteConn, error) {
	dsn := fmt.Sprintf("file:%s?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=%d&_fk=%t&cache=private",
		uriPath(path), busyTimeoutMS, fk)
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open writer %s: %w", path, err)
	}
	return c.(*sqlite3.SQLiteConn), nil
}

// openReader opens one read-only connection: mode=ro makes the file itself
// unwritable through it, whatever SQL a client sends. Client SQL runs under
// the authorizer; Skiff's own readers (snapshots) need transaction control.
func openReader(path string, fk, clientSQL bool) (*sqlite3.SQLiteConn, error) {
	dsn := fmt.Sprintf("file:%s?mode=ro&_busy_timeout=%d&_query_only=1&_fk=%t&cache=private", uriPath(path), busyTimeoutMS, fk)
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open reader %s: %w", path, err)
	}
	rc := c.(*sqlite3.SQLiteConn)
	if !clientSQL {
		return rc, nil
	}
	rc.RegisterAuthorizer(authorize)
	return rc, nil
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
	case sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX,
		sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER:
		if isInternal(a2) {
			return sqlite3.SQLITE_DENY
		}
	}
	return sqlite3.SQLITE_OK
}

// isStorageFault tells a fault of the disk or file (stop the node) from an
// error in the client's SQL (a result). Busy and locked cannot be the
// client's doing either: the writer is the only writer.
func isStorageFault(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrIoErr, sqlite3.ErrCorrupt, sqlite3.ErrFull, sqlite3.ErrNomem, sqlite3.ErrCantOpen,
		sqlite3.ErrNotADB, sqlite3.ErrProtocol, sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrReadonly:
		return true
	}
	return false
}

// execRaw runs SQL that takes no arguments on c (internal bookkeeping).
func execRaw(c *sqlite3.SQLiteConn, q string, args ...driver.NamedValue) error {
	_, err := c.ExecContext(context.Background(), q, args)
	return err
}

// queryInt64 runs a single-value query on c.
func queryInt64(c *sqlite3.SQLiteConn, q string) (int64, error) {
	rows, err := c.QueryContext(context.Background(), q, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: %s returned no row", ErrStorage, q)
		}
		return 0, err
	}
	v, ok := dest[0].(int64)
	if !ok {
		return 0, fmt.Errorf("%w: %s returned %T", ErrStorage, q, dest[0])
	}
	return v, nil
}
