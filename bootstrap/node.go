package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/backup"
	"github.com/skiffdb/skiff/actors/cdc"
	"github.com/skiffdb/skiff/actors/ingest"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/gateway/metrics"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// ErrIdentityChanged is returned when flags contradict the stored identity.
var ErrIdentityChanged = errors.New("node identity changed")

// shutdownSteps is the one place the shutdown order is written down.
var shutdownSteps = []actors.Step{
	{Name: "gateway", Reason: "stop accepting requests and let in-flight ones finish while Raft still runs"},
	{Name: "ingest", Reason: "stop taking messages from NATS: those in flight are applied and acked while Raft still runs, the rest stay in the stream for other nodes"},
	{Name: "queue", Reason: "write what is still queued while Raft still runs"},
	{Name: "cdc", Reason: "stop transmitting while Raft still runs: it proposes high-water marks (the outbox closes after Raft)"},
	{Name: "backup", Reason: "stop uploading before Raft stops: a backup in progress reads the database through the replica"},
	{Name: "replica", Reason: "stop Raft: closes the state machine (checkpointing SQLite's WAL) and the Raft log"},
	{Name: "lifecycle", Reason: "last: nothing reports state any more"},
}

// Node is a running node.
type Node struct {
	cfg    Config
	log    *zap.Logger
	sup    *actors.Supervisor
	life   *lifecycle.Lifecycle
	httpLn net.Listener
	mux    *raftMux
	// metrics is nil with -metrics=false (metrics.go).
	metrics *metrics.Metrics
	// raftIn brings the mux's Raft connections to the running transport.
	raftIn  *raftnet.Inbound
	store   *localStore
	startup chan error
	started chan struct{}
	// stopping is closed when Shutdown begins (ends join retries).
	stopping     chan struct{}
	stoppingOnce sync.Once
	// peers is the node's one client for calls to peers' Raft ports:
	// metadata (a recovering node's target), the gateway's /nodes and
	// CDC backfill. No overall timeout: each call bounds its own.
	peers *http.Client
	// stopCtx ends with stopping: it bounds startup's calls to peers.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	// removed is closed when this node learns it was removed from the
	// cluster and -raft-remove-shutdown asks it to shut down.
	removed     chan struct{}
	removedOnce sync.Once
	// offer is the index this node recovered at from a peers.json, served
	// to the other listed voters (peers.go).
	offer atomic.Pointer[peersOffer]
	// export is the directory of that snapshot while voters behind may
	// fetch it.
	export atomic.Pointer[string]
	// cdcOut and cdcSvc are CDC's outbox and transmitter (nil: off). The
	// outbox is the state machine's sink: it closes after the replica.
	cdcOut *cdc.Outbox
	cdcSvc *cdc.Service
	// cdcCreated: this start created the outbox directory, so a start
	// refused before the replica runs removes it again.
	cdcCreated bool
	// tls is node-to-node TLS on the Raft port (nil: plaintext).
	tls *nodetls.TLS
	// restoring is set while -auto-restore may still boot the database:
	// the gateway is not told the node is ready until it is done.
	restoring atomic.Bool
	// gw is the HTTP gateway (-bootstrap-expect asks it who notified).
	gw *gateway.Gateway
}

