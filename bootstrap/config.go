package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
	"go.uber.org/zap/zapcore"

	"github.com/skiffdb/skiff/actors/backup"
	"github.com/skiffdb/skiff/actors/cdc"
	"github.com/skiffdb/skiff/actors/ingest"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/sm"
)

// ErrInvalidConfig is returned by Config.Validate.
var ErrInvalidConfig = errors.New("invalid configuration")

// Defaults, as rqlited's (API.md 5).
const (
	DefaultHTTPAddr = "localhost:4001"
	DefaultRaftAddr = "localhost:4002"
	// DefaultShutdownTimeout bounds the whole shutdown.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultJoinAttempts and DefaultJoinInterval are rqlited's.
	DefaultJoinAttempts = 5
	DefaultJoinInterval = 3 * time.Second
	// DefaultBootstrapExpectTimeout is rqlited's.
	DefaultBootstrapExpectTimeout = 120 * time.Second
)

// Config is everything a node needs; cmd/skiffd fills it from flags.
type Config struct {
	// DataDir holds everything the node stores.
	DataDir string
	// NodeID is the node's immutable ID; default: the advertised Raft
	// address, as rqlited.
	NodeID      string
	HTTPAddr    string
	HTTPAdvAddr string
	RaftAddr    string
	RaftAdvAddr string
	// HTTPTLS, if set, serves the HTTP API over TLS (-http-cert and the
	// other -http-* TLS flags); peers still talk over the Raft port.
	HTTPTLS *gateway.TLS
	// NodeTLS, if set, protects everything on the Raft port: Raft, joins,
	// node metadata (-node-cert and the other -node-* flags); nil is
	// plaintext.
	NodeTLS *nodetls.Config
	// RaftWALDir holds the Raft log's write-ahead log (Pebble's WAL);
	// default <DataDir>/raft-wal. Put it on the lowest-latency device.
	RaftWALDir string
	// RaftLogLevel is Dragonboat's log level (DEBUG, INFO, WARN, ERROR).
	RaftLogLevel string
	// LogDBMemory is the Raft log store's memory preset.
	LogDBMemory string
	ForeignKeys bool
	// Auth, when set, checks every HTTP API request (rqlited's -auth); the
	// caller owns its reloads.
	Auth *auth.Store
	// JoinAs (rqlited's -join-as) names the user of Auth whose
	// credentials this node sends on joins and -bootstrap-expect notifies.
	JoinAs string
	// HTTPAllowOrigin is the CORS origin allowed (rqlited's -http-allow-origin).
	HTTPAllowOrigin string
	// HTTPServer serves plain HTTP: gateway.ServerFast (fasthttp, the
	// default) or gateway.ServerNet (net/http); HTTPS is net/http's.
	HTTPServer string
	// Raft timing (rqlited's flags); converted to ticks of RaftTick.
	RaftTick             time.Duration
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	RaftSnapshotEntries  uint64
	RaftApplyTimeout     time.Duration
	// WriteBatchHold is how long a busy write batch's successor may wait
	// for its writers (replica.Config.WriteBatchHold: 0 its default,
	// negative off).
	WriteBatchHold  time.Duration
	ShutdownTimeout time.Duration
	// Queue configures queued writes (rqlited's -write-queue-* flags).
	Queue queue.Config
	// Join lists members to join through on first start: Raft addresses
	// (rqlited v8+) or http:// API URLs (v7). Ignored once a member.
	Join         []string
	JoinAttempts int
	JoinInterval time.Duration
	// NonVoter makes a read replica: it joins and never votes.
	NonVoter bool
	// RemoveShutdown (-raft-remove-shutdown): a node that learns it was
	// removed from the cluster shuts down (the process exits cleanly);
	// without it, it stays up in phase removed, serving status only.
	RemoveShutdown bool
	// BootstrapExpect > 0: the nodes listed in Join (this one among them)
	// form a cluster together once that many have been found, within
	// BootstrapExpectTimeout.
	BootstrapExpect        int
	BootstrapExpectTimeout time.Duration
	// DiscoMode (dns, dns-srv) finds the -bootstrap-expect nodes by DNS
	// instead of a -join list; DiscoConfig is its JSON (or a file of it).
	DiscoMode   string
	DiscoConfig string
	// ClusterRemoveOnShutdown: a graceful shutdown removes the node from
	// the cluster first (rqlited's -raft-cluster-remove-shutdown).
	ClusterRemoveOnShutdown bool
	// NoShutdownStepdown turns off the leadership handover of a leader
	// shutting down gracefully (rqlited's -raft-shutdown-stepdown=false;
	// handing over is the default, as in rqlited).
	NoShutdownStepdown bool
	// NoMetrics turns off /metrics and its instruments (-metrics=false),
	// to measure what they cost.
	NoMetrics bool
	// ReapNodeTimeout and ReapReadOnlyNodeTimeout: the leader removes
	// voters, and read replicas, unreachable for longer; 0 never.
	ReapNodeTimeout, ReapReadOnlyNodeTimeout time.Duration
	// AutoVacuumInterval is rqlited's -auto-vacuum-int: how long the
	// leader leads between VACUUMs it proposes; 0: never.
	AutoVacuumInterval time.Duration
	// SnapshotInterval and SnapshotWALSize: every SnapshotInterval, a
	// SQLite WAL past SnapshotWALSize bytes triggers a snapshot and a WAL
	// checkpoint (rqlited's -raft-snap-int, -raft-snap-wal-size); 0: never.
	SnapshotInterval time.Duration
	SnapshotWALSize  int64
	// CDC turns on change data capture out (-cdc-config); nil is off. Its
	// Dir, NodeID and Logger are set by the node.
	CDC *cdc.Config
	// Version and build details, reported over HTTP.
	Version, Commit, BuildTime string
	Logger                     *zap.Logger
	// Failpoints (tests only, built with -tags failpoints); nil has none.
	Failpoints *failpoint.Set
	// Ingest takes SQL commands in from NATS JetStream (-ingest-config);
	// nil takes none.
	Ingest *ingest.Config
	// HTTPMaxConns, HTTPMaxConnsPerIP, RaftMaxConns and RaftMaxConnsPerIP
	// cap each port's open connections, in total and from one remote IP
	// (-http-max-conns and the like); 0: the default (gateway's, and
	// raftcaps.go's).
	HTTPMaxConns, HTTPMaxConnsPerIP int
	RaftMaxConns, RaftMaxConnsPerIP int
	// AutoBackup uploads backups while this node leads (-auto-backup);
	// nil: off.
	AutoBackup *backup.Config
	// AutoRestore boots a new data directory from a backup (-auto-restore);
	// nil: off.
	AutoRestore *backup.RestoreConfig
	// restoreBootHook (tests) runs just before an -auto-restore boots;
	// an error stops the start there, as a crash in that window would.
	restoreBootHook func() error
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.HTTPAdvAddr == "" {
		c.HTTPAdvAddr = c.HTTPAddr
	}
	if c.RaftAddr == "" {
		c.RaftAddr = DefaultRaftAddr
	}
	if c.RaftAdvAddr == "" {
		c.RaftAdvAddr = c.RaftAddr
	}
	if c.NodeID == "" {
		c.NodeID = c.RaftAdvAddr
	}
	if c.RaftWALDir == "" && c.DataDir != "" {
		c.RaftWALDir = filepath.Join(c.DataDir, "raft-wal")
	}
	if c.RaftLogLevel == "" {
		c.RaftLogLevel = "WARN"
	}
	if c.LogDBMemory == "" {
		c.LogDBMemory = replica.LogDBSmall
	}
	if c.RaftTick == 0 {
		c.RaftTick = replica.DefaultRTT
	}
	if c.RaftHeartbeatTimeout == 0 {
		c.RaftHeartbeatTimeout = c.RaftTick * replica.DefaultHeartbeatRTT
	}
	if c.RaftElectionTimeout == 0 {
		c.RaftElectionTimeout = c.RaftTick * replica.DefaultElectionRTT
	}
	if c.RaftSnapshotEntries == 0 {
		c.RaftSnapshotEntries = replica.DefaultSnapshotEntries
	}
	if c.RaftApplyTimeout == 0 {
		c.RaftApplyTimeout = replica.DefaultApplyTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Queue = c.Queue.WithDefaults()
	if c.Ingest != nil {
		ic := c.Ingest.WithDefaults()
		c.Ingest = &ic
	}
	if c.JoinAttempts == 0 {
		c.JoinAttempts = DefaultJoinAttempts
	}
	if c.JoinInterval == 0 {
		c.JoinInterval = DefaultJoinInterval
	}
	if c.BootstrapExpectTimeout == 0 {
		c.BootstrapExpectTimeout = DefaultBootstrapExpectTimeout
	}
	return c
}

// Validate checks c as rqlited's flag validation does (API.md 5).
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	if c.DataDir == "" {
		return bad("data directory is required")
	}
	for name, addr := range map[string]string{"-http-addr": c.HTTPAddr, "-http-adv-addr": c.HTTPAdvAddr,
		"-raft-addr": c.RaftAddr, "-raft-adv-addr": c.RaftAdvAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("%s %q is not host:port: %v", name, addr, err)
		}
	}
	if c.HTTPTLS != nil {
		if err := c.HTTPTLS.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.NodeTLS != nil {
		if err := c.NodeTLS.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.HTTPAdvAddr == c.RaftAdvAddr {
		return bad("advertised HTTP and Raft addresses must differ (%s)", c.HTTPAdvAddr)
	}
	if c.HTTPMaxConns < 0 || c.HTTPMaxConnsPerIP < 0 || c.RaftMaxConns < 0 || c.RaftMaxConnsPerIP < 0 {
		return bad("connection caps must not be negative")
	}
	if _, err := raftLogLevel(c.RaftLogLevel); err != nil {
		return err
	}
	if err := c.Queue.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Ingest != nil {
		if err := c.Ingest.Validate(); err != nil {
			return fmt.Errorf("%w: -ingest-config: %w", ErrInvalidConfig, err)
		}
	}
	// Only the well-formedness of the first-start flags is checked here:
	// how they combine matters on a new data directory only
	// (firstStartCheck), since a restart needs none of them (API.md 5).
	if c.DiscoMode != "" {
		if _, err := parseDiscoConfig(c.DiscoMode, c.DiscoConfig); err != nil {
			return bad("%v", err)
		}
	}
	if c.BootstrapExpect < 0 {
		return bad("-bootstrap-expect must not be negative")
	}
	if c.ReapNodeTimeout < 0 || c.ReapReadOnlyNodeTimeout < 0 || c.SnapshotInterval < 0 || c.SnapshotWALSize < 0 || c.AutoVacuumInterval < 0 {
		return bad("-raft-reap-node-timeout, -raft-reap-read-only-node-timeout, -raft-snap-int, -raft-snap-wal-size and -auto-vacuum-int must not be negative")
	}
	if c.CDC != nil {
		if c.NonVoter {
			return bad("-cdc-config cannot be used with -raft-non-voter: change data capture runs on voters only, as in rqlite")
		}
		if err := c.CDC.WithDefaults().Validate(); err != nil {
			return bad("-cdc-config: %v", err)
		}
		if !sm.CaptureSupported() {
			return bad("-cdc-config: this skiffd was built without the sqlite_preupdate_hook tag, which change data capture needs (build it with make)")
		}
	}
	if err := c.autoBackupCheck(); err != nil {
		return err
	}
	if c.JoinAs != "" {
		if c.Auth == nil {
			return bad("-join-as %q needs -auth: the password is read from this node's own credentials file, as in rqlite", c.JoinAs)
		}
		if _, ok := c.Auth.Password(c.JoinAs); !ok {
			return bad("-join-as user %q is not in the -auth credentials file", c.JoinAs)
		}
	}
	if c.JoinAttempts < 1 || c.JoinInterval <= 0 {
		return bad("-join-attempts must be >= 1 and -join-interval positive")
	}
	if c.RaftTick < time.Millisecond {
		return bad("raft tick %s is below 1ms", c.RaftTick)
	}
	if c.RaftHeartbeatTimeout < c.RaftTick || c.RaftElectionTimeout <= 2*c.RaftHeartbeatTimeout {
		return bad("raft election timeout (%s) must exceed twice the heartbeat timeout (%s), itself at least one tick (%s)",
			c.RaftElectionTimeout, c.RaftHeartbeatTimeout, c.RaftTick)
	}
	return nil
}

// firstStartCheck applies the rules that only make sense on a new data
// directory: how a node enters a cluster (-join, -bootstrap-expect,
// -disco-mode, -raft-non-voter). A restarted node is already a member and
// needs none of these flags (API.md 5), so startReplica runs this only
// when no identity is stored.
func (c Config) firstStartCheck() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	if c.NonVoter && len(c.Join) == 0 {
		return bad("-raft-non-voter needs -join on a new data directory: a read replica cannot bootstrap a cluster")
	}
	if c.DiscoMode != "" && (c.BootstrapExpect <= 0 || len(c.Join) > 0) {
		return bad("-disco-mode needs -bootstrap-expect and cannot be combined with -join")
	}
	if c.BootstrapExpect > 0 && ((len(c.Join) == 0 && c.DiscoMode == "") || c.NonVoter) {
		return bad("-bootstrap-expect needs the founding voters, by -join or -disco-mode (and a voter)")
	}
	return nil
}

