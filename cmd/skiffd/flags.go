package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/skiffdb/skiff/actors/backup"
	"github.com/skiffdb/skiff/actors/cdc"
	"github.com/skiffdb/skiff/actors/ingest"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/bootstrap"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/gateway/tlsreload"
)

// errUsage is returned for command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

// ignoredValueFlags are rqlited flags taking a value that Skiff accepts and
// ignores (with a warning): their absence changes nothing a user can
// observe but timing (Raft and connection tuning, the read pool's size, a
// periodic PRAGMA optimize), or they configure something that is itself
// refused (-disco-key: Consul/etcd discovery; OTLP's name and interval
// without -otlp-endpoint), or rqlite itself removed them (-on-disk-path).
var ignoredValueFlags = []string{
	"disco-key",
	"raft-commit-timeout", "raft-leader-lease-timeout", "cluster-connect-timeout",
	"auto-optimize-int", "db-max-ro-conns",
	"otlp-service-name", "otlp-interval", "on-disk-path",
}

// ignoredBoolFlags are rqlited boolean flags accepted and ignored.
var ignoredBoolFlags = []string{
	"compress-snap-transport", "on-disk",
}

// refusedFlags are rqlited flags Skiff does not implement yet and will not
// pretend to: each changes who may join, who may read, whether traffic is
// encrypted, or does work a user relies on. value says whether the flag
// takes a value.
var refusedFlags = map[string]bool{
	// What a user would notice missing: metrics export (OTLP), SQLite
	// extensions.
	"otlp-endpoint":   true,
	"extensions-path": true,
}

// options is the parsed command line.
type options struct {
	cfg bootstrap.Config
	// recoverSnapshot and recoverVoters run lost-quorum recovery instead
	// of starting the node.
	recoverSnapshot string
	recoverVoters   []string
	logLevel        string
	// authFile is -auth: the credentials file, loaded by run.
	authFile    string
	showVersion bool
	profiles    profiles
	warnings    []string
}

// boolish is a presence flag whose value is ignored; it records being set.
type boolish struct{ set *bool }

func (b boolish) String() string   { return "false" }
func (b boolish) Set(string) error { *b.set = true; return nil }
func (b boolish) IsBoolFlag() bool { return true }

type valueish struct{ set *bool }

func (v valueish) String() string   { return "" }
func (v valueish) Set(string) error { *v.set = true; return nil }

