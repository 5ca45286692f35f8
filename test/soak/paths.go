package main

// Issue 17's other figures: cp + sync of the same file, /db/backup, and
// /boot and /db/load of the backed-up SQLite file on fresh 3-node clusters
// (the upload on the first node, then two nodes joining it, until all
// three serve every row), and the checks made while a node joins.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpSync times `cp src dst && sync dst`, then removes dst. It first
// flushes every dirty page on the machine (sync(2), untimed): right
// after the load the kernel is still writing several GB of the nodes'
// databases back, and both the copy and the stage measured next would
// otherwise share the disk with that (a 1.18 GB cp+sync took 4.8 s
// there and 1.0-1.2 s later in the same run).
func cpSync(src, dir string) (time.Duration, error) {
	dst := filepath.Join(dir, "cp-sync.sqlite")
	syscall.Sync()
	began := time.Now()
	out, err := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2"`, "cp-sync", src, dst).CombinedOutput()
	took := time.Since(began)
	_ = os.Remove(dst)
	if err != nil {
		return 0, fmt.Errorf("cp+sync: %v: %s", err, out)
	}
	return took, nil
}

// liveFile is the largest database generation in n's data directory.
func liveFile(n *node) (string, int64, error) {
	files, err := filepath.Glob(filepath.Join(n.dir, "data", "db", "db-*.sqlite"))
	if err != nil {
		return "", 0, err
	}
	var best string
	var size int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > size {
			best, size = f, st.Size()
		}
	}
	if best == "" {
		return "", 0, fmt.Errorf("%s: no database file", n.id)
	}
	return best, size, nil
}

// joinWriter writes to the leader without pause until stop, counting the
// writes answered without error and those that failed.
type joinWriter struct {
	ok, failed int
	lastErr    string
	done       chan struct{}
}

func writeDuring(leader *node, stop <-chan struct{}) *joinWriter {
	w := &joinWriter{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			st, body, err := post(leader, "/db/execute", fmt.Sprintf(`["INSERT INTO soak_mark VALUES (%d)"]`, i))
			if err != nil || st != http.StatusOK || strings.Contains(body, `"error"`) {
				w.failed++
				w.lastErr = fmt.Sprintf("%d %.200s %v", st, body, err)
				continue
			}
			w.ok++
		}
	}()
	return w
}

// countOn is SELECT COUNT(*) of table on n at level none.
func countOn(n *node, table string) (string, error) {
	st, body, err := get(n, "/db/query?level=none&q="+url.QueryEscape("SELECT COUNT(*) FROM "+table))
	if err != nil || st != http.StatusOK {
		return "", fmt.Errorf("%s count: %d %s %v", n.id, st, body, err)
	}
	return body, nil
}

// waitSame polls table's count on n until it equals want's.
func waitSame(want, n *node, table string, timeout time.Duration) (time.Duration, error) {
	began := time.Now()
	target, err := countOn(want, table)
	if err != nil {
		return 0, err
	}
	for {
		got, err := countOn(n, table)
		if err == nil && got == target {
			return time.Since(began), nil
		}
		if time.Since(began) > timeout {
			return 0, fmt.Errorf("%s: %s holds %s, the leader %s, after %s", n.id, table, got, target, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshotCounts copies the tally's counts (to compare a window).
func (t *tally) snapshotCounts() map[string]map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[int]int{}
	for k, m := range t.counts {
		out[k] = map[int]int{}
		for c, n := range m {
			out[k][c] = n
		}
	}
	return out
}

// windowFailures lists the polls between before and now that got no
// answer, and reads on the nodes in others that were not answered 200.
func (t *tally) windowFailures(before map[string]map[int]int, others []*node) (polls int, bad []string) {
	now := t.snapshotCounts()
	isOther := map[string]bool{}
	for _, n := range others {
		isOther[n.id] = true
	}
	var keys []string
	for k := range now {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		id, what, _ := strings.Cut(k, " ")
		for c, n := range now[k] {
			d := n - before[k][c]
			polls += d
			if d == 0 {
				continue
			}
			if c == 0 || (what == "read" && isOther[id] && c != http.StatusOK) {
				bad = append(bad, fmt.Sprintf("%s %d x%d", k, c, d))
			}
		}
	}
	return polls, bad
}

// backupTo GETs /db/backup from n into path and returns its duration.
func backupTo(n *node, path string) (time.Duration, int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	c := &http.Client{Timeout: 30 * time.Minute}
	began := time.Now()
	resp, err := c.Get(n.url("/db/backup"))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("/db/backup: %d %s", resp.StatusCode, b)
	}
	written, err := io.Copy(f, resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("/db/backup: %w", err)
	}
	return time.Since(began), written, nil
}

// upload POSTs the file at path to n's route as a stream.
func upload(n *node, route, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequest(http.MethodPost, n.url(route), f)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	c := &http.Client{Timeout: 30 * time.Minute}
	st, body, err := readAll(c.Do(req))
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("POST %s: %d %.200s %v", route, st, body, err)
	}
	want := ""
	if route == "/db/load" {
		want = `{"results":[]}`
	}
	if body != want {
		return fmt.Errorf("POST %s answered %q, want %q", route, body, want)
	}
	return nil
}

func readAll(resp *http.Response, err error) (int, string, error) {
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// uploadResult is one /boot or /db/load scenario's figures.
type uploadResult struct {
	route        string
	upload, all3 time.Duration
	// cpSync is cp + sync of the uploaded file just before the upload.
	cpSync  time.Duration
	peakRSS map[string]int64
}

// uploadCluster starts a single node, uploads path to route, then starts
// two nodes joining it, and measures until all three serve the
// fingerprint want (every row). It stops the three and removes their data.
func uploadCluster(skiffd, base, route, path, fp, want string, readyTimeout time.Duration) (res uploadResult, err error) {
	res = uploadResult{route: route, peakRSS: map[string]int64{}}
	dir := filepath.Join(base, strings.Trim(strings.ReplaceAll(route, "/", "-"), "-"))
	defer os.RemoveAll(dir)
	var ns []*node
	defer func() {
		for _, n := range ns {
			if serr := n.stop(syscall.SIGTERM, time.Minute); serr != nil && err == nil {
				err = serr
			}
			n.mu.Lock()
			res.peakRSS[n.id] = n.peakRSS
			n.mu.Unlock()
		}
	}()
	first, err := newNode(dir, "u1", "")
	if err != nil {
		return res, err
	}
	ns = append(ns, first)
	if err := first.launch(skiffd); err != nil {
		return res, err
	}
	if _, err := waitReady(first, time.Now(), time.Minute); err != nil {
		return res, err
	}
	if res.cpSync, err = cpSync(path, dir); err != nil {
		return res, err
	}
	began := time.Now()
	if err := upload(first, route, path); err != nil {
		return res, err
	}
	res.upload = time.Since(began)
	for _, id := range []string{"u2", "u3"} {
		n, err := newNode(dir, id, first.raft)
		if err != nil {
			return res, err
		}
		ns = append(ns, n)
		if err := n.launch(skiffd); err != nil {
			return res, err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ns))
	for i, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := waitReady(n, began, readyTimeout); err != nil {
				errs[i] = err
				return
			}
			for {
				st, body, err := get(n, "/db/query?level=none&q="+url.QueryEscape(fp))
				if err == nil && st == http.StatusOK && body == want {
					return
				}
				if time.Since(began) > readyTimeout {
					errs[i] = fmt.Errorf("%s after %s: %d %.200s %v", n.id, route, st, body, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	res.all3 = time.Since(began)
	for _, e := range errs {
		if e != nil {
			return res, e
		}
	}
	return res, nil
}
