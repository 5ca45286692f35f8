package replica

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// Defaults for Config. Ticks are RTT units (Dragonboat counts time in them).
const (
	// DefaultRTT is Dragonboat's logical tick. 10 ms made leaders flap on
	// a loaded 2-core machine (DRAGONBOAT.md 4.2); 50 ms does not, and
	// still elects a single node's leader in about half a second.
	DefaultRTT          = 50 * time.Millisecond
	DefaultHeartbeatRTT = 1
	DefaultElectionRTT  = 10
	// DefaultReadRoundHold, readRoundGather and readRoundBusy: see
	// readRounds.
	DefaultReadRoundHold = 2 * time.Millisecond
	readRoundGather      = 32
	readRoundBusy        = 8
	// DefaultWriteBatchHold and writeBatchBusy: see proposer. A batch
	// commits in 2-3 ms under load here, and a closed loop's writers are
	// back within that; 4 ms held an open loop's batches to about twice
	// their size, where 8 ms added its own wait to the tail (README,
	// Benchmarks, "Write batches wait for their writers").
	DefaultWriteBatchHold = 4 * time.Millisecond
	writeBatchBusy        = 8
	// DefaultSnapshotEntries matches rqlited's -raft-snap. A local snapshot
	// of an on-disk machine is only a Sync plus metadata (DRAGONBOAT.md
	// 0.1), so it is cheap; it bounds the log replayed at restart.
	DefaultSnapshotEntries = 8192
	// DefaultCompactionOverhead keeps this many entries behind a snapshot,
	// so a briefly lagging follower catches up from the log instead of
	// receiving the whole database.
	DefaultCompactionOverhead = 10_000
	// DefaultMaxInMemLogSize bounds unapplied log bytes in memory: past it
	// proposals get ErrBusy (back-pressure) instead of growing memory.
	DefaultMaxInMemLogSize = 256 << 20
	// DefaultApplyTimeout bounds a request that came without a deadline
	// (rqlited's -raft-apply-timeout).
	DefaultApplyTimeout = 10 * time.Second
	// DefaultLeaveTimeout bounds the leadership handover and self-removal
	// of a graceful shutdown.
	DefaultLeaveTimeout = 10 * time.Second
	// DefaultSnapshotInterval and DefaultSnapshotWALSize are rqlited's
	// -raft-snap-int and -raft-snap-wal-size.
	DefaultSnapshotInterval = 10 * time.Second
	DefaultSnapshotWALSize  = 4 << 20
	// DefaultShardID is the shard holding the database.
	DefaultShardID = 1
)

// LogDB memory presets (Dragonboat's Get*MemLogDBConfig).
const (
	LogDBTiny   = "tiny"
	LogDBSmall  = "small"
	LogDBMedium = "medium"
	LogDBLarge  = "large"
)

