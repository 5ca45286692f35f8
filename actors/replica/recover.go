package replica

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/lni/dragonboat/v4/tools"
	"github.com/lni/goutils/stringutil"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm"
)

// ErrOffline is what the offline transport answers every send with.
var ErrOffline = errors.New("raft transport is offline")

// Dragonboat's file names (internal/server): the flag file holding the
// NodeHost's Raft address, and an exported snapshot's metadata.
const (
	flagFilename     = "dragonboat.ds"
	metadataFilename = "snapshot.metadata"
)

// ImportSnapshot rewrites this node's Raft state, offline, so that it
// restarts from the exported snapshot at srcDir as a member of a shard
// whose only members are members (replica ID -> Raft address). It is
// Dragonboat's procedure for a shard that lost its quorum for good: every
// surviving node imports the same snapshot with the same members, then
// starts normally. Writes committed after the snapshot are lost.
// Dragonboat writes the new state beside the old one and switches to it
// in one LogDB batch, so a crash leaves either.
func ImportSnapshot(cfg Config, srcDir string, members map[uint64]string) error {
	cfg = cfg.WithDefaults()
	if cfg.ReplicaID == 0 || len(members) == 0 {
		return fmt.Errorf("%w: import needs this node's replica ID and the members", ErrInvalidConfig)
	}
	if _, ok := members[cfg.ReplicaID]; !ok {
		return fmt.Errorf("%w: this node (replica %d) must be one of the members", ErrInvalidConfig, cfg.ReplicaID)
	}
	if err := tools.ImportSnapshot(nodeHostConfig(cfg), srcDir, members, cfg.ReplicaID); err != nil {
		return fmt.Errorf("import snapshot %s: %w", srcDir, err)
	}
	return nil
}

// AdoptMembers rewrites the membership recorded in the exported snapshot
// at dir so that members (replica ID -> Raft address) are voters at those
// addresses. Dragonboat's import refuses a member whose address or role
// differs from the snapshot's (it guards against typos); a snapshot this
// node exported for a membership rewrite (peers.json) has to be told
// first. Only the metadata changes (the payload's checksum does not cover
// it), written beside and renamed over the old file.
func AdoptMembers(dir string, members map[uint64]string) error {
	var ss pb.Snapshot
	if err := readFlagFile(dir, metadataFilename, &ss); err != nil {
		return fmt.Errorf("read snapshot metadata in %s: %w", dir, err)
	}
	m := &ss.Membership
	for id, addr := range members {
		if m.Removed[id] {
			return fmt.Errorf("%w: replica %d was removed from the cluster", ErrBadMember, id)
		}
		delete(m.NonVotings, id)
		delete(m.Witnesses, id)
		if m.Addresses == nil {
			m.Addresses = map[uint64]string{}
		}
		m.Addresses[id] = addr
	}
	return writeFlagFile(dir, metadataFilename, &ss)
}

// StoredRaftAddress is the Raft address Dragonboat recorded in the
// NodeHost directory at its first start (ok=false: none yet). A NodeHost
// started under another address fails with ErrNotOwner.
func StoredRaftAddress(cfg Config) (string, bool, error) {
	var s pb.RaftDataStatus
	err := readFlagFile(cfg.NodeHostDir, flagFilename, &s)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", filepath.Join(cfg.NodeHostDir, flagFilename), err)
	}
	return s.Address, true, nil
}

// SetStoredRaftAddress records addr as the NodeHost's Raft address in
// every flag file Dragonboat keeps (the NodeHost and WAL directories), so
// that the NodeHost starts under addr with its data. Each file is replaced
// whole (written beside, renamed over).
func SetStoredRaftAddress(cfg Config, addr string) error {
	dirs := []string{cfg.NodeHostDir}
	if cfg.WALDir != "" && filepath.Clean(cfg.WALDir) != filepath.Clean(cfg.NodeHostDir) {
		dirs = append(dirs, cfg.WALDir)
	}
	for _, dir := range dirs {
		var s pb.RaftDataStatus
		err := readFlagFile(dir, flagFilename, &s)
		if errors.Is(err, os.ErrNotExist) {
			continue // never started: Dragonboat writes it at first start
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, flagFilename), err)
		}
		if s.Address == addr {
			continue
		}
		s.Address = addr
		if err := writeFlagFile(dir, flagFilename, &s); err != nil {
			return err
		}
	}
	return nil
}

