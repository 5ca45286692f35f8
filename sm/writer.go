package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// writer is the single read-write connection and its prepared bookkeeping
// statements. Only the apply path uses it.
type writer struct {
	c                                *sqlite3.SQLiteConn
	setApplied, dedupGet, dedupPut   *sqlite3.SQLiteStmt
	dedupPrune, savepoint, release   *sqlite3.SQLiteStmt
	rollbackTo, begin, commit, bumpN *sqlite3.SQLiteStmt
	resetRowid, resetChanges         *sqlite3.SQLiteStmt
	// stmts caches client writes by text (execCached).
	stmts *stmtCache
	// dedup holds the request IDs of the dedup table (dedupFilter).
	dedup *dedupFilter
}

// writeCacheSize bounds the client writes kept prepared on the writer.
const writeCacheSize = 256

func newWriter(c *sqlite3.SQLiteConn) (*writer, error) {
	w := &writer{c: c, stmts: newStmtCache(writeCacheSize), dedup: newDedupFilter()}
	for _, p := range []struct {
		dst **sqlite3.SQLiteStmt
		sql string
	}{
		{&w.setApplied, "UPDATE " + metaTable + " SET applied = ? WHERE id = 1"},
		{&w.dedupGet, "SELECT response FROM " + dedupTable + " WHERE id = ?"},
		{&w.dedupPut, "INSERT INTO " + dedupTable + " (idx, id, response) VALUES (?, ?, ?)"},
		{&w.dedupPrune, "DELETE FROM " + dedupTable + " WHERE idx < ?"},
		{&w.savepoint, "SAVEPOINT skiff_entry"},
		{&w.release, "RELEASE skiff_entry"},
		{&w.rollbackTo, "ROLLBACK TO skiff_entry"},
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.bumpN, "UPDATE " + localTable + " SET n = n + 1 WHERE id = 1"},
		// Rowid 0 and a DELETE of nothing: last_insert_rowid() = changes() = 0.
		{&w.resetRowid, "INSERT OR REPLACE INTO " + scratchTable + " (id) VALUES (0)"},
		{&w.resetChanges, "DELETE FROM " + scratchTable + " WHERE id < 0"},
	} {
		st, err := c.Prepare(p.sql)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("%w: prepare %q: %w", ErrStorage, p.sql, err)
		}
		*p.dst = st.(*sqlite3.SQLiteStmt)
	}
	if err := w.loadDedup(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// loadDedup fills the filter from the dedup table.
func (w *writer) loadDedup() error {
	rows, err := w.c.Query("SELECT idx, id FROM "+dedupTable+" ORDER BY idx", nil)
	if err != nil {
		return fmt.Errorf("%w: read request ids: %w", ErrStorage, err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 2)
	for {
		switch err := rows.Next(dest); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("%w: read request ids: %w", ErrStorage, err)
		}
		idx, _ := dest[0].(int64)
		id, _ := dest[1].([]byte)
		w.dedup.add(uint64(idx), id)
	}
}

// putDedup remembers the response of the request id applied at index.
func (w *writer) putDedup(index uint64, id, response []byte) error {
	if err := run(w.dedupPut, arg(1, int64(index)), arg(2, id), arg(3, response)); err != nil {
		return err
	}
	w.dedup.add(index, id)
	return nil
}

// pruneDedup forgets the requests applied before index below.
func (w *writer) pruneDedup(below uint64) error {
	if err := run(w.dedupPrune, arg(1, int64(below))); err != nil {
		return err
	}
	w.dedup.prune(below)
	return nil
}

func (w *writer) close() error {
	w.stmts.clear()
	for _, st := range []*sqlite3.SQLiteStmt{w.setApplied, w.dedupGet, w.dedupPut, w.dedupPrune,
		w.savepoint, w.release, w.rollbackTo, w.begin, w.commit, w.bumpN, w.resetRowid, w.resetChanges} {
		if st != nil {
			_ = st.Close()
		}
	}
	return w.c.Close()
}

func run(st *sqlite3.SQLiteStmt, a ...driver.NamedValue) error {
	_, err := st.ExecContext(context.Background(), a)
	return err
}

func arg(i int, v driver.Value) driver.NamedValue { return driver.NamedValue{Ordinal: i, Value: v} }

func (w *writer) sync() error {
	if err := execRaw(w.c, "PRAGMA synchronous=FULL"); err != nil {
		return err
	}
	if err := run(w.bumpN); err != nil {
		return err
	}
	return execRaw(w.c, "PRAGMA synchronous=NORMAL")
}

// lookupDedup returns the stored response of an already applied request.
func (w *writer) lookupDedup(id []byte) ([]byte, bool, error) {
	if !w.dedup.mayContain(id) {
		return nil, false, nil
	}
	rows, err := w.dedupGet.QueryContext(context.Background(), []driver.NamedValue{arg(1, id)})
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	switch err := rows.Next(dest); {
	case errors.Is(err, io.EOF):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	b, _ := dest[0].([]byte)
	return b, true, nil
}
