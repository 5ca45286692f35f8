package sm

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// applyRequest runs one request and returns its response as the client
// sees it and, when keep, encoded as it is remembered for a retry: without
// timings and echoes (they differ from replica to replica, and across
// restarts, and the file's contents must not).
func (s *StateMachine) applyRequest(index uint64, req *cmdpb.Request, mode stmtMode, keep bool) (resp *cmdpb.Response, stored []byte, rolledBack bool, err error) {
	r, err := s.execRequest(req, mode)
	if err != nil || r.rolledBack {
		return nil, nil, r.rolledBack, err
	}
	resp = r.resp
	resp.RaftIndex = index
	if keep {
		if stored, err = proto.Marshal(resp); err != nil {
			return nil, nil, false, fmt.Errorf("encode response: %w", err)
		}
	}
	for i, res := range resp.Results {
		s.echo(res, r.flags[i])
		if r.times != nil {
			res.Time = r.times[i]
		}
	}
	return resp, stored, false, nil
}

// writeFlags is what the authorizer saw of one client statement.
type writeFlags struct{ write, insert bool }

// normalize keeps only the parts of a write result that are a function of
// the database: sqlite3_last_insert_rowid() and sqlite3_changes() are
// connection state, left over from Skiff's bookkeeping or from before a
// restart when the statement itself wrote no row.
func normalize(res *cmdpb.StatementResult, f writeFlags) {
	if res.GetIsQuery() || res.GetError() != "" {
		return
	}
	if !f.write {
		res.RowsAffected = 0
	}
	if !f.insert || res.RowsAffected == 0 {
		res.LastInsertId = 0
	}
}

// execResult is what a request did on the writer.
type execResult struct {
	// resp holds the results, write results normalized.
	resp *cmdpb.Response
	// flags says, per result, what its statement wrote; times, when the
	// request asked for timings, how long it ran.
	flags []writeFlags
	times []float64
	// rolledBack: a statement ended the batch's transaction (INSERT OR
	// ROLLBACK, RAISE(ROLLBACK)); the rest of the result is empty.
	rolledBack bool
}