// ExportOffline starts this node's replica with its network cut off, lets
// it apply every entry its log holds as committed, exports a full snapshot
// under dir (a copy of the database) and stops. It returns the snapshot's
// directory and index. cfg.RaftAddr must be the stored address
// (StoredRaftAddress). No message leaves the node: it may campaign, but no
// peer (perhaps already restarted on addresses this one used to have)
// hears it.
func ExportOffline(ctx context.Context, cfg Config, dir string) (string, uint64, error) {
	cfg = cfg.WithDefaults()
	log := cfg.Logger
	var applied atomic.Uint64
	progress := make(chan struct{}, 1)
	var fault atomic.Pointer[error]
	notify := func(e sm.Event) {
		switch e.Kind {
		case sm.EventOpenDone, sm.EventApplied, sm.EventSnapshotInstallDone:
			for {
				old := applied.Load()
				if e.Index <= old || applied.CompareAndSwap(old, e.Index) {
					break
				}
			}
		case sm.EventStorageFault:
			err := e.Err
			fault.Store(&err)
		default:
			return
		}
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	// Dragonboat panics when asked for a snapshot before it knows the
	// membership (replayed from the log after the replica starts): the
	// export waits for its first MembershipChanged.
	nh, events, err := startOffline(cfg, notify)
	if err != nil {
		return "", 0, err
	}
	defer nh.Close()
	lr, err := nh.GetLogReader(cfg.ShardID)
	if err != nil {
		return "", 0, fmt.Errorf("read the raft log: %w", err)
	}
	st, _ := lr.NodeState()
	commit := st.Commit
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, fmt.Errorf("create %s: %w", dir, err)
	}
	select {
	case <-events.known:
	case <-ctx.Done():
		return "", 0, fmt.Errorf("replay the raft log: %w", ctx.Err())
	}
	backoff := 20 * time.Millisecond
	for {
		if f := fault.Load(); f != nil {
			return "", 0, fmt.Errorf("state machine: %w", *f)
		}
		// The export is taken at the applied index: it must cover every
		// entry this node knows to be committed, or writes it
		// acknowledged would be dropped by the import. Replay may still be
		// going on: an earlier snapshot is dropped and asked for again.
		// (Entries that are not writes, such as a leader's empty entry,
		// reach no state machine event: the index is checked, not awaited.)
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		idx, err := nh.SyncRequestSnapshot(actx, cfg.ShardID, dragonboat.SnapshotOption{Exported: true, ExportPath: dir})
		cancel()
		switch {
		case err == nil && idx >= commit:
			out := filepath.Join(dir, fmt.Sprintf("snapshot-%016X", idx))
			log.Info("snapshot exported offline", zap.String("dir", out), zap.Uint64("index", idx), zap.Uint64("commit", commit))
			return out, idx, nil
		case err == nil:
			_ = os.RemoveAll(filepath.Join(dir, fmt.Sprintf("snapshot-%016X", idx)))
		case !errors.Is(err, dragonboat.ErrShardNotReady) && !errors.Is(err, dragonboat.ErrSystemBusy) &&
			!errors.Is(err, dragonboat.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded):
			return "", 0, fmt.Errorf("export snapshot: %w", err)
		}
		// Wait for the state machine to apply more, or back off.
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("export snapshot (applied %d of %d): %w", applied.Load(), commit, ctx.Err())
		case <-progress:
		case <-time.After(backoff):
			backoff = min(2*backoff, retryBackoffMax)
		}
	}
}

// SettleImport starts this node's replica offline once after an import
// (ImportSnapshot), lets it restore the imported snapshot into SQLite, and
// stops. Dragonboat's import forgets the snapshot's on-disk index
// (tools' getProcessedSnapshotRecord leaves OnDiskIndex 0): in the process
// that restores it, every snapshot the replica streams says 0 until its
// first write, and a follower receiving one skips the restore and runs at
// the leader's index with an empty database. A later process starts from
// the restored database's own index (Open), so the node's real start
// streams correct snapshots. The restore happens here instead of there:
// no extra copy.
func SettleImport(ctx context.Context, cfg Config) error {
	cfg = cfg.WithDefaults()
	var fault atomic.Pointer[error]
	notify := func(e sm.Event) {
		if e.Kind == sm.EventStorageFault {
			err := e.Err
			fault.Store(&err)
		}
	}
	nh, events, err := startOffline(cfg, notify)
	if err != nil {
		return err
	}
	defer nh.Close()
	select {
	case <-events.recovered:
	case <-ctx.Done():
		return fmt.Errorf("restore the imported snapshot: %w", ctx.Err())
	}
	if f := fault.Load(); f != nil {
		return fmt.Errorf("state machine: %w", *f)
	}
	cfg.Logger.Info("imported snapshot restored offline")
	return nil
}