// unfinishedEntryCheck covers a restart whose first start stopped before
// the node entered a cluster: its identity says it is still joining or
// still looking for its -bootstrap-expect peers, and that needs the same
// flags again; without them it would fail late with a puzzling error.
func (c Config) unfinishedEntryCheck(id identity) error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	switch {
	case id.Joining && len(c.Join) == 0:
		return bad("this node's join did not complete before it stopped: restart it with -join")
	case id.Expecting && (c.BootstrapExpect <= 0 || (len(c.Join) == 0 && c.DiscoMode == "")):
		return bad("this node had not found its -bootstrap-expect peers when it stopped: restart it with the same -bootstrap-expect and -join (or -disco-mode)")
	}
	return nil
}

// autoBackupCheck validates -auto-backup and -auto-restore.
func (c Config) autoBackupCheck() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	if c.AutoBackup != nil {
		if err := c.AutoBackup.Validate(); err != nil {
			return bad("-auto-backup: %v", err)
		}
	}
	if c.AutoRestore == nil {
		return nil
	}
	if err := c.AutoRestore.WithDefaults().Validate(); err != nil {
		return bad("-auto-restore: %v", err)
	}
	// Skiff boots a restore as /boot does, which needs a cluster of one:
	// the staged file exists on this node only.
	if c.BootstrapExpect > 0 || c.DiscoMode != "" {
		return bad("-auto-restore needs a single-node start: restore one node, then join the others to it (not with -bootstrap-expect or -disco-mode)")
	}
	if len(c.Join) > 0 {
		return bad("-auto-restore cannot be used with -join, as in rqlite: restore the first node, then join the others to it")
	}
	if c.NonVoter {
		return bad("-auto-restore cannot be used on a read replica (-raft-non-voter)")
	}
	return nil
}

