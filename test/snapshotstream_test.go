package test

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// snapshotStreamMB is the database TestSnapshotJoinWhileWriting streams.
const snapshotStreamMB = 32

// A node joins by a snapshot the leader streams straight from its database
// file while clients keep writing to the leader (inserts and updates of
// rows the snapshot holds); the first stream is cut half-way by the
// leader's failpoint. The joiner never answers from a partial database,
// and once it is in, every node holds exactly the same rows.
func TestSnapshotJoinWhileWriting(t *testing.T) {
	c := newClusterWith(t, 3, func(m *member) { m.failpoints = new(string) })
	leader := c.leader
	rows := loadSnapshotRows(t, leader)
	// About 16 MB/s, so that the stream is long enough to write into.
	setFailpoint(t, leader, "sm/snapshot-send", "sleep(16ms)")

	// Writers on the leader for the whole transfer: new rows, and updates
	// of rows the snapshot holds (their pages change in the WAL while the
	// file streams).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt) // a test that fails before halt leaks no goroutine
	var mu sync.Mutex
	var writeErr error
	writes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := newClient(10*time.Second, false)
		defer cl.CloseIdleConnections()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`["INSERT INTO t (b) VALUES (randomblob(64))", "UPDATE t SET b = randomblob(128) WHERE id = %d"]`, 1+(i*37)%rows)
			r, err := leader.do(cl, http.MethodPost, "/db/execute?timeout=10s", "application/json", strings.NewReader(body))
			mu.Lock()
			if err == nil && (r.status != http.StatusOK || strings.Contains(string(r.body), "error")) {
				err = fmt.Errorf("write %d: %s", i, r)
			}
			if err != nil && writeErr == nil {
				writeErr = err
			}
			if err == nil {
				writes++
			}
			mu.Unlock()
		}
	}()

	j := c.add("n4", "-join", leader.raftAddr)
	j.failpoints = new(string)
	j.start()

	// The joiner answers a read only from a whole database: every answer
	// it gives holds at least the rows the snapshot was taken with.
	var seenErr error
	seen := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := newClient(5*time.Second, false)
		defer cl.CloseIdleConnections()
		q := "/db/query?level=none&q=" + url.QueryEscape("SELECT COUNT(*) FROM t")
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, err := j.do(cl, http.MethodGet, q, "", nil)
			if err != nil || r.status != http.StatusOK {
				continue
			}
			n, perr := countOf(r.body)
			mu.Lock()
			switch {
			case perr != nil && seenErr == nil:
				seenErr = fmt.Errorf("joiner answered %s: %v", r.body, perr)
			case perr == nil && n < rows && seenErr == nil:
				seenErr = fmt.Errorf("joiner answered from a partial database: %d rows of at least %d", n, rows)
			case perr == nil:
				seen++
			}
			mu.Unlock()
		}
	}()

	// Cut the first stream half-way; Dragonboat streams it again, with
	// the writes still going on.
	waitStatus(t, leader, "leader sending", func(d statusDoc) bool {
		p := d.Lifecycle.Progress
		return p.SentTotal > 0 && p.SentBytes > p.SentTotal/2
	})
	setFailpoint(t, leader, "sm/snapshot-send", "1*error")
	j.waitReady(clusterTimeout)
	setFailpoint(t, leader, "sm/snapshot-send", "off")
	c.waitMembers(c.ms, c.ids(), nil)
	// Writes after the install reach the joiner through the log.
	mu.Lock()
	before := writes
	mu.Unlock()
	for deadline := time.Now().Add(clusterTimeout); ; {
		mu.Lock()
		n := writes
		mu.Unlock()
		if n >= before+20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	halt()
	if writeErr != nil {
		t.Fatalf("a write on the leader failed during the transfer: %v", writeErr)
	}
	if seenErr != nil {
		t.Fatal(seenErr)
	}
	if failpointHits(t, leader, "sm/snapshot-send") == 0 {
		t.Fatal("the leader streamed no snapshot")
	}
	if !leader.logContains(leader.proc.logPath, `"direct": true`) && !leader.logContains(leader.proc.logPath, `"direct":true`) {
		t.Fatal("the leader did not stream its database file directly")
	}
	// The joiner wrote its database as the (second) stream arrived and
	// installed that copy (sm/receivetap.go).
	if !j.logContains(j.proc.logPath, `"tapped": true`) && !j.logContains(j.proc.logPath, `"tapped":true`) {
		t.Fatal("the joiner did not install the copy its receive tap wrote")
	}
	t.Logf("%d writes on the leader during the transfer; the joiner answered %d reads", writes, seen)
	sameEverywhere(t, c)
}

