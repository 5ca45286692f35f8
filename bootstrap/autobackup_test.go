package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/backup"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/test/testdb"
)

func fileBackup(t *testing.T, dir string) *backup.Config {
	t.Helper()
	c, err := backup.ParseBackupConfig(fmt.Sprintf(`{"version":1,"type":"file","interval":"100ms","sub":{"dir":%q,"file":"backup.sqlite.gz"}}`, dir))
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func fileRestore(t *testing.T, dir, extra string) *backup.RestoreConfig {
	t.Helper()
	c, err := backup.ParseRestoreConfig(fmt.Sprintf(`{"version":1,"type":"file",%s"sub":{"dir":%q,"file":"backup.sqlite.gz"}}`, extra, dir))
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func statusSection(t *testing.T, n *Node, path, name string) map[string]any {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, "http://"+n.HTTPAddr().String()+path, "")
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", path, code, body)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	sec, _ := doc[name].(map[string]any)
	return sec
}

// startBackingUp starts a single node with -auto-backup bc (shut down at
// the test's end), waits until it is ready and runs stmts, a JSON array,
// through /db/execute.
func startBackingUp(t *testing.T, bc *backup.Config, stmts string) (*Node, Config) {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(), AutoBackup: bc}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	waitPhase(t, n, lifecycle.Ready)
	if code, body := httpDo(t, http.MethodPost, "http://"+n.HTTPAddr().String()+"/db/execute", stmts); code != http.StatusOK || strings.Contains(body, "error") {
		t.Fatalf("execute: %d %s", code, body)
	}
	return n, cfg
}

