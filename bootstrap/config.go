package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/failpoint"
	"go.uber.org/zap/zapcore"

	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
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
	// RaftWALDir holds the Raft log's write-ahead log (Pebble's WAL);
	// default <DataDir>/raft-wal. Put it on the lowest-latency device.
	RaftWALDir string
	// RaftLogLevel is Dragonboat's log level (DEBUG, INFO, WARN, ERROR).
	RaftLogLevel string
	// LogDBMemory is the Raft log store's memory preset.
	LogDBMemory string
	ForeignKeys bool
	// HTTPAllowOrigin is the CORS origin allowed (rqlited's -http-allow-origin).
	HTTPAllowOrigin string
	// Raft timing (rqlited's flags); converted to ticks of RaftTick.
	RaftTick             time.Duration
	RaftHeartbeatTimeout time.Duration
	RaftElectionTimeout  time.Duration
	RaftSnapshotEntries  uint64
	RaftApplyTimeout     time.Duration
	ShutdownTimeout      time.Duration
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
	// Version and build details, reported over HTTP.
	Version, Commit, BuildTime string
	Logger                     *zap.Logger
	// Failpoints (tests only, built with -tags failpoints); nil has none.
	Failpoints *failpoint.Set
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
	if c.HTTPAdvAddr == c.RaftAdvAddr {
		return bad("advertised HTTP and Raft addresses must differ (%s)", c.HTTPAdvAddr)
	}
	if _, err := raftLogLevel(c.RaftLogLevel); err != nil {
		return err
	}
	if err := c.Queue.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.NonVoter && len(c.Join) == 0 {
		return bad("-raft-non-voter needs -join: a read replica cannot bootstrap a cluster")
	}
	if c.DiscoMode != "" {
		if c.BootstrapExpect <= 0 || len(c.Join) > 0 {
			return bad("-disco-mode needs -bootstrap-expect and cannot be combined with -join")
		}
		if _, err := parseDiscoConfig(c.DiscoMode, c.DiscoConfig); err != nil {
			return bad("%v", err)
		}
	}
	if c.BootstrapExpect < 0 || (c.BootstrapExpect > 0 && ((len(c.Join) == 0 && c.DiscoMode == "") || c.NonVoter)) {
		return bad("-bootstrap-expect needs the founding voters, by -join or -disco-mode (and a voter)")
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