// Start binds the HTTP port and starts the actors; the replica starts in the
// background, so Start returns as soon as HTTP is being served.
func Start(cfg Config) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	lvl, _ := raftLogLevel(cfg.RaftLogLevel)
	dbLogs.install(log, lvl)
	nodeTLS, err := openNodeTLS(cfg.NodeTLS, log.Named("nodetls"))
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			nodeTLS.Close()
		}
	}()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("bind HTTP %s: %w", cfg.HTTPAddr, err)
	}
	raftLn, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("bind Raft %s: %w", cfg.RaftAddr, err)
	}
	life, err := lifecycle.New(lifecycle.Config{Logger: log.Named("lifecycle")})
	if err != nil {
		ln.Close()
		raftLn.Close()
		return nil, err
	}
	// Handed out now; it refuses every call until startup has started it
	// (and booted any -auto-restore).
	rep := replica.NewHandle()
	n := &Node{cfg: cfg, log: log, sup: actors.NewSupervisor(log.Named("supervisor")), life: life, httpLn: ln,
		startup: make(chan error, 1), started: make(chan struct{}), stopping: make(chan struct{}), removed: make(chan struct{}),
		peers: nodeTLS.HTTPClient(0), tls: nodeTLS}
	n.restoring.Store(cfg.AutoRestore != nil)
	var sections []gateway.Section
	if cfg.CDC != nil {
		if err := n.openCDC(rep); err != nil {
			ln.Close()
			raftLn.Close()
			return nil, err
		}
		sections = append(sections, gateway.Section{Name: "cdc", Status: n.cdcSvc.Status, Vars: n.cdcSvc.Vars})
	}
	qc := cfg.Queue
	qc.Logger = log.Named("queue")
	q, err := queue.New(qc, rep)
	if err != nil {
		ln.Close()
		raftLn.Close()
		n.closeCDC()
		return nil, err
	}
	// Every node consumes (one shared durable consumer); it fetches only
	// while the node serves data.
	var ing *ingest.Service
	if cfg.Ingest != nil {
		ic := *cfg.Ingest
		ic.ReadyChanged = life.Changed
		ing, err = ingest.New(ic, rep, func() bool { return life.State().ServesData() }, log.Named("ingest"))
		if err != nil {
			ln.Close()
			raftLn.Close()
			n.closeCDC()
			return nil, err
		}
		sections = append(sections, gateway.Section{Name: "ingest", Status: ing.Status, Vars: ing.Vars})
	}
	// n.mux is set below, before the gateway serves.
	sections = append(sections, gateway.Section{Name: "mux", Status: func() any { return n.mux.status() }})
	up, upSections, err := newUploader(cfg, life, rep, func() bool { return !n.restoring.Load() }, log.Named("backup"))
	if err != nil {
		ln.Close()
		raftLn.Close()
		n.closeCDC()
		return nil, err
	}
	sections = append(sections, upSections...)
	if !cfg.NoMetrics {
		n.metrics, err = newMetrics(cfg, life, q, sections)
		if err != nil {
			ln.Close()
			raftLn.Close()
			n.closeCDC()
			return nil, err
		}
	}
	gw, err := gateway.New(gateway.Config{
		MaxConns: cfg.HTTPMaxConns, MaxConnsPerIP: cfg.HTTPMaxConnsPerIP,
		AdvAddr: cfg.HTTPAdvAddr, AllowOrigin: cfg.HTTPAllowOrigin, Server: cfg.HTTPServer, Auth: cfg.Auth, Version: cfg.Version, Commit: cfg.Commit, BuildTime: cfg.BuildTime,
		Logger: log.Named("gateway"), Failpoints: cfg.Failpoints, TLS: cfg.HTTPTLS, PeerTLS: nodeTLS.Client(), Peers: n.peers, Metrics: n.metrics,
		Store: gateway.StoreInfo{
			DataDir: absPath(cfg.DataDir), SQLiteDir: cfg.smDir(),
			SnapshotThreshold: cfg.RaftSnapshotEntries, SnapshotInterval: cfg.SnapshotInterval, TrailingLogs: replica.DefaultCompactionOverhead,
			ForeignKeys: cfg.ForeignKeys, CDC: cfg.CDC != nil,
		},
		Sections: sections,
	}, ln, rep, q, n.publishedState)
	if err != nil {
		ln.Close()
		raftLn.Close()
		n.closeCDC()
		return nil, err
	}
	n.gw = gw
	n.stopCtx, n.cancelStop = context.WithCancel(context.Background())
	n.raftIn = &raftnet.Inbound{}
	n.mux = newRaftMux(raftLn, n.raftIn.Serve, n.withPeersOffer(n.withCDCPeer(gw.PeerHandler())), log.Named("raftmux"))
	n.mux.useTLS(nodeTLS)
	if err := n.mux.setLimits(cfg.RaftMaxConns, cfg.RaftMaxConnsPerIP); err != nil {
		ln.Close()
		raftLn.Close()
		n.closeCDC()
		return nil, err
	}
	n.mux.start()
	n.mux.watchMembers(n.stopCtx, life)
	// The replica starts in the background and may never start (startup
	// can fail first); its shutdown step is then skipped, not an error.
	n.sup.Declare("replica", "cdc")
	n.sup.Start("lifecycle", life)
	n.sup.Start("queue", q)
	n.sup.Start("gateway", gw)
	if ing != nil {
		n.sup.Start("ingest", ing)
	} else {
		n.sup.Declare("ingest")
	}
	if up != nil {
		n.sup.Start("backup", up)
	} else {
		n.sup.Declare("backup")
	}
	log.Info("http serving", zap.String("addr", ln.Addr().String()), zap.String("adv_addr", cfg.HTTPAdvAddr))
	go func() {
		defer close(n.started)
		n.startup <- n.startReplica(rep)
	}()
	started = true
	return n, nil
}