// startOffline starts the NodeHost and restarts this node's replica with
// the network cut off (no message leaves the node).
func startOffline(cfg Config, notify func(sm.Event)) (*dragonboat.NodeHost, *offlineEvents, error) {
	nhc := nodeHostConfig(cfg)
	nhc.Expert.TransportFactory = offlineTransportFactory{}
	events := &offlineEvents{shardID: cfg.ShardID, known: make(chan struct{}), recovered: make(chan struct{})}
	nhc.SystemEventListener = events
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		return nil, nil, fmt.Errorf("start raft node host offline: %w", err)
	}
	if !nh.HasNodeInfo(cfg.ShardID, cfg.ReplicaID) {
		nh.Close()
		return nil, nil, fmt.Errorf("%w: no Raft state for replica %d in %s", ErrInvalidConfig, cfg.ReplicaID, cfg.NodeHostDir)
	}
	// Capture too: entries applied offline are applied, and their changes
	// must reach the outbox like any others.
	makeSM := sm.Factory(sm.Config{Dir: cfg.SMDir, ForeignKeys: cfg.ForeignKeys, Notify: notify, Logger: cfg.Logger.Named("sm"),
		Capture: cfg.Capture})
	rc := config.Config{
		ShardID: cfg.ShardID, ReplicaID: cfg.ReplicaID,
		ElectionRTT: cfg.ElectionRTT, HeartbeatRTT: cfg.HeartbeatRTT, CheckQuorum: true, PreVote: true,
		// No local snapshots offline: only an export, when asked.
		SnapshotEntries: 0, CompactionOverhead: cfg.CompactionOverhead, OrderedConfigChange: true,
		MaxInMemLogSize: cfg.MaxInMemLogSize, SnapshotCompressionType: config.Snappy, IsNonVoting: cfg.NonVoting,
	}
	if err := nh.StartOnDiskReplica(nil, false, func(s, r uint64) dbsm.IOnDiskStateMachine { return makeSM(s, r) }, rc); err != nil {
		nh.Close()
		return nil, nil, fmt.Errorf("start replica offline: %w", err)
	}
	return nh, events, nil
}

// readFlagFile decodes one of Dragonboat's flag files (8 bytes of MD5
// checksum, then the protobuf message), as internal/fileutil writes them.
func readFlagFile(dir, name string, msg interface{ Unmarshal([]byte) error }) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if len(b) < 8 || !bytes.Equal(b[:8], flagHash(b[8:])) {
		return fmt.Errorf("%s: corrupt flag file", filepath.Join(dir, name))
	}
	return msg.Unmarshal(b[8:])
}

// writeFlagFile replaces a flag file: written and synced beside it, renamed
// over it, the directory synced.
func writeFlagFile(dir, name string, msg interface{ Marshal() ([]byte, error) }) error {
	data, err := msg.Marshal()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(append(flagHash(data), data...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func flagHash(data []byte) []byte {
	s := md5.Sum(data)
	return s[8:]
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// offlineTransportFactory makes a transport that connects to no one: the
// NodeHost ExportOffline starts must not reach the cluster.
type offlineTransportFactory struct{}

func (offlineTransportFactory) Create(config.NodeHostConfig, raftio.MessageHandler, raftio.ChunkHandler) raftio.ITransport {
	return offlineTransport{}
}

func (offlineTransportFactory) Validate(addr string) bool { return stringutil.IsValidAddress(addr) }

type offlineTransport struct{}

func (offlineTransport) Name() string { return "skiff-offline" }
func (offlineTransport) Start() error { return nil }
func (offlineTransport) Close() error { return nil }
func (offlineTransport) GetConnection(context.Context, string) (raftio.IConnection, error) {
	return nil, ErrOffline
}
func (offlineTransport) GetSnapshotConnection(context.Context, string) (raftio.ISnapshotConnection, error) {
	return nil, ErrOffline
}

// offlineEvents closes known once the replica's membership is known, and
// recovered once it has restored a snapshot (and shrunk its file).
type offlineEvents struct {
	shardID       uint64
	known         chan struct{}
	once          sync.Once
	recovered     chan struct{}
	recoveredOnce sync.Once
}

var _ raftio.ISystemEventListener = (*offlineEvents)(nil)

func (e *offlineEvents) MembershipChanged(info raftio.NodeInfo) {
	if info.ShardID == e.shardID {
		e.once.Do(func() { close(e.known) })
	}
}

func (e *offlineEvents) NodeHostShuttingDown()                       {}
func (e *offlineEvents) NodeReady(raftio.NodeInfo)                   {}
func (e *offlineEvents) NodeUnloaded(raftio.NodeInfo)                {}
func (e *offlineEvents) NodeDeleted(raftio.NodeInfo)                 {}
func (e *offlineEvents) ConnectionEstablished(raftio.ConnectionInfo) {}
func (e *offlineEvents) ConnectionFailed(raftio.ConnectionInfo)      {}
func (e *offlineEvents) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (e *offlineEvents) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (e *offlineEvents) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (e *offlineEvents) SnapshotReceived(raftio.SnapshotInfo)        {}
func (e *offlineEvents) SnapshotCreated(raftio.SnapshotInfo)         {}
func (e *offlineEvents) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (e *offlineEvents) LogCompacted(raftio.EntryInfo)               {}
func (e *offlineEvents) LogDBCompacted(raftio.EntryInfo)             {}

func (e *offlineEvents) SnapshotRecovered(info raftio.SnapshotInfo) {
	if info.ShardID == e.shardID {
		e.recoveredOnce.Do(func() { close(e.recovered) })
	}
}
