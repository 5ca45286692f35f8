package sm

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	sm "github.com/lni/dragonboat/v4/statemachine"
	sqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// CommandVersion is the codec version this build writes and applies.
const CommandVersion = 1

// Result.Value flags. Value carries the number of statement results in its
// low bits so that a caller can size things without decoding.
const (
	// ResultRequestError marks a Response whose request-level Error is set.
	ResultRequestError uint64 = 1 << 63
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

// Update applies a batch of committed entries in one SQLite transaction,
// one savepoint per entry, and records the last index in that transaction.
func (s *StateMachine) Update(ents []sm.Entry) ([]sm.Entry, error) {
	if len(ents) == 0 {
		return ents, nil
	}
	if s.w == nil {
		return nil, fmt.Errorf("%w: update before open", ErrStorage)
	}
	if err := s.cfg.Failpoints.Inject(failpoint.SMApply, s.stopc); err != nil {
		// An injected fault here is a storage fault: the node stops.
		s.fault(err)
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	var t0 time.Time
	if s.cfg.Observe != nil {
		t0 = time.Now()
	}
	s.statements = 0
	err := s.applyBatch(ents)
	s.rollbacks = nil
	if err != nil {
		s.fault(err)
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(time.Since(t0), len(ents), s.statements)
	}
	last := ents[len(ents)-1].Index
	s.applied.Store(last)
	s.cfg.Notify(Event{Kind: EventApplied, Index: last})
	if s.nodesChanged {
		s.nodesChanged = false
		s.notifyNodes()
	}
	return ents, nil
}

func (s *StateMachine) applyBatch(ents []sm.Entry) error {
	// s.w, not a copy: a boot entry switches the writer mid-batch.
	s.cap.reset()
	if err := run(s.w.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// txStart is the first entry of the open transaction: a boot commits
	// the transaction and opens another.
	txStart := 0
	for i := 0; i < len(ents); i++ {
		cmd, decErr := decodeCommand(ents[i].Cmd)
		if name, id, ok := bootCommand(cmd, decErr); ok {
			var prev uint64
			if i > 0 {
				prev = ents[i-1].Index
			}
			res, err := s.applyBoot(name, id, ents[i].Index, prev)
			if err != nil {
				return err
			}
			ents[i].Result = res
			txStart = i + 1
			continue
		}
		res, rolledBack, err := s.applyEntry(&ents[i], cmd, decErr)
		if err != nil {
			_ = execRaw(s.w.c, "ROLLBACK")
			return err
		}
		if rolledBack {
			// A client statement (INSERT OR ROLLBACK, RAISE(ROLLBACK)) ended
			// the batch's transaction and undid the entries before it. Redo
			// them, deterministically, then apply this entry again: the
			// request that rolled back (applyEntry recorded it) fails alone,
			// and is skipped by any later redo, where it would roll back
			// again. What was captured since txStart is undone with it.
			s.cap.rolledBack()
			if err := s.redo(ents[txStart:i]); err != nil {
				return err
			}
			if i > txStart {
				// Commit what was redone, so that another rollback in
				// this Update redoes only what follows (a BATCH entry
				// can hold many).
				if err := run(s.w.setApplied, arg(1, int64(ents[i-1].Index))); err != nil {
					return fmt.Errorf("record applied index: %w", err)
				}
				if err := s.commitTx(); err != nil {
					return fmt.Errorf("commit: %w", err)
				}
				if err := run(s.w.begin); err != nil {
					return fmt.Errorf("begin: %w", err)
				}
				txStart = i
			}
			i-- // applied again, without what rolled back (s.rollbacks)
			continue
		}
		ents[i].Result = res
	}
	last := ents[len(ents)-1].Index
	if err := run(s.w.setApplied, arg(1, int64(last))); err != nil {
		_ = execRaw(s.w.c, "ROLLBACK")
		return fmt.Errorf("record applied index: %w", err)
	}
	if last > s.cfg.DedupWindow {
		if err := s.w.pruneDedup(last - s.cfg.DedupWindow); err != nil {
			_ = execRaw(s.w.c, "ROLLBACK")
			return fmt.Errorf("prune request ids: %w", err)
		}
	}
	if err := s.commitTx(); err != nil {
		_ = execRaw(s.w.c, "ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	// Committed in SQLite, not yet reported to Dragonboat: a crash here is
	// the window the applied index inside the transaction exists for.
	return s.cfg.Failpoints.Inject(failpoint.SMAfterCommit, s.stopc)
}

// commitTx commits the batch's transaction. The schema generation is odd
// while a commit that changes the schema runs, so that a read can tell it
// may have prepared against a schema that changed under it (reader.go,
// syncSchema).
func (s *StateMachine) commitTx() error {
	// The sink has what this transaction commits before it commits.
	if err := s.cap.flush(); err != nil {
		return err
	}
	ddl := s.schemaChanged
	if ddl {
		s.schemaGen.Add(1)
	}
	err := run(s.w.commit)
	if ddl {
		s.schemaGen.Add(1)
		s.schemaChanged = false
	}
	return err
}

// redo begins a new transaction and re-applies ents, after a client
// statement rolled the previous one back.
func (s *StateMachine) redo(ents []sm.Entry) error {
	if err := run(s.w.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for i := range ents {
		cmd, decErr := decodeCommand(ents[i].Cmd)
		res, rolledBack, err := s.applyEntry(&ents[i], cmd, decErr)
		if err != nil {
			return err
		}
		if rolledBack {
			return fmt.Errorf("entry %d rolled back on redo", ents[i].Index)
		}
		ents[i].Result = res
	}
	return nil
}

// decodeCommand decodes an entry's command once for the whole apply. An
// empty entry (Dragonboat's own) decodes to nil.
func decodeCommand(b []byte) (*cmdpb.Command, error) {
	if len(b) == 0 {
		return nil, nil
	}
	cmd := &cmdpb.Command{}
	if err := proto.Unmarshal(b, cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// bootCommand reports whether cmd is a BOOT command, and its file and
// request ID.
func bootCommand(cmd *cmdpb.Command, decErr error) (string, []byte, bool) {
	if decErr != nil || cmd.GetType() != cmdpb.Command_TYPE_BOOT || cmd.GetVersion() != CommandVersion {
		return "", nil, false
	}
	return cmd.GetBootFile(), cmd.GetRequestId(), true
}

// applyBoot commits the batch so far (recording prev, the last entry
// applied, when there is one), switches to the staged file at index, and
// opens a new batch transaction on whichever database is live. A repeated
// request ID (a proposal retried after it did get in) answers the first
// result: the staged file is gone by then.
func (s *StateMachine) applyBoot(name string, id []byte, index, prev uint64) (sm.Result, error) {
	if len(id) > 0 {
		stored, ok, err := s.w.lookupDedup(id)
		if err != nil {
			return sm.Result{}, fmt.Errorf("look up request id: %w", err)
		}
		if ok {
			return sm.Result{Data: stored}, nil
		}
	}
	if prev > 0 {
		if err := run(s.w.setApplied, arg(1, int64(prev))); err != nil {
			return sm.Result{}, fmt.Errorf("record applied index: %w", err)
		}
	}
	if err := s.commitTx(); err != nil {
		return sm.Result{}, fmt.Errorf("commit: %w", err)
	}
	data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: index})
	res := sm.Result{Data: data}
	err := s.boot(name, index)
	switch {
	case errors.Is(err, ErrBootFile) || errors.Is(err, ErrInvalidSQLite) || errors.Is(err, ErrSnapshotFormat):
		// The old database is still live; the boot failed alone.
		s.log.Warn("boot entry failed", zap.Uint64("index", index), zap.Error(err))
		res = errorResult(index, err.Error())
	case err != nil:
		return sm.Result{}, err
	default:
		s.log.Info("database booted", zap.Uint64("index", index))
	}
	if err := run(s.w.begin); err != nil {
		return sm.Result{}, fmt.Errorf("begin: %w", err)
	}
	if len(id) > 0 && res.Value&ResultRequestError == 0 {
		if err := s.w.putDedup(index, id, res.Data); err != nil {
			return sm.Result{}, fmt.Errorf("remember request id: %w", err)
		}
	}
	return res, nil
}

func errorResult(index uint64, msg string) sm.Result {
	b, _ := proto.Marshal(&cmdpb.Response{Error: msg, RaftIndex: index})
	return sm.Result{Value: ResultRequestError, Data: b}
}

// applyEntry applies one entry inside the open batch transaction.
// rolledBack reports that a client statement ended the batch transaction.
func (s *StateMachine) applyEntry(e *sm.Entry, cmd *cmdpb.Command, decErr error) (res sm.Result, rolledBack bool, err error) {
	if decErr != nil {
		return errorResult(e.Index, "invalid command encoding"), false, nil
	}
	if cmd == nil {
		return sm.Result{}, false, nil
	}
	if cmd.GetVersion() != CommandVersion {
		return errorResult(e.Index, fmt.Sprintf("unsupported command version %d", cmd.GetVersion())), false, nil
	}
	id := cmd.GetRequestId()
	if len(id) > 0 {
		prev, ok, err := s.w.lookupDedup(id)
		if err != nil {
			return sm.Result{}, false, fmt.Errorf("look up request id: %w", err)
		}
		if ok {
			var resp cmdpb.Response
			_ = proto.Unmarshal(prev, &resp)
			return sm.Result{Value: uint64(len(resp.GetResults()) + len(resp.GetBatch())), Data: prev}, false, nil
		}
	}
	if s.rollbacks[e.Index][0] && cmd.GetType() != cmdpb.Command_TYPE_BATCH {
		return errorResult(e.Index, errRolledBack), false, nil
	}
	var mode stmtMode
	switch cmd.GetType() {
	case cmdpb.Command_TYPE_NODE:
		if err := s.applyNode(cmd.GetNode()); err != nil {
			return sm.Result{}, false, fmt.Errorf("node table: %w", err)
		}
		s.nodesChanged = true
		data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: e.Index})
		return sm.Result{Data: data}, false, nil
	case cmdpb.Command_TYPE_BATCH:
		return s.applyBatchCommand(e.Index, id, cmd.GetBatch())
	case cmdpb.Command_TYPE_CDC_HWM:
		// Recorded on every replica, capturing or not: the mark travels
		// in snapshots (storedHighWater).
		if err := execRaw(s.w.c, fmt.Sprintf("UPDATE %s SET hwm = max(hwm, %d) WHERE id = 1", cdcTable, int64(cmd.GetCdcHighWater()))); err != nil {
			return sm.Result{}, false, fmt.Errorf("record CDC high-water mark: %w", err)
		}
		s.cap.highWater(cmd.GetCdcHighWater())
		data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: e.Index})
		return sm.Result{Data: data}, false, nil
	case cmdpb.Command_TYPE_EXECUTE:
		mode = modeWrite
	case cmdpb.Command_TYPE_QUERY:
		mode = modeRead
	default:
		return errorResult(e.Index, fmt.Sprintf("unsupported command type %d", cmd.GetType())), false, nil
	}
	s.seed(e.Index, 0)
	// Only writes are remembered: a retried read (a strong query) just
	// reads again, and its rows could be any size.
	keep := len(id) > 0 && mode == modeWrite
	resp, stored, rolledBack, err := s.applyRequest(e.Index, cmd.GetRequest(), mode, keep)
	if rolledBack {
		s.recordRollback(e.Index, 0)
	}
	if err != nil || rolledBack {
		return sm.Result{}, rolledBack, err
	}
	s.cap.endRequest(e.Index, 0)
	if keep {
		if err := s.remember(e.Index, id, stored); err != nil {
			return sm.Result{}, false, err
		}
	}
	data, err := proto.Marshal(resp)
	if err != nil {
		return sm.Result{}, false, fmt.Errorf("encode response: %w", err)
	}
	v := uint64(len(resp.Results))
	if resp.Error != "" {
		v |= ResultRequestError
	}
	return sm.Result{Value: v, Data: data}, false, nil
}

// applyRequest runs one request and returns its response as the client
// sees it and, when keep, encoded as it is remembered for a retry: without
// timings and echoes (they differ from replica to replica, and across
// restarts, and the file's contents must not).
func (s *StateMachine) applyRequest(index uint64, req *cmdpb.Request, mode stmtMode, keep bool) (resp *cmdpb.Response, stored []byte, rolledBack bool, err error) {
	resp, flags, times, rolledBack, err := s.execRequest(req, mode)
	if err != nil || rolledBack {
		return nil, nil, rolledBack, err
	}
	resp.RaftIndex = index
	if keep {
		if stored, err = proto.Marshal(resp); err != nil {
			return nil, nil, false, fmt.Errorf("encode response: %w", err)
		}
	}
	for i, res := range resp.Results {
		s.echo(res, flags[i])
		if times != nil {
			res.Time = times[i]
		}
	}
	return resp, stored, false, nil
}

// remember stores data, the encoded response of request id applied at
// index, for a retry of it to answer.
func (s *StateMachine) remember(index uint64, id []byte, data []byte) error {
	if len(data) > maxRememberedResponse {
		data, _ = proto.Marshal(&cmdpb.Response{RaftIndex: index,
			Error: fmt.Sprintf("request already applied at index %d; its result (%d bytes) was too large to keep", index, len(data))})
	}
	if err := s.w.putDedup(index, id, data); err != nil {
		return fmt.Errorf("remember request id: %w", err)
	}
	return nil
}

// recordRollback notes that request k of the entry at index rolled the
// transaction back, for the rest of this Update.
func (s *StateMachine) recordRollback(index uint64, k int) {
	if s.rollbacks == nil {
		s.rollbacks = map[uint64]map[int]bool{}
	}
	if s.rollbacks[index] == nil {
		s.rollbacks[index] = map[int]bool{}
	}
	s.rollbacks[index][k] = true
}

// errRolledBack is the answer of a request whose statement rolled back the
// whole transaction (INSERT OR ROLLBACK, RAISE(ROLLBACK)).
const errRolledBack = "statement rolled back the transaction: ROLLBACK conflict resolution is not supported"

// applyBatchCommand applies the commands of a BATCH entry at index in
// order, each exactly as an entry of its own would be (its own seed, its
// own response). When one rolls the transaction back, it is recorded
// (recordRollback) and rolledBack is returned: applyBatch redoes the
// entries before this one and applies this one again, skipping it.
func (s *StateMachine) applyBatchCommand(index uint64, id []byte, cmds []*cmdpb.Command) (sm.Result, bool, error) {
	out := &cmdpb.Response{RaftIndex: index, Batch: make([]*cmdpb.Response, len(cmds))}
	// The remembered response is assembled encoded: a Response with
	// raft_index and each command's remembered response as a batch field.
	keep := len(id) > 0
	var stored []byte
	if keep {
		stored, _ = proto.Marshal(&cmdpb.Response{RaftIndex: index})
	}
	skip := s.rollbacks[index]
	for k, c := range cmds {
		switch {
		case skip[k]:
			out.Batch[k] = &cmdpb.Response{Error: errRolledBack, RaftIndex: index}
		case c.GetType() != cmdpb.Command_TYPE_EXECUTE || c.GetVersion() != CommandVersion || len(c.GetRequestId()) > 0:
			out.Batch[k] = &cmdpb.Response{Error: "unsupported command in batch", RaftIndex: index}
		default:
			s.seed(index, uint64(k))
			resp, st, rolledBack, err := s.applyRequest(index, c.GetRequest(), modeWrite, keep)
			if err != nil {
				return sm.Result{}, false, err
			}
			if rolledBack {
				s.recordRollback(index, k)
				return sm.Result{}, true, nil
			}
			s.cap.endRequest(index, k)
			out.Batch[k] = resp
			stored = appendBatchField(stored, st)
			continue
		}
		if keep {
			b, _ := proto.Marshal(out.Batch[k])
			stored = appendBatchField(stored, b)
		}
	}
	if keep {
		if err := s.remember(index, id, stored); err != nil {
			return sm.Result{}, false, err
		}
	}
	data, err := proto.Marshal(out)
	if err != nil {
		return sm.Result{}, false, fmt.Errorf("encode response: %w", err)
	}
	return sm.Result{Value: uint64(len(cmds)), Data: data}, false, nil
}

// appendBatchField appends resp, an encoded Response, to the encoded
// Response b as one element of its batch field.
func appendBatchField(b, resp []byte) []byte {
	b = protowire.AppendTag(b, batchFieldNumber, protowire.BytesType)
	return protowire.AppendBytes(b, resp)
}

// batchFieldNumber is Response.batch's field number.
const batchFieldNumber = 4

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

// maxRememberedResponse bounds what a request id keeps of a response
// (RETURNING can produce any number of rows).
const maxRememberedResponse = 1 << 20

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

// execRequest runs a request's statements inside a savepoint, so that a
// request with transaction set rolls back alone. Write results come back
// normalized; flags says, per result, what its statement wrote.
func (s *StateMachine) execRequest(req *cmdpb.Request, mode stmtMode) (resp *cmdpb.Response, flags []writeFlags, times []float64, rolledBack bool, err error) {
	w := s.w
	stmts := req.GetStatements()
	// A lone statement outside a transaction needs no savepoint: SQLite
	// undoes a failed statement by itself, and nothing after it could
	// roll it back. Most writes are that, and the pair cost two steps.
	sp := len(stmts) > 1 || req.GetTransaction() || (req.GetReplaceAll() && mode == modeWrite)
	if sp {
		if err := run(w.savepoint); err != nil {
			return nil, nil, nil, false, fmt.Errorf("savepoint: %w", err)
		}
	}
	resp = &cmdpb.Response{Results: make([]*cmdpb.StatementResult, 0, len(stmts))}
	flags = make([]writeFlags, 0, len(stmts))
	if req.GetReplaceAll() && mode == modeWrite {
		w.stmts.clear() // the objects its statements name are going
		s.schemaChanged = true
		s.cap.schemaChanged()
		if err := dropClientObjects(w.c); err != nil {
			if isStorageFault(err) {
				return nil, nil, nil, false, err
			}
			if err := run(w.rollbackTo); err != nil {
				return nil, nil, nil, false, fmt.Errorf("rollback to savepoint: %w", err)
			}
			if err := run(w.release); err != nil {
				return nil, nil, nil, false, fmt.Errorf("release savepoint: %w", err)
			}
			resp.Error = err.Error()
			return resp, flags, nil, false, nil
		}
	}
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
			return nil, nil, nil, false, fmt.Errorf("reset rowid: %w", err)
		}
		if err := run(w.resetChanges); err != nil {
			return nil, nil, nil, false, fmt.Errorf("reset changes: %w", err)
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
		s.userMode = true
		s.sawInsert, s.sawWrite, s.dropping = false, false, ""
		var res *cmdpb.StatementResult
		var err error
		if mode == modeWrite && !st.GetReturnsRows() && !s.noWriteCache {
			res, err = s.execCached(w, st)
		} else {
			res, err = runStatement(context.Background(), w.c, st, mode, req.GetQualifyColumns())
		}
		s.userMode = false
		if s.ddlSeen {
			// Cached writes carry what the authorizer saw at their
			// prepare; a schema change (a trigger added or dropped) can
			// change that, so they are prepared again.
			w.stmts.clear()
			s.cap.schemaChanged()
			s.ddlSeen = false
		}
		if err != nil {
			return nil, nil, nil, false, err
		}
		if w.c.AutoCommit() {
			return nil, nil, nil, true, nil
		}
		if times != nil {
			times = append(times, time.Since(t0).Seconds())
		}
		if err := s.cap.endStatement(w.c, res.GetError() != ""); err != nil {
			return nil, nil, nil, false, err
		}
		f := writeFlags{write: s.sawWrite, insert: s.sawInsert}
		normalize(res, f)
		resp.Results = append(resp.Results, res)
		flags = append(flags, f)
		if res.GetError() != "" && req.GetTransaction() {
			failed = true
			break
		}
	}
	if !sp {
		return resp, flags, times, false, nil
	}
	if failed {
		if err := run(w.rollbackTo); err != nil {
			return nil, nil, nil, false, fmt.Errorf("rollback to savepoint: %w", err)
		}
		s.cap.dropRequest()
	}
	if err := run(w.release); err != nil {
		return nil, nil, nil, false, fmt.Errorf("release savepoint: %w", err)
	}
	return resp, flags, times, false, nil
}

// timed runs f and, when on, records its duration in the result.
func timed(on bool, f func() (*cmdpb.StatementResult, error)) (*cmdpb.StatementResult, error) {
	if !on {
		return f()
	}
	t0 := time.Now()
	res, err := f()
	if res != nil {
		res.Time = time.Since(t0).Seconds()
	}
	return res, err
}

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

// dropClientObjects removes every client view, trigger and table (their
// indexes go with them), for a load that replaces the database. It runs
// inside the entry's savepoint, so a load that fails rolls the drops back.
func dropClientObjects(c *sqlite3.SQLiteConn) error {
	var drops []string
	q := `SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', 'table')
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_\_skiff\_%' ESCAPE '\'
		ORDER BY CASE type WHEN 'view' THEN 0 WHEN 'trigger' THEN 1 ELSE 2 END, rowid DESC`
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
		s.sawSchema = false
		ds, err := w.c.Prepare(sqlText)
		if err != nil {
			return sqlError(err)
		}
		stmt := ds.(*sqlite3.SQLiteStmt)
		if s.sawSchema || stmtTail(stmt) != "" || isEmptyStmt(stmt) || returnsColumns(stmt) {
			_ = stmt.Close()
			s.sawInsert, s.sawWrite, s.dropping = false, false, ""
			return runStatement(context.Background(), w.c, st, modeWrite, false)
		}
		ws = &cachedStmt{st: stmt, insert: s.sawInsert, write: s.sawWrite}
		w.stmts.put(sqlText, ws)
	} else {
		s.sawInsert, s.sawWrite = ws.insert, ws.write
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