// execRequest runs a request's statements inside a savepoint, so that a
// request with transaction set rolls back alone.
func (s *StateMachine) execRequest(req *cmdpb.Request, mode stmtMode) (execResult, error) {
	w := s.w
	stmts := req.GetStatements()
	// A lone statement outside a transaction needs no savepoint: SQLite
	// undoes a failed statement by itself, and nothing after it could
	// roll it back. Most writes are that, and the pair cost two steps.
	sp := len(stmts) > 1 || req.GetTransaction() || (req.GetReplaceAll() && mode == modeWrite)
	if sp {
		if err := run(w.savepoint); err != nil {
			return execResult{}, fmt.Errorf("savepoint: %w", err)
		}
	}
	resp := &cmdpb.Response{Results: make([]*cmdpb.StatementResult, 0, len(stmts))}
	flags := make([]writeFlags, 0, len(stmts))
	if req.GetReplaceAll() && mode == modeWrite {
		w.stmts.clear() // the objects its statements name are going
		s.schemaChanged = true
		s.cap.schemaChanged()
		if err := dropClientObjects(w.c); err != nil {
			if isStorageFault(err) {
				return execResult{}, err
			}
			if err := run(w.rollbackTo); err != nil {
				return execResult{}, fmt.Errorf("rollback to savepoint: %w", err)
			}
			if err := run(w.release); err != nil {
				return execResult{}, fmt.Errorf("release savepoint: %w", err)
			}
			resp.Error = err.Error()
			return execResult{resp: resp, flags: flags}, nil
		}
	}
	var times []float64
	if req.GetTimings() {
		times = make([]float64, 0, len(stmts))
	}
	// last_insert_rowid() and changes() start each request from nothing,
	// as on a connection of the client's own, on every replica alike. The
	// reset costs two statements, so it runs only when the request could
	// call them: its text names them (or creates a trigger or view that
	// could), or a trigger or view in the schema does. Both are the same on
	// every replica.
	if mayReadConnState(stmts) || s.schemaReadsConnState() {
		if err := run(w.resetRowid); err != nil {
			return execResult{}, fmt.Errorf("reset rowid: %w", err)
		}
		if err := run(w.resetChanges); err != nil {
			return execResult{}, fmt.Errorf("reset changes: %w", err)
		}
	}
	failed := false
	for _, st := range stmts {
		var t0 time.Time
		if times != nil {
			t0 = time.Now()
		}
		s.cap.mark()
		s.statements++
		s.authz.user, s.authz.sql = true, st.GetSql()
		s.authz.startStatement()
		var res *cmdpb.StatementResult
		var err error
		if mode == modeWrite && !st.GetReturnsRows() && !s.noWriteCache {
			res, err = s.execCached(w, st)
		} else {
			res, err = runStatement(context.Background(), w.c, st, mode, req.GetQualifyColumns())
		}
		s.authz.user = false
		if s.authz.ddl {
			// Cached writes carry what the authorizer saw at their
			// prepare; a schema change (a trigger added or dropped) can
			// change that, so they are prepared again.
			w.stmts.clear()
			s.cap.schemaChanged()
			s.authz.ddl = false
		}
		if err != nil {
			return execResult{}, err
		}
		if w.c.AutoCommit() {
			return execResult{rolledBack: true}, nil
		}
		if times != nil {
			times = append(times, time.Since(t0).Seconds())
		}
		if err := s.cap.endStatement(w.c, res.GetError() != ""); err != nil {
			return execResult{}, err
		}
		f := writeFlags{write: s.authz.write, insert: s.authz.insert}
		normalize(res, f)
		resp.Results = append(resp.Results, res)
		flags = append(flags, f)
		if res.GetError() != "" && req.GetTransaction() {
			failed = true
			break
		}
	}
	if !sp {
		return execResult{resp: resp, flags: flags, times: times}, nil
	}
	if failed {
		if err := run(w.rollbackTo); err != nil {
			return execResult{}, fmt.Errorf("rollback to savepoint: %w", err)
		}
		s.cap.dropRequest()
	}
	if err := run(w.release); err != nil {
		return execResult{}, fmt.Errorf("release savepoint: %w", err)
	}
	return execResult{resp: resp, flags: flags, times: times}, nil
}

// echo makes a write result report what rqlite reports: the connection's
// sqlite3_last_insert_rowid() and sqlite3_changes(), which a statement that
// writes no rows (DDL) leaves as the previous write set them (API.md 1.4:
// CREATE TABLE on a fresh node gives {}, a later DROP TABLE echoes the last
// INSERT). Skiff's own bookkeeping writes on the same connection, so the
// connection's values are replaced by the last client write's.
func (s *StateMachine) echo(res *cmdpb.StatementResult, f writeFlags) {
	if res.GetIsQuery() || res.GetError() != "" {
		return
	}
	if f.write {
		if f.insert && res.RowsAffected > 0 {
			s.echoID = res.LastInsertId
		}
		s.echoChanges = res.RowsAffected
	}
	res.LastInsertId, res.RowsAffected = s.echoID, s.echoChanges
}

// connStateWords are what a request's text must contain to read the
// connection state a request starts from: the functions themselves, or a
// trigger or view created in the request that could call them.
var connStateWords = []string{"last_insert_rowid", "changes", "trigger", "view"}