// HTTPAddr is the bound HTTP address.
func (n *Node) HTTPAddr() net.Addr { return n.httpLn.Addr() }

// State is the node's published lifecycle state.
func (n *Node) State() *lifecycle.State { return n.life.State() }

// startReplica loads (or creates) the identity and starts the replica.
func (n *Node) startReplica(rep *replica.Replica) error {
	c := n.cfg
	if err := c.Failpoints.Inject(failpoint.BootstrapStart, n.stopping); err != nil {
		return err
	}
	for _, d := range []string{c.DataDir, c.nodeHostDir(), c.RaftWALDir, c.smDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	store, err := openLocalStore(c.localStoreDir(), n.log)
	if err != nil {
		return err
	}
	n.store = store
	id, found, err := store.loadIdentity()
	if err != nil {
		return err
	}
	var restored *backup.Restored
	if found {
		switch {
		case id.RestorePending:
			// The last start saved the identity but never booted the
			// restored file: download and boot it again.
			if restored, err = n.resumeRestore(); err != nil {
				return err
			}
			defer restored.Remove()
		case c.AutoRestore != nil:
			n.log.Info("auto-restore requested, but this data directory already holds a node: skipping", zap.String("dir", c.DataDir))
		}
		// peers.json, a re-join under a new address (rejoin.go).
		if c, id, err = n.checkStoredIdentity(c, store, id); err != nil {
			return err
		}
		if err := c.unfinishedEntryCheck(id); err != nil {
			return err
		}
		save, err := reconcileNonVoter(&id, c.NonVoter)
		if err != nil {
			return err
		}
		if save {
			if err := store.saveIdentity(id); err != nil {
				return err
			}
		}
		if id.isNonVoter() && c.CDC != nil {
			n.discardNewCDC()
			return fmt.Errorf("%w: -cdc-config cannot be used on this node: its data directory belongs to a read replica (non-voter), "+
				"and change data capture runs on voters only, as in rqlite", ErrInvalidConfig)
		}
		if id.isNonVoter() && !c.NonVoter {
			n.log.Info("restarting as a read replica, as this node was first started (-raft-non-voter is kept)")
		}
	} else {
		// The rules on how a node enters a cluster apply to a new data
		// directory only (API.md 5: restarts need no -join).
		if err := c.firstStartCheck(); err != nil {
			return err
		}
		if c.AutoRestore != nil {
			if restored, err = n.downloadRestore(); err != nil {
				return err
			}
			if restored != nil {
				defer restored.Remove()
			}
		}
		// A node that bootstraps alone is replica 1 of shard 1; a joining
		// node picks a random replica ID, so that a node re-joining with
		// new data never reuses the ID of its removed self (Raft refuses).
		nonVoter := c.NonVoter
		id = identity{NodeID: c.NodeID, ShardID: replica.DefaultShardID, ReplicaID: 1, RaftAddr: c.RaftAdvAddr, NonVoter: &nonVoter,
			RestorePending: restored != nil}
		switch {
		case c.BootstrapExpect > 0:
			id.ReplicaID = randomReplicaID()
			id.Expecting = true
		case len(c.Join) > 0:
			id.ReplicaID = randomReplicaID()
			id.Joining, id.Joiner = true, true
		}
		if err := store.saveIdentity(id); err != nil {
			return err
		}
	}
	publish := func(id identity) {
		n.life.Notify(lifecycle.IdentityKnown{Identity: lifecycle.Identity{
			NodeID: id.NodeID, ShardID: id.ShardID, ReplicaID: id.ReplicaID, RaftAddr: id.RaftAddr,
			APIAddr: c.apiAddr(), Voter: !id.isNonVoter(), Expecting: id.Expecting, Founders: id.Founders,
		}})
	}
	publish(id)
	join := id.Joiner
	initial := map[uint64]string{id.ReplicaID: id.RaftAddr}
	if id.Expecting {
		// Until the founding members are known and Raft has them, every
		// start discovers them again (the same -join list gives the same
		// set); a cluster that formed meanwhile is joined instead.
		n.life.Notify(lifecycle.JoinBegun{})
		members, formedVia, err := n.expect(id)
		if err != nil {
			return err
		}
		if formedVia != "" {
			id.Expecting, id.Joining, id.Joiner = false, true, true
			if err := n.join(id, []string{formedVia}); err != nil {
				return err
			}
			id.Joining = false
			join = true
		} else {
			// Recorded before Raft starts: a crash before Raft records
			// them must restart with the same founders, never alone.
			id.Expecting, id.Founders = false, members
			if err := store.saveIdentity(id); err != nil {
				return err
			}
		}
		publish(id)
	} else if id.Joining {
		// Until the join is acknowledged (and recorded), every start asks
		// again: a crash between the two must not leave a node that
		// neither bootstraps nor joins.
		n.life.Notify(lifecycle.JoinBegun{})
		if err := n.join(id, c.Join); err != nil {
			return err
		}
		if err := n.peersJoined(c); err != nil {
			return err
		}
		id.Joining = false // join saved it so; later saves must too
	} else if len(c.Join) > 0 {
		// Already holds Raft state: a no-op if the targets' cluster is
		// this node's, refused if it is another (join.go).
		if err := n.confirmMember(id, c.Join); err != nil {
			return err
		}
	}
	tick := c.RaftTick
	rc := replica.Config{
		NodeHostDir: c.nodeHostDir(), WALDir: c.RaftWALDir, SMDir: c.smDir(),
		RaftAddr: c.RaftAdvAddr, RaftInbound: n.raftIn, RaftTLS: n.tls.Client(),
		ShardID: id.ShardID, ReplicaID: id.ReplicaID,
		InitialMembers: founders(id, initial),
		Join:           join, Voter: !id.isNonVoter(), NonVoting: id.Joiner && !id.Promoted,
		OnPromoted: func() {
			id.Promoted = true
			if err := store.saveIdentity(id); err != nil {
				n.log.Error("could not record the promotion to voter", zap.Error(err))
			}
		},
		RTT:             tick,
		HeartbeatRTT:    uint64(max(1, c.RaftHeartbeatTimeout/tick)),
		ElectionRTT:     uint64(max(3, c.RaftElectionTimeout/tick)),
		ExportDir:       c.exportDir(),
		SnapshotEntries: c.RaftSnapshotEntries, ApplyTimeout: c.RaftApplyTimeout,
		WriteBatchHold: c.WriteBatchHold,
		LogDBMemory:    c.LogDBMemory, ForeignKeys: c.ForeignKeys,
		Logger: n.log.Named("replica"), Lifecycle: n.life,
		LeaderProgress: n.leaderProgress, Failpoints: c.Failpoints,
		StepdownOnShutdown: !c.NoShutdownStepdown, RemoveOnShutdown: c.ClusterRemoveOnShutdown,
		LeaveTimeout: leaveTimeout(c.ShutdownTimeout),
		ReapTimeout:  c.ReapNodeTimeout, ReapNonVotingTimeout: c.ReapReadOnlyNodeTimeout,
		AutoVacuumInterval: c.AutoVacuumInterval,
		SnapshotInterval:   c.SnapshotInterval, SnapshotWALSize: c.SnapshotWALSize,
		CheckRemoved: n.checkRemoved, OnRemoved: n.onRemoved,
		Capture: n.captureConfig(),
	}
	if n.metrics != nil {
		rc.Observer = n.metrics
	}
	rc.Held = restored != nil
	if err := rep.Configure(rc); err != nil {
		return err
	}
	n.sup.Start("replica", rep)
	if restored != nil {
		if err := n.bootRestored(rep, restored); err != nil {
			return err
		}
		id.RestorePending = false
		if err := store.saveIdentity(id); err != nil {
			return fmt.Errorf("auto-restore: record the boot: %w", err)
		}
	}
	rep.Release()
	n.restoring.Store(false)
	if n.cdcSvc != nil {
		n.sup.Start("cdc", n.cdcSvc)
	}
	return nil
}

// openCDC opens the CDC outbox under <data>/cdc and builds the transmitter;
// it transmits while lifecycle says this node leads, and replicates the
// acknowledged index through the replica.
func (n *Node) openCDC(rep *replica.Replica) error {
	c := *n.cfg.CDC
	c.Dir, c.NodeID, c.Logger = n.cfg.cdcDir(), n.cfg.NodeID, n.log.Named("cdc")
	c.PeerTLS, c.PeerClient = n.tls.Client(), n.peers
	if _, err := os.Stat(c.Dir); errors.Is(err, os.ErrNotExist) {
		n.cdcCreated = true
	}
	// A node that installed a snapshot past changes it never captured
	// fetches them from the other voters' peer handlers (withCDCPeer),
	// on the Raft port.
	c.Peers = func() []string { return cdcPeers(n.life.State()) }
	c.RoleChanged = n.life.Changed
	ob, err := cdc.OpenOutbox(c.Dir, c.Logger)
	if err != nil {
		return err
	}
	svc, err := cdc.New(c, ob, func() bool { return n.life.State().IsLeader() }, rep)
	if err != nil {
		ob.Close()
		return err
	}
	n.cdcOut, n.cdcSvc = ob, svc
	return nil
}

// cdcPeers is the Raft addresses of the other voters.
func cdcPeers(st *lifecycle.State) []string {
	var out []string
	for _, m := range st.Members {
		if m.Voter && m.ReplicaID != st.Identity.ReplicaID && m.RaftAddr != "" {
			out = append(out, m.RaftAddr)
		}
	}
	return out
}

// withCDCPeer serves cdc.PeerPath (this node's outbox, to a voter that
// installed a snapshot past changes it never captured) in front of next.
func (n *Node) withCDCPeer(next http.Handler) http.Handler {
	if n.cdcOut == nil {
		return next
	}
	h := n.cdcOut.PeerHandler(func() uint64 { return n.life.State().Progress.AppliedIndex })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == cdc.PeerPath {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// captureConfig is the state machine's capture configuration (nil: off).
func (n *Node) captureConfig() *sm.CaptureConfig {
	if n.cdcOut == nil {
		return nil
	}
	return n.cfg.CDC.CaptureConfig(n.cdcOut)
}

// discardNewCDC closes the outbox and, when this start created it, removes
// its directory: a refused start leaves no half-made state behind.
func (n *Node) discardNewCDC() {
	if err := n.closeCDC(); err != nil {
		n.log.Warn("closing the CDC outbox", zap.Error(err))
	}
	if n.cdcCreated {
		if err := os.RemoveAll(n.cfg.cdcDir()); err != nil {
			n.log.Warn("removing the CDC outbox this start created", zap.Error(err))
		}
	}
}

func (n *Node) closeCDC() error {
	if n.cdcOut == nil {
		return nil
	}
	err := n.cdcOut.Close()
	n.cdcOut = nil
	return err
}

// Wait blocks until ctx ends (a signal) or the node fails, then shuts the
// node down in order. It returns the failure, if any.
func (n *Node) Wait(ctx context.Context) error {
	var cause error
	startup := n.startup
wait:
	for {
		select {
		case <-ctx.Done():
			n.log.Info("shutdown requested")
			break wait
		case cause = <-n.sup.Failed():
			break wait
		case <-n.removed:
			// rqlite's -raft-remove-shutdown: a removed node exits
			// cleanly (exit status 0), not as a failure.
			n.log.Info("shutting down: this node was removed from the cluster (-raft-remove-shutdown)")
			break wait
		case err := <-startup:
			startup = nil
			if err != nil {
				cause = err
				break wait
			}
		}
	}
	if cause != nil {
		n.log.Error("node failed; shutting down", zap.Error(cause))
		n.life.Notify(lifecycle.Failed{Err: cause.Error()})
	}
	return errors.Join(cause, n.Shutdown())
}

// Shutdown stops the node in shutdownSteps order within ShutdownTimeout.
func (n *Node) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	// Refuse new data requests before anything stops.
	n.life.SetStopping(ctx)
	n.stoppingOnce.Do(func() { close(n.stopping); n.cancelStop() })
	_ = n.cfg.Failpoints.Inject(failpoint.BootstrapShutdown, ctx.Done())
	// Startup owns the local store and starts the replica; let it finish
	// so that everything it opened is stopped below.
	select {
	case <-n.started:
	case <-ctx.Done():
	}
	err := n.sup.Shutdown(ctx, shutdownSteps)
	if n.mux != nil {
		n.mux.close()
		n.mux = nil
	}
	n.tls.Close()
	select {
	case <-n.started:
		if n.store != nil {
			err = errors.Join(err, n.store.Close())
			n.store = nil
		}
		// After the replica stopped: the state machine no longer captures.
		err = errors.Join(err, n.closeCDC())
	default:
		// Startup still runs (it was told to stop) and uses the store;
		// the process exits without closing it, which Pebble survives.
		err = errors.Join(err, errors.New("startup did not finish within the shutdown timeout"))
	}
	if err != nil {
		n.log.Error("shutdown incomplete", zap.Error(err))
	} else {
		n.log.Info("shutdown complete")
	}
	return err
}

// leaveTimeout bounds the handover and self-removal of a graceful
// shutdown: at most a third of the whole shutdown, so stopping Raft and
// closing the stores still fit in it.
func leaveTimeout(shutdown time.Duration) time.Duration {
	return min(replica.DefaultLeaveTimeout, shutdown/3)
}

// onRemoved is replica.Config's OnRemoved: with -raft-remove-shutdown, the
// node shuts down; without, it stays up in phase removed (status only).
func (n *Node) onRemoved(string) {
	if n.cfg.RemoveShutdown {
		n.removedOnce.Do(func() { close(n.removed) })
	}
}

// founders is the member set a new shard starts with: the recorded
// -bootstrap-expect founders, or this node alone.
func founders(id identity, alone map[uint64]string) map[uint64]string {
	if len(id.Founders) > 0 {
		return id.Founders
	}
	return alone
}

// absPath is p made absolute for display (p itself if that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
