package test

import (
	"bytes"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/skiffdb/skiff/test/testcert"
)

// cliTimeout bounds every wait on `skiff shell` / `skiff status` output.
const cliTimeout = 30 * time.Second

// ptyProc is a process on a pseudo-terminal, its output collected as it
// comes; expect waits on it.
type ptyProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	cond *sync.Cond
	out  bytes.Buffer
	eof  bool
	mark int // expect searches from here
	done chan error
}

func startPTY(t *testing.T, env []string, bin string, args ...string) *ptyProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 60, Cols: 250})
	if err != nil {
		t.Fatalf("start %s on a pty: %v", bin, err)
	}
	p := &ptyProc{t: t, cmd: cmd, tty: tty, done: make(chan error, 1)}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			if err != nil {
				p.eof = true
			}
			p.cond.Broadcast()
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		tty.Close()
	})
	return p
}

// text is the output so far with the terminal's CRLFs as LFs.
func (p *ptyProc) text() string {
	return strings.ReplaceAll(p.out.String(), "\r\n", "\n")
}

// expect waits until the output after the previous match holds want and
// moves past it.
func (p *ptyProc) expect(want string) {
	p.t.Helper()
	timer := time.AfterFunc(cliTimeout, func() {
		p.mu.Lock()
		p.eof = true // wake the waiter; it reports the timeout
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		text := p.text()
		if i := strings.Index(text[min(p.mark, len(text)):], want); i >= 0 {
			p.mark += i + len(want)
			return
		}
		if p.eof {
			p.t.Fatalf("output never showed %q; after the last match it is:\n%s", want, text[min(p.mark, len(text)):])
		}
		p.cond.Wait()
	}
}

// send types keys.
func (p *ptyProc) send(keys string) {
	p.t.Helper()
	if _, err := p.tty.Write([]byte(keys)); err != nil {
		p.t.Fatalf("typing %q: %v", keys, err)
	}
}

// line types one line and Enter.
func (p *ptyProc) line(s string) { p.send(s + "\r") }

func (p *ptyProc) wait() error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(cliTimeout):
		p.t.Fatalf("process did not exit; output:\n%s", p.text())
		return nil
	}
}