// mayReadConnState reports whether stmts could call last_insert_rowid() or
// changes() before writing themselves.
func mayReadConnState(stmts []*cmdpb.Statement) bool {
	for _, st := range stmts {
		sql := st.GetSql()
		for _, w := range connStateWords {
			if containsFold(sql, w) {
				return true
			}
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word w in
// any case, without allocating.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// schemaReadsConnState reports whether a trigger or view in the schema
// mentions last_insert_rowid() or changes(), recomputed after the schema's
// triggers or views changed (and after open or install).
func (s *StateMachine) schemaReadsConnState() bool {
	if s.schemaDirty {
		n, err := queryInt64(s.w.c, `SELECT COUNT(*) FROM sqlite_master WHERE type IN ('trigger', 'view')
			AND (sql LIKE '%last_insert_rowid%' OR sql LIKE '%changes%')`)
		if err != nil {
			return true // when in doubt, reset
		}
		s.schemaConnState, s.schemaDirty = n > 0, false
	}
	return s.schemaConnState
}

// dropClientObjects removes every client view, trigger and table (their
// indexes go with them, and a virtual table's shadow tables with it), for a
// load that replaces the database. It runs inside the entry's savepoint, so
// a load that fails rolls the drops back.
func dropClientObjects(c *sqlite3.SQLiteConn) error {
	var drops []string
	q := `SELECT m.type, m.name FROM sqlite_master m
		LEFT JOIN pragma_table_list l ON l.schema = 'main' AND l.name = m.name
		WHERE m.type IN ('view', 'trigger', 'table') AND coalesce(l.type, '') != 'shadow'
		AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\' AND m.name NOT LIKE '\_\_skiff\_%' ESCAPE '\'
		ORDER BY CASE m.type WHEN 'view' THEN 0 WHEN 'trigger' THEN 1 ELSE 2 END, m.rowid DESC`
	if err := eachRow(context.Background(), c, q, 2, func(v []driver.Value) error {
		drops = append(drops, "DROP "+strings.ToUpper(str(v[0]))+" IF EXISTS "+quoteIdent(str(v[1])))
		return nil
	}); err != nil {
		return err
	}
	for _, d := range drops {
		if err := execRaw(c, d); err != nil {
			return fmt.Errorf("replace database: %s: %w", d, err)
		}
	}
	n, err := queryInt64(c, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'")
	if err != nil || n == 0 {
		return err
	}
	return execRaw(c, "DELETE FROM sqlite_sequence")
}

// execCached runs a client write that asked for no rows with a statement
// prepared once per text: preparing is a good part of a small INSERT's
// cost, on every replica. Only a text that is one statement and no DDL is
// cached; anything else runs as before. SQLite re-prepares a cached
// statement by itself after a schema change (and the authorizer sees it
// then, adding to the flags restored here).
func (s *StateMachine) execCached(w *writer, st *cmdpb.Statement) (*cmdpb.StatementResult, error) {
	sqlText := st.GetSql()
	a := args(st.GetParameters())
	if hasNamed(a) {
		return runStatement(context.Background(), w.c, st, modeWrite, false)
	}
	ws := w.stmts.get(sqlText)
	if ws == nil {
		s.authz.schema = false
		ds, err := w.c.Prepare(sqlText)
		if err != nil {
			return sqlError(err)
		}
		stmt := ds.(*sqlite3.SQLiteStmt)
		if s.authz.schema || stmtTail(stmt) != "" || isEmptyStmt(stmt) || returnsColumns(stmt) {
			_ = stmt.Close()
			s.authz.startStatement()
			return runStatement(context.Background(), w.c, st, modeWrite, false)
		}
		ws = &cachedStmt{st: stmt, insert: s.authz.insert, write: s.authz.write}
		w.stmts.put(sqlText, ws)
	} else {
		s.authz.insert, s.authz.write = ws.insert, ws.write
	}
	a, err := stmtArgs(a, 0, ws.st.NumInput())
	if err != nil {
		return sqlError(err)
	}
	r, err := ws.st.ExecContext(context.Background(), a)
	if err != nil {
		return sqlError(err)
	}
	id, _ := r.LastInsertId()
	n, _ := r.RowsAffected()
	return &cmdpb.StatementResult{LastInsertId: id, RowsAffected: n}, nil
}

// returnsColumns reports whether st yields rows (a PRAGMA, RETURNING). Run
// for its effect, such a statement stops at its first row still active,
// which would block the savepoint's release; only statements that run to
// completion in one step are cached. Columns are known without a step.
func returnsColumns(st *sqlite3.SQLiteStmt) bool {
	rows, err := st.QueryContext(context.Background(), nil)
	if err != nil {
		return true
	}
	n := len(rows.Columns())
	_ = rows.Close() // resets; nothing was stepped
	return n > 0
}
