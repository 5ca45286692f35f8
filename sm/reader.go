package sm

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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
	// watch bounds the statement running on c (the pool's watchdog).
	watch watch
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

// readerPool is the reader connections of one database file: free holds
// those no Lookup is using, all is every one of them (abort).
type readerPool struct {
	free chan *reader
	all  []*reader
	// mu keeps abort and close apart: sqlite3_interrupt on a closed
	// connection would use freed memory.
	mu     sync.Mutex
	closed bool
	// running counts the statements armed on the pool's readers; the
	// watchdog runs while there are any (watching).
	running  atomic.Int64
	watching atomic.Bool
}

func newReaderPool(n int) *readerPool {
	return &readerPool{free: make(chan *reader, n), all: make([]*reader, 0, n)}
}

func (p *readerPool) add(r *reader) {
	p.all = append(p.all, r)
	p.free <- r
}

// abort interrupts the statement each connection is running, if any. It
// is safe beside the Lookups using them (sqlite3_interrupt may be called
// from any thread), not beside close.
func (p *readerPool) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, r := range p.all {
		interruptConn(r.c)
	}
}

// arm makes the end of ctx or deadline interrupt what runs on r (one of
// p's readers) until disarm, which returns why the watchdog interrupted
// it, if it did.
func (p *readerPool) arm(r *reader, ctx context.Context, deadline time.Time) {
	r.watch.arm(ctx, deadline)
	p.running.Add(1)
	if !p.watching.Load() && p.watching.CompareAndSwap(false, true) {
		go p.watchdog()
	}
}

func (p *readerPool) disarm(r *reader) error {
	p.running.Add(-1)
	return r.watch.disarm()
}

// watchdog interrupts the statements whose read has ended, every
// watchInterval while any runs; it ends one interval after the last has,
// so an idle node has no timer firing. arm starts it again.
func (p *readerPool) watchdog() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for now := range t.C {
		p.scan(now)
		if p.running.Load() > 0 {
			continue
		}
		p.watching.Store(false)
		// A read that armed between the load and the store saw watching
		// still true and started no watchdog: go on for it, unless one it
		// started has already taken over.
		if p.running.Load() == 0 || !p.watching.CompareAndSwap(false, true) {
			return
		}
	}
}

// scan checks every reader's watch, under mu (apart from close).
func (p *readerPool) scan(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, r := range p.all {
		r.watch.check(now, func() { interruptConn(r.c) })
	}
}

// close closes every connection; none may be in use.
func (p *readerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, r := range p.all {
		r.close()
	}
	p.all = nil
}

func newReader(c *sqlite3.SQLiteConn) *reader {
	return &reader{c: c, stmts: newStmtCache(stmtCacheSize)}
}

// close finalizes the statements, then the connection (a connection with
// unfinalized statements is only closed when they are).
func (r *reader) close() {
	r.stmts.clear()
	_ = r.c.Close()
}

// stmtCache holds prepared single statements by text, up to size of them
// (the oldest is finalized first): a read connection's read-only
// statements and the writer's client writes. Preparing is a good part of a
// small statement's cost; a cached statement is reset and rebound instead.
// SQLite re-prepares a cached statement by itself when the schema changes
// (sqlite3_prepare_v2), running the authorizer again. Each cache belongs to
// one connection, used by one goroutine at a time, so it needs no lock.
type stmtCache struct {
	size int
	m    map[string]*cachedStmt
	// order is insertion order, for eviction.
	order []string
}

// cachedStmt is a prepared statement and, for a write, what the authorizer
// saw when it was prepared (it is not called again when the statement is
// reused).
type cachedStmt struct {
	st            *sqlite3.SQLiteStmt
	insert, write bool
}

func newStmtCache(size int) *stmtCache {
	return &stmtCache{size: size, m: make(map[string]*cachedStmt)}
}

// get returns the statement cached for sqlText; a nil cache has none.
func (c *stmtCache) get(sqlText string) *cachedStmt {
	if c == nil {
		return nil
	}
	return c.m[sqlText]
}

// put keeps cs under sqlText; the cache owns its statement from now on.
func (c *stmtCache) put(sqlText string, cs *cachedStmt) {
	if len(c.order) >= c.size {
		old := c.order[0]
		c.order = c.order[1:]
		if o := c.m[old]; o != nil {
			_ = o.st.Close()
		}
		delete(c.m, old)
	}
	c.m[sqlText] = cs
	c.order = append(c.order, sqlText)
}

// len is the number of statements held.
func (c *stmtCache) len() int { return len(c.m) }

// clear finalizes every cached statement.
func (c *stmtCache) clear() {
	for _, cs := range c.m {
		_ = cs.st.Close()
	}
	clear(c.m)
	c.order = nil
}