// TestSkiffShell drives `skiff shell` through a pseudo-terminal against a
// real node: statements over several lines, tables, rqlite's dot
// commands and their messages, errors that leave the shell running, and
// history recalled with the up arrow.
func TestSkiffShell(t *testing.T) {
	bin := buildSkiff(t)
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	host, port, _ := net.SplitHostPort(n.httpAddr)
	home := t.TempDir()
	hist := filepath.Join(home, ".skiff_history")
	sh := startPTY(t, []string{"HOME=" + home, "RQLITE_HOST="}, bin, "shell", "-H", host, "-p", port)
	prompt := n.httpAddr + "> "
	sh.expect("Connected to http://" + n.httpAddr + " running version ")
	sh.expect(prompt)

	sh.line("CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT);")
	sh.expect("0 row affected\n")
	// A statement over three lines: the continuation prompt, then one
	// result.
	sh.line("INSERT INTO foo(name)")
	sh.expect("...> ")
	sh.line("VALUES ('fiona'),")
	sh.expect("...> ")
	sh.line("('日本語');")
	sh.expect("2 rows affected\n")
	sh.line("SELECT * FROM foo;")
	sh.expect("\n" + `+----+--------+
| id | name   |
+----+--------+
| 1  | fiona  |
| 2  | 日本語 |
+----+--------+
`)
	sh.line(".tables")
	sh.expect("\n" + `+------+
| name |
+------+
| foo  |
+------+
`)
	sh.line("CREATE INDEX foo_name ON foo(name);")
	// Not "0": SQLite's changes() still counts the last INSERT after DDL,
	// and rqlite reports it the same way.
	sh.expect(" affected\n")
	sh.line(".indexes")
	sh.expect("| foo_name |\n")
	sh.line(".schema")
	sh.expect("| CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT) |\n")
	sh.expect("| CREATE INDEX foo_name ON foo(name)")

	// Errors are shown and the shell goes on.
	sh.line("SELECT * FROM nope;")
	sh.expect("Error: no such table: nope\n")
	sh.line(".bogus")
	sh.expect("ERR! unknown command '.bogus'")
	sh.line(".timer sometimes")
	sh.expect("ERR! invalid option 'sometimes'. Use 'on' or 'off' (default)\n")

	sh.line(".timer on")
	sh.expect(prompt)
	sh.line("SELECT count(*) AS n FROM foo;")
	sh.expect("| n |\n+---+\n| 2 |\n+---+\nRun Time: ")
	sh.expect(" seconds\n")
	sh.line("UPDATE foo SET name = name;")
	sh.expect("2 rows affected (")
	sh.expect(" sec)\n")
	sh.line(".timer off")
	sh.expect(prompt)

	sh.line(".consistency")
	sh.expect("weak\n")
	sh.line(".consistency strong")
	sh.expect(prompt)
	sh.line(".consistency")
	sh.expect("strong\n")
	sh.line("SELECT name FROM foo WHERE id = 1;")
	sh.expect("| fiona |\n")

	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	sh.line(".backup " + backup)
	sh.expect("backup file written successfully\n")
	dump := filepath.Join(dir, "dump.sql")
	sh.line(".dump " + dump)
	sh.expect("SQL text file written successfully\n")
	b, err := os.ReadFile(dump)
	if err != nil || !strings.Contains(string(b), "CREATE TABLE foo") || !strings.Contains(string(b), "'fiona'") {
		t.Fatalf(".dump file: %v\n%s", err, b)
	}
	sh.line("DROP TABLE foo;")
	sh.expect(" affected\n")
	sh.line(".restore " + backup)
	sh.expect("Database restored successfully.\n")
	sh.line("SELECT count(*) AS n FROM foo;")
	sh.expect("| 2 |\n")
	// The SQL dump loads too (/db/load with text).
	sh.line("DROP INDEX foo_name;")
	sh.expect(" affected\n")
	sh.line("DROP TABLE foo;")
	sh.expect(" affected\n")
	sh.line(".restore " + dump)
	sh.expect("Database restored successfully.\n")
	sh.line("SELECT name FROM foo ORDER BY id;")
	sh.expect("| fiona  |\n| 日本語 |\n")

	sh.line(".status")
	sh.expect("lifecycle:\n")
	sh.expect("  state: ready\n")
	sh.line(".nodes")
	sh.expect("1:\n")
	sh.expect("  leader: true\n")
	sh.line(".ready")
	sh.expect("ready\n")

	// The up arrow brings back the last line; Enter runs it again.
	sh.line("SELECT 40 + 2 AS answer;")
	sh.expect("| 42     |\n")
	sh.send("\x1b[A")
	sh.expect("SELECT 40 + 2 AS answer;")
	sh.send("\r")
	sh.expect("| 42     |\n")

	// Ctrl-C drops a half-typed statement.
	sh.line("SELECT")
	sh.expect("...> ")
	sh.send("\x03")
	sh.expect(prompt)
	sh.line("SELECT 7 AS x;")
	sh.expect("| 7 |\n")

	sh.line(".exit")
	sh.expect("bye~\n")
	if err := sh.wait(); err != nil {
		t.Fatalf("skiff shell exited with %v; output:\n%s", err, sh.text())
	}
	h, err := os.ReadFile(hist)
	if err != nil || !strings.Contains(string(h), "SELECT 40 + 2 AS answer;") {
		t.Fatalf("history file: %v\n%s", err, h)
	}
}