// Config configures the replica actor.
type Config struct {
	// Observer, if set, is told of write proposals, ReadIndex rounds and
	// applied batches as they happen (/metrics); nil observes nothing.
	Observer Observer
	// NodeHostDir holds Dragonboat's data: the Pebble LogDB and snapshots.
	NodeHostDir string
	// WALDir holds the LogDB's write-ahead log; put it on the lowest
	// latency device. Empty means inside NodeHostDir.
	WALDir string
	// SMDir holds the SQLite files.
	SMDir string
	// RaftAddr is the advertised Raft address (must not change across
	// restarts: Dragonboat refuses with ErrNotOwner).
	RaftAddr string
	// RaftListenAddr is the bind address; empty means RaftAddr. Unused
	// with RaftInbound.
	RaftListenAddr string
	// RaftInbound, when set, brings the Raft connections that another
	// listener accepted (Skiff's Raft-port mux) to the transport, which
	// then does not listen itself.
	RaftInbound *raftnet.Inbound
	ShardID     uint64
	ReplicaID   uint64
	// InitialMembers bootstraps a new shard (replica ID -> Raft address);
	// ignored at restart.
	InitialMembers map[uint64]string
	// Join starts a new replica that a member has added to the shard
	// (InitialMembers is then ignored).
	Join bool
	// Voter: a joined replica promotes itself to voter once caught up;
	// false keeps it a read replica.
	Voter bool
	// NonVoting says the replica is a non-voting member as far as this node
	// last knew (Dragonboat must be told at start: a non-voting replica
	// started as a voter panics when its own addition is applied).
	NonVoting bool
	// ExportDir receives exported snapshots (ExportSnapshot).
	ExportDir string
	// Held keeps the handle refusing callers (ErrNotStarted) once Run has
	// started, until Release; only BootHeld is served meanwhile.
	Held bool
	// OnPromoted is called (once, from a periodic job) when this replica is
	// seen to be a voter after starting non-voting, so that the next start
	// says so.
	OnPromoted func()

	// ReadRoundHold is the most time from the start of a busy ReadIndex
	// round to the start of the next, which waits for the busy round's
	// readers to come back (readRounds.regather); 0: DefaultReadRoundHold;
	// negative: each round starts as soon as the last ends.
	ReadRoundHold time.Duration
	// WriteBatchHold is the most time from the answer of a busy write
	// batch to the start of the next, which waits for the busy batch's
	// writers to come back (proposer.next); 0: DefaultWriteBatchHold;
	// negative: each batch starts as soon as the last is answered.
	WriteBatchHold time.Duration

	RTT                       time.Duration
	HeartbeatRTT, ElectionRTT uint64
	SnapshotEntries           uint64
	CompactionOverhead        uint64
	MaxInMemLogSize           uint64
	ApplyTimeout              time.Duration
	LogDBMemory               string
	ForeignKeys               bool
	Logger                    *zap.Logger
	// Lifecycle receives events (non-blocking) and is read for the phase.
	Lifecycle *lifecycle.Lifecycle
	// LeaderProgress asks the leader (replica leaderID, at Raft address
	// leaderAddr if this node knows it, else "") for its applied index and
	// the snapshot it is streaming: what a recovering node reports its
	// progress against. Nil: no target is reported.
	LeaderProgress func(ctx context.Context, leaderID uint64, leaderAddr string) (lifecycle.LeaderIndex, error)
	// CheckRemoved asks the peers at the given Raft addresses whether
	// replica self was removed from the cluster, and says how it knows
	// ("" if no peer says so). A removed replica rarely applies its own
	// removal (the leader stops replicating to it once the change
	// commits), so a node cut off from its leader asks. Nil: never asked.
	CheckRemoved func(ctx context.Context, peers []string, self uint64) (reason string, err error)
	// OnRemoved is called once (from a periodic job) when this node
	// learns it was removed (-raft-remove-shutdown shuts the node down).
	// Nil: the node stays up in phase removed.
	OnRemoved func(reason string)
	// Failpoints (tests only); nil has none.
	Failpoints *failpoint.Set
	// Capture turns on CDC capture in the state machine (sm.Config.Capture);
	// nil captures nothing.
	Capture *sm.CaptureConfig

	// StepdownOnShutdown: a leader shutting down gracefully hands
	// leadership to another voter first (rqlited's -raft-shutdown-stepdown).
	StepdownOnShutdown bool
	// RemoveOnShutdown: a node shutting down gracefully removes itself
	// from the cluster (rqlited's -raft-cluster-remove-shutdown).
	RemoveOnShutdown bool
	// LeaveTimeout bounds both of these together.
	LeaveTimeout time.Duration
	// ReapTimeout and ReapNonVotingTimeout: the leader removes voters, and
	// non-voting members, it has not reached for longer (rqlited's
	// -raft-reap-node-timeout, -raft-reap-read-only-node-timeout); 0: never.
	ReapTimeout, ReapNonVotingTimeout time.Duration
	// AutoVacuumInterval: the leader proposes a VACUUM each time it has
	// led this long since it became leader or last proposed one (rqlited's
	// -auto-vacuum-int); 0: never.
	AutoVacuumInterval time.Duration
	// SnapshotInterval is how often the SQLite WAL's size is checked; past
	// SnapshotWALSize bytes a snapshot is taken and the WAL checkpointed
	// and truncated (rqlited's -raft-snap-int, -raft-snap-wal-size). Either
	// 0 turns the check off.
	SnapshotInterval time.Duration
	SnapshotWALSize  int64

	// RaftTLS, when set, is node-to-node TLS for dialing peers;
	// RaftServerTLS, for the connections the transport accepts when it
	// listens itself (without RaftInbound, whose mux does the handshake).
	RaftTLS, RaftServerTLS *tls.Config
}

