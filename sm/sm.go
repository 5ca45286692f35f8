package sm

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
	sqlite3 "github.com/mattn/go-sqlite3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// StateMachine applies Skiff commands to SQLite. Dragonboat serialises
// Open, Update, Sync, PrepareSnapshot, RecoverFromSnapshot and Close; Lookup
// and SaveSnapshot run concurrently with them (DRAGONBOAT.md 1.3), so the
// handles they share are guarded by mu.
type StateMachine struct {
	cfg Config
	log *zap.Logger

	// Owned by the apply path (Update, Sync, Recover, Close), which
	// Dragonboat runs one at a time.
	gen uint64
	w   *writer
	// authz is what the writer's authorizer saw of the client statement
	// being prepared (authorizer.go).
	authz authzScratch
	// echoID and echoChanges are the rowid and changes a client would see
	// on a connection of its own (see echo).
	echoID, echoChanges int64
	// nodesChanged: the batch being applied wrote the node table.
	nodesChanged bool
	// statements counts the client statements the Update running ran
	// (Config.Observe).
	statements int
	// schemaConnState caches whether a trigger or view reads connection
	// state (schemaReadsConnState); schemaDirty invalidates it.
	schemaConnState, schemaDirty bool
	// rng backs RANDOM() and RANDOMBLOB() in writes, reseeded from each
	// entry's index so every replica draws the same values.
	rng *rand.Rand
	// schemaChanged: the batch being applied changes the schema.
	// schemaGen counts schema changes, twice each: odd while the commit
	// that makes one runs (readers re-sync their schema when it moves).
	// schemaCommitted is closed when that commit ends: a read that finds
	// the generation odd waits on it.
	schemaChanged   bool
	schemaGen       atomic.Uint64
	schemaCommitted atomic.Pointer[chan struct{}]
	// noWriteCache turns the write cache off (tests compare).
	noWriteCache bool
	// stopc is Open's stop channel: closed when Dragonboat stops the
	// replica, it ends a paused failpoint.
	stopc <-chan struct{}
	// cap is CDC capture; nil when Config.Capture is.
	cap *capture
	// onBackupStep (tests) runs between the steps of a backup's copy.
	onBackupStep func()
	// onBackupPin (tests) runs in a backup before the checkpoint that lets
	// it read the database file ("checkpoint"), and before it reads it ("copy").
	onBackupPin func(stage string)
	// noBackupStream (tests) makes a binary backup copy the database
	// whole, as when it cannot be streamed.
	noBackupStream bool

	// mu guards the handles Lookup uses against the swap in
	// RecoverFromSnapshot and the teardown in Close.
	mu     sync.RWMutex
	closed bool
	// readers is changed under mu, and loaded without it only by
	// AbortReads (the pool's own lock keeps that apart from its close).
	readers atomic.Pointer[readerPool]
	path    string
	// readsAborted (AbortReads) fails every Lookup query from then on.
	readsAborted atomic.Bool

	// held keeps the descriptors snapshot streams read the database
	// files through (mainfile.go).
	held heldFiles
	// noWriteback turns receiveFile's early writeback off (for measuring).
	noWriteback bool

	applied atomic.Uint64
	// checkpointMu serializes this process's checkpoints of the live
	// database (the background one, a snapshot's, a backup's, a reap's, a
	// WAL truncation): SQLite runs one at a time and fails another at once
	// with SQLITE_BUSY, without calling its busy handler, which would send
	// a snapshot or a backup down its slower copying path.
	checkpointMu sync.Mutex
	// ckpt checkpoints the WAL off the apply path; nil until Open, and
	// when Config.CheckpointInterval is negative.
	ckpt *walCheckpointer
}

var (
	_ dbsm.IOnDiskStateMachine = (*StateMachine)(nil)
	_ dbsm.IExtended           = (*StateMachine)(nil)
)

// New returns a state machine for cfg; nothing is opened until Open.
func New(cfg Config) (*StateMachine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &StateMachine{cfg: cfg, log: cfg.Logger}
	if cfg.Capture != nil {
		s.cap = newCapture(*cfg.Capture)
	}
	return s, nil
}

// Factory returns Dragonboat's constructor for cfg. A bad cfg is reported
// by Open, because Dragonboat's factory signature has no error.
func Factory(cfg Config) dbsm.CreateOnDiskStateMachineFunc {
	return func(shardID, replicaID uint64) dbsm.IOnDiskStateMachine {
		s, err := New(cfg)
		if err != nil {
			return &failedSM{err: err}
		}
		return s
	}
}

// Applied returns the last applied index this machine has committed.
func (s *StateMachine) Applied() uint64 { return s.applied.Load() }