func raftLogLevel(s string) (zapcore.Level, error) {
	switch s {
	case "DEBUG", "debug":
		return zapcore.DebugLevel, nil
	case "INFO", "info":
		return zapcore.InfoLevel, nil
	case "WARN", "warn", "WARNING", "warning":
		return zapcore.WarnLevel, nil
	case "ERROR", "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("%w: -raft-log-level %q (want DEBUG, INFO, WARN or ERROR)", ErrInvalidConfig, s)
}

// Directory layout under DataDir.
func (c Config) localStoreDir() string { return filepath.Join(c.DataDir, "node") }
func (c Config) nodeHostDir() string   { return filepath.Join(c.DataDir, "raft") }
func (c Config) smDir() string         { return filepath.Join(c.DataDir, "db") }
func (c Config) exportDir() string     { return filepath.Join(c.DataDir, "export") }
func (c Config) cdcDir() string        { return filepath.Join(c.DataDir, "cdc") }

// apiAddr is the advertised HTTP address as other nodes record it for
// api_addr and redirects: with its scheme once TLS is on, so that a 301 or
// /nodes never sends a client to http:// on an HTTPS port (a bare
// host:port still means http://, as before).
func (c Config) apiAddr() string {
	if c.HTTPTLS != nil {
		return "https://" + c.HTTPAdvAddr
	}
	return c.HTTPAdvAddr
}

// isOwnAPIAddr reports whether a -join entry names this node's HTTP API.
func (c Config) isOwnAPIAddr(addr string) bool {
	return strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://") == c.HTTPAdvAddr
}
