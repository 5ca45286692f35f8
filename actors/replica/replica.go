package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Level is a read consistency level (API.md 1.8).
type Level int

// Read consistency levels.
const (
	LevelWeak Level = iota
	LevelNone
	LevelLinearizable
	LevelStrong
	LevelAuto
)

// ParseLevel maps rqlite's level names, case-insensitively; rqlite treats
// an unknown or absent level as weak (API.md 1.2).
func ParseLevel(s string) Level {
	switch strings.ToLower(s) {
	case "none":
		return LevelNone
	case "linearizable":
		return LevelLinearizable
	case "strong":
		return LevelStrong
	case "auto":
		return LevelAuto
	}
	return LevelWeak
}

func (l Level) String() string {
	return [...]string{"weak", "none", "linearizable", "strong", "auto"}[l]
}

// ReadOptions qualify a read (API.md 1.2, 1.8).
type ReadOptions struct {
	Level Level
	// Freshness bounds, for level none on a node that is not the leader,
	// how long ago the leader was last heard from (0: no bound).
	Freshness time.Duration
	// DBTimeout interrupts each statement of a local read after this long
	// ("query timeout"). Reads through the log ignore it: an interrupt
	// timed differently on each replica would make them diverge.
	DBTimeout time.Duration
	// Deadline bounds a local read as its context's deadline would (zero:
	// the context's, or ApplyTimeout), without a timer per read: the
	// state machine's watchdog interrupts the read at it, and a read
	// waiting for a ReadIndex round gets a timer only once it is near
	// (readRounds.wait).
	Deadline time.Time
}

// Timer sizes.
const (
	// probeInterval is how often a node that is not ready checks whether
	// it has caught up with the leader.
	probeInterval = 50 * time.Millisecond
	// contactInterval is how often a follower reports when it last heard
	// from the leader; LastLeaderContact lags by at most this much.
	contactInterval = 200 * time.Millisecond
	// refreshInterval is how often membership is re-read regardless.
	refreshInterval = time.Second
	// progressInterval is how often a recovering node asks the leader for
	// its index and measures the snapshot it is receiving.
	progressInterval = time.Second
	// probeTimeout bounds one catch-up check.
	probeTimeout = 2 * time.Second
	// shutdownGrace is how long shutdown lets in-flight requests finish
	// before cancelling them.
	shutdownGrace = 5 * time.Second
	// retryBackoffMax caps the wait between retries of a dropped proposal.
	retryBackoffMax = 200 * time.Millisecond
)

// Replica owns the NodeHost. It is a handle: its methods run on their
// callers' goroutines under a lease (hotpath.go); what needs ordering or
// owns state is an actor that Run starts with the NodeHost (run.go).
type Replica struct {
	cfg  Config
	log  *zap.Logger
	life *lifecycle.Lifecycle
	// promotedOnce guards Config.OnPromoted; promotionCovered is set once
	// a local snapshot covers the promotion, which ends the snapshots
	// reconcileSelf requests for it.
	promotedOnce     sync.Once
	promotionCovered atomic.Bool
	// leftOnce makes leaving the cluster (removed.go) happen once; it
	// closes gone.
	leftOnce sync.Once
	gone     chan struct{}
	// machine is the state machine Dragonboat created, for /boot staging.
	machine atomic.Pointer[sm.StateMachine]
	// tap is the snapshot receive tap of the running NodeHost (start),
	// closed after it (closeNodeHost).
	tap *sm.ReceiveTap
	// heard is when each peer last sent this node a leader's message
	// (the transport records it; checkContact reads it).
	heard *raftnet.Heard
	done  *actors.Done
	lis   *listener
	// workCtx ends every in-flight request when shutdown's grace period
	// is over, so shutdown is bounded whatever the requests' deadlines.
	workCtx    context.Context
	cancelWork context.CancelFunc
	// jobsCtx ends the periodic jobs' rounds when shutdown begins.
	jobsCtx  context.Context
	stopJobs context.CancelFunc
	// hot is the handle's lease on what Run started (hotpath.go).
	hot hotPath
	// counters and sampler feed the monitoring sample (stats.go).
	counters counters
	sampler  sampler
}

