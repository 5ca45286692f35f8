package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// authFile is API.md 1.12's example, with `*` also holding status (the
// harness waits on /status anonymously).
const authFile = `[
  {"username": "bob",  "password": "secret1", "perms": ["all"]},
  {"username": "mary", "password": "secret2", "perms": ["query", "backup", "join"]},
  {"username": "*",                           "perms": ["status", "ready", "join-read-only"]}
]`

// authDo sends a request with Basic credentials when user is set.
func authDo(t *testing.T, n *node, method, path, body, user, pass string) response {
	t.Helper()
	req, err := http.NewRequest(method, n.baseURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func want401(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="rqlite"` {
		t.Errorf("%s: %d %q (WWW-Authenticate %q), want 401 with Basic realm=\"rqlite\"", what, r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
}

// TestAuth runs a real node with -auth: API.md 1.12's behaviour, then a
// SIGHUP after an edit the file watcher cannot see (same size, mtime put
// back) changes the answer.
func TestAuth(t *testing.T) {
	n := newNode(t)
	path := filepath.Join(n.dir, "auth.json")
	if err := os.WriteFile(path, []byte(authFile), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{"-auth", path}
	n.start()
	n.waitReady(readyTimeout)

	want401(t, "anonymous execute", authDo(t, n, "POST", "/db/execute", `["CREATE TABLE t (id INTEGER PRIMARY KEY)"]`, "", ""))
	want401(t, "mary on /db/request", authDo(t, n, "POST", "/db/request", `["SELECT 1"]`, "mary", "secret2"))
	want401(t, "bob, wrong password", authDo(t, n, "POST", "/db/execute", `["SELECT 1"]`, "bob", "secret2"))
	if r := authDo(t, n, "POST", "/db/execute", `["CREATE TABLE t (id INTEGER PRIMARY KEY)"]`, "bob", "secret1"); r.status != http.StatusOK {
		t.Fatalf("bob execute: %s", r)
	}
	if r := authDo(t, n, "POST", "/db/request", `["INSERT INTO t VALUES(1)", "SELECT * FROM t"]`, "bob", "secret1"); r.status != http.StatusOK {
		t.Fatalf("bob request: %s", r)
	}
	if r := authDo(t, n, "GET", "/db/query?q=SELECT+id+FROM+t", "", "mary", "secret2"); r.status != http.StatusOK || !strings.Contains(string(r.body), "[[1]]") {
		t.Fatalf("mary query: %s", r)
	}
	if r := authDo(t, n, "GET", "/readyz", "", "", ""); r.status != http.StatusOK {
		t.Fatalf("anonymous /readyz: %s", r)
	}
	if r := authDo(t, n, "GET", "/status?key=http.auth", "", "", ""); strings.TrimSpace(string(r.body)) != `"enabled"` {
		t.Fatalf("http.auth: %s", r)
	}

	// Same size, and the old mtime restored: only SIGHUP can pick it up.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(authFile, "secret1", "secret9", 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := n.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(readyTimeout)
	for authDo(t, n, "POST", "/db/execute", `["SELECT 1"]`, "bob", "secret9").status != http.StatusOK {
		if time.Now().After(deadline) || n.proc.exited() {
			n.dumpLogs()
			t.Fatal("bob's new password never accepted after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	want401(t, "bob, old password after SIGHUP", authDo(t, n, "POST", "/db/execute", `["SELECT 1"]`, "bob", "secret1"))
	if !n.logContains(n.proc.logPath, "SIGHUP: credentials file reloaded") {
		t.Error("no SIGHUP reload in the log")
	}
	if n.logContains(n.proc.logPath, "secret9") || n.logContains(n.proc.logPath, "secret1") {
		t.Error("a password is in the log")
	}

	// A bad edit keeps the credentials; the watcher logs why.
	if err := os.WriteFile(path, []byte(`[{"username":"bob","password":"x","perms":["bogus"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	for !n.logContains(n.proc.logPath, "credentials file not reloaded") {
		if time.Now().After(deadline) || n.proc.exited() {
			n.dumpLogs()
			t.Fatal("bad credentials file never reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := authDo(t, n, "POST", "/db/execute", `["SELECT 1"]`, "bob", "secret9"); r.status != http.StatusOK {
		t.Fatalf("bob after a bad edit: %s", r)
	}
	n.sigterm()
}

// TestAuthBadFileRefused: an unknown permission stops the start with exit
// status 2 and says why.
func TestAuthBadFileRefused(t *testing.T) {
	n := newNode(t)
	path := filepath.Join(n.dir, "auth.json")
	if err := os.WriteFile(path, []byte(`[{"username":"u","password":"p","perms":["superuser"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{"-auth", path}
	p := n.launch()
	select {
	case <-p.done:
	case <-time.After(httpUpTimeout):
		t.Fatal("skiffd did not exit")
	}
	if p.exitCode() != 2 || !n.logContains(p.logPath, `unknown permission \"superuser\"`) {
		n.dumpLogs()
		t.Fatalf("exit %d; want 2 and the unknown permission named", p.exitCode())
	}
}