// Open opens (or creates) the live database and returns the applied index
// stored in it. It reads no more of the file than SQLite's open does, so it
// takes the same time at any size.
func (s *StateMachine) Open(stopc <-chan struct{}) (uint64, error) {
	select {
	case <-stopc:
		return 0, dbsm.ErrOpenStopped
	default:
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return 0, fmt.Errorf("create %s: %w", s.cfg.Dir, err)
	}
	gen, err := readCurrent(s.cfg.Dir)
	if err != nil {
		return 0, err
	}
	if gen == 0 {
		gen = 1
		if err := writeCurrent(s.cfg.Dir, gen); err != nil {
			return 0, err
		}
	}
	if err := removeStale(s.cfg.Dir, gen, true); err != nil {
		return 0, err
	}
	path := filepath.Join(s.cfg.Dir, dbName(gen))
	s.cfg.Notify(Event{Kind: EventOpenBegun, Bytes: fileSize(path)})
	s.stopc = stopc
	if err := s.cfg.Failpoints.Inject(failpoint.SMOpen, stopc); err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	select {
	case <-stopc:
		return 0, dbsm.ErrOpenStopped
	default:
	}
	w, readers, applied, err := s.openHandles(path)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.gen, s.w, s.path = gen, w, path
	s.readers.Store(readers)
	s.schemaDirty = true
	s.mu.Unlock()
	s.applied.Store(applied)
	if s.cfg.CheckpointInterval > 0 && s.ckpt == nil {
		s.ckpt = newWALCheckpointer(s.cfg.CheckpointInterval, s.liveCheckpoint, s.log)
		go s.ckpt.run()
	}
	s.cfg.Tap.attach(s)
	s.log.Info("state machine open", zap.String("path", path), zap.Uint64("applied_index", applied))
	s.cap.opened(applied)
	s.cfg.Notify(Event{Kind: EventOpenDone, Index: applied})
	s.notifyNodes()
	if err := s.reportHighWater(); err != nil {
		return 0, err
	}
	return applied, nil
}

// openHandles opens the writer (creating the internal tables), reads the
// applied index, then opens the reader pool.
func (s *StateMachine) openHandles(path string) (*writer, *readerPool, uint64, error) {
	wc, err := openWriter(path, s.cfg.ForeignKeys)
	if err != nil {
		return nil, nil, 0, err
	}
	wc.RegisterAuthorizer(s.authorizeWrite)
	fail := func(err error) (*writer, *readerPool, uint64, error) {
		_ = wc.Close()
		return nil, nil, 0, err
	}
	if err := s.registerDeterministic(wc); err != nil {
		return fail(err)
	}
	if err := s.registerCapture(wc); err != nil {
		return fail(err)
	}
	if err := execRaw(wc, "BEGIN IMMEDIATE"); err != nil {
		return fail(fmt.Errorf("%w: begin schema: %w", ErrStorage, err))
	}
	for _, q := range schema {
		if err := execRaw(wc, q); err != nil {
			_ = execRaw(wc, "ROLLBACK")
			return fail(fmt.Errorf("%w: schema: %w", ErrStorage, err))
		}
	}
	if err := execRaw(wc, "COMMIT"); err != nil {
		return fail(fmt.Errorf("%w: commit schema: %w", ErrStorage, err))
	}
	applied, err := queryInt64(wc, "SELECT applied FROM "+metaTable+" WHERE id = 1")
	if err != nil {
		return fail(fmt.Errorf("%w: read applied index: %w", ErrStorage, err))
	}
	w, err := newWriter(wc)
	if err != nil {
		return fail(err)
	}
	readers := newReaderPool(s.cfg.ReadConns)
	for range s.cfg.ReadConns {
		rc, err := openReader(path, s.cfg.ForeignKeys, true)
		if err != nil {
			readers.close()
			w.close()
			return nil, nil, 0, err
		}
		readers.add(newReader(rc))
	}
	return w, readers, uint64(applied), nil
}

// Sync makes every committed batch durable. Dragonboat compacts the Raft
// log after it, so it must be a real barrier (DRAGONBOAT.md 0.2, 6.4): one
// commit with synchronous=FULL fsyncs the WAL, which holds every earlier
// frame not yet checkpointed (checkpointed frames were fsynced into the
// database file by the checkpoint).
func (s *StateMachine) Sync() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.sync(); err != nil {
		s.fault(err)
		return fmt.Errorf("%w: sync: %w", ErrStorage, err)
	}
	return nil
}

// fault reports a storage fault before Dragonboat stops the process with it.
func (s *StateMachine) fault(err error) {
	s.log.Error("storage fault: the node will stop; it restarts from the Raft log", zap.Error(err))
	s.cfg.Notify(Event{Kind: EventStorageFault, Err: err})
}