// New validates cfg and returns an unstarted replica.
func New(cfg Config) (*Replica, error) {
	r := NewHandle()
	if err := r.Configure(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// NewHandle returns an unconfigured replica: every call is refused with
// ErrNotStarted until Configure, then Run, have started it. Bootstrap hands
// it to the gateway and the other actors before it knows the node's
// identity, which the configuration holds.
func NewHandle() *Replica {
	return &Replica{done: actors.NewDone(), gone: make(chan struct{}), heard: raftnet.NewHeard()}
}

// Configure validates cfg and makes it the replica's; it must be called
// once, before Run.
func (r *Replica) Configure(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	r.cfg, r.log, r.life = cfg, cfg.Logger, cfg.Lifecycle
	r.hot.held.Store(cfg.Held)
	r.lis = &listener{shardID: cfg.ShardID, life: cfg.Lifecycle, members: make(chan struct{}, 1),
		stats: make(chan struct{}, 1), counters: &r.counters, reach: newReachability(), removed: make(chan struct{}, 1), installed: make(chan struct{}, 1), deleted: make(chan struct{}),
		leaders: newLeaderWatch()}
	r.workCtx, r.cancelWork = context.WithCancel(context.Background())
	r.jobsCtx, r.stopJobs = context.WithCancel(r.workCtx)
	return nil
}

// Execute proposes req and returns its results once applied locally. It
// runs on the caller's goroutine; the proposer batches it with others.
func (r *Replica) Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	run, err := r.hot.enter()
	if err != nil {
		return nil, err
	}
	defer r.hot.leave()
	if _, ok := actors.RequestID(ctx); ok || sm.IsVacuum(req) {
		// A caller that retries under one request ID (the write queue)
		// needs it in the log: proposed alone, not in a batch. So does a
		// VACUUM, which the state machine runs between two transactions.
		ctx, cancel := r.withDeadline(ctx)
		defer cancel()
		return r.propose(ctx, run.nh, cmdpb.Command_TYPE_EXECUTE, req)
	}
	// A batched write is not tied to workCtx one by one, which would put
	// every write through workCtx's lock twice (README, Benchmarks): the
	// proposer's batches run under workCtx, and a write waiting on the
	// proposer ends when it stops.
	ctx, cancel := withTimeoutIfNone(ctx, r.cfg.ApplyTimeout)
	defer cancel()
	return run.writes.submit(ctx, req, func(err error) error { return r.mapErr(run.nh, err) })
}

// withTimeoutIfNone gives ctx a deadline timeout from now if it has none.
func withTimeoutIfNone(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// ProposeHighWater replicates the CDC high-water mark hwm (every voter's
// sink gets HighWater). Like Execute it runs on the caller's goroutine. It
// needs no deduplication: applying the same mark twice changes nothing.
func (r *Replica) ProposeHighWater(ctx context.Context, hwm uint64) error {
	run, err := r.hot.enter()
	if err != nil {
		return err
	}
	defer r.hot.leave()
	ctx, cancel := r.withDeadline(ctx)
	defer cancel()
	resp, err := r.proposeCommand(ctx, run.nh, &cmdpb.Command{Type: cmdpb.Command_TYPE_CDC_HWM, CdcHighWater: hwm})
	if err != nil {
		return err
	}
	if msg := resp.GetError(); msg != "" {
		return fmt.Errorf("cdc high-water mark %d: %s", hwm, msg)
	}
	return nil
}

// Query reads at opts.Level, on the caller's goroutine.
func (r *Replica) Query(ctx context.Context, req *cmdpb.Request, opts ReadOptions) (*cmdpb.Response, error) {
	run, err := r.hot.enter()
	if err != nil {
		return nil, err
	}
	defer r.hot.leave()
	return r.query(ctx, run, req, opts)
}

// Backup streams a consistent copy of the local database (API.md 1.10).
func (r *Replica) Backup(ctx context.Context, b *sm.Backup) (*sm.BackupResult, error) {
	return localQuery[*sm.BackupResult](ctx, r, b)
}

// Checkpoint folds the local SQLite WAL into the database file (/reap).
func (r *Replica) Checkpoint(ctx context.Context) (*sm.CheckpointResult, error) {
	return localQuery[*sm.CheckpointResult](ctx, r, &sm.Checkpoint{})
}

// localQuery runs a state machine query on the local replica, under the
// lease, for as long as its request allows (a backup, a checkpoint).
func localQuery[T any](ctx context.Context, r *Replica, q any) (T, error) {
	var zero T
	run, err := r.hot.enter()
	if err != nil {
		return zero, err
	}
	defer r.hot.leave()
	out, err := r.serveLocal(ctx, run.nh, q)
	if err != nil {
		return zero, err
	}
	v, ok := out.(T)
	if !ok {
		return zero, fmt.Errorf("%w: lookup returned %T", ErrNotReady, out)
	}
	return v, nil
}

// ExportSnapshot writes a full snapshot of the local replica under
// Config.ExportDir and returns its directory. It needs no quorum: it is the
// first step of recovering a cluster whose majority is gone for good.
func (r *Replica) ExportSnapshot(ctx context.Context) (string, error) {
	idx, err := r.snapshot(ctx, -1, true)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.cfg.ExportDir, fmt.Sprintf("snapshot-%016X", idx))
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir, nil
}

// Snapshot forces a Raft snapshot and log truncation (API.md 1.10),
// keeping trailingLogs entries (-1: the configured compaction overhead),
// and returns its index; ErrNothingToSnapshot when nothing is new.
func (r *Replica) Snapshot(ctx context.Context, trailingLogs int64) (uint64, error) {
	return r.snapshot(ctx, trailingLogs, false)
}

func (r *Replica) snapshot(ctx context.Context, trailingLogs int64, export bool) (uint64, error) {
	run, err := r.hot.enter()
	if err != nil {
		return 0, err
	}
	defer r.hot.leave()
	return r.serveSnapshot(ctx, run.nh, trailingLogs, export)
}

// Boot replaces the database of a single-node cluster with the SQLite
// file read from rd (API.md 1.10).
func (r *Replica) Boot(ctx context.Context, rd io.Reader) error {
	run, err := r.hot.enter()
	if err != nil {
		return err
	}
	defer r.hot.leave()
	return r.serveBoot(ctx, run.nh, rd)
}

// BootHeld is Boot for the replica's owner while it is held (Config.Held):
// an -auto-restore boots the database before anyone else may use it.
func (r *Replica) BootHeld(ctx context.Context, rd io.Reader) error {
	run, err := r.hot.enterHeld()
	if err != nil {
		return err
	}
	defer r.hot.leave()
	return r.serveBoot(ctx, run.nh, rd)
}

// Release ends the hold of Config.Held: every caller is served from now on.
func (r *Replica) Release() { r.hot.release() }

// Done is closed when Run has returned.
func (r *Replica) Done() <-chan struct{} { return r.done.C() }

// start creates the NodeHost and starts (or restarts) the replica.
func (r *Replica) start() (*dragonboat.NodeHost, error) {
	c := r.cfg
	nhc := nodeHostConfig(c)
	nhc.RaftEventListener, nhc.SystemEventListener = r.lis, r.lis
	smc := sm.Config{
		Dir: c.SMDir, ForeignKeys: c.ForeignKeys, Notify: r.lis.smEvent, Logger: r.log.Named("sm"),
		Failpoints: c.Failpoints, Capture: c.Capture,
	}
	// The receive tap writes an incoming snapshot's database as its
	// chunks arrive (sm/receivetap.go); it outlives the state machine
	// Dragonboat creates and recreates, and closes with the NodeHost.
	tap, err := sm.NewReceiveTap(smc)
	if err != nil {
		return nil, fmt.Errorf("snapshot receive tap: %w", err)
	}
	r.tap = tap
	smc.Tap = tap
	tf, err := raftnet.NewFactory(raftnet.Config{Inbound: c.RaftInbound, Logger: r.log.Named("raftnet"),
		TLS: c.RaftTLS, ServerTLS: c.RaftServerTLS, ChunkTap: tap.Chunk, ChunkStreamEnded: tap.StreamEnded,
		Heard: r.heard})
	if err != nil {
		return nil, fmt.Errorf("raft transport: %w", err)
	}
	nhc.Expert.TransportFactory = tf
	t0 := time.Now()
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, fmt.Errorf("start raft node host: %w", err)
	}
	r.log.Info("raft node host started", zap.Duration("took", time.Since(t0)), zap.String("raft_addr", c.RaftAddr))
	rc := config.Config{
		ShardID:                 c.ShardID,
		ReplicaID:               c.ReplicaID,
		ElectionRTT:             c.ElectionRTT,
		HeartbeatRTT:            c.HeartbeatRTT,
		CheckQuorum:             true,
		PreVote:                 true,
		SnapshotEntries:         c.SnapshotEntries,
		CompactionOverhead:      c.CompactionOverhead,
		OrderedConfigChange:     true,
		MaxInMemLogSize:         c.MaxInMemLogSize,
		SnapshotCompressionType: config.Snappy,
		IsNonVoting:             c.NonVoting,
	}
	if c.Observer != nil {
		smc.Observe = c.Observer.Applied
	}
	makeSM := sm.Factory(smc)
	factory := func(shardID, replicaID uint64) dbsm.IOnDiskStateMachine {
		m := makeSM(shardID, replicaID)
		if s, ok := m.(*sm.StateMachine); ok {
			// Kept only to stage /boot files in its directory, which
			// touches none of its live state.
			r.machine.Store(s)
		}
		return m
	}
	members := map[uint64]dragonboat.Target{}
	join := false
	switch {
	case nh.HasNodeInfo(c.ShardID, c.ReplicaID):
		r.log.Info("restarting replica from its data")
	case c.Join:
		// Added to the shard by a member already; the log and the
		// membership come from the leader.
		join = true
		r.log.Info("starting as a joining replica", zap.Uint64("replica_id", c.ReplicaID))
	default:
		for id, addr := range c.InitialMembers {
			members[id] = addr
		}
		r.log.Info("bootstrapping new shard", zap.Any("members", c.InitialMembers))
	}
	if err := nh.StartOnDiskReplica(members, join, factory, rc); err != nil {
		r.closeNodeHost(nh)
		return nil, fmt.Errorf("start replica: %w", err)
	}
	return nh, nil
}