// parseFlags parses args (without the program name).
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("skiffd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: skiffd [flags] <data directory>\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.NodeID, "node-id", "", "Unique, immutable node ID (default: the advertised Raft address)")
	fs.StringVar(&c.HTTPAddr, "http-addr", bootstrap.DefaultHTTPAddr, "HTTP API bind address")
	fs.StringVar(&c.HTTPAdvAddr, "http-adv-addr", "", "Advertised HTTP API address (default: -http-addr)")
	fs.StringVar(&c.RaftAddr, "raft-addr", bootstrap.DefaultRaftAddr, "Raft bind address")
	fs.StringVar(&c.RaftAdvAddr, "raft-adv-addr", "", "Advertised Raft address (default: -raft-addr)")
	fs.StringVar(&c.RaftLogLevel, "raft-log-level", "WARN", "Raft log level: DEBUG, INFO, WARN, ERROR")
	fs.StringVar(&c.HTTPAllowOrigin, "http-allow-origin", "", "Value of the Access-Control-Allow-Origin header (CORS)")
	fs.StringVar(&c.HTTPServer, "http-server", gateway.ServerFast, "Skiff: HTTP server for plain HTTP, fasthttp or net/http (HTTPS is always net/http)")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", gateway.DefaultMaxConns, "Skiff: most open connections on the HTTP port")
	fs.IntVar(&c.HTTPMaxConnsPerIP, "http-max-conns-per-ip", gateway.DefaultMaxConnsPerIP, "Skiff: most open connections on the HTTP port from one remote IP")
	fs.IntVar(&c.RaftMaxConns, "raft-max-conns", bootstrap.DefaultRaftMaxConns, "Skiff: most open connections on the Raft port (members' IPs exempt)")
	fs.IntVar(&c.RaftMaxConnsPerIP, "raft-max-conns-per-ip", bootstrap.DefaultRaftMaxConnsPerIP, "Skiff: most open connections on the Raft port from one remote IP")
	fs.BoolVar(&c.ForeignKeys, "fk", false, "Enable SQLite foreign key constraints (must match on every node)")
	fs.DurationVar(&c.RaftHeartbeatTimeout, "raft-heartbeat-timeout", 0, "Raft heartbeat timeout (default: one tick)")
	fs.DurationVar(&c.RaftHeartbeatTimeout, "raft-timeout", 0, "Old name of -raft-heartbeat-timeout")
	fs.DurationVar(&c.RaftElectionTimeout, "raft-election-timeout", 0, "Raft election timeout (default: ten ticks)")
	fs.Uint64Var(&c.RaftSnapshotEntries, "raft-snap", replica.DefaultSnapshotEntries, "Applied log entries between local snapshots")
	fs.DurationVar(&c.RaftApplyTimeout, "raft-apply-timeout", replica.DefaultApplyTimeout, "Deadline of a request that came without one")
	fs.DurationVar(&c.RaftTick, "raft-tick", replica.DefaultRTT, "Skiff: Raft's logical clock tick; timeouts are whole ticks")
	fs.StringVar(&c.RaftWALDir, "raft-wal-dir", "", "Skiff: directory of the Raft log's write-ahead log (default: DATADIR/raft-wal)")
	batchHold := fs.Duration("write-batch-hold", replica.DefaultWriteBatchHold, "Skiff: after a batch of 8 or more writes, how long the next may wait for that batch's writers to come back (0: never waits)")
	fs.StringVar(&c.LogDBMemory, "raft-logdb-memory", replica.LogDBSmall, "Skiff: Raft log store memory preset: tiny, small, medium, large")
	fs.IntVar(&c.Queue.Capacity, "write-queue-capacity", queue.DefaultCapacity, "Queued-write capacity (requests)")
	fs.IntVar(&c.Queue.BatchSize, "write-queue-batch-size", queue.DefaultBatchSize, "Queued-write batch size (requests per Raft entry)")
	fs.DurationVar(&c.Queue.Timeout, "write-queue-timeout", queue.DefaultTimeout, "Queued-write flush timeout")
	fs.BoolVar(&c.Queue.Tx, "write-queue-tx", false, "Wrap each queued-write batch in a transaction")
	fs.BoolVar(&c.ClusterRemoveOnShutdown, "raft-cluster-remove-shutdown", false, "Remove this node from the cluster on graceful shutdown")
	stepdown := fs.Bool("raft-shutdown-stepdown", true, "A leader shutting down gracefully hands leadership to another voter first")
	metricsOn := fs.Bool("metrics", true, "Serve Prometheus metrics at /metrics (false: off, to measure their cost)")
	fs.DurationVar(&c.ReapNodeTimeout, "raft-reap-node-timeout", 0, "The leader removes voters unreachable for longer than this (0: never)")
	fs.DurationVar(&c.ReapReadOnlyNodeTimeout, "raft-reap-read-only-node-timeout", 0, "The leader removes read replicas unreachable for longer than this (0: never)")
	fs.DurationVar(&c.AutoVacuumInterval, "auto-vacuum-int", 0, "The leader VACUUMs the database, through the log, after leading this long and every this long after (0: never)")
	fs.DurationVar(&c.SnapshotInterval, "raft-snap-int", replica.DefaultSnapshotInterval, "How often to check whether the SQLite WAL calls for a snapshot (0: never)")
	fs.Int64Var(&c.SnapshotWALSize, "raft-snap-wal-size", replica.DefaultSnapshotWALSize, "SQLite WAL size in bytes past which a snapshot is taken and the WAL checkpointed (0: never)")
	var httpTLS gateway.TLS
	fs.StringVar(&httpTLS.CertFile, "http-cert", "", "Path to the HTTPS X.509 certificate (with -http-key; reloaded when the file changes)")
	fs.StringVar(&httpTLS.KeyFile, "http-key", "", "Path to the HTTPS private key (with -http-cert; reloaded when the file changes)")
	fs.StringVar(&httpTLS.CACertFile, "http-ca-cert", "", "Path to the CA certificate client certificates must chain to (with -http-verify-client)")
	fs.BoolVar(&httpTLS.VerifyClient, "http-verify-client", false, "Require and verify a client certificate on the HTTP API (mutual TLS)")
	fs.StringVar(&httpTLS.VerifyCommonName, "http-verify-common-name", "", "Require this common name in the client certificate (needs -http-verify-client)")
	var nodeTLS nodetls.Config
	fs.StringVar(&nodeTLS.CertFile, "node-cert", "", "Path to this node's X.509 certificate: turns on TLS for everything on the Raft port (with -node-key; reloaded when the file changes)")
	fs.StringVar(&nodeTLS.KeyFile, "node-key", "", "Path to this node's private key (with -node-cert; reloaded when the file changes)")
	fs.StringVar(&nodeTLS.CACertFile, "node-ca-cert", "", "Path to the CA certificate other nodes' certificates must chain to (default: the system roots)")
	fs.BoolVar(&nodeTLS.NoVerify, "node-no-verify", false, "Skip checking the certificates of the nodes this node connects to (testing only)")
	fs.BoolVar(&nodeTLS.VerifyClient, "node-verify-client", false, "Require and verify a certificate from nodes that connect to this one (mutual TLS)")
	fs.StringVar(&nodeTLS.VerifyServerName, "node-verify-server-name", "", "Host name other nodes' certificates carry, checked instead of the dialed host (one certificate for every node)")
	fs.StringVar(&nodeTLS.VerifyCommonName, "node-verify-common-name", "", "Require this common name in other nodes' certificates (needs -node-verify-client)")
	var join string
	fs.StringVar(&join, "join", "", "Comma-separated Raft addresses (or http:// API URLs) of members to join through, on first start")
	fs.StringVar(&c.JoinAs, "join-as", "", "User of the -auth file whose credentials this node joins with (joins and -bootstrap-expect)")
	fs.IntVar(&c.JoinAttempts, "join-attempts", bootstrap.DefaultJoinAttempts, "Rounds of join attempts")
	fs.DurationVar(&c.JoinInterval, "join-interval", bootstrap.DefaultJoinInterval, "Wait between rounds of join attempts")
	fs.BoolVar(&c.NonVoter, "raft-non-voter", false, "Join as a read replica (never votes)")
	fs.BoolVar(&c.RemoveShutdown, "raft-remove-shutdown", false, "Shut this node down once it learns it was removed from the cluster")
	fs.StringVar(&c.DiscoMode, "disco-mode", "", "Find the -bootstrap-expect nodes by DNS: dns (A/AAAA records) or dns-srv (SRV records)")
	fs.StringVar(&c.DiscoConfig, "disco-config", "", `Discovery config, JSON or a file of it: {"name":...,"port":4002} (dns), {"name":...,"service":"rqlite-raft"} (dns-srv); Skiff adds "resolver":"host:port"`)
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "Form a cluster of this many voters listed in -join (identical lists on every node)")
	fs.DurationVar(&c.BootstrapExpectTimeout, "bootstrap-expect-timeout", bootstrap.DefaultBootstrapExpectTimeout, "How long to wait for the -bootstrap-expect nodes")
	cdcConfig := fs.String("cdc-config", "", `Change data capture: an http(s) webhook URL, "stdout", nats://host:port/SUBJECT, or a JSON file of rqlite's CDC keys`)
	autoBackup := fs.String("auto-backup", "", `Automatic backups: the path of a JSON file of rqlite's keys {"version","type":"s3"|"file","interval","vacuum","no_compress","timestamp","sub":{...}}; $VARS expanded`)
	autoRestore := fs.String("auto-restore", "", `Automatic restore on a new data directory: the path of a JSON file of rqlite's keys {"version","type","timeout","continue_on_failure","sub":{...}}; not with -join`)
	var ingestConfig string
	fs.StringVar(&ingestConfig, "ingest-config", "", `Skiff (not an rqlited flag): apply SQL commands from NATS JetStream. nats://host:port/SUBJECT `+
		`(the stream capturing SUBJECT exists; durable pull consumer "skiff", shared by every node) or the path of a JSON file `+
		`{"url","subject","stream","durable","credentials_file","tls","max_in_flight","dead_letter_subject","max_deliveries","ack_wait",...} (docs/ingest.md). `+
		`Each message's body is a /db/request body; headers "level", "transaction" and "Reply-To" (the response's subject)`)
	var voters string
	fs.StringVar(&o.recoverSnapshot, "recover-snapshot", "", "Skiff: rewrite this stopped node's Raft state from an exported snapshot directory (lost quorum), then exit")
	fs.StringVar(&voters, "recover-voters", "", "Skiff: with -recover-snapshot, the comma-separated node IDs of the surviving voters")
	fs.StringVar(&o.authFile, "auth", "", "Credentials file (JSON) enabling HTTP Basic auth; reloaded on SIGHUP and when it changes")
	fs.StringVar(&o.logLevel, "log-level", "info", "Skiff: log level: debug, info, warn, error")
	fs.BoolVar(&o.showVersion, "version", false, "Show version information and exit")
	fs.StringVar(&o.profiles.cpu, "cpu-profile", "", "Write a CPU profile of the whole run to this file")
	fs.StringVar(&o.profiles.mem, "mem-profile", "", "Write a heap profile to this file at exit")
	fs.StringVar(&o.profiles.trace, "trace-profile", "", "Write an execution trace of the whole run to this file")

	set := map[string]*bool{}
	for _, n := range ignoredValueFlags {
		set[n] = new(bool)
		fs.Var(valueish{set[n]}, n, "rqlited flag, accepted and ignored by Skiff")
	}
	for _, n := range ignoredBoolFlags {
		set[n] = new(bool)
		fs.Var(boolish{set[n]}, n, "rqlited flag, accepted and ignored by Skiff")
	}
	refused := map[string]*bool{}
	for n, takesValue := range refusedFlags {
		refused[n] = new(bool)
		if takesValue {
			fs.Var(valueish{refused[n]}, n, "rqlited flag, not supported by Skiff yet")
		} else {
			fs.Var(boolish{refused[n]}, n, "rqlited flag, not supported by Skiff yet")
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if o.showVersion {
		return o, nil
	}
	c.NoShutdownStepdown = !*stepdown
	c.NoMetrics = !*metricsOn
	c.WriteBatchHold = *batchHold
	if *batchHold <= 0 {
		c.WriteBatchHold = -1 // off: the replica's 0 is its default
	}
	var refusedSet []string
	for n, s := range refused {
		if *s {
			refusedSet = append(refusedSet, "-"+n)
		}
	}
	if len(refusedSet) > 0 {
		sort.Strings(refusedSet)
		return nil, fmt.Errorf("%w: %v: not supported by this version of Skiff (ignoring them would be unsafe)", errUsage, refusedSet)
	}
	for n, s := range set {
		if *s {
			o.warnings = append(o.warnings, "-"+n)
		}
	}
	sort.Strings(o.warnings)
	if err := tlsreload.CheckPair(httpTLS.CertFile, httpTLS.KeyFile); err != nil {
		return nil, fmt.Errorf("%w: -http-cert and -http-key: %w", errUsage, err)
	}
	if httpTLS.VerifyCommonName != "" && !httpTLS.VerifyClient {
		return nil, fmt.Errorf("%w: -http-verify-common-name needs -http-verify-client", errUsage)
	}
	if httpTLS.CertFile != "" {
		if err := httpTLS.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		c.HTTPTLS = &httpTLS
	} else if httpTLS.CACertFile != "" || httpTLS.VerifyClient || httpTLS.VerifyCommonName != "" {
		// Verifying clients of a plain-HTTP API is impossible: refuse rather
		// than serve without the checks the operator asked for.
		return nil, fmt.Errorf("%w: -http-ca-cert, -http-verify-client and -http-verify-common-name need -http-cert and -http-key", errUsage)
	}
	if nodeTLS != (nodetls.Config{}) {
		// Any -node-* flag without the certificate is refused, not
		// ignored: the node would run in plaintext.
		if err := nodeTLS.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		c.NodeTLS = &nodeTLS
	}
	if ingestConfig != "" {
		ic, err := ingest.ParseConfig(ingestConfig)
		if err != nil {
			return nil, fmt.Errorf("%w: -ingest-config: %w", errUsage, err)
		}
		c.Ingest = &ic
	}
	for _, v := range strings.Split(voters, ",") {
		if v = strings.TrimSpace(v); v != "" {
			o.recoverVoters = append(o.recoverVoters, v)
		}
	}
	if (o.recoverSnapshot == "") != (len(o.recoverVoters) == 0) {
		return nil, fmt.Errorf("%w: -recover-snapshot and -recover-voters go together", errUsage)
	}
	if *cdcConfig != "" {
		cc, err := cdc.ParseConfig(*cdcConfig)
		if err != nil {
			return nil, fmt.Errorf("%w: -cdc-config: %w", errUsage, err)
		}
		if c.NonVoter {
			return nil, fmt.Errorf("%w: -cdc-config cannot be used with -raft-non-voter: change data capture runs on voters only, as in rqlite", errUsage)
		}
		c.CDC = &cc
	}
	for _, a := range strings.Split(join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Join = append(c.Join, a)
		}
	}
	if *autoBackup != "" {
		bc, err := backup.ParseBackupConfig(*autoBackup)
		if err != nil {
			return nil, fmt.Errorf("%w: -auto-backup: %w", errUsage, err)
		}
		c.AutoBackup = &bc
	}
	if *autoRestore != "" {
		rc, err := backup.ParseRestoreConfig(*autoRestore)
		if err != nil {
			return nil, fmt.Errorf("%w: -auto-restore: %w", errUsage, err)
		}
		c.AutoRestore = &rc
	}
	switch fs.NArg() {
	case 0:
		fs.Usage()
		return nil, fmt.Errorf("%w: the data directory is required", errUsage)
	case 1:
		c.DataDir = fs.Arg(0)
	default:
		return nil, fmt.Errorf("%w: one data directory expected, got %v", errUsage, fs.Args())
	}
	return o, nil
}
