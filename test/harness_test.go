package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testport"
)

// Bounds on every wait, so that no test can hang: a broken daemon fails the
// test with its log instead of stalling the run until go test's own timeout.
const (
	buildTimeout = 5 * time.Minute
	// httpUpTimeout bounds the wait for a started process to serve HTTP.
	httpUpTimeout = 30 * time.Second
	// readyTimeout bounds the wait for /readyz; a single node elects
	// itself in about a second, the rest is slack for -race on 2 cores.
	readyTimeout = 30 * time.Second
	// stopTimeout exceeds the daemon's own 30s shutdown bound
	// (bootstrap.DefaultShutdownTimeout) so that its bound fires first.
	stopTimeout = 40 * time.Second
	// killTimeout bounds the wait for a SIGKILLed process to be reaped.
	killTimeout = 10 * time.Second
	// requestTimeout is every test HTTP client's timeout.
	requestTimeout = 30 * time.Second
	// portAttempts is how often a start is retried after a port clash.
	portAttempts = 5
)

// readyBody is /readyz's body on a ready node (API.md 2.3).
const readyBody = "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok"

// skiffdBin is the race-enabled daemon TestMain builds from moduleDir;
// skiffdFailpointsBin is the same with failpoints compiled in.
// skiffBin is the client (skiff bench, shell, status).
var skiffdBin, skiffdFailpointsBin, skiffBin, moduleDir string

// failpointTags is the build's tags plus "failpoints": a -tags flag on the
// command line replaces the one in GOFLAGS (the Makefile sets
// sqlite_column_metadata there), so the two are merged.
func failpointTags() string {
	tags := []string{"failpoints"}
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if v, ok := strings.CutPrefix(f, "-tags="); ok {
			tags = append(tags, strings.Split(v, ",")...)
		}
	}
	return strings.Join(tags, ",")
}

// sourcesRead makes every test read the daemon's sources once (readSources).
var sourcesRead = sync.OnceValue(func() error { return readSources(moduleDir) })

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests builds the daemon once, runs the tests and removes the build
// directory; it is separate from TestMain so that its defers run before
// os.Exit.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "skiff-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	moduleDir = root
	bin := filepath.Join(dir, "skiffd")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// -race on the daemon too: a data race in the server is a bug these
	// tests must catch, and the race detector only sees it in the process
	// where it happens.
	//
	// A second binary has failpoints compiled in (sm/failpoint), for the
	// tests that hold a node inside a phase; every other test runs the
	// production build. The two builds share every package but the few
	// that differ by the tag.
	fpBin := filepath.Join(dir, "skiffd-failpoints")
	// The client too (skiff bench, shell, status), once for every test.
	cliBin := filepath.Join(dir, "skiff")
	builds := []*exec.Cmd{
		exec.CommandContext(ctx, "go", "build", "-race", "-o", cliBin, "github.com/skiffdb/skiff/cmd/skiff"),
		exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/skiffdb/skiff/cmd/skiffd"),
		exec.CommandContext(ctx, "go", "build", "-race", "-tags", failpointTags(), "-o", fpBin, "github.com/skiffdb/skiff/cmd/skiffd"),
	}
	for _, b := range builds {
		b.Dir = root
		if out, err := b.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s: %v\n%s", strings.Join(b.Args, " "), err, out)
			return 1
		}
	}
	skiffdBin, skiffdFailpointsBin, skiffBin = bin, fpBin, cliBin
	return m.Run()
}

// moduleRoot is the directory of go.mod, so the build does not depend on
// the directory go test runs in.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot find the module root: %w", err)
	}
	return root, nil
}

