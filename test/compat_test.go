package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// gorqliteModule is the rqlite Go client whose own test suite
	// TestGorqliteSuite runs; go.mod pins its version.
	gorqliteModule = "github.com/rqlite/gorqlite"
	// gorqliteMockPort is the fixed port of the mock server in gorqlite's
	// integration package (integration/rqlite_mock_server.go binds
	// ":14001"); testport's ports start at 20000, so a daemon never
	// gets it.
	gorqliteMockPort = 14001
	// suiteTimeout bounds the whole child "go test", compilation included.
	suiteTimeout = 5 * time.Minute
	// suiteTestTimeout is the child's own -timeout: it fires first, and a
	// hung gorqlite test then panics with its goroutines in the output.
	suiteTestTimeout = 3 * time.Minute
)

// TestGorqliteSuite runs the test suite of gorqlite, the real rqlite Go
// client, against a skiffd process: a copy of the module (read-only in the
// module cache) is tested with "go test ./..." and GORQLITE_TEST_URL, the
// variable its TestMains read, pointing at the node (started with
// -write-queue-batch-size 1, see below). Every top-level gorqlite test must
// pass; skips are logged with their reason.
func TestGorqliteSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gorqlite's own test suite in a child go test; skipped with -short")
	}
	// gorqlite's integration package starts a mock server on this fixed
	// port; if someone else holds it that package cannot pass.
	if ln, err := net.Listen("tcp", fmt.Sprintf(":%d", gorqliteMockPort)); err != nil {
		t.Fatalf("port %d, which gorqlite's integration tests bind for their mock server, is taken: %v", gorqliteMockPort, err)
	} else {
		ln.Close()
	}

	src := gorqliteDir(t)
	dir := filepath.Join(t.TempDir(), "gorqlite")
	if err := copyTree(src, dir); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}

	n := newNode(t)
	// gorqlite's suite races against the write queue, and loses against
	// a node as slow as a -race skiffd: TestQueueOneParameterized queues
	// CREATE TABLE gorqlite_test, an INSERT and DROP TABLE gorqlite_test,
	// then polls sqlite_master until the table is gone (waitForTableGone)
	// before the next test recreates it. If the poll runs before the
	// queue has flushed (after -write-queue-timeout, 50ms, as in rqlite),
	// the table was never there, the poll returns at once, and the
	// queued DROP lands later, inside TestWrite, TestWriteParameterized or
	// TestWriteConstraintViolationReportsSQLiteCodes, which then fail
	// with "no such table: gorqlite_test" (5 runs in 20 against a -race
	// skiffd). On a server fast enough for those tests to end within the
	// 50ms, as rqlite in gorqlite's CI presumably is, the DROP hits
	// nothing. This is the suite's race, not a server bug.
	// With batches of one request every queued write is proposed on
	// arrival, in order, so the poll sees the CREATE and waits for the
	// DROP, as the suite assumes. Queue semantics are unchanged.
	n.args = []string{"-write-queue-batch-size", "1"}
	n.start()
	n.waitReady(readyTimeout)

	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-json",
		"-timeout", suiteTestTimeout.String(), "./...")
	cmd.Dir = dir
	cmd.Env = suiteEnv(n.baseURL())
	// The go command runs the test binaries as its children: on a timeout
	// kill the whole process group, not just go, so none outlives us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(started)

	res, parseErr := parseTestJSON(&stdout)
	if parseErr != nil {
		t.Errorf("reading go test -json output: %v", parseErr)
	}
	if ctx.Err() != nil {
		t.Errorf("gorqlite suite: not done within %s, killed", suiteTimeout)
	}
	for _, line := range res.summary() {
		t.Log(line)
	}
	t.Logf("gorqlite suite: %d/%d top-level tests passed (%d failed, %d skipped) in %d packages, %.1fs",
		res.count(actPass), res.total(), res.count(actFail), res.count(actSkip), len(res.summary()), elapsed.Seconds())

	for _, r := range res.sorted(actSkip) {
		t.Logf("skipped: %s %s:\n%s", r.pkg, r.name, indent(r.output.String()))
	}
	for _, r := range res.sorted(actPass) {
		if len(r.skipped) > 0 {
			t.Logf("passed with skipped subtests: %s %s (%s):\n%s", r.pkg, r.name,
				strings.Join(r.skipped, ", "), indent(r.output.String()))
		}
	}
	for _, r := range res.sorted(actFail) {
		t.Errorf("FAIL: %s %s:\n%s", r.pkg, r.name, indent(r.output.String()))
	}
	for _, r := range res.unfinished() {
		t.Errorf("no result for %s %s (crash or timeout?):\n%s", r.pkg, r.name, indent(r.output.String()))
	}
	for _, p := range res.failedPkgs() {
		if p.path == "" {
			t.Errorf("go test printed lines that are not test2json events:\n%s", indent(p.output.String()))
			continue
		}
		t.Errorf("package %s failed:\n%s", p.path, indent(p.output.String()))
	}
	if res.total() == 0 {
		t.Errorf("gorqlite suite ran no tests")
	}
	if runErr != nil {
		if !t.Failed() {
			t.Errorf("go test in the gorqlite copy: %v, yet no test or package failed", runErr)
		} else {
			t.Logf("go test in the gorqlite copy: %v", runErr)
		}
	}
	if t.Failed() && stderr.Len() > 0 {
		t.Logf("go test stderr:\n%s", indent(stderr.String()))
	}
}