// TestSkiffShellAuth: -u against a node with -auth, from a script (stdin
// not a terminal); a wrong password is refused at connect.
func TestSkiffShellAuth(t *testing.T) {
	bin := buildSkiff(t)
	n := newNode(t)
	path := filepath.Join(n.dir, "auth.json")
	if err := os.WriteFile(path, []byte(authFile), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{"-auth", path}
	n.start()
	n.waitReady(readyTimeout)
	host, port, _ := net.SplitHostPort(n.httpAddr)
	run := func(user, script string) (string, error) {
		cmd := exec.Command(bin, "shell", "-H", host, "-p", port, "-u", user, "-history", "")
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("bob:secret1", "CREATE TABLE t (x);\nINSERT INTO t VALUES (1);\nSELECT * FROM t;\n")
	if want := "0 row affected\n1 row affected\n+---+\n| x |\n+---+\n| 1 |\n+---+\nbye~\n"; err != nil || out != want {
		t.Fatalf("bob: %v\n got %q\nwant %q", err, out, want)
	}
	// mary may query but not execute: the shell shows the refusal.
	out, err = run("mary:secret2", ".tables\nINSERT INTO t VALUES (2);\n")
	if err != nil || !strings.Contains(out, "| t    |") || !strings.Contains(out, "ERR! unauthorized\n") {
		t.Fatalf("mary: %v\n%s", err, out)
	}
	// A wrong password: /status is open to anyone in this file, so the
	// shell connects and the statement is refused (a 401 at connect ends
	// the shell with status 1: TestAuthAndConnect in cmd/skiff/shell).
	out, err = run("bob:wrong", "SELECT 1;\n")
	if err != nil || out != "ERR! unauthorized\nbye~\n" {
		t.Fatalf("wrong password: %v %q", err, out)
	}
}

// TestSkiffStatus: `skiff status -once` against a 3-node cluster lists
// every node with its role and phase, a node held in log replay (a
// failpoint) with its progress; the live view redraws on a terminal and
// quits on q.
func TestSkiffStatus(t *testing.T) {
	bin := buildSkiff(t)
	c := newClusterWith(t, 3, func(m *member) { m.failpoints = new(string) })
	var addrs []string
	for _, m := range c.ms {
		addrs = append(addrs, m.httpAddr)
	}
	status := func(addrs ...string) string {
		t.Helper()
		out, err := exec.Command(bin, "status", "-once", "-a", strings.Join(addrs, ",")).CombinedOutput()
		if err != nil {
			t.Fatalf("skiff status -once: %v\n%s", err, out)
		}
		return string(out)
	}
	// row is node id's row of a frame.
	row := func(text, id string) string {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "| "+id+" ") {
				return l
			}
		}
		t.Fatalf("no row for node %s:\n%s", id, text)
		return ""
	}
	text := status(addrs...)
	for _, m := range c.ms {
		r := row(text, m.id)
		role := "| follower "
		if m == c.leader {
			role = "| leader "
		}
		for _, want := range []string{"| " + m.httpAddr + " ", role, "| yes ", "| ready "} {
			if !strings.Contains(r, want) {
				t.Errorf("node %s: row %q lacks %q\n%s", m.id, r, want, text)
			}
		}
	}

	// A follower restarted behind the leader and held before it applies
	// anything: recovering, replaying, with entries and a bar.
	f := others(c.ms, c.leader)[0]
	f.sigterm()
	wantOK(t, "create", c.leader.execute(`["CREATE TABLE t (v)"]`), `{"results":[{}]}`)
	for range 20 {
		if r := c.leader.execute(`["INSERT INTO t VALUES (1)"]`); r.status != 200 {
			t.Fatalf("insert: %s", r)
		}
	}
	spec := "sm/apply=pause"
	f.failpoints = &spec
	f.start()
	waitPhase(t, f, "recovering", func(d statusDoc) bool {
		p := d.Lifecycle.Progress
		return p.Step == "replaying_log" && p.TargetIndex > p.AppliedIndex
	})
	// Only the leader's address: the others come from its /nodes.
	text = status(c.leader.httpAddr)
	t.Logf("node %s held in log replay:\n%s", f.id, text)
	r := row(text, f.id)
	for _, want := range []string{"| recovering ", "| replaying ", " entries [", "| follower "} {
		if !strings.Contains(r, want) {
			t.Errorf("held node %s: row %q lacks %q\n%s", f.id, r, want, text)
		}
	}
	setFailpoint(t, f, "sm/apply", "off")
	f.waitReady(clusterTimeout)

	// With a node down: still a frame, that node unreachable.
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	text = status(c.leader.httpAddr)
	if r := row(text, f.id); !strings.Contains(r, "| no ") {
		t.Errorf("stopped node %s: row %q\n%s", f.id, r, text)
	}

	live := startPTY(t, nil, bin, "status", "-a", c.leader.httpAddr, "-n", "100ms")
	live.expect("q or Ctrl-C quits")
	live.expect("q or Ctrl-C quits") // redrawn
	live.send("q")
	if err := live.wait(); err != nil {
		t.Fatalf("skiff status after q: %v\n%s", err, live.text())
	}
}

// TestSkiffShellHTTPS: both commands over HTTPS, trusting the node's
// certificate with -c (rqlite's CLI flag).
func TestSkiffShellHTTPS(t *testing.T) {
	bin := buildSkiff(t)
	n := newNode(t)
	cert, key := testcert.Write(t, t.TempDir())
	pool, _ := certPool(t, cert)
	n.args = []string{"-http-cert", cert, "-http-key", key}
	n.tlsClient = &tls.Config{RootCAs: pool}
	n.useTLS(n.client)
	n.start()
	n.waitReady(readyTimeout)
	host, port, _ := net.SplitHostPort(n.httpAddr)
	cmd := exec.Command(bin, "shell", "-s", "https", "-H", host, "-p", port, "-c", cert, "-history", "")
	cmd.Stdin = strings.NewReader("SELECT 'tls' AS over;\n")
	out, err := cmd.CombinedOutput()
	if want := "+------+\n| over |\n+------+\n| tls  |\n+------+\nbye~\n"; err != nil || string(out) != want {
		t.Fatalf("shell over HTTPS: %v\n got %q\nwant %q", err, out, want)
	}
	// Without the CA the certificate is refused.
	out, err = exec.Command(bin, "shell", "-s", "https", "-H", host, "-p", port, "-history", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("shell over HTTPS without -c: %v %q", err, out)
	}
	out, err = exec.Command(bin, "status", "-once", "-s", "https", "-c", cert, "-a", n.httpAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "| leader ") || !strings.Contains(string(out), "| ready ") {
		t.Fatalf("status over HTTPS: %v\n%s", err, out)
	}
}
