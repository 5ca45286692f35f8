package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/cdc"
	"github.com/skiffdb/skiff/bootstrap"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	ingestFile, badIngestFile := filepath.Join(dir, "ingest.json"), filepath.Join(dir, "bad.json")
	if err := os.WriteFile(ingestFile, []byte(`{"url":"nats://h:4222","subject":"sql.>","durable":"d","dead_letter_subject":"dead",`+
		`"max_deliveries":2,"ack_wait":"10s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badIngestFile, []byte(`{"url":"nats://h:4222/s","max_inflight":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, o *options)
	}{
		{name: "defaults (API.md 5)", args: []string{"data"}, check: func(t *testing.T, o *options) {
			c := o.cfg
			if c.DataDir != "data" || c.HTTPAddr != "localhost:4001" || c.RaftAddr != "localhost:4002" || c.RaftLogLevel != "WARN" {
				t.Fatalf("defaults = %+v", c)
			}
		}},
		{name: "rqlited syntax, both forms", args: []string{"-node-id", "n1", "-http-addr=127.0.0.1:5001", "--raft-addr", "127.0.0.1:5002",
			"-http-adv-addr", "h:1", "-raft-adv-addr=h:2", "-raft-log-level", "INFO", "-raft-election-timeout", "2s", "-fk", "dir"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if c.NodeID != "n1" || c.HTTPAddr != "127.0.0.1:5001" || c.RaftAddr != "127.0.0.1:5002" || c.HTTPAdvAddr != "h:1" ||
					c.RaftAdvAddr != "h:2" || c.RaftLogLevel != "INFO" || c.RaftElectionTimeout != 2*time.Second || !c.ForeignKeys || c.DataDir != "dir" {
					t.Fatalf("cfg = %+v", c)
				}
			}},
		{name: "accepted and ignored with a warning", args: []string{"-raft-commit-timeout", "30s", "-compress-snap-transport", "d"},
			check: func(t *testing.T, o *options) {
				if strings.Join(o.warnings, ",") != "-compress-snap-transport,-raft-commit-timeout" {
					t.Fatalf("warnings = %v", o.warnings)
				}
			}},
		{name: "metrics on by default", args: []string{"d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.NoMetrics {
					t.Fatal("metrics off by default")
				}
			}},
		{name: "-metrics=false turns them off", args: []string{"-metrics=false", "d"},
			check: func(t *testing.T, o *options) {
				if !o.cfg.NoMetrics {
					t.Fatal("-metrics=false left metrics on")
				}
			}},
		{name: "write batches held 4 ms by default", args: []string{"d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.WriteBatchHold != 4*time.Millisecond {
					t.Fatalf("WriteBatchHold = %v", o.cfg.WriteBatchHold)
				}
			}},
		{name: "-write-batch-hold 0 turns the hold off", args: []string{"-write-batch-hold", "0", "d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.WriteBatchHold >= 0 {
					t.Fatalf("WriteBatchHold = %v, want negative (off)", o.cfg.WriteBatchHold)
				}
			}},
		{name: "shutdown, reap and snapshot flags: rqlited's defaults (API.md 5)", args: []string{"d"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if c.ClusterRemoveOnShutdown || c.NoShutdownStepdown || c.ReapNodeTimeout != 0 || c.ReapReadOnlyNodeTimeout != 0 ||
					c.SnapshotInterval != 10*time.Second || c.SnapshotWALSize != 4194304 || len(o.warnings) != 0 {
					t.Fatalf("cfg = %+v, warnings %v", c, o.warnings)
				}
			}},
		{name: "shutdown, reap and snapshot flags implemented", args: []string{"-raft-cluster-remove-shutdown", "-raft-shutdown-stepdown=false",
			"-raft-reap-node-timeout", "2s", "-raft-reap-read-only-node-timeout=3s", "-raft-snap-int", "30s", "-raft-snap-wal-size", "1000", "d"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if !c.ClusterRemoveOnShutdown || !c.NoShutdownStepdown || c.ReapNodeTimeout != 2*time.Second || c.ReapReadOnlyNodeTimeout != 3*time.Second ||
					c.SnapshotInterval != 30*time.Second || c.SnapshotWALSize != 1000 || len(o.warnings) != 0 {
					t.Fatalf("cfg = %+v, warnings %v", c, o.warnings)
				}
			}},
		{name: "join list (API.md 5)", args: []string{"-join", "h:4002, http://h2:4001", "-join-attempts", "2", "-join-interval", "1s", "-raft-non-voter", "d"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if strings.Join(c.Join, "|") != "h:4002|http://h2:4001" || c.JoinAttempts != 2 || c.JoinInterval != time.Second || !c.NonVoter {
					t.Fatalf("cfg = %+v", c)
				}
			}},
		{name: "-raft-remove-shutdown is implemented, not ignored (API.md 5)", args: []string{"-raft-remove-shutdown", "d"},
			check: func(t *testing.T, o *options) {
				if !o.cfg.RemoveShutdown || len(o.warnings) != 0 {
					t.Fatalf("RemoveShutdown %v, warnings %v", o.cfg.RemoveShutdown, o.warnings)
				}
			}},
		{name: "-raft-remove-shutdown defaults to false", args: []string{"-raft-remove-shutdown=false", "d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.RemoveShutdown {
					t.Fatal("RemoveShutdown set")
				}
			}},
		{name: "-join-as without -auth refused (the password comes from -auth)", args: []string{"-join-as", "u", "d"},
			check: wantInvalid(`-join-as "u" needs -auth`)},
		{name: "-join-as with -auth", args: []string{"-auth", "f.json", "-join-as", "u", "d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.JoinAs != "u" || o.authFile != "f.json" {
					t.Fatalf("JoinAs %q, authFile %q", o.cfg.JoinAs, o.authFile)
				}
			}},
		{name: "auth accepted (issue 16)", args: []string{"-auth", "f.json", "d"},
			check: func(t *testing.T, o *options) {
				if o.authFile != "f.json" || len(o.warnings) != 0 {
					t.Fatalf("authFile %q, warnings %v", o.authFile, o.warnings)
				}
			}},
		// HTTPS (issue 16): both or neither of cert and key; the client
		// checks need TLS, and the common name needs client verification.
		{name: "-http-cert and -http-key", args: []string{"-http-cert", "c.pem", "-http-key", "k.pem", "-http-verify-client", "-http-ca-cert", "ca.pem", "-http-verify-common-name", "cli", "d"},
			check: func(t *testing.T, o *options) {
				tc := o.cfg.HTTPTLS
				if tc == nil || tc.CertFile != "c.pem" || tc.KeyFile != "k.pem" || tc.CACertFile != "ca.pem" || !tc.VerifyClient || tc.VerifyCommonName != "cli" {
					t.Fatalf("HTTPTLS %+v", tc)
				}
			}},
		{name: "no TLS by default", args: []string{"d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.HTTPTLS != nil {
					t.Fatalf("HTTPTLS %+v", o.cfg.HTTPTLS)
				}
			}},
		{name: "-http-cert without -http-key refused", args: []string{"-http-cert", "c.pem", "d"}, wantErr: true},
		{name: "-http-key without -http-cert refused", args: []string{"-http-key", "k.pem", "d"}, wantErr: true},
		{name: "-http-verify-client without a certificate refused", args: []string{"-http-verify-client", "d"}, wantErr: true},
		{name: "-http-verify-common-name without -http-verify-client refused", args: []string{"-http-cert", "c.pem", "-http-key", "k.pem", "-http-verify-common-name", "x", "d"}, wantErr: true},
		{name: "-node-cert without -node-key refused", args: []string{"-node-cert", "c.pem", "d"}, wantErr: true},
		{name: "-node-key without -node-cert refused", args: []string{"-node-key", "k.pem", "d"}, wantErr: true},
		{name: "-node-ca-cert without a certificate refused", args: []string{"-node-ca-cert", "ca.pem", "d"}, wantErr: true},
		{name: "-node-verify-client without a certificate refused", args: []string{"-node-verify-client", "d"}, wantErr: true},
		{name: "-node-no-verify without a certificate refused", args: []string{"-node-no-verify", "d"}, wantErr: true},
		{name: "-node-verify-common-name without -node-verify-client refused",
			args: []string{"-node-cert", "c.pem", "-node-key", "k.pem", "-node-verify-common-name", "x", "d"}, wantErr: true},
		{name: "node TLS flags (rqlited's)", args: []string{"-node-cert", "c.pem", "-node-key", "k.pem", "-node-ca-cert", "ca.pem",
			"-node-no-verify", "-node-verify-client", "-node-verify-server-name", "raft.internal", "-node-verify-common-name", "skiff-node", "d"},
			check: func(t *testing.T, o *options) {
				want := nodetls.Config{CertFile: "c.pem", KeyFile: "k.pem", CACertFile: "ca.pem", NoVerify: true, VerifyClient: true,
					VerifyServerName: "raft.internal", VerifyCommonName: "skiff-node"}
				if o.cfg.NodeTLS == nil || *o.cfg.NodeTLS != want {
					t.Fatalf("NodeTLS = %+v", o.cfg.NodeTLS)
				}
			}},
		{name: "no node TLS flags: plaintext", args: []string{"d"}, check: func(t *testing.T, o *options) {
			if o.cfg.NodeTLS != nil {
				t.Fatalf("NodeTLS = %+v", o.cfg.NodeTLS)
			}
		}},
		// -auto-backup and -auto-restore are built (issue 18): parsed,
		// refused when malformed, gcs, or a restore with -join.
		{name: "auto-backup file", args: []string{"-auto-backup", `{"version":1,"type":"file","interval":"5s","sub":{"dir":"/b","file":"db.gz"}}`, "d"},
			check: func(t *testing.T, o *options) {
				if c := o.cfg.AutoBackup; c == nil || c.Interval != 5*time.Second || c.File == nil || c.File.Dir != "/b" {
					t.Fatalf("AutoBackup %+v", c)
				}
			}},
		{name: "auto-backup missing file refused", args: []string{"-auto-backup", "no-such-b.json", "d"}, wantErr: true},
		{name: "auto-backup gcs refused", args: []string{"-auto-backup", `{"type":"gcs","interval":"1h","sub":{"bucket":"b"}}`, "d"}, wantErr: true},
		{name: "auto-restore s3", args: []string{"-auto-restore", `{"type":"s3","sub":{"bucket":"b","path":"p"}}`, "d"},
			check: func(t *testing.T, o *options) {
				if c := o.cfg.AutoRestore; c == nil || c.Timeout != 30*time.Second || c.S3 == nil || c.S3.Bucket != "b" {
					t.Fatalf("AutoRestore %+v", c)
				}
			}},
		{name: "auto-restore with -join refused", args: []string{"-auto-restore", `{"type":"s3","sub":{"bucket":"b","path":"p"}}`, "-join", "h:4002", "d"},
			check: wantInvalid("-auto-restore cannot be used with -join")},
		// -cdc-config is built (issue 15): parsed, refused when malformed
		// or on a read replica.
		{name: "cdc-config stdout", args: []string{"-cdc-config", "stdout", "d"},
			check: func(t *testing.T, o *options) {
				if c := o.cfg.CDC; c == nil || c.Endpoint != "stdout" || c.MaxBatchSize != cdc.DefaultMaxBatchSize || len(o.warnings) != 0 {
					t.Fatalf("CDC %+v, warnings %v", c, o.warnings)
				}
			}},
		{name: "cdc-config webhook", args: []string{"-cdc-config", "http://127.0.0.1:9000/cdc", "d"},
			check: func(t *testing.T, o *options) {
				if c := o.cfg.CDC; c == nil || c.Endpoint != "http://127.0.0.1:9000/cdc" || c.Kind() != cdc.SinkWebhook {
					t.Fatalf("CDC %+v", c)
				}
			}},
		{name: "cdc-config nats", args: []string{"-cdc-config", "nats://127.0.0.1:4222/cdc.out", "d"},
			check: func(t *testing.T, o *options) {
				if c := o.cfg.CDC; c == nil || c.Kind() != cdc.SinkNATS {
					t.Fatalf("CDC %+v", c)
				}
			}},
		{name: "no cdc-config is off", args: []string{"d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.CDC != nil {
					t.Fatalf("CDC %+v", o.cfg.CDC)
				}
			}},
		{name: "cdc-config malformed URL", args: []string{"-cdc-config", "nats://127.0.0.1:4222", "d"}, wantErr: true},
		{name: "cdc-config missing file", args: []string{"-cdc-config", "/nonexistent/cdc.json", "d"}, wantErr: true},
		{name: "cdc-config with raft-non-voter", args: []string{"-cdc-config", "stdout", "-raft-non-voter", "-join", "h:4002", "d"}, wantErr: true},
		{name: "otlp-endpoint refused, not ignored", args: []string{"-otlp-endpoint", "localhost:4317", "d"}, wantErr: true},
		{name: "auto-vacuum-int (API.md 5)", args: []string{"-auto-vacuum-int", "24h", "d"},
			check: func(t *testing.T, o *options) {
				if o.cfg.AutoVacuumInterval != 24*time.Hour {
					t.Fatalf("AutoVacuumInterval = %v", o.cfg.AutoVacuumInterval)
				}
			}},
		{name: "-ingest-config: a NATS URL", args: []string{"-ingest-config", "nats://127.0.0.1:4222/sql.in", "d"},
			check: func(t *testing.T, o *options) {
				ic := o.cfg.Ingest
				if ic == nil || ic.URL != "nats://127.0.0.1:4222" || ic.Subject != "sql.in" || ic.Durable != "skiff" || ic.MaxInFlight < 1 {
					t.Fatalf("ingest = %+v", ic)
				}
			}},
		{name: "-ingest-config: a JSON file", args: []string{"-ingest-config", ingestFile, "d"},
			check: func(t *testing.T, o *options) {
				ic := o.cfg.Ingest
				if ic == nil || ic.URL != "nats://h:4222" || ic.Subject != "sql.>" || ic.Durable != "d" || ic.DeadLetterSubject != "dead" ||
					ic.MaxDeliveries != 2 || ic.AckWait != 10*time.Second {
					t.Fatalf("ingest = %+v", ic)
				}
			}},
		{name: "no -ingest-config: no ingest", args: []string{"d"}, check: func(t *testing.T, o *options) {
			if o.cfg.Ingest != nil {
				t.Fatalf("ingest = %+v", o.cfg.Ingest)
			}
		}},
		{name: "-ingest-config without subject refused", args: []string{"-ingest-config", "nats://127.0.0.1:4222", "d"}, wantErr: true},
		{name: "-ingest-config with an http URL refused", args: []string{"-ingest-config", "http://127.0.0.1:4222/s", "d"}, wantErr: true},
		{name: "-ingest-config naming no file refused", args: []string{"-ingest-config", "/no/such/ingest.json", "d"}, wantErr: true},
		{name: "-ingest-config with an unknown key refused", args: []string{"-ingest-config", badIngestFile, "d"}, wantErr: true},
		{name: "no data dir", args: []string{}, wantErr: true},
		{name: "two data dirs", args: []string{"a", "b"}, wantErr: true},
		{name: "unknown flag", args: []string{"-no-such-flag", "d"}, wantErr: true},
		{name: "version", args: []string{"-version"}, check: func(t *testing.T, o *options) {
			if !o.showVersion {
				t.Fatal("showVersion not set")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if tc.wantErr {
				if !errors.Is(err, errUsage) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-version"}, &out, &errOut, nil); code != 0 || !strings.HasPrefix(out.String(), "skiffd ") {
		t.Fatalf("-version: %d %q", code, out.String())
	}
	errOut.Reset()
	if code := run([]string{"-join-as", "u", t.TempDir()}, &out, &errOut, nil); code != 2 ||
		// Refused by Config.Validate, logged as JSON (quotes escaped).
		!strings.Contains(errOut.String(), `-join-as \"u\" needs -auth`) {
		t.Fatalf("-join-as without -auth: exit %d, %q", code, errOut.String())
	}
	// A -join-as user missing from the credentials file stops the start.
	authPath := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(authPath, []byte(`[{"username":"bob","password":"pw","perms":["join"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"-auth", authPath, "-join-as", "alice", "-http-addr", "127.0.0.1:1", "-raft-addr", "127.0.0.1:2", t.TempDir()}, &out, &errOut, nil); code != 2 ||
		!strings.Contains(errOut.String(), `-join-as user \"alice\" is not in the -auth credentials file`) {
		t.Fatalf("-join-as unknown user: exit %d, %q", code, errOut.String())
	}
	// A malformed -ingest-config refuses to start, saying why.
	errOut.Reset()
	if code := run([]string{"-ingest-config", "nats://127.0.0.1:4222", t.TempDir()}, &out, &errOut, nil); code != 2 ||
		!strings.Contains(errOut.String(), "-ingest-config") || !strings.Contains(errOut.String(), "no subject") {
		t.Fatalf("bad -ingest-config: exit %d, %q", code, errOut.String())
	}
	// A read replica on a new data directory needs -join (API.md 5): the
	// rule is checked once the directory is known to be new, and still
	// exits 2.
	if code := run([]string{"-http-addr", "127.0.0.1:0", "-http-adv-addr", "127.0.0.1:1", "-raft-addr", "127.0.0.1:0",
		"-raft-adv-addr", "127.0.0.1:2", "-raft-non-voter", t.TempDir()}, &out, &errOut, nil); code != 2 {
		t.Fatalf("-raft-non-voter without -join on a new directory: exit %d", code)
	}
	// Same advertised HTTP and Raft address: invalid (API.md 5).
	if code := run([]string{"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", t.TempDir()}, &out, &errOut, nil); code != 2 {
		t.Fatalf("invalid config: exit %d", code)
	}
}

// rqlited's profile flags write real files (API.md 5): the CPU profile and
// trace cover the run, the heap profile is written at exit.
func TestProfilesWriteFiles(t *testing.T) {
	dir := t.TempDir()
	o, err := parseFlags([]string{"-cpu-profile", dir + "/cpu", "-mem-profile", dir + "/mem", "-trace-profile", dir + "/trace", "d"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.profiles.start(); err != nil {
		t.Fatal(err)
	}
	if err := o.profiles.stop(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cpu", "mem", "trace"} {
		fi, err := os.Stat(dir + "/" + f)
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s profile: %v, %v", f, fi, err)
		}
	}
	// A file that cannot be created refuses the start.
	bad := profiles{cpu: dir + "/missing/cpu"}
	if err := bad.start(); err == nil {
		bad.stop()
		t.Fatal("start with an uncreatable -cpu-profile succeeded")
	}
}

// wantInvalid checks that the parsed configuration is refused by
// bootstrap's Config.Validate, the one place such checks live, naming msg.
func wantInvalid(msg string) func(*testing.T, *options) {
	return func(t *testing.T, o *options) {
		t.Helper()
		err := o.cfg.WithDefaults().Validate()
		if !errors.Is(err, bootstrap.ErrInvalidConfig) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("Validate: %v, want %s: %q", err, bootstrap.ErrInvalidConfig, msg)
		}
	}
}