// gorqliteDir is the module cache directory of the gorqlite version go.mod
// requires, downloaded if it is not there yet.
func gorqliteDir(t *testing.T) string {
	t.Helper()
	list := func() (string, error) {
		cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", gorqliteModule)
		cmd.Dir = moduleDir
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go list -m %s: %v: %s", gorqliteModule, err, stderrOf(err))
		}
		return strings.TrimSpace(string(out)), nil
	}
	dir, err := list()
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		cmd := exec.Command("go", "mod", "download", gorqliteModule)
		cmd.Dir = moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go mod download %s: %v: %s", gorqliteModule, err, out)
		}
		if dir, err = list(); err != nil {
			t.Fatal(err)
		}
	}
	if dir == "" {
		t.Fatalf("%s is not in the module cache", gorqliteModule)
	}
	return dir
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

// suiteEnv is the child go test's environment: ours minus whatever
// configures the go command or gorqlite's tests, plus exactly what the copy
// needs. Our GOFLAGS (build tags, -mod=readonly in CI) are for Skiff's
// module, not gorqlite's.
func suiteEnv(url string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "GOFLAGS", k == "GOWORK", k == "GOTOOLCHAIN", k == "GORACE",
			strings.HasPrefix(k, "GORQLITE_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"GOFLAGS=-mod=mod",
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GORQLITE_TEST_URL="+url,
	)
}

// copyTree copies the regular files under src to dst, writable (the module
// cache is read-only, and the go command may need to write go.mod/go.sum).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target)
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The go test -json actions a test or package ends with.
const (
	actPass = "pass"
	actFail = "fail"
	actSkip = "skip"
)

// testEvent is one line of go test -json (go doc test2json).
type testEvent struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

type testResult struct {
	pkg, name string
	action    string // "" while running
	output    strings.Builder
	// skipped are the subtests that were skipped, in a test that may
	// still pass.
	skipped []string
}

type pkgResult struct {
	path   string
	action string
	output strings.Builder
}

// suiteResult is the outcome of top-level tests and packages, in the order
// they first appeared.
type suiteResult struct {
	tests []*testResult
	byKey map[[2]string]*testResult
	pkgs  []*pkgResult
	byPkg map[string]*pkgResult
}

func (r *suiteResult) pkg(path string) *pkgResult {
	p := r.byPkg[path]
	if p == nil {
		p = &pkgResult{path: path}
		r.byPkg[path] = p
		r.pkgs = append(r.pkgs, p)
	}
	return p
}

// parseTestJSON reads go test -json output. Subtests count toward their
// top-level test only (their output is kept under it).
func parseTestJSON(rd io.Reader) (*suiteResult, error) {
	r := &suiteResult{byKey: map[[2]string]*testResult{}, byPkg: map[string]*pkgResult{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var bad []string
	for sc.Scan() {
		line := sc.Bytes()
		var ev testEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			// Not JSON: the go command's own output.
			bad = append(bad, string(line))
			continue
		}
		switch {
		case ev.Action == "build-output" || ev.Action == "build-fail":
			p := r.pkg(ev.ImportPath)
			p.output.WriteString(ev.Output)
			if ev.Action == "build-fail" {
				p.action = actFail
			}
		case ev.Test == "":
			p := r.pkg(ev.Package)
			p.output.WriteString(ev.Output)
			if ev.Action == actPass || ev.Action == actFail || ev.Action == actSkip {
				p.action = ev.Action
			}
		default:
			r.pkg(ev.Package)
			top, _, sub := strings.Cut(ev.Test, "/")
			key := [2]string{ev.Package, top}
			tr := r.byKey[key]
			if tr == nil {
				tr = &testResult{pkg: ev.Package, name: top}
				r.byKey[key] = tr
				r.tests = append(r.tests, tr)
			}
			tr.output.WriteString(ev.Output)
			switch {
			case !sub && (ev.Action == actPass || ev.Action == actFail || ev.Action == actSkip):
				tr.action = ev.Action
			case sub && ev.Action == actSkip:
				tr.skipped = append(tr.skipped, ev.Test)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if len(bad) > 0 {
		r.pkg("").output.WriteString(strings.Join(bad, "\n"))
	}
	return r, nil
}

func (r *suiteResult) count(action string) int {
	c := 0
	for _, t := range r.tests {
		if t.action == action {
			c++
		}
	}
	return c
}

func (r *suiteResult) total() int { return len(r.tests) }

func (r *suiteResult) sorted(action string) []*testResult {
	var out []*testResult
	for _, t := range r.tests {
		if t.action == action {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].pkg < out[j].pkg })
	return out
}

func (r *suiteResult) unfinished() []*testResult { return r.sorted("") }

// failedPkgs are packages that failed, or never reported a result, other
// than through a failed test already reported on its own (a build failure,
// a TestMain exiting, a panic between tests, stray go command output).
func (r *suiteResult) failedPkgs() []*pkgResult {
	var out []*pkgResult
	for _, p := range r.pkgs {
		if p.path == "" || (p.action != actPass && p.action != actSkip && r.pkgCount(p.path, actFail) == 0) {
			out = append(out, p)
		}
	}
	return out
}

func (r *suiteResult) pkgCount(pkg, action string) int {
	c := 0
	for _, t := range r.tests {
		if t.pkg == pkg && t.action == action {
			c++
		}
	}
	return c
}

// summary is one line per package: its result and its tests' counts.
func (r *suiteResult) summary() []string {
	var out []string
	for _, p := range r.pkgs {
		if p.path == "" {
			continue
		}
		total := 0
		for _, t := range r.tests {
			if t.pkg == p.path {
				total++
			}
		}
		action := p.action
		if action == "" {
			action = "no result"
		}
		out = append(out, fmt.Sprintf("%-40s %-4s %d/%d passed, %d failed, %d skipped", p.path, action,
			r.pkgCount(p.path, actPass), total, r.pkgCount(p.path, actFail), r.pkgCount(p.path, actSkip)))
	}
	return out
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
