package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/skiffdb/skiff/test/testport"
)

// Web console tests (gateway/console) in a real browser: Debian's headless
// chromium driven by chromedp against real skiffd processes. The browser
// is slow under a loaded machine, so every wait is generous and bounded.
const (
	// chromiumPath is where Debian's chromium package puts its launcher.
	chromiumPath = "/usr/bin/chromium"
	// uiTimeout bounds one wait for the page to show something.
	uiTimeout = 60 * time.Second
)

// newBrowser starts one headless chromium for t and returns its context;
// cleanup closes the browser (and its processes). It fails, naming the
// setup, when chromium is not installed: .ci/run installs it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the console tests need Debian's chromium at %s (%v): install it with "+
			"`apt-get update && apt-get install -y chromium`, as .ci/run does", chromiumPath, err)
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		// Root in a container has no user namespace for the sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, on a context without a deadline (its first
	// Run binds the browser's life to it), bounded by a watchdog instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(uiTimeout):
		cancelBrowser()
		t.Fatalf("chromium did not start within %s", uiTimeout)
	}
	return ctx
}

// ui runs steps, bounded by uiTimeout, failing t with what.
func ui(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(cctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value, bounded by uiTimeout.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(cctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// poll waits until the page's expression is truthy.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(uiTimeout))
}

func click(css string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(css)) }

// screenshot saves the viewport as a PNG under dir.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	saveShot(t, dir, name, get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot()))
}

// saveShot writes png under dir and, with SKIFF_SCREENSHOTS set, to that
// directory too (how docs/console-cluster.png was made).
func saveShot(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	dirs := []string{dir}
	if out := os.Getenv("SKIFF_SCREENSHOTS"); out != "" {
		dirs = append(dirs, out)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s (%d bytes)", filepath.Join(dir, name+".png"), len(png))
}

// gridJS reads the first results grid: header cells, then each row's.
const gridJS = `(() => {
  const t = document.querySelector("#results table.grid");
  if (!t) return null;
  return [...t.rows].map(r => [...r.cells].map(c => c.textContent));
})()`

// runSQL types sql into the editor, runs it and waits for its outcome: a
// grid, a write summary or an error.
func runSQL(t *testing.T, ctx context.Context, sql string) {
	t.Helper()
	ui(t, ctx, "run "+sql,
		click(`#tabs button[data-tab="query"]`),
		chromedp.SetValue(chromedp.ID("sql"), sql),
		click("#run"),
		poll(`document.querySelector("#results .result, #query-error:not([hidden])") !== null`),
	)
}

func readGrid(t *testing.T, ctx context.Context) [][]string {
	t.Helper()
	return get(t, ctx, "read grid", chromedp.Evaluate[[][]string](gridJS))
}

func wantGrid(t *testing.T, ctx context.Context, sql string, want [][]string) {
	t.Helper()
	runSQL(t, ctx, sql)
	errText := get(t, ctx, "read error", chromedp.Evaluate[string](`document.querySelector("#query-error").hidden ? "" : document.querySelector("#query-error").textContent`))
	if errText != "" {
		t.Fatalf("%s: the page shows an error: %s", sql, errText)
	}
	if got := readGrid(t, ctx); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: grid %q, want %q", sql, got, want)
	}
}

func wantWrite(t *testing.T, ctx context.Context, sql, contains string) {
	t.Helper()
	runSQL(t, ctx, sql)
	got := get(t, ctx, "read write summary", chromedp.Evaluate[string](`(document.querySelector("#results .write-info") || document.querySelector("#query-error")).textContent`))
	if !strings.Contains(got, contains) {
		t.Fatalf("%s: page shows %q, want it to contain %q", sql, got, contains)
	}
}

// restoreFile uploads path through the Restore page's file input.
func restoreFile(t *testing.T, ctx context.Context, path string) string {
	t.Helper()
	ui(t, ctx, "restore "+path,
		click(`#tabs button[data-tab="restore"]`),
		chromedp.SetUploadFiles(chromedp.ID("restore-file"), []string{path}),
		click("#restore-run"),
		poll(`document.querySelector("#restore-result").textContent.startsWith("HTTP ")`),
	)
	return get(t, ctx, "restore result", chromedp.TextContent(chromedp.ID("restore-result")))
}