// nodeHostConfig is the NodeHost configuration of c, shared by start and
// ImportSnapshot (which must see the same directories and LogDB settings).
func nodeHostConfig(c Config) config.NodeHostConfig {
	ldb, _ := logDBConfig(c.LogDBMemory)
	// One Raft shard per node: a single LogDB shard and a few engine
	// workers are enough; Dragonboat's defaults (16 of each) are sized for
	// thousands of shards. Both are hard settings, fixed at first start.
	ldb.Shards = 1
	return config.NodeHostConfig{
		NodeHostDir:    c.NodeHostDir,
		WALDir:         c.WALDir,
		RTTMillisecond: uint64(c.RTT / time.Millisecond),
		RaftAddress:    c.RaftAddr,
		ListenAddress:  c.RaftListenAddr,
		Expert: config.ExpertConfig{
			LogDB: ldb,
			Engine: config.EngineConfig{
				ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 2, CloseShards: 1,
			},
		},
	}
}

// withDeadline gives ctx a deadline if it has none: Dragonboat refuses
// calls without one, and a request without one could hang forever.
func (r *Replica) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, r.cfg.ApplyTimeout)
	}
	stop := context.AfterFunc(r.workCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (r *Replica) query(ctx context.Context, run *running, req *cmdpb.Request, opts ReadOptions) (*cmdpb.Response, error) {
	nh := run.nh
	level := opts.Level
	if level == LevelAuto {
		// auto is none on read replicas and weak on voters (API.md 1.8).
		level = LevelWeak
		if !r.life.State().Identity.Voter {
			level = LevelNone
		}
	}
	if level == LevelWeak {
		// weak is served locally by the leader. A follower serves it as a
		// linearizable read (ReadIndex), which is never staler than the
		// leader's local state and needs no forwarding.
		level = LevelLinearizable
		if lid, _, ok, err := nh.GetLeaderID(r.cfg.ShardID); err == nil && ok && lid == r.cfg.ReplicaID {
			level = LevelNone
		}
	}
	if level == LevelStrong {
		ctx, cancel := r.withDeadline(ctx)
		defer cancel()
		return r.propose(ctx, nh, cmdpb.Command_TYPE_QUERY, req)
	}
	// A local read is not tied to workCtx, which would cost a context and
	// a registration per read (README, Benchmarks). A shutdown past its
	// grace period ends reads otherwise: the read rounds stop with the
	// actors (workCtx) and the state machine aborts its reads (stop).
	q := &sm.Query{Ctx: ctx, Deadline: opts.Deadline, Request: req, StatementTimeout: opts.DBTimeout}
	if _, ok := ctx.Deadline(); !ok && q.Deadline.IsZero() {
		q.Deadline = time.Now().Add(r.cfg.ApplyTimeout)
	}
	var (
		out any
		err error
	)
	switch level {
	case LevelNone:
		if r.stale(opts.Freshness) {
			return nil, ErrStaleRead
		}
		out, err = nh.StaleRead(r.cfg.ShardID, q)
	case LevelLinearizable:
		if err = run.reads.wait(ctx, q.Deadline); err == nil {
			out, err = nh.StaleRead(r.cfg.ShardID, q)
		}
	default:
		err = ErrBadLevel
	}
	if err != nil {
		return nil, r.mapErr(nh, err)
	}
	resp, ok := out.(*cmdpb.Response)
	if !ok {
		return nil, fmt.Errorf("%w: lookup returned %T", ErrNotReady, out)
	}
	return resp, nil
}

// serveLocal runs a local query (backup, checkpoint) until it is done or
// its request's context ends; shutdown cancels it after its grace period.
func (r *Replica) serveLocal(ctx context.Context, nh *dragonboat.NodeHost, q any) (any, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.workCtx, cancel)
	defer stop()
	if b, ok := q.(*sm.Backup); ok {
		cp := *b
		cp.Ctx = ctx
		q = &cp
	}
	out, err := nh.StaleRead(r.cfg.ShardID, q)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, sm.ErrBackupWrite):
		return nil, err
	}
	return nil, r.mapErr(nh, err)
}