// Observer receives the figures that exist only at event time. Each
// method is called once per proposal, round or batch, on the hot path:
// it must be cheap and must not block.
type Observer interface {
	// Proposed: a proposal of writes client writes (1: alone, more: one
	// BATCH entry) was answered after d, with err (nil: applied).
	Proposed(d time.Duration, writes int, err error)
	// ReadRound: a ReadIndex round serving linearizable reads ended after
	// d, with err.
	ReadRound(d time.Duration, err error)
	// Applied: the state machine applied entries entries, running
	// statements client statements, in one batch that took d.
	Applied(d time.Duration, entries, statements int)
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.ShardID == 0 {
		c.ShardID = DefaultShardID
	}
	if c.RTT == 0 {
		c.RTT = DefaultRTT
	}
	if c.ReadRoundHold == 0 {
		c.ReadRoundHold = DefaultReadRoundHold
	}
	if c.WriteBatchHold == 0 {
		c.WriteBatchHold = DefaultWriteBatchHold
	}
	if c.HeartbeatRTT == 0 {
		c.HeartbeatRTT = DefaultHeartbeatRTT
	}
	if c.ElectionRTT == 0 {
		c.ElectionRTT = DefaultElectionRTT
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.CompactionOverhead == 0 {
		c.CompactionOverhead = DefaultCompactionOverhead
	}
	if c.MaxInMemLogSize == 0 {
		c.MaxInMemLogSize = DefaultMaxInMemLogSize
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.LogDBMemory == "" {
		c.LogDBMemory = LogDBSmall
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.RaftListenAddr == "" {
		c.RaftListenAddr = c.RaftAddr
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	switch {
	case c.NodeHostDir == "" || c.SMDir == "":
		return bad("NodeHostDir and SMDir are required")
	case c.RaftAddr == "":
		return bad("RaftAddr is required")
	case c.ReplicaID == 0:
		return bad("ReplicaID must be >= 1")
	case c.RTT < time.Millisecond:
		return bad("RTT %s < 1ms", c.RTT)
	case c.ElectionRTT <= 2*c.HeartbeatRTT:
		return bad("election timeout (%d ticks) must exceed twice the heartbeat (%d ticks)", c.ElectionRTT, c.HeartbeatRTT)
	case c.Lifecycle == nil:
		return bad("Lifecycle is required")
	case c.LeaveTimeout < 0 || c.ReapTimeout < 0 || c.ReapNonVotingTimeout < 0 || c.SnapshotInterval < 0 || c.SnapshotWALSize < 0 ||
		c.AutoVacuumInterval < 0:
		return bad("leave and reap timeouts, snapshot interval and WAL size must not be negative")
	}
	if _, err := logDBConfig(c.LogDBMemory); err != nil {
		return err
	}
	return nil
}

func logDBConfig(preset string) (config.LogDBConfig, error) {
	var c config.LogDBConfig
	switch preset {
	case LogDBTiny:
		c = config.GetTinyMemLogDBConfig()
	case LogDBSmall:
		c = config.GetSmallMemLogDBConfig()
	case LogDBMedium:
		c = config.GetMediumMemLogDBConfig()
	case LogDBLarge:
		c = config.GetLargeMemLogDBConfig()
	default:
		return c, fmt.Errorf("%w: LogDB memory preset %q (want tiny, small, medium or large)", ErrInvalidConfig, preset)
	}
	return c, nil
}