// Close releases every handle. Dragonboat may call it without a completed
// Open and Lookup may still run after it; both are safe.
func (s *StateMachine) Close() error {
	if s.ckpt != nil {
		// Before mu: a checkpoint in progress holds mu.RLock.
		s.ckpt.stop()
		s.ckpt = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if p := s.readers.Swap(nil); p != nil {
		p.close()
	}
	var err error
	if s.w != nil {
		err = s.w.close()
		s.w = nil
	}
	s.held.retireAll()
	return err
}

// Query is a local read for Lookup: the statements run on a read-only
// connection and must not write.
type Query struct {
	// Ctx bounds the read; SQLite is interrupted when it is done.
	Ctx context.Context
	// Deadline bounds the read as Ctx's own deadline would (zero: none
	// beyond Ctx), without a timer of its own.
	Deadline time.Time
	Request  *cmdpb.Request
	// StatementTimeout interrupts each statement after this long (0: no
	// bound beyond Ctx); the statement's result is "query timeout".
	StatementTimeout time.Duration
}

// Lookup runs a read. It may run concurrently with any other method and
// after Close, so it works only under mu.RLock.
func (s *StateMachine) Lookup(q interface{}) (interface{}, error) {
	switch x := q.(type) {
	case *Backup:
		return s.backup(x)
	case *DBStats:
		return s.dbStats(x)
	case *Checkpoint:
		return s.liveCheckpoint()
	case *TruncateWAL:
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.closed || s.path == "" {
			return nil, ErrClosed
		}
		return s.truncateWAL(x)
	}
	query, ok := q.(*Query)
	if !ok || query.Request == nil {
		return nil, fmt.Errorf("%w: %T", ErrBadQuery, q)
	}
	ctx := query.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	r, err := s.takeReader(ctx, query.Deadline)
	if err != nil {
		return nil, err
	}
	defer s.giveReader(r)
	// A read prepared against a schema that changed before its snapshot
	// was taken would answer with the old columns (mattn names them before
	// the first step, and SQLite re-prepares only at that step); the
	// schema generation tells, and the read runs again on the new schema.
	for {
		g := s.schemaGen.Load()
		if g%2 == 1 {
			// A schema change is being committed: wait it out (a
			// commit takes milliseconds), within the read's deadline.
			if err := s.awaitSchemaCommit(ctx, query.Deadline); err != nil {
				return nil, err
			}
			continue
		}
		if err := r.syncSchema(g); err != nil {
			return nil, fmt.Errorf("%w: read: %w", ErrStorage, err)
		}
		resp, err := s.readRequest(ctx, query.Deadline, r, query.Request, query.StatementTimeout)
		if err != nil || s.schemaGen.Load() == g {
			return resp, err
		}
	}
}

// takeReader takes a reader connection from the pool, within ctx and
// deadline, while the machine is open; giveReader returns it. The machine
// cannot close in between (it holds mu for reading).
func (s *StateMachine) takeReader(ctx context.Context, deadline time.Time) (*reader, error) {
	s.mu.RLock()
	p := s.readers.Load()
	if s.closed || p == nil {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	var r *reader
	select {
	case r = <-p.free:
	default:
		// Every reader is busy: wait, with a timer for the deadline only
		// now that there is a wait.
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		select {
		case r = <-p.free:
		case <-ctx.Done():
			s.mu.RUnlock()
			return nil, ctx.Err()
		}
	}
	if s.readsAborted.Load() {
		s.giveReader(r)
		return nil, ErrClosed
	}
	return r, nil
}

func (s *StateMachine) giveReader(r *reader) {
	s.readers.Load().free <- r // the pool r came from: swapping it takes mu
	s.mu.RUnlock()
}

// AbortReads interrupts every client read running now, and makes every
// later one fail with ErrClosed: how a shutdown whose grace period is over
// bounds its reads (the replica's stop), without tying each read's context
// to its own. A read that has taken its connection but not yet stepped
// may still run to its end or its deadline, as with an interrupt through
// its context (sqlite3_interrupt is a no-op until a statement runs).
//
// It does not take mu: a snapshot's swap waiting for mu behind a long read
// would hold it back until that read ended by itself.
func (s *StateMachine) AbortReads() {
	s.readsAborted.Store(true)
	if p := s.readers.Load(); p != nil {
		p.abort()
	}
}

// readRequest runs every statement of req as a read. A storage fault on a
// read is an error of this read only; it does not stop the node.
// Each statement runs under r's watch (ctx, deadline and stmtTimeout), not
// under a context of its own.
func (s *StateMachine) readRequest(ctx context.Context, deadline time.Time, r *reader, req *cmdpb.Request, stmtTimeout time.Duration) (*cmdpb.Response, error) {
	pool := s.readers.Load() // r's: swapping it takes mu, which the caller holds
	resp := &cmdpb.Response{Results: make([]*cmdpb.StatementResult, 0, len(req.GetStatements()))}
	for _, st := range req.GetStatements() {
		res, err := timed(req.GetTimings(), func() (res *cmdpb.StatementResult, err error) {
			d := deadline
			if stmtTimeout > 0 {
				d = earliest(d, time.Now().Add(stmtTimeout))
			}
			pool.arm(r, ctx, d)
			res, err = runRead(context.Background(), r.c, r.stmts, st.GetSql(), args(st.GetParameters()), req.GetQualifyColumns())
			if cause := pool.disarm(r); cause != nil {
				return interrupted(res, err, cause)
			}
			return res, err
		})
		if err != nil {
			return nil, fmt.Errorf("%w: read: %w", ErrStorage, err)
		}
		resp.Results = append(resp.Results, res)
		if req.GetTransaction() && res.GetError() != "" {
			break
		}
	}
	return resp, nil
}

// NALookup is Lookup over encoded bytes: a cmdpb.Request in, a cmdpb.Response
// out. Dragonboat's NAReadLocalNode panics on an on-disk machine without it
// (DRAGONBOAT.md 0.7).
func (s *StateMachine) NALookup(b []byte) ([]byte, error) {
	var req cmdpb.Request
	if err := proto.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	out, err := s.Lookup(&Query{Request: &req})
	if err != nil {
		return nil, err
	}
	return proto.Marshal(out.(*cmdpb.Response))
}

// failedSM stands in for a machine whose Config was invalid: its Open fails,
// which stops the node with the reason.
type failedSM struct{ err error }

func (f *failedSM) Open(<-chan struct{}) (uint64, error)                       { return 0, f.err }
func (f *failedSM) Update(e []dbsm.Entry) ([]dbsm.Entry, error)                { return nil, f.err }
func (f *failedSM) Lookup(interface{}) (interface{}, error)                    { return nil, f.err }
func (f *failedSM) Sync() error                                                { return f.err }
func (f *failedSM) PrepareSnapshot() (interface{}, error)                      { return nil, f.err }
func (f *failedSM) SaveSnapshot(interface{}, io.Writer, <-chan struct{}) error { return f.err }
func (f *failedSM) RecoverFromSnapshot(io.Reader, <-chan struct{}) error       { return f.err }
func (f *failedSM) Close() error                                               { return nil }

// maxRandomBlob bounds RANDOMBLOB(n) in writes: the value is built in
// memory on the apply path of every replica.
const maxRandomBlob = 16 << 20

// registerDeterministic overrides, on the writer, the SQL functions whose
// value is not a function of the entry being applied:
//   - RANDOM() and RANDOMBLOB() draw from a generator seeded from the entry.
//     The gateway already rewrites them into literals (API.md 1.15), but not
//     everywhere (ORDER BY RANDOM(), ?norwrandom, computed arguments).
//
// last_insert_rowid() and changes() read connection state, which Skiff's
// bookkeeping and restarts leave differently on each replica: execRequest
// resets both before each request. total_changes() counts from the
// connection's opening and is refused in writes (authorizeWrite).
func (s *StateMachine) registerDeterministic(c *sqlite3.SQLiteConn) error {
	s.rng = rand.New(rand.NewPCG(0, 0))
	blob := func(n int64) ([]byte, error) {
		if n > maxRandomBlob {
			return nil, fmt.Errorf("randomblob(%d): larger than %d bytes", n, maxRandomBlob)
		}
		b := make([]byte, max(1, n))
		for i := range b {
			b[i] = byte(s.rng.Uint32())
		}
		return b, nil
	}
	for name, f := range map[string]any{
		"random":     func() int64 { return int64(s.rng.Uint64()) },
		"randomblob": blob,
	} {
		if err := c.RegisterFunc(name, f, false); err != nil {
			return fmt.Errorf("%w: register %s: %w", ErrStorage, name, err)
		}
	}
	return nil
}

// seed makes random() and randomblob() of the k-th request applied at
// index deterministic (k > 0 inside a BATCH entry; k = 0 keeps the seeds
// of entries written before batches existed).
func (s *StateMachine) seed(index, k uint64) { s.rng = rand.New(rand.NewPCG(index, 0x5eed+k)) }

// awaitSchemaCommit waits until the schema change being committed when it
// was called (schemaGen odd) has committed, ctx ends or deadline (zero:
// none) passes.
func (s *StateMachine) awaitSchemaCommit(ctx context.Context, deadline time.Time) error {
	committed := s.schemaCommitted.Load()
	if committed == nil || s.schemaGen.Load()%2 == 0 {
		return nil
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		left := time.Until(deadline)
		if left <= 0 {
			return context.DeadlineExceeded
		}
		t := time.NewTimer(left)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-*committed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return context.DeadlineExceeded
	}
}