// serveBoot stages the upload in the state machine's directory, proposes
// a BOOT entry naming it, then compacts the log past that entry: the file
// exists on this node only, so no replica may ever replay the entry.
func (r *Replica) serveBoot(ctx context.Context, nh *dragonboat.NodeHost, rd io.Reader) error {
	st := r.life.State()
	if len(st.Members) != 1 || st.Members[0].ReplicaID != r.cfg.ReplicaID {
		return ErrNotSingleNode
	}
	m := r.machine.Load()
	if m == nil {
		return ErrNotReady
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.workCtx, cancel)
	defer stop()
	name, n, err := m.StageBoot(rd, ctx.Done())
	if err != nil {
		return err
	}
	pctx, pcancel := r.withDeadline(ctx)
	defer pcancel()
	resp, err := r.proposeCommand(pctx, nh, &cmdpb.Command{Type: cmdpb.Command_TYPE_BOOT, BootFile: name})
	if err != nil {
		return err
	}
	if resp.GetError() != "" {
		return fmt.Errorf("%w: %s", sm.ErrInvalidSQLite, resp.GetError())
	}
	// The staged file exists on this node only: until the log is compacted
	// past the BOOT entry, a replica added later would replay it and fail.
	// Dragonboat rejects the request while its last-applied index still
	// trails the BOOT entry (a proposal's result is delivered before the
	// batch's applied index is recorded) or while another snapshot is
	// being saved: both pass, so retry with a growing pause.
	var serr error
	pause := 5 * time.Millisecond
	for attempt := 0; attempt < 8; attempt++ {
		if _, serr = nh.SyncRequestSnapshot(pctx, r.cfg.ShardID, dragonboat.SnapshotOption{OverrideCompactionOverhead: true}); serr == nil {
			break
		}
		r.log.Warn("snapshot after boot failed", zap.Int("attempt", attempt+1), zap.Error(serr))
		if !errors.Is(serr, dragonboat.ErrRejected) && !errors.Is(serr, dragonboat.ErrSystemBusy) {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-pctx.Done():
			t.Stop()
		case <-t.C:
		}
		if pctx.Err() != nil {
			break
		}
		pause *= 2
	}
	if serr != nil {
		return fmt.Errorf("database booted at index %d, but the log could not be compacted past it (retry with POST /snapshot): %w",
			resp.GetRaftIndex(), r.mapErr(nh, serr))
	}
	r.log.Info("booted from upload", zap.Int64("bytes", n), zap.Uint64("index", resp.GetRaftIndex()))
	return nil
}