// waitUploaded polls /status until the uploader has uploaded the node's
// applied index.
func waitUploaded(t *testing.T, n *Node) {
	t.Helper()
	written := n.State().Progress.AppliedIndex
	deadline := time.Now().Add(20 * time.Second)
	for {
		sec := statusSection(t, n, "/status", backup.StatusSection)
		if idx, _ := sec["last_index"].(float64); uint64(idx) >= written && sec[backup.KeyUploadsOK].(float64) >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upload of index %d: auto_backups %v", written, sec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReadyz polls /readyz until it answers 200.
func waitReadyz(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpDo(t, http.MethodGet, "http://"+n.HTTPAddr().String()+"/readyz", "")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// queryRows polls until the node answers the query with 200, and returns
// its values as text.
func queryRows(t *testing.T, n *Node, q string) string {
	t.Helper()
	u := "http://" + n.HTTPAddr().String() + "/db/query?q=" + url.QueryEscape(q)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpDo(t, http.MethodGet, u, "")
		if code == http.StatusOK {
			var r struct {
				Results []struct {
					Values [][]any `json:"values"`
					Error  string  `json:"error"`
				} `json:"results"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Results) != 1 {
				t.Fatalf("query answer %s", body)
			}
			if r.Results[0].Error != "" {
				return "error: " + r.Results[0].Error
			}
			return fmt.Sprint(r.Results[0].Values)
		}
		if time.Now().After(deadline) {
			t.Fatalf("query: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A single node backs up to a directory while it leads; a new node with
// -auto-restore comes up with that data; a restart of it does not restore
// again.
func TestAutoBackupAndRestoreNode(t *testing.T) {
	backups := t.TempDir()
	n, cfg := startBackingUp(t, fileBackup(t, backups),
		`["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('fiona')", "INSERT INTO foo(name) VALUES('declan')"]`)
	waitUploaded(t, n)
	deadline := time.Now().Add(20 * time.Second)
	// Idle: the next intervals skip.
	for {
		sec := statusSection(t, n, "/debug/vars", backup.VarsSection)
		if sec[backup.KeyUploadsSkipped].(float64) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no skipped uploads: uploader %v", sec)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob(filepath.Join(cfg.DataDir, "auto-backup-*")); len(names) != 0 {
		t.Fatalf("staged files left: %v", names)
	}

	rcfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n2", Logger: zap.NewNop(),
		AutoRestore: fileRestore(t, backups, "")}
	for i, want := range []string{"[[fiona] [declan]]", "[[fiona]]"} {
		r, err := Start(rcfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Shutdown() })
		// Ready means restored: the first answer after /readyz's 200 has
		// the rows.
		waitReadyz(t, r)
		q := "http://" + r.HTTPAddr().String() + "/db/query?q=" + url.QueryEscape("SELECT name FROM foo ORDER BY id")
		if code, body := httpDo(t, http.MethodGet, q, ""); code != http.StatusOK || !strings.Contains(body, "fiona") {
			t.Fatalf("start %d: first query once ready: %d %s", i, code, body)
		}
		if got := queryRows(t, r, "SELECT name FROM foo ORDER BY id"); got != want {
			t.Fatalf("start %d: rows %s, want %s", i, got, want)
		}
		if i == 0 {
			// Writes go on after the restore; a restart keeps them (the
			// second start finds data and does not restore again).
			if code, body := httpDo(t, http.MethodPost, "http://"+r.HTTPAddr().String()+"/db/execute",
				`["DELETE FROM foo WHERE name='declan'"]`); code != http.StatusOK || strings.Contains(body, "error") {
				t.Fatalf("execute: %d %s", code, body)
			}
			if err := r.Shutdown(); err != nil {
				t.Fatal(err)
			}
			rcfg.AutoRestore = fileRestore(t, backups, "")
			continue
		}
		r.Shutdown()
	}
}

// Restore failures: a missing or corrupt object fails the start and
// leaves the data directory new; continue_on_failure starts without it
// when the download fails, as rqlite.
func TestAutoRestoreFailures(t *testing.T) {
	cases := []struct {
		name     string
		object   []byte
		extra    string
		wantFail error
	}{
		{name: "missing object", wantFail: backup.ErrNotFound},
		{name: "corrupt object", object: []byte("not a database"), wantFail: backup.ErrInvalidBackup},
		{name: "corrupt object even with continue_on_failure", object: []byte("not a database"), extra: `"continue_on_failure":true,`, wantFail: backup.ErrInvalidBackup},
		{name: "missing object with continue_on_failure", extra: `"continue_on_failure":true,`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			if tc.object != nil {
				if err := os.WriteFile(filepath.Join(src, "backup.sqlite.gz"), tc.object, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(),
				AutoRestore: fileRestore(t, src, tc.extra)}
			n, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFail == nil {
				waitPhase(t, n, lifecycle.Ready)
				if got := queryRows(t, n, "SELECT 1"); got != "[[1]]" {
					t.Fatalf("query %s", got)
				}
				if err := n.Shutdown(); err != nil {
					t.Fatal(err)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Wait(ctx); !errors.Is(err, tc.wantFail) {
				t.Fatalf("Wait = %v, want %v", err, tc.wantFail)
			}
			// Nothing half-restored: no identity, no staged file.
			st, err := openLocalStore(cfg.WithDefaults().localStoreDir(), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := st.loadIdentity()
			st.Close()
			if err != nil || found {
				t.Fatalf("identity found %v (%v): the data directory is no longer new", found, err)
			}
			if names, _ := filepath.Glob(filepath.Join(cfg.DataDir, "auto-restore-*")); len(names) != 0 {
				t.Fatalf("staged files left: %v", names)
			}
		})
	}
}

func TestAutoRestoreConfigRefusals(t *testing.T) {
	good := Config{DataDir: "d", AutoRestore: &backup.RestoreConfig{Storage: backup.Storage{Type: backup.TypeFile,
		File: &backup.FileConfig{Dir: "b", File: "f"}}}}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"with -join":             func(c *Config) { c.Join = []string{"127.0.0.1:4002"} },
		"with -bootstrap-expect": func(c *Config) { c.BootstrapExpect, c.Join = 3, []string{"a:1", "b:1", "c:1"} },
		"on a read replica":      func(c *Config) { c.NonVoter = true },
		"gcs backup": func(c *Config) {
			c.AutoBackup = &backup.Config{Storage: backup.Storage{Type: backup.TypeGCS}, Interval: time.Hour}
		},
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The same round trip through an S3 API (gofakes3 on a loopback port,
// path style, over http://), with timestamped objects.
func TestAutoBackupRestoreS3(t *testing.T) {
	be := s3mem.New()
	if err := be.CreateBucket("bkt"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	defer srv.Close()
	sub := fmt.Sprintf(`"sub":{"endpoint":%q,"region":"us-east-1","access_key_id":"k","secret_access_key":"s","bucket":"bkt","path":"n/db.gz","force_path_style":true}`, srv.URL)
	bc, err := backup.ParseBackupConfig(`{"version":1,"type":"s3","interval":"100ms","timestamp":true,` + sub + `}`)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := startBackingUp(t, &bc, `["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('s3')"]`)
	waitUploaded(t, n)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	rc, err := backup.ParseRestoreConfig(`{"version":1,"type":"s3","timeout":"30s",` + sub + `}`)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n2", Logger: zap.NewNop(), AutoRestore: &rc})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	if got := queryRows(t, r, "SELECT name FROM foo"); got != "[[s3]]" {
		t.Fatalf("restored rows %s", got)
	}
}

// Backups complete while writes go on: the copy is taken under one read
// transaction, so steady commits neither block it nor restart it for ever
// (SQLite restarts an online backup, step by step, whenever another
// connection writes between steps).
func TestAutoBackupUnderWrites(t *testing.T) {
	// About 20 MB: thousands of pages.
	n, _ := startBackingUp(t, fileBackup(t, t.TempDir()),
		`["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 60000) INSERT INTO big(v) SELECT printf('%0300d', x) FROM c", "CREATE TABLE w (id INTEGER PRIMARY KEY)"]`)
	base := "http://" + n.HTTPAddr().String()
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/db/execute", strings.NewReader(`["INSERT INTO w DEFAULT VALUES"]`))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { close(stop); writers.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sec := statusSection(t, n, "/status", backup.StatusSection)
		if ok, _ := sec[backup.KeyUploadsOK].(float64); ok >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backups did not complete under writes: auto_backups %v", sec)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// plantBackup writes a gzipped SQLite database with table t holding rows
// as dir/backup.sqlite.gz, the object fileRestore reads.
func plantBackup(t *testing.T, dir string, rows ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "backup.sqlite.gz"), testdb.Gzip(t, testdb.File(t, rows...)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A start that saved its identity but stopped before booting the restored
// file (a crash, SIGTERM, or a failed Boot) restores again at the next
// start: it neither comes up empty nor lets -auto-backup overwrite the good
// backup with an empty database. Without -auto-restore such a start is
// refused.
func TestAutoRestoreInterruptedBeforeBoot(t *testing.T) {
	backups := t.TempDir()
	plantBackup(t, backups, "kept")
	errCrash := errors.New("crash before the restore's boot")
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(),
		AutoRestore: fileRestore(t, backups, ""), AutoBackup: fileBackup(t, backups),
		restoreBootHook: func() error { return errCrash }}
	wait := func(n *Node, want error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Wait(ctx); !errors.Is(err, want) {
			t.Fatalf("Wait = %v, want %v", err, want)
		}
		_ = n.Shutdown()
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wait(n, errCrash)

	noRestore := cfg
	noRestore.AutoRestore, noRestore.restoreBootHook = nil, nil
	n, err = Start(noRestore)
	if err != nil {
		t.Fatal(err)
	}
	wait(n, ErrInvalidConfig)

	cfg.restoreBootHook = nil
	cfg.AutoRestore = fileRestore(t, backups, "")
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	waitReadyz(t, n)
	if got := queryRows(t, n, "SELECT v FROM t ORDER BY id"); got != "[[kept]]" {
		t.Fatalf("rows after the resumed restore %s, want [[kept]]", got)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	st, err := openLocalStore(cfg.WithDefaults().localStoreDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	id, found, err := st.loadIdentity()
	st.Close()
	if err != nil || !found || id.RestorePending {
		t.Fatalf("identity %+v found %v (%v): the restore is still pending after its boot", id, found, err)
	}
}
