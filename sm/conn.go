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

// processVFS is the SQLite VFS of every connection to a file this process
// owns (the live database, a generation being received or booted). Only
// skiffd ever opens those files, so "unix-excl" takes one exclusive POSIX
// lock per file and keeps every other lock, and the WAL index, in this
// process's memory: no -shm file, and no fcntl system calls in each
// transaction ("unix" made 1.8 per point read; README, Benchmarks). All connections to one file
// must use it: a "unix" connection would take real locks beside it. The
// lock is advisory and the kernel drops it when this process closes any
// descriptor of the file, so it is not a guard against other processes.
const processVFS = "unix-excl"

// ownedDSN is the DSN of a connection to a file this process owns; params
// are further URI parameters, "&"-joined.
func ownedDSN(path, params string) string {
	return fmt.Sprintf("file:%s?vfs=%s&cache=private&%s", uriPath(path), processVFS, params)
}

// openWriter opens the single writer connection. synchronous=NORMAL in WAL
// mode never corrupts and loses at most a suffix of commits on power loss,
// which the Raft log replays; Sync is the real barrier (DRAGONBOAT.md 6.4).
func openWriter(path string, fk bool) (*sqlite3.SQLiteConn, error) {
	dsn := ownedDSN(path, fmt.Sprintf("_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=%d&_fk=%t", busyTimeoutMS, fk))
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open writer %s: %w", path, err)
	}
	return c.(*sqlite3.SQLiteConn), nil
}

// openCheckpointer opens a connection of its own to the database at path
// for one checkpoint, waiting up to busyMS for locks.
func openCheckpointer(path string, busyMS int) (*sqlite3.SQLiteConn, error) {
	dsn := ownedDSN(path, fmt.Sprintf("_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=%d", busyMS))
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open checkpointer: %w", err)
	}
	return c.(*sqlite3.SQLiteConn), nil
}

// openReader opens one reader connection. It is opened read-write, not
// mode=ro: "unix-excl" keeps real fcntl locks for read-only connections,
// which would replace this process's exclusive lock (POSIX locks of one
// process merge). What keeps it from writing: query_only, which fails any
// write transaction with SQLITE_READONLY; runRead, which refuses a
// statement SQLite does not call read-only; and, for client SQL, the
// authorizer. Skiff's own readers (snapshots) need transaction control.
func openReader(path string, fk, clientSQL bool) (*sqlite3.SQLiteConn, error) {
	dsn := ownedDSN(path, fmt.Sprintf("_busy_timeout=%d&_query_only=1&_fk=%t", busyTimeoutMS, fk))
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