// serveSnapshot asks Dragonboat for a snapshot, keeping trailingLogs
// entries (-1: the configured compaction overhead), or exports one. For an
// on-disk state machine it is a Sync barrier plus metadata, after which the
// log is compacted down to the trailing entries (DRAGONBOAT.md 0.1).
func (r *Replica) serveSnapshot(ctx context.Context, nh *dragonboat.NodeHost, trailingLogs int64, export bool) (uint64, error) {
	ctx, cancel := r.withDeadline(ctx)
	defer cancel()
	opt := dragonboat.SnapshotOption{}
	if export {
		if err := os.MkdirAll(r.cfg.ExportDir, 0o755); err != nil {
			return 0, fmt.Errorf("create export directory: %w", err)
		}
		opt.Exported, opt.ExportPath = true, r.cfg.ExportDir
	} else if trailingLogs >= 0 {
		opt.OverrideCompactionOverhead = true
		opt.CompactionOverhead = uint64(trailingLogs)
	}
	idx, err := nh.SyncRequestSnapshot(ctx, r.cfg.ShardID, opt)
	if errors.Is(err, dragonboat.ErrRejected) {
		return 0, ErrNothingToSnapshot
	}
	if err != nil {
		return 0, r.mapErr(nh, err)
	}
	r.log.Info("snapshot taken", zap.Uint64("index", idx))
	if !export {
		r.counters.userSnapshots.Add(1)
		r.lis.nudgeStats()
	}
	return idx, nil
}