// consoleRow is one node on the cluster page, as shown.
type consoleRow struct {
	ID        string  `json:"id"`
	Role      string  `json:"role"`
	Voter     string  `json:"voter"`
	Reachable string  `json:"reachable"`
	Phase     string  `json:"phase"`
	Step      string  `json:"step"`
	Progress  string  `json:"progress"`
	Value     float64 `json:"value"`
	Max       float64 `json:"max"`
}

const clusterJS = `[...document.querySelectorAll("#nodes tbody tr")].map(tr => {
  const q = (s) => tr.querySelector(s);
  const bar = q("progress");
  return {id: q(".id").textContent, role: q(".role").textContent, voter: q(".voter").textContent,
    reachable: q(".reachable").textContent, phase: q(".phase").textContent, step: tr.dataset.step || "",
    progress: q(".progress").textContent, value: bar && bar.hasAttribute("value") ? bar.value : -1, max: bar ? bar.max : 0};
})`

func readCluster(ctx context.Context) ([]consoleRow, error) {
	cctx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	return chromedp.Run(cctx, chromedp.Evaluate[[]consoleRow](clusterJS))
}

// waitClusterReady waits until the cluster page shows ids, all reachable
// voters in phase ready, one of them the leader.
func waitClusterReady(t *testing.T, ctx context.Context, ids []string) []consoleRow {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	var rows []consoleRow
	var err error
	for time.Now().Before(deadline) {
		rows, err = readCluster(ctx)
		if err == nil && len(rows) == len(ids) {
			leaders, ok := 0, true
			for i, r := range rows {
				ok = ok && r.ID == ids[i] && r.Phase == "ready" && r.Voter == "yes" && r.Reachable == "yes" &&
					(r.Role == "leader" || r.Role == "follower")
				if r.Role == "leader" {
					leaders++
				}
			}
			if ok && leaders == 1 {
				return rows
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the cluster page never showed %v all ready with one leader: %+v (%v)", ids, rows, err)
	return nil
}

// TestConsoleQueryRestoreCluster drives the console on a 3-node cluster:
// a write and a query read back from the grid cell by cell, the schema
// page, a restore of a SQLite file and of SQL text through the file input,
// and the cluster page listing every node ready.
func TestConsoleQueryRestoreCluster(t *testing.T) {
	c := newCluster(t, 3)
	ctx := newBrowser(t)
	shots := t.TempDir()
	base := c.leader.apiURL()

	ui(t, ctx, "open the console",
		chromedp.Navigate(base+"/console"),
		chromedp.WaitVisible(chromedp.ID("sql")),
	)
	loc := get(t, ctx, "location", chromedp.Location())
	if loc != base+"/console/#query" {
		t.Fatalf("/console led to %s, want %s/console/#query", loc, base)
	}

	if !get(t, ctx, "CDC tab", chromedp.Evaluate[bool](`document.querySelector('#tabs button[data-tab="cdc"]').hidden`)) {
		t.Fatal("the CDC page is offered on a node without CDC")
	}
	wantWrite(t, ctx, "CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT, weight REAL)", "executed, ")
	wantWrite(t, ctx, "INSERT INTO fruit(name, weight) VALUES ('apple', 1.5), ('banana', NULL), ('<b>cherry</b>', 0.25)",
		"executed, 3 row(s) affected, last insert id 3, ")
	ui(t, ctx, "level", chromedp.SetValue(chromedp.ID("level"), "strong"))
	wantGrid(t, ctx, "SELECT id, name, weight FROM fruit ORDER BY id", [][]string{
		{"id", "name", "weight"}, {"1", "apple", "1.5"}, {"2", "banana", "NULL"}, {"3", "<b>cherry</b>", "0.25"},
	})
	screenshot(t, ctx, shots, "console-query")
	ui(t, ctx, "associative", click("#associative"))
	// The associative shape is a JSON object per row: the grid shows its
	// keys in the order the node sends them (sorted), not the query's.
	wantGrid(t, ctx, "SELECT name, id FROM fruit WHERE id = 1", [][]string{{"id", "name"}, {"1", "apple"}})
	ui(t, ctx, "not associative", click("#associative"))
	// An error is shown, not a grid.
	runSQL(t, ctx, "SELECT * FROM no_such_table")
	errText := get(t, ctx, "error text", chromedp.TextContent(chromedp.ID("query-error")))
	if !strings.Contains(errText, "no such table: no_such_table") {
		t.Fatalf("error shown as %q", errText)
	}

	// Schema: the table with its columns; a click fills the editor.
	ui(t, ctx, "schema",
		click(`#tabs button[data-tab="schema"]`),
		chromedp.WaitVisible(chromedp.CSS(`.schema-table[data-table="fruit"]`)),
	)
	cols := get(t, ctx, "schema columns", chromedp.Evaluate[[]string](`[...document.querySelectorAll('.schema-table[data-table="fruit"] tbody tr')].map(r => r.cells[0].textContent + " " + r.cells[1].textContent)`))
	if fmt.Sprint(cols) != "[id INTEGER name TEXT weight REAL]" {
		t.Fatalf("schema columns %q", cols)
	}
	ui(t, ctx, "schema click",
		click(`.schema-table[data-table="fruit"] h3`),
		chromedp.WaitVisible(chromedp.ID("sql")),
	)
	sql := get(t, ctx, "editor", chromedp.Value(chromedp.ID("sql")))
	if sql != `SELECT * FROM "fruit" LIMIT 100` {
		t.Fatalf("clicking the table put %q in the editor", sql)
	}

	// Restore a SQLite file: take a backup, change the data, load the
	// backup through the page and see the old rows again.
	resp, err := http.Get(base + "/db/backup")
	if err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(t.TempDir(), "fruit.db")
	f, err := os.Create(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %d %v", resp.StatusCode, err)
	}
	wantWrite(t, ctx, "DELETE FROM fruit", "3 row(s) affected")
	if got := restoreFile(t, ctx, dbFile); !strings.HasPrefix(got, "HTTP 200") {
		t.Fatalf("restoring the SQLite file: %q", got)
	}
	wantGrid(t, ctx, "SELECT name FROM fruit ORDER BY id", [][]string{{"name"}, {"apple"}, {"banana"}, {"<b>cherry</b>"}})

	// Restore SQL text.
	sqlFile := filepath.Join(t.TempDir(), "veg.sql")
	if err := os.WriteFile(sqlFile, []byte("CREATE TABLE veg (name TEXT);\nINSERT INTO veg VALUES ('leek');\nINSERT INTO veg VALUES ('kale');\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := restoreFile(t, ctx, sqlFile); !strings.HasPrefix(got, "HTTP 200") {
		t.Fatalf("restoring SQL text: %q", got)
	}
	screenshot(t, ctx, shots, "console-restore")
	wantGrid(t, ctx, "SELECT name FROM veg ORDER BY name", [][]string{{"name"}, {"kale"}, {"leek"}})

	// Backup links point at this node's API.
	ui(t, ctx, "backup tab", click(`#tabs button[data-tab="backup"]`))
	hrefs := get(t, ctx, "backup links", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#backup a")].map(a => a.href)`))
	if !slices.Contains(hrefs, base+"/db/backup") || !slices.Contains(hrefs, base+"/db/backup?fmt=sql") {
		t.Fatalf("backup links %q", hrefs)
	}

	// Cluster: every node, ready, one leader; from a follower too.
	ui(t, ctx, "cluster tab", click(`#tabs button[data-tab="cluster"]`))
	rows := waitClusterReady(t, ctx, c.ids())
	t.Logf("cluster page: %+v", rows)
	screenshot(t, ctx, shots, "console-cluster")
	follower := others(c.ms, c.leader)[0]
	ui(t, ctx, "open a follower's console", chromedp.Navigate(follower.apiURL()+"/console/#cluster"))
	waitClusterReady(t, ctx, c.ids())
}

// seen is one state of a node's row on the cluster page.
type seen struct {
	phase, step, progress string
	value, max            float64
}

// phaseRecorder records what the cluster page shows for one node, from a
// goroutine that uses only chromedp (it never fails the test itself). It
// ends once the node shows ready after having shown anything else.
type phaseRecorder struct {
	stop    chan struct{}
	done    chan error
	history []seen
	// midShot is a screenshot taken the first time the node's bar was
	// part-way.
	midShot []byte
}

func recordPhases(ctx context.Context, match func(consoleRow) bool) *phaseRecorder {
	rec := &phaseRecorder{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		left := false
		for {
			select {
			case <-rec.stop:
				rec.done <- errors.New("the page never showed the node ready again")
				return
			case <-tick.C:
			}
			got, err := readCluster(ctx)
			if err != nil {
				rec.done <- err
				return
			}
			for _, r := range got {
				if !match(r) {
					continue
				}
				s := seen{r.Phase, r.Step, r.Progress, r.Value, r.Max}
				if len(rec.history) == 0 || rec.history[len(rec.history)-1] != s {
					rec.history = append(rec.history, s)
				}
				left = left || r.Phase != "ready"
				if rec.midShot == nil && r.Phase != "ready" && r.Value > 0 && r.Value < r.Max {
					cctx, cancel := context.WithTimeout(ctx, uiTimeout)
					rec.midShot, _ = chromedp.Run(cctx, chromedp.CaptureScreenshot())
					cancel()
				}
				if left && r.Phase == "ready" {
					rec.done <- nil
					return
				}
			}
		}
	}()
	return rec
}

// wait waits (bounded by clusterTimeout) for the recorder to end and
// returns what it saw, logged.
func (rec *phaseRecorder) wait(t *testing.T) ([]seen, []byte) {
	t.Helper()
	var err error
	select {
	case err = <-rec.done:
	case <-time.After(clusterTimeout):
		close(rec.stop)
		err = <-rec.done
	}
	for _, s := range rec.history {
		t.Logf("on the page: phase %-11s step %-20q bar %v/%v  %s", s.phase, s.step, s.value, s.max, s.progress)
	}
	if err != nil {
		t.Fatalf("reading the cluster page: %v", err)
	}
	return rec.history, rec.midShot
}

// TestConsoleRestartProgress restarts a node with a large database while
// the cluster page is open on another node and records the phases the
// page shows for it: it must show the node leave (unreachable), come back
// through at least one phase before ready with a progress bar, then ready.
// Failpoints (sm/open, sm/apply) stretch opening and the log replay so
// that a page refreshing every 250 ms sees them on a loaded machine.
func TestConsoleRestartProgress(t *testing.T) {
	c := newCluster(t, 3)
	n3 := c.byID("n3")
	leader := c.leader
	if leader == n3 {
		leader = c.byID("n1")
	}
	// A large table in one small log entry (as TestRestartTimeAtTwoSizes).
	wantOK(t, "create", leader.execute(`["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)"]`), `{"results":[{}]}`)
	const rows = 100_000
	wantOK(t, "bulk insert", leader.execute(fmt.Sprintf(`["WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO big (v) SELECT printf('%%0200d', i) FROM c"]`, rows)),
		fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":%d}]}`, rows, rows))

	ctx := newBrowser(t)
	shots := t.TempDir()
	ui(t, ctx, "open the cluster page", chromedp.Navigate(leader.apiURL()+"/console/?refresh=250#cluster"))
	waitClusterReady(t, ctx, c.ids())

	if err := n3.stop(); err != nil {
		t.Fatalf("stopping n3: %v", err)
	}
	// Entries n3 has to catch up on when it comes back.
	for i := range 40 {
		wantOK(t, "insert while n3 is down", leader.execute(fmt.Sprintf(`["INSERT INTO big (v) VALUES ('late %d')"]`, i)),
			fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":1}]}`, rows+i+1))
	}

	rec := recordPhases(ctx, func(r consoleRow) bool { return r.ID == "n3" })

	// Writes go on while n3 recovers, so that its catch-up arrives in
	// many small batches, each slowed by sm/apply, rather than in one:
	// the bar then has steps to show. They stop once n3 is ready.
	writerDone := make(chan error, 1)
	stopWriter := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				writerDone <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			r, err := leader.do(leader.client, http.MethodPost, "/db/execute", "application/json",
				strings.NewReader(fmt.Sprintf(`["INSERT INTO big (v) VALUES ('during %d')"]`, i)))
			if err == nil && r.status != http.StatusOK {
				err = fmt.Errorf("insert during the restart: %s", r)
			}
			if err != nil {
				writerDone <- err
				return
			}
		}
	}()
	spec := "sm/open=sleep(3s);sm/apply=20*sleep(300ms)"
	n3.failpoints = &spec
	n3.start()
	n3.waitReady(clusterTimeout)
	close(stopWriter)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	history, midShot := rec.wait(t)
	waitClusterReady(t, ctx, c.ids())
	screenshot(t, ctx, shots, "console-cluster-after-restart")
	var phases []string
	for _, s := range history {
		if len(phases) == 0 || phases[len(phases)-1] != s.phase {
			phases = append(phases, s.phase)
		}
	}
	t.Logf("phases seen: %v", phases)
	// The restart shows: gone, back in a phase before ready, ready.
	down := slices.Index(phases, "unreachable")
	if down < 0 {
		t.Fatalf("the page never showed n3 unreachable while it was down: %v", phases)
	}
	var between []string
	for _, p := range phases[down+1:] {
		if p == "ready" {
			break
		}
		between = append(between, p)
	}
	if len(between) == 0 || phases[len(phases)-1] != "ready" {
		t.Fatalf("the page did not show n3 in a phase before ready and then ready: %v", phases)
	}
	for _, p := range between {
		if !slices.Contains([]string{"unreachable", "starting", "opening", "recovering", "joining"}, p) {
			t.Fatalf("unexpected phase %q on the way back: %v", p, phases)
		}
	}
	// The bar moved: recovering showed the applied index short of the
	// target and then further on.
	var bar []float64
	for _, s := range history {
		if s.phase == "recovering" && s.value >= 0 && s.value < s.max {
			bar = append(bar, s.value)
		}
	}
	if len(bar) < 2 || bar[len(bar)-1] <= bar[0] {
		t.Fatalf("the progress bar did not move while n3 recovered: %v", bar)
	}
	if midShot == nil {
		t.Fatal("no screenshot of the bar part-way")
	}
	saveShot(t, shots, "console-cluster-recovering", midShot)
}

// TestConsoleCDC: with CDC on, the console shows its CDC page, and the
// page follows the status as it changes (here a sink that is down: the
// backlog grows and the last error says why). Without CDC the page is not
// offered (TestConsoleQueryRestoreCluster checks that).
func TestConsoleCDC(t *testing.T) {
	const inserts = 5
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON("http://"+testport.Addr(t)+"/cdc", nil))
	c := newClusterWith(t, 1, withFlags("-cdc-config", cfg))
	n := c.leader
	ctx := newBrowser(t)
	ui(t, ctx, "open the console",
		chromedp.Navigate(n.apiURL()+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`#tabs button[data-tab="cdc"]`)),
		click(`#tabs button[data-tab="cdc"]`),
		chromedp.WaitVisible(chromedp.CSS(`#cdc-status tr[data-key="backlog"]`)),
	)
	wantOK(t, "CREATE TABLE", n.execute(createItems), `{"results":[{}]}`)
	for i := 1; i <= inserts; i++ {
		wantOK(t, "insert", n.execute(fmt.Sprintf(`["INSERT INTO items(id, v) VALUES(%d, 'x')"]`, i)),
			fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":1}]}`, i))
	}
	// The page refreshes by itself: no reload, no click.
	cctx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	_, err := chromedp.Run(cctx, poll(fmt.Sprintf(`(() => {
  const v = (k) => { const r = document.querySelector('#cdc-status tr[data-key="' + k + '"] td'); return r ? r.textContent : ""; };
  return Number(v("backlog")) >= %d && v("last_error") !== "" && v("is_leader") === "true";
})()`, inserts)))
	if err != nil {
		shown := get(t, ctx, "CDC table", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#cdc-status tr")].map(r => r.textContent)`))
		t.Fatalf("the CDC page never showed a backlog of %d and a last error: %v; it shows %q", inserts, err, shown)
	}
	screenshot(t, ctx, t.TempDir(), "console-cdc")
}

// TestConsoleAuth: with -auth the console needs the ui permission (401
// with the Basic challenge, which makes a browser ask), and a browser that
// has the credentials uses the console: its API calls carry them too.
func TestConsoleAuth(t *testing.T) {
	n := newNode(t)
	path := filepath.Join(n.dir, "auth.json")
	creds := `[{"username":"bob","password":"secret1","perms":["all"]},
 {"username":"mary","password":"secret2","perms":["query","status"]},
 {"username":"*","perms":["status","ready"]}]`
	// (Anyone may read /status and /readyz: the harness waits on them.)
	if err := os.WriteFile(path, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{"-auth", path}
	n.start()
	n.waitReady(readyTimeout)
	want401(t, "anonymous /console/", authDo(t, n, "GET", "/console/", "", "", ""))
	want401(t, "anonymous /console", authDo(t, n, "GET", "/console", "", "", ""))
	want401(t, "mary (no ui) /console/", authDo(t, n, "GET", "/console/", "", "mary", "secret2"))
	if r := authDo(t, n, "GET", "/console/", "", "bob", "secret1"); r.status != http.StatusOK || !strings.Contains(string(r.body), "Skiff console") {
		t.Fatalf("bob /console/: %s", r)
	}

	ctx := newBrowser(t)
	// Credentials in the URL land in the browser's cache for the realm,
	// as if typed into its prompt; the page's fetches then answer the
	// 401 challenges with them.
	u := strings.Replace(n.baseURL(), "://", "://bob:secret1@", 1)
	ui(t, ctx, "open the console with credentials",
		chromedp.Navigate(u+"/console/"),
		chromedp.WaitVisible(chromedp.ID("sql")),
	)
	wantWrite(t, ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "executed, ")
	wantWrite(t, ctx, "INSERT INTO t(v) VALUES ('x')", "1 row(s) affected")
	wantGrid(t, ctx, "SELECT id, v FROM t", [][]string{{"id", "v"}, {"1", "x"}})
	ui(t, ctx, "cluster tab", click(`#tabs button[data-tab="cluster"]`))
	waitClusterReady(t, ctx, []string{"1"})
}

// TestConsoleSnapshotInstall: a node joins a cluster whose log was
// compacted by a forced /snapshot, so it gets the database as a snapshot;
// the cluster page on the leader shows it receiving and installing with a
// bar that moves (bytes of total), then ready. The sm/snapshot-install
// failpoint slows each chunk so that the page sees the install.
func TestConsoleSnapshotInstall(t *testing.T) {
	c := newCluster(t, 1)
	leader := c.leader
	wantOK(t, "create", leader.execute(`["CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)"]`), `{"results":[{}]}`)
	const rows = 100_000
	wantOK(t, "bulk insert", leader.execute(fmt.Sprintf(`["WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO big (v) SELECT printf('%%0200d', i) FROM c"]`, rows)),
		fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":%d}]}`, rows, rows))
	if r := leader.post("/snapshot?trailing_logs=0", ""); r.status != http.StatusOK {
		t.Fatalf("/snapshot: %s", r)
	}

	ctx := newBrowser(t)
	shots := t.TempDir()
	ui(t, ctx, "open the cluster page", chromedp.Navigate(leader.apiURL()+"/console/?refresh=250#cluster"))
	waitClusterReady(t, ctx, []string{"n1"})

	j := c.add("n2", "-join", leader.raftAddr)
	// The install writing from Dragonboat's file, slowed so that its
	// progress shows; the receive tap, which writes as the stream
	// arrives, is off (sm/receivetap.go).
	spec := "sm/snapshot-install=sleep(100ms);sm/receive-tap=error"
	j.failpoints = &spec
	// Before its registration the joiner's row may carry its Raft
	// address as its ID: anything but n1 is the joiner.
	rec := recordPhases(ctx, func(r consoleRow) bool { return r.ID != "n1" })
	j.start()
	j.waitReady(clusterTimeout)
	history, midShot := rec.wait(t)
	waitClusterReady(t, ctx, []string{"n1", "n2"})

	var bar []float64
	for _, s := range history {
		if s.step == "installing_snapshot" && s.value >= 0 && s.value < s.max {
			bar = append(bar, s.value)
		}
	}
	if len(bar) < 2 || bar[len(bar)-1] <= bar[0] {
		t.Fatalf("the page did not show the snapshot install progressing: %v", bar)
	}
	if midShot != nil {
		saveShot(t, shots, "console-cluster-installing", midShot)
	}
}
