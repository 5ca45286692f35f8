package sm

import (
	sqlite3 "github.com/mattn/go-sqlite3"
)

// stmtCacheSize bounds the prepared statements kept per read connection.
// Applications send few distinct query texts (their parameters vary, not
// their SQL), so a small cache catches nearly every repeat.
const stmtCacheSize = 128

// reader is a pooled read-only connection and the statements prepared on
// it. It is used by one Lookup at a time (it is taken from the pool), so
// its cache needs no lock.
type reader struct {
	c     *sqlite3.SQLiteConn
	stmts *stmtCache
	// gen is the schema generation this connection last loaded.
	gen uint64
}

// syncSchema makes the connection load the schema of generation g if it
// has not: a statement that reads the schema table makes SQLite check the
// schema cookie and reload. Cached statements go with the old schema.
func (r *reader) syncSchema(g uint64) error {
	if r.gen == g {
		return nil
	}
	r.stmts.clear()
	if _, err := queryInt64(r.c, "SELECT count(*) FROM sqlite_master"); err != nil {
		return err
	}
	r.gen = g
	return nil
}

func newReader(c *sqlite3.SQLiteConn) *reader {
	return &reader{c: c, stmts: &stmtCache{m: make(map[string]*sqlite3.SQLiteStmt)}}
}

// close finalizes the statements, then the connection (a connection with
// unfinalized statements is only closed when they are).
func (r *reader) close() {
	r.stmts.clear()
	_ = r.c.Close()
}

// stmtCache holds prepared single-statement read-only texts. Preparing is
// about a tenth of a point read's CPU (profile in the README); a cached
// statement is reset and rebound instead. SQLite re-prepares a cached
// statement by itself when the schema changes (sqlite3_prepare_v2), running
// the authorizer again.
type stmtCache struct {
	m map[string]*sqlite3.SQLiteStmt
	// order is insertion order; the oldest is evicted when full.
	order []string
}

func (c *stmtCache) get(sqlText string) *sqlite3.SQLiteStmt {
	if c == nil {
		return nil
	}
	return c.m[sqlText]
}

// put keeps st under sqlText; the cache owns it from now on.
func (c *stmtCache) put(sqlText string, st *sqlite3.SQLiteStmt) {
	if len(c.order) >= stmtCacheSize {
		old := c.order[0]
		c.order = c.order[1:]
		if s := c.m[old]; s != nil {
			_ = s.Close()
		}
		delete(c.m, old)
	}
	c.m[sqlText] = st
	c.order = append(c.order, sqlText)
}

func (c *stmtCache) clear() {
	for _, st := range c.m {
		_ = st.Close()
	}
	clear(c.m)
	c.order = nil
}