// stale reports whether a level-none read must be refused: a freshness
// bound was asked for, this node is not the leader, and it has not heard
// from one within the bound (API.md 1.8).
func (r *Replica) stale(freshness time.Duration) bool {
	if freshness <= 0 {
		return false
	}
	st := r.life.State()
	if st.IsLeader() {
		return false
	}
	return st.LeaderReplicaID == 0 || time.Since(st.LastLeaderContact) > freshness
}

// propose replicates req as a command of type typ and waits until it is
// applied locally. proposal.run (propose.go) sends it again, under the
// same request ID, when it may have been lost.
func (r *Replica) propose(ctx context.Context, nh *dragonboat.NodeHost, typ cmdpb.Command_Type, req *cmdpb.Request) (*cmdpb.Response, error) {
	return r.proposeCommand(ctx, nh, &cmdpb.Command{Type: typ, Request: req})
}

// proposeCommand gives cmd its version and request ID and proposes it.
func (r *Replica) proposeCommand(ctx context.Context, nh *dragonboat.NodeHost, cmd *cmdpb.Command) (*cmdpb.Response, error) {
	if len(cmd.RequestId) == 0 {
		// A caller that retries on its own (the write queue) names the
		// write once for all its attempts (actors.WithRequestID).
		id, ok := actors.RequestID(ctx)
		if !ok {
			id = actors.NewRequestID()
		}
		cmd.RequestId = id
	}
	cmd.Version = sm.CommandVersion
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	p := &proposal{
		propose:   dragonboatPropose(nh, r.cfg.ShardID, b),
		leaders:   r.lis.leaders,
		repropose: reproposable(cmd.GetType()),
		self:      r.cfg.ReplicaID,
		mapErr:    func(err error) error { return r.mapErr(nh, err) },
		log:       r.log,
	}
	data, err := p.run(ctx)
	if err != nil {
		return nil, err
	}
	var resp cmdpb.Response
	if err := proto.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	return &resp, nil
}

// mapErr turns Dragonboat's errors into this package's sentinels.
func (r *Replica) mapErr(nh *dragonboat.NodeHost, err error) error {
	switch {
	case errors.Is(err, sm.ErrClosed), errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed):
		return fmt.Errorf("%w: %w", ErrStopped, err)
	case errors.Is(err, dragonboat.ErrTimeout), errors.Is(err, dragonboat.ErrCanceled), errors.Is(err, dragonboat.ErrTimeoutTooSmall),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, dragonboat.ErrSystemBusy):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrShardNotInitialized),
		errors.Is(err, dragonboat.ErrShardNotFound), errors.Is(err, dragonboat.ErrRejected), errors.Is(err, dragonboat.ErrAborted):
		if _, _, ok, lerr := nh.GetLeaderID(r.cfg.ShardID); lerr == nil && !ok {
			return fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return err
}

// needsContact: a ready follower that knows a leader.
func (r *Replica) needsContact() bool {
	st := r.life.State()
	return st.NodeReady && st.LeaderReplicaID != 0 && !st.IsLeader() && st.Phase == lifecycle.Ready
}

// checkContact tells lifecycle when this follower last heard from its
// leader: the last heartbeat or replicated entries the transport saw it
// send (raftnet.Heard), which is what freshness means in rqlite too
// (hashicorp/raft's LastContact). Heartbeats come every RTT.
func (r *Replica) checkContact(nh *dragonboat.NodeHost) {
	leader, _, ok, err := nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok {
		return
	}
	if at, ok := r.heard.Last(r.cfg.ShardID, leader); ok {
		r.life.Notify(lifecycle.LeaderContact{LeaderReplicaID: leader, At: at})
	}
}