// countOf reads the single integer of a /db/query answer.
func countOf(body []byte) (int, error) {
	s := string(body)
	i := strings.Index(s, `"values":[[`)
	if i < 0 {
		return 0, fmt.Errorf("no values")
	}
	s = s[i+len(`"values":[[`):]
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0, fmt.Errorf("no values")
	}
	return strconv.Atoi(s[:end])
}

// A transfer cut by SIGKILL half-way restarts cleanly: the joiner killed
// while receiving the stream, the joiner killed while writing its next
// generation, the leader killed while streaming. No read is ever answered
// from a partial database, the joiner ends with its live generation alone,
// and all four nodes end identical.
func TestSnapshotTransferKilledMidway(t *testing.T) {
	halfSent := func(t *testing.T, leader *member) {
		waitStatus(t, leader, "leader sending", func(d statusDoc) bool {
			p := d.Lifecycle.Progress
			return p.SentTotal > 0 && p.SentBytes > p.SentTotal/2
		})
	}
	halfWritten := func(t *testing.T, _, j *member) *member {
		for deadline := time.Now().Add(clusterTimeout); time.Now().Before(deadline); {
			if failpointHits(t, j, "sm/snapshot-install") > snapshotStreamMB*2 {
				return j
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the joiner's next generation was never half-written")
		return nil
	}
	for _, tc := range []struct {
		name string
		// joinerFailpoint slows the joiner's stage that is cut.
		joinerFailpoint string
		// cut waits until the transfer is half-way and returns the
		// member to kill.
		cut func(t *testing.T, leader, j *member) *member
	}{
		{
			// Dragonboat writes the chunks to its own file.
			name: "joiner-receiving",
			cut: func(t *testing.T, leader, j *member) *member {
				halfSent(t, leader)
				return j
			},
		},
		{
			// The receive tap is writing the next generation as the
			// stream arrives (sm/receivetap.go): half of it is written.
			name:            "joiner-writing-as-received",
			joinerFailpoint: "sm/snapshot-install=sleep(16ms)",
			cut:             halfWritten,
		},
		{
			// Without the tap: Dragonboat recorded the snapshot, and the
			// install from its file has half-written the next generation.
			name:            "joiner-installing",
			joinerFailpoint: "sm/receive-tap=error;sm/snapshot-install=sleep(16ms)",
			cut:             halfWritten,
		},
		{
			name: "leader-sending",
			cut: func(t *testing.T, leader, _ *member) *member {
				halfSent(t, leader)
				return leader
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClusterWith(t, 3, func(m *member) { m.failpoints = new(string) })
			leader := c.leader
			rows := loadSnapshotRows(t, leader)
			// About 16 MB/s, so that the stream is long enough to cut.
			setFailpoint(t, leader, "sm/snapshot-send", "sleep(16ms)")
			j := c.add("n4", "-join", leader.raftAddr)
			spec := tc.joinerFailpoint
			j.failpoints = &spec
			j.start()
			stopReads := watchPartialReads(t, j, rows)
			killed := tc.cut(t, leader, j)
			killed.sigkill()
			if killed == j && tc.joinerFailpoint != "" {
				// The cut install's file is there, but CURRENT still
				// names the first (empty) generation.
				if cur := currentGen(t, j); cur != "db-1.sqlite" {
					t.Fatalf("after a kill mid-install CURRENT names %q, want db-1.sqlite", cur)
				}
			}
			if killed != leader {
				setFailpoint(t, leader, "sm/snapshot-send", "off")
			}
			none := ""
			killed.failpoints = &none
			killed.start()
			killed.waitReady(clusterTimeout)
			j.waitReady(clusterTimeout)
			c.waitMembers(c.ms, c.ids(), nil)
			if err := stopReads(); err != nil {
				t.Fatal(err)
			}
			if names := dbFiles(t, j); len(names) != 1 {
				t.Fatalf("the joiner holds %v, want its live generation alone", names)
			}
			// Nor a copy its receive tap wrote (sm/receivetap.go).
			if tapped, _ := filepath.Glob(filepath.Join(j.dataDir, "*", "tap-*")); len(tapped) > 0 {
				t.Fatalf("the joiner keeps receive-tap files %v", tapped)
			}
			sameEverywhere(t, c)
		})
	}
}

// currentGen returns the database generation m's CURRENT file names.
func currentGen(t *testing.T, m *member) string {
	t.Helper()
	var got string
	err := filepath.WalkDir(m.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "CURRENT" {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			// Pebble (the Raft log) keeps a CURRENT file too.
			if name := strings.TrimSpace(string(b)); strings.HasPrefix(name, "db-") {
				got = name
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// loadSnapshotRows loads snapshotStreamMB of 4 KiB rows and compacts the
// leader's log, so that a joiner needs the whole database; it returns the
// row count.
func loadSnapshotRows(t *testing.T, leader *member) int {
	t.Helper()
	wantOK(t, "create", leader.execute(`["CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)"]`), `{"results":[{}]}`)
	rows := snapshotStreamMB * 256
	for done := 0; done < rows; done += 4096 {
		r := leader.post("/db/execute?timeout=60s", fmt.Sprintf(
			`["WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO t (b) SELECT randomblob(4096) FROM c"]`, min(4096, rows-done)))
		if r.status != http.StatusOK || strings.Contains(string(r.body), "error") {
			t.Fatalf("bulk insert: %s", r)
		}
	}
	if r := leader.post("/snapshot?trailing_logs=0", ""); r.status != http.StatusOK {
		t.Fatalf("/snapshot: %s", r)
	}
	return rows
}

// watchPartialReads reads the row count from j until the returned stop is
// called, which returns an error if j ever answered with fewer than rows (a
// partial database), nil otherwise. The reader also stops, and is waited
// for, when the test ends, so a test that fails before stop leaks nothing.
func watchPartialReads(t *testing.T, j *member, rows int) (stop func() error) {
	t.Helper()
	quit := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		cl := newClient(5*time.Second, false)
		defer cl.CloseIdleConnections()
		q := "/db/query?level=none&q=" + url.QueryEscape("SELECT COUNT(*) FROM t")
		for {
			select {
			case <-quit:
				done <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, err := j.do(cl, http.MethodGet, q, "", nil)
			if err != nil || r.status != http.StatusOK {
				continue
			}
			if n, perr := countOf(r.body); perr != nil || n < rows {
				done <- fmt.Errorf("joiner answered %s: %d rows of at least %d (%v)", r.body, n, rows, perr)
				return
			}
		}
	}()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			close(quit)
			result = <-done
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// dbFiles lists the database generations (main files) in m's data
// directory.
func dbFiles(t *testing.T, m *member) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(m.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "db-") && strings.HasSuffix(d.Name(), ".sqlite") {
			out = append(out, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameEverywhere checks that every member holds the leader's rows.
func sameEverywhere(t *testing.T, c *cluster) {
	t.Helper()
	fingerprint := "SELECT COUNT(*), SUM(id), SUM(LENGTH(b)), (SELECT group_concat(h, '') FROM (SELECT hex(substr(b, 1, 3)) AS h FROM t ORDER BY id)) FROM t"
	want := c.leader.query(fingerprint, "level=strong")
	if want.status != http.StatusOK {
		t.Fatalf("fingerprint: %s", want)
	}
	for _, m := range c.ms {
		var got response
		for deadline := time.Now().Add(clusterTimeout); ; {
			got = m.query(fingerprint, "level=none")
			if string(got.body) == string(want.body) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got.status != http.StatusOK || string(got.body) != string(want.body) {
			t.Fatalf("%s holds %.300s, want %.300s", m.id, got.body, want.body)
		}
	}
}