// readSources reads the daemon's sources (the module minus these tests).
// The test binary does not import them, so without this go test's result
// cache would replay a pass after the server changed: go test keys cached
// results on the files a test opens, and a child "go build" does not count.
// It must run inside m.Run, where go test records the files opened.
func readSources(root string) error {
	testDir := filepath.Join(root, "test")
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		// Files may come and go while the tree is being edited.
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == testDir || (path != root && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".c", ".h", ".proto", ".mod", ".sum":
			if _, err := os.ReadFile(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// process is one run of the daemon.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // cmd.Wait's result; read only after done is closed
	exitAt  time.Time     // when Wait returned; read only after done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is the exit status, or -1 if the process died of a signal.
func (p *process) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// node is one single-node Skiff "cluster" run as a real process. Its data
// directory survives restarts; its stderr goes to one log file per run.
type node struct {
	t        *testing.T
	dir      string
	dataDir  string
	httpAddr string
	raftAddr string
	runs     int
	logs     []string
	proc     *process
	client   *http.Client
	// args are extra daemon flags, set before the first start.
	args []string
	// failpoints, if set, runs the failpoints build with this
	// SKIFF_FAILPOINTS spec (possibly empty) on the next start.
	failpoints *string
	// env is extra environment for the daemon, set before a start: KEY=VALUE
	// sets KEY, a bare KEY unsets it.
	env []string
	// tlsClient, if set, makes the harness speak HTTPS to the node with
	// this client configuration (set before the first start, with the
	// daemon's -http-cert and -http-key in args; see useTLS).
	tlsClient *tls.Config
}

// newNode prepares a node (ports, directories) without starting it. Its
// cleanup stops any process still running and scans the logs.
func newNode(t *testing.T) *node {
	t.Helper()
	if err := sourcesRead(); err != nil {
		t.Fatalf("reading the daemon's sources: %v", err)
	}
	dir := t.TempDir()
	n := &node{
		t:        t,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		httpAddr: testport.Addr(t),
		raftAddr: testport.Addr(t),
		client:   newClient(requestTimeout, false),
	}
	// Registered after t.TempDir, so it runs before the directory is
	// removed: the process must be gone and the logs read first.
	t.Cleanup(n.cleanup)
	return n
}

// newClient returns an HTTP client with an explicit timeout. noKeepAlive
// makes every request open its own connection.
func newClient(timeout time.Duration, noKeepAlive bool) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 32,
			DisableKeepAlives:   noKeepAlive,
			IdleConnTimeout:     30 * time.Second,
		},
		// Redirects are part of the contract under test (API.md 1.1,
		// 1.7); never follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (n *node) baseURL() string {
	if n.tlsClient != nil {
		return "https://" + n.httpAddr
	}
	return "http://" + n.httpAddr
}

// useTLS makes c, one of newClient's, speak HTTPS to n if n serves it.
func (n *node) useTLS(c *http.Client) *http.Client {
	if n.tlsClient != nil {
		c.Transport.(*http.Transport).TLSClientConfig = n.tlsClient.Clone()
	}
	return c
}

// on returns a view of n whose request helpers report to t, for use in a
// subtest: FailNow must come from the goroutine of the test that fails.
// Only the request helpers may be used through it.
func (n *node) on(t *testing.T) *node {
	v := *n
	v.t = t
	return &v
}

// launch starts the daemon and returns at once; it does not wait for HTTP.
func (n *node) launch() *process {
	n.t.Helper()
	if n.proc != nil && !n.proc.exited() {
		n.t.Fatal("launch: the previous process is still running")
	}
	n.runs++
	logPath := filepath.Join(n.dir, fmt.Sprintf("skiffd-run%d.log", n.runs))
	f, err := os.Create(logPath)
	if err != nil {
		n.t.Fatalf("launch: %v", err)
	}
	defer f.Close()
	args := []string{
		"-node-id", "1",
		"-http-addr", n.httpAddr, "-http-adv-addr", n.httpAddr,
		"-raft-addr", n.raftAddr, "-raft-adv-addr", n.raftAddr,
		"-raft-log-level", "WARN", "-log-level", "info",
	}
	args = append(append(args, n.args...), n.dataDir)
	bin := skiffdBin
	if n.failpoints != nil {
		bin = skiffdFailpointsBin
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The race runtime sleeps 1s at exit by default to catch late
	// reports; a shorter sleep keeps restarts quick, and a race still
	// makes the exit status 66, which sigterm checks.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=100")
	if n.failpoints != nil {
		cmd.Env = append(cmd.Env, "SKIFF_FAILPOINTS="+*n.failpoints)
	}
	for _, kv := range n.env {
		if !strings.Contains(kv, "=") { // a bare name unsets it
			cmd.Env = slices.DeleteFunc(cmd.Env, func(e string) bool { return strings.HasPrefix(e, kv+"=") })
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("launch: %v", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	n.proc = p
	n.logs = append(n.logs, logPath)
	return p
}

// errPortClash says that the daemon could not bind one of its ports.
var errPortClash = errors.New("port clash")

// start launches the daemon and waits until this very process serves
// HTTP and has its Raft port bound (lifecycle past "starting"), retrying
// with other ports if a port was taken. Only the HTTP port may change on a
// restart: the Raft address is part of the node's stored identity.
func (n *node) start() {
	n.t.Helper()
	fresh := n.runs == 0
	for attempt := 1; ; attempt++ {
		p := n.launch()
		err := n.waitStarted(p)
		if err == nil {
			return
		}
		if errors.Is(err, errPortClash) && attempt < portAttempts {
			n.t.Logf("start attempt %d: %v; retrying with other ports", attempt, err)
			n.httpAddr = testport.Addr(n.t)
			if fresh {
				// The failed run stored the old Raft address as the
				// node's identity; nothing else is in there yet.
				if err := os.RemoveAll(n.dataDir); err != nil {
					n.t.Fatal(err)
				}
				n.raftAddr = testport.Addr(n.t)
			}
			continue
		}
		n.dumpLogs()
		n.t.Fatalf("start: %v", err)
	}
}

// waitStarted polls /status until it is answered by p (os.pid, so that a
// stranger on the port is not mistaken for our node) with a lifecycle state
// past "starting" (Raft's port is bound by then), or p exits.
func (n *node) waitStarted(p *process) error {
	deadline := time.Now().Add(httpUpTimeout)
	c := n.useTLS(newClient(2*time.Second, true))
	for time.Now().Before(deadline) {
		if p.exited() {
			if n.logContains(p.logPath, "address already in use") {
				return fmt.Errorf("%w: process exited: %v", errPortClash, p.waitErr)
			}
			return fmt.Errorf("process exited before serving: %v", p.waitErr)
		}
		if st, err := fetchStatus(c, n.baseURL()); err == nil {
			if st.pid != p.cmd.Process.Pid {
				// Someone else answers on our port; ours will fail to
				// bind and exit, which the next round sees.
				time.Sleep(20 * time.Millisecond)
				continue
			}
			// "stopping" this early means startup failed (a Raft port
			// clash, say); the exit is examined on the next round.
			if st.state != "starting" && st.state != "stopping" {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no HTTP from pid %d within %s", p.cmd.Process.Pid, httpUpTimeout)
}

// statusInfo is what the harness reads from /status.
type statusInfo struct {
	state     string // lifecycle.state
	pid       int    // os.pid
	nodeID    string // store.node_id
	leaderID  string // store.leader.node_id
	raftState string // store.raft.state
	ready     bool   // store.ready
}

// fetchStatus reads /status and the fields the harness needs.
func fetchStatus(c *http.Client, base string) (statusInfo, error) {
	resp, err := c.Get(base + "/status")
	if err != nil {
		return statusInfo{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return statusInfo{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return statusInfo{}, fmt.Errorf("/status: %d %q", resp.StatusCode, b)
	}
	return parseStatus(b)
}

// parseStatus checks the parts of /status that clients rely on in every
// state: gorqlite type-asserts store and store.leader (API.md 4.1 item 1),
// and Skiff adds lifecycle.state (DESIGN.md).
func parseStatus(b []byte) (statusInfo, error) {
	var doc struct {
		OS struct {
			PID int `json:"pid"`
		} `json:"os"`
		Store *struct {
			NodeID *string `json:"node_id"`
			Ready  *bool   `json:"ready"`
			Leader *struct {
				NodeID *string `json:"node_id"`
			} `json:"leader"`
			Raft *struct {
				State string `json:"state"`
			} `json:"raft"`
		} `json:"store"`
		Lifecycle struct {
			State string `json:"state"`
		} `json:"lifecycle"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return statusInfo{}, fmt.Errorf("/status is not JSON: %v: %.300q", err, b)
	}
	if doc.Lifecycle.State == "" {
		return statusInfo{}, fmt.Errorf("/status has no lifecycle.state: %.300q", b)
	}
	st := doc.Store
	if st == nil || st.NodeID == nil || st.Ready == nil || st.Leader == nil || st.Leader.NodeID == nil || st.Raft == nil || st.Raft.State == "" {
		return statusInfo{}, fmt.Errorf("/status lacks store.node_id, store.ready, store.leader.node_id or store.raft.state: %.300q", b)
	}
	return statusInfo{state: doc.Lifecycle.State, pid: doc.OS.PID, nodeID: *st.NodeID, leaderID: *st.Leader.NodeID,
		raftState: st.Raft.State, ready: *st.Ready}, nil
}

// waitReady polls /readyz until it answers 200 with the ready body.
func (n *node) waitReady(timeout time.Duration) {
	n.t.Helper()
	p := n.proc
	deadline := time.Now().Add(timeout)
	c := n.useTLS(newClient(2*time.Second, false))
	defer c.CloseIdleConnections()
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			n.dumpLogs()
			n.t.Fatalf("waitReady: process exited: %v", p.waitErr)
		}
		resp, err := c.Get(n.baseURL() + "/readyz")
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				if string(b) != readyBody {
					n.t.Fatalf("waitReady: /readyz 200 with body %q, want %q (API.md 2.3)", b, readyBody)
				}
				return
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.dumpLogs()
	n.t.Fatalf("waitReady: not ready within %s; last /readyz: %s", timeout, last)
}

// sigterm stops the daemon gracefully and requires exit status 0 within
// stopTimeout (the contract: SIGTERM shuts down cleanly).
func (n *node) sigterm() {
	n.t.Helper()
	if err := n.stop(); err != nil {
		n.dumpLogs()
		n.t.Fatal(err)
	}
}

// stop is sigterm without t.Fatal, for cleanups.
func (n *node) stop() error {
	p := n.proc
	if p == nil || p.exited() {
		return nil
	}
	defer n.client.CloseIdleConnections()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.exited() {
		return fmt.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("no exit within %s of SIGTERM; killed", stopTimeout)
	}
	if code := p.exitCode(); code != 0 {
		return fmt.Errorf("exit status %d after SIGTERM, want 0 (%v)", code, p.waitErr)
	}
	return nil
}

// sigkill kills the daemon and waits until it is reaped.
func (n *node) sigkill() {
	n.t.Helper()
	p := n.proc
	if p == nil || p.exited() {
		n.t.Fatal("sigkill: no running process")
	}
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		n.t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(killTimeout):
		n.t.Fatalf("process not reaped within %s of SIGKILL", killTimeout)
	}
	n.client.CloseIdleConnections()
}

// badLogLine matches what must never appear in a daemon's output: a
// recovered handler panic (logged with a "panic" field), a zap panic or
// fatal level, a Go runtime panic or fatal error, a data race report.
var badLogLine = regexp.MustCompile(`"panic"|"level":"(dpanic|panic|fatal)"|^panic: |^fatal error: |DATA RACE`)

// cleanup stops a still-running daemon (gracefully, so that a shutdown bug
// shows up in every test) and fails the test on bad log lines.
func (n *node) cleanup() {
	if n.proc != nil && !n.proc.exited() {
		if err := n.stop(); err != nil {
			n.t.Errorf("cleanup: %v", err)
		}
	}
	n.client.CloseIdleConnections()
	bad := false
	for _, path := range n.logs {
		f, err := os.Open(path)
		if err != nil {
			n.t.Errorf("cleanup: %v", err)
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		errLines := 0
		for lineNo := 1; sc.Scan(); lineNo++ {
			line := sc.Text()
			switch {
			case badLogLine.MatchString(line):
				n.t.Errorf("%s:%d: %s", filepath.Base(path), lineNo, line)
				bad = true
			case strings.Contains(line, `"level":"error"`):
				// Not a failure by itself (a refused start logs one),
				// but worth seeing next to the test's verdict.
				if errLines++; errLines <= 5 {
					n.t.Logf("%s:%d: %s", filepath.Base(path), lineNo, line)
				}
			}
		}
		f.Close()
	}
	if bad || n.t.Failed() {
		n.dumpLogs()
	}
}

// logContains reports whether the log file at path contains s.
func (n *node) logContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

// dumpLogs logs the tail of each run's log, for diagnosing a failure.
func (n *node) dumpLogs() {
	const tail = 60
	for _, path := range n.logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > tail {
			lines = lines[len(lines)-tail:]
		}
		n.t.Logf("---- %s (last %d lines) ----\n%s", filepath.Base(path), len(lines), strings.Join(lines, "\n"))
	}
}

// response is an HTTP answer, read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %q", r.status, r.body) }

// do sends a request and reads the whole answer; errors are returned, so it
// is safe in goroutines other than the test's.
func (n *node) do(c *http.Client, method, path, contentType string, body io.Reader) (response, error) {
	req, err := http.NewRequest(method, n.baseURL()+path, body)
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("reading the body of %s %s: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// get sends GET path and fails the test on a transport error.
func (n *node) get(path string) response {
	n.t.Helper()
	r, err := n.do(n.client, http.MethodGet, path, "", nil)
	if err != nil {
		n.t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// post sends POST path with a JSON body and fails the test on a transport
// error.
func (n *node) post(path, body string) response {
	n.t.Helper()
	return n.postType(path, "application/json", body)
}

// postType is post with an explicit Content-Type.
func (n *node) postType(path, contentType, body string) response {
	n.t.Helper()
	r, err := n.do(n.client, http.MethodPost, path, contentType, strings.NewReader(body))
	if err != nil {
		n.t.Fatalf("POST %s %s: %v", path, body, err)
	}
	return r
}

// execute POSTs a JSON body to /db/execute.
func (n *node) execute(body string) response {
	n.t.Helper()
	return n.post("/db/execute", body)
}

// query runs one SQL statement with GET /db/query?q= plus optional extra
// parameters ("level=strong", "associative", ...).
func (n *node) query(sql string, params ...string) response {
	n.t.Helper()
	q := "q=" + url.QueryEscape(sql)
	for _, p := range params {
		q += "&" + p
	}
	return n.get("/db/query?" + q)
}

// wantResp fails unless r has exactly this status and body.
func wantResp(t *testing.T, what string, r response, status int, body string) {
	t.Helper()
	if r.status != status || string(r.body) != body {
		t.Errorf("%s:\n got: %d %s\nwant: %d %s", what, r.status, r.body, status, body)
	}
}

// wantOK fails unless r is a 200 with exactly this body.
func wantOK(t *testing.T, what string, r response, body string) {
	t.Helper()
	wantResp(t, what, r, http.StatusOK, body)
}