// needsProbe: only a node waiting to become ready checks for catch-up (a
// joiner awaiting promotion too: the probe promotes it).
func (r *Replica) needsProbe() bool {
	st := r.life.State()
	return st.NodeReady && st.LeaderReplicaID != 0 &&
		(st.Phase == lifecycle.Recovering || st.Phase == lifecycle.Degraded || st.AwaitingPromotion())
}

// probe runs a ReadIndex round: when it completes, this node has applied
// everything the leader had committed when it began. A round begun while
// a snapshot was arriving was seen to wait out its 2 s timeout after the
// install (soak joins, debug log); so an install ends the round in flight
// and the next (one probeInterval later) sees the installed state.
func (r *Replica) probe(nh *dragonboat.NodeHost) {
	leader, _, ok, err := nh.GetLeaderID(r.cfg.ShardID)
	if err != nil || !ok {
		return
	}
	// A nudge left from an install before this round is not for it.
	select {
	case <-r.lis.installed:
	default:
	}
	rs, err := nh.ReadIndex(r.cfg.ShardID, probeTimeout)
	if err != nil {
		r.log.Debug("catch-up check failed", zap.Error(err))
		return
	}
	defer rs.Release()
	select {
	case res := <-rs.ResultC():
		if !res.Completed() {
			r.log.Debug("catch-up check did not complete", zap.Bool("timeout", res.Timeout()), zap.Bool("dropped", res.Dropped()))
			return
		}
	case <-r.lis.installed:
		return
	case <-r.jobsCtx.Done():
		return
	}
	// The membership first, read after the catch-up: lifecycle makes a
	// voter ready only if it votes in it, and a node must not be reported
	// ready with no members to name its leader by (/nodes would show it
	// alone). If the read fails (a busy leader), the next probe tries
	// again.
	m, ok := r.readMembersOnce(nh)
	if !ok {
		return
	}
	if r.promoteSelf(nh, m) {
		// Promoted: lifecycle must see the configuration that says so
		// before the catch-up, or it would wait for another probe.
		if m, ok = r.readMembersOnce(nh); !ok {
			return
		}
	}
	// This node's row (voter flag included) before the catch-up: once
	// ready, every member must name it (/nodes, /remove by node ID).
	r.reconcileSelf(nh, m)
	r.life.Notify(lifecycle.CaughtUp{LeaderReplicaID: leader, Index: r.life.State().Progress.AppliedIndex})
}

// refreshMembers reads the membership through Raft and hands it to
// lifecycle, which names the members from the replicated node table; then
// it reconciles this node's own membership and metadata. It reports
// whether the membership was read.
func (r *Replica) refreshMembers(nh *dragonboat.NodeHost) bool {
	m, ok := r.readMembersOnce(nh)
	if ok {
		r.reconcileSelf(nh, m)
	}
	return ok
}

// readMembersOnce reads the membership through Raft (one attempt) and
// hands it to lifecycle.
func (r *Replica) readMembersOnce(nh *dragonboat.NodeHost) (*dragonboat.Membership, bool) {
	if _, _, ok, err := nh.GetLeaderID(r.cfg.ShardID); err != nil || !ok {
		return nil, false // the read below needs a leader; the catch-up probe retries
	}
	ctx, cancel := context.WithTimeout(r.jobsCtx, probeTimeout)
	defer cancel()
	m, err := nh.SyncGetShardMembership(ctx, r.cfg.ShardID)
	if err != nil {
		r.log.Debug("membership refresh failed", zap.Error(err))
		return nil, false
	}
	var out []lifecycle.Member
	add := func(nodes map[uint64]string, voter bool) {
		for id, addr := range nodes {
			out = append(out, lifecycle.Member{ReplicaID: id, RaftAddr: addr, Voter: voter})
		}
	}
	add(m.Nodes, true)
	add(m.NonVotings, false)
	sort.Slice(out, func(i, j int) bool { return out[i].ReplicaID < out[j].ReplicaID })
	removed := make([]uint64, 0, len(m.Removed))
	for id := range m.Removed {
		removed = append(removed, id)
	}
	sort.Slice(removed, func(i, j int) bool { return removed[i] < removed[j] })
	r.life.Notify(lifecycle.MembershipChanged{Members: out, Removed: removed})
	return m, true
}
