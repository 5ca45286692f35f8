package sm

import (
	"errors"
	"fmt"
	"time"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
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

// Update applies a batch of committed entries in one SQLite transaction,
// one savepoint per entry, and records the last index in that transaction.
func (s *StateMachine) Update(ents []dbsm.Entry) ([]dbsm.Entry, error) {
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
	if err != nil {
		s.fault(err)
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(time.Since(t0), len(ents), s.statements)
	}
	last := ents[len(ents)-1].Index
	s.applied.Store(last)
	if s.ckpt != nil {
		s.ckpt.nudge()
	}
	s.cfg.Notify(Event{Kind: EventApplied, Index: last})
	if s.nodesChanged {
		s.nodesChanged = false
		s.notifyNodes()
	}
	return ents, nil
}

func (s *StateMachine) applyBatch(ents []dbsm.Entry) error {
	// s.w, not a copy: a boot entry switches the writer mid-batch.
	s.cap.reset()
	if err := run(s.w.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// txStart is the first entry of the open transaction: a boot commits
	// the transaction and opens another.
	txStart := 0
	var rb rollbacks
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
		if id, ok := vacuumCommand(cmd, decErr); ok {
			var prev uint64
			if i > 0 {
				prev = ents[i-1].Index
			}
			res, err := s.applyVacuum(id, ents[i].Index, prev)
			if err != nil {
				return err
			}
			ents[i].Result = res
			txStart = i + 1
			continue
		}
		res, rolledBack, err := s.applyEntry(&ents[i], cmd, decErr, &rb)
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
			if err := s.redo(ents[txStart:i], &rb); err != nil {
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
			i-- // applied again, without what rolled back (rb)
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

// commitThrough commits the batch's transaction mid-batch, recording prev
// (the last entry applied in it; 0 when there is none) as applied, for an
// entry that must run outside any transaction (a boot, a VACUUM).
func (s *StateMachine) commitThrough(prev uint64) error {
	if prev > 0 {
		if err := run(s.w.setApplied, arg(1, int64(prev))); err != nil {
			return fmt.Errorf("record applied index: %w", err)
		}
	}
	if err := s.commitTx(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
		// The channel first: a read that sees the generation odd finds
		// the channel this commit closes.
		committed := make(chan struct{})
		s.schemaCommitted.Store(&committed)
		s.schemaGen.Add(1)
		defer close(committed)
	}
	err := run(s.w.commit)
	if ddl {
		s.schemaGen.Add(1)
		s.schemaChanged = false
	}
	return err
}

// redo begins a new transaction and re-applies ents, after a client
// statement rolled the previous one back, skipping the requests in rb.
func (s *StateMachine) redo(ents []dbsm.Entry, rb *rollbacks) error {
	if err := run(s.w.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for i := range ents {
		cmd, decErr := decodeCommand(ents[i].Cmd)
		res, rolledBack, err := s.applyEntry(&ents[i], cmd, decErr, rb)
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
func (s *StateMachine) applyBoot(name string, id []byte, index, prev uint64) (dbsm.Result, error) {
	if len(id) > 0 {
		stored, ok, err := s.w.lookupDedup(id)
		if err != nil {
			return dbsm.Result{}, fmt.Errorf("look up request id: %w", err)
		}
		if ok {
			return dbsm.Result{Data: stored}, nil
		}
	}
	if err := s.commitThrough(prev); err != nil {
		return dbsm.Result{}, err
	}
	data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: index})
	res := dbsm.Result{Data: data}
	err := s.boot(name, index)
	switch {
	case errors.Is(err, ErrBootFile) || errors.Is(err, ErrInvalidSQLite) || errors.Is(err, ErrSnapshotFormat):
		// The old database is still live; the boot failed alone.
		s.log.Warn("boot entry failed", zap.Uint64("index", index), zap.Error(err))
		res = errorResult(index, err.Error())
	case err != nil:
		return dbsm.Result{}, err
	default:
		s.log.Info("database booted", zap.Uint64("index", index))
	}
	if err := run(s.w.begin); err != nil {
		return dbsm.Result{}, fmt.Errorf("begin: %w", err)
	}
	if len(id) > 0 && res.Value&ResultRequestError == 0 {
		if err := s.w.putDedup(index, id, res.Data); err != nil {
			return dbsm.Result{}, fmt.Errorf("remember request id: %w", err)
		}
	}
	return res, nil
}

// newerCommand returns ErrNewerCommand for a command of a version after
// this build's, or of a type it does not know. Every node of one build
// answers an invalid command alike (an error result), but a command a
// newer build wrote is one the nodes already upgraded apply: this node
// must not skip it (DRAGONBOAT.md 1: a failure that is not the same on
// every replica halts the node). Versions before this build's are left
// to the error result: no build writes them.
func newerCommand(index uint64, cmd *cmdpb.Command) error {
	if v := cmd.GetVersion(); v > CommandVersion {
		return fmt.Errorf("%w: index %d has command version %d, this build applies %d", ErrNewerCommand, index, v, CommandVersion)
	}
	if _, known := cmdpb.Command_Type_name[int32(cmd.GetType())]; !known {
		return fmt.Errorf("%w: index %d has command type %d", ErrNewerCommand, index, cmd.GetType())
	}
	return nil
}

func errorResult(index uint64, msg string) dbsm.Result {
	b, _ := proto.Marshal(&cmdpb.Response{Error: msg, RaftIndex: index})
	return dbsm.Result{Value: ResultRequestError, Data: b}
}

// applyEntry applies one entry inside the open batch transaction, failing
// the requests in rb instead of running them. rolledBack reports that a
// client statement ended the batch transaction; the request is then added
// to rb.
func (s *StateMachine) applyEntry(e *dbsm.Entry, cmd *cmdpb.Command, decErr error, rb *rollbacks) (res dbsm.Result, rolledBack bool, err error) {
	if decErr != nil {
		return errorResult(e.Index, "invalid command encoding"), false, nil
	}
	if cmd == nil {
		return dbsm.Result{}, false, nil
	}
	if err := newerCommand(e.Index, cmd); err != nil {
		return dbsm.Result{}, false, err
	}
	if cmd.GetVersion() != CommandVersion {
		return errorResult(e.Index, fmt.Sprintf("unsupported command version %d", cmd.GetVersion())), false, nil
	}
	id := cmd.GetRequestId()
	if len(id) > 0 {
		prev, ok, err := s.w.lookupDedup(id)
		if err != nil {
			return dbsm.Result{}, false, fmt.Errorf("look up request id: %w", err)
		}
		if ok {
			var resp cmdpb.Response
			_ = proto.Unmarshal(prev, &resp)
			return dbsm.Result{Value: uint64(len(resp.GetResults()) + len(resp.GetBatch())), Data: prev}, false, nil
		}
	}
	if rb.has(e.Index, 0) && cmd.GetType() != cmdpb.Command_TYPE_BATCH {
		return errorResult(e.Index, errRolledBack), false, nil
	}
	var mode stmtMode
	switch cmd.GetType() {
	case cmdpb.Command_TYPE_NODE:
		if err := s.applyNode(cmd.GetNode()); err != nil {
			return dbsm.Result{}, false, fmt.Errorf("node table: %w", err)
		}
		s.nodesChanged = true
		data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: e.Index})
		return dbsm.Result{Data: data}, false, nil
	case cmdpb.Command_TYPE_BATCH:
		return s.applyBatchCommand(e.Index, id, cmd.GetBatch(), rb)
	case cmdpb.Command_TYPE_CDC_HWM:
		// Recorded on every replica, capturing or not: the mark travels
		// in snapshots (reportHighWater).
		if err := execRaw(s.w.c, fmt.Sprintf("UPDATE %s SET hwm = max(hwm, %d) WHERE id = 1", cdcTable, int64(cmd.GetCdcHighWater()))); err != nil {
			return dbsm.Result{}, false, fmt.Errorf("record CDC high-water mark: %w", err)
		}
		s.cap.highWater(cmd.GetCdcHighWater())
		data, _ := proto.Marshal(&cmdpb.Response{RaftIndex: e.Index})
		return dbsm.Result{Data: data}, false, nil
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
		rb.add(e.Index, 0)
	}
	if err != nil || rolledBack {
		return dbsm.Result{}, rolledBack, err
	}
	s.cap.endRequest(e.Index, 0)
	if keep {
		if err := s.remember(e.Index, id, stored); err != nil {
			return dbsm.Result{}, false, err
		}
	}
	data, err := proto.Marshal(resp)
	if err != nil {
		return dbsm.Result{}, false, fmt.Errorf("encode response: %w", err)
	}
	v := uint64(len(resp.Results))
	if resp.Error != "" {
		v |= ResultRequestError
	}
	return dbsm.Result{Value: v, Data: data}, false, nil
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

// maxRememberedResponse bounds what a request id keeps of a response
// (RETURNING can produce any number of rows).
const maxRememberedResponse = 1 << 20

// rollbacks records, while one Update runs, the requests (by entry index,
// then position in a BATCH entry; 0 otherwise) that rolled the transaction
// back: they fail alone, and every later redo skips them.
type rollbacks map[uint64]map[int]bool

// add records that request k of the entry at index rolled back.
func (r *rollbacks) add(index uint64, k int) {
	if *r == nil {
		*r = rollbacks{}
	}
	if (*r)[index] == nil {
		(*r)[index] = map[int]bool{}
	}
	(*r)[index][k] = true
}

// has reports whether request k of the entry at index rolled back.
func (r *rollbacks) has(index uint64, k int) bool { return (*r)[index][k] }

// errRolledBack is the answer of a request whose statement rolled back the
// whole transaction (INSERT OR ROLLBACK, RAISE(ROLLBACK)).
const errRolledBack = "statement rolled back the transaction: ROLLBACK conflict resolution is not supported"

// applyBatchCommand applies the commands of a BATCH entry at index in
// order, each exactly as an entry of its own would be (its own seed, its
// own response). When one rolls the transaction back, it is recorded
// in rb and rolledBack is returned: applyBatch redoes the
// entries before this one and applies this one again, skipping it.
func (s *StateMachine) applyBatchCommand(index uint64, id []byte, cmds []*cmdpb.Command, rb *rollbacks) (dbsm.Result, bool, error) {
	out := &cmdpb.Response{RaftIndex: index, Batch: make([]*cmdpb.Response, len(cmds))}
	// The remembered response is assembled encoded: a Response with
	// raft_index and each command's remembered response as a batch field.
	keep := len(id) > 0
	var stored []byte
	if keep {
		stored, _ = proto.Marshal(&cmdpb.Response{RaftIndex: index})
	}
	for k, c := range cmds {
		if err := newerCommand(index, c); err != nil {
			return dbsm.Result{}, false, err
		}
		switch {
		case rb.has(index, k):
			out.Batch[k] = &cmdpb.Response{Error: errRolledBack, RaftIndex: index}
		case c.GetType() != cmdpb.Command_TYPE_EXECUTE || c.GetVersion() != CommandVersion || len(c.GetRequestId()) > 0:
			out.Batch[k] = &cmdpb.Response{Error: "unsupported command in batch", RaftIndex: index}
		default:
			s.seed(index, uint64(k))
			resp, st, rolledBack, err := s.applyRequest(index, c.GetRequest(), modeWrite, keep)
			if err != nil {
				return dbsm.Result{}, false, err
			}
			if rolledBack {
				rb.add(index, k)
				return dbsm.Result{}, true, nil
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
			return dbsm.Result{}, false, err
		}
	}
	data, err := proto.Marshal(out)
	if err != nil {
		return dbsm.Result{}, false, fmt.Errorf("encode response: %w", err)
	}
	return dbsm.Result{Value: uint64(len(cmds)), Data: data}, false, nil
}

// appendBatchField appends resp, an encoded Response, to the encoded
// Response b as one element of its batch field.
func appendBatchField(b, resp []byte) []byte {
	b = protowire.AppendTag(b, batchFieldNumber, protowire.BytesType)
	return protowire.AppendBytes(b, resp)
}

// batchFieldNumber is Response.batch's field number.
const batchFieldNumber = 4
