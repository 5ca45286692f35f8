// Command benchbackup is `make bench-backup`'s driver (issue 18,
// "Performance"): the time and peak memory of one automatic backup of a
// database of -size-mb to S3, and of one automatic restore from it, each
// next to copying the same SQLite file with cp and sync.
//
// It starts an S3 server in this process (test/s3test: gofakes3 in memory
// on loopback; the daemon talks to it with its real S3 client, path style
// over plain HTTP), then:
//
//  1. starts a node without backups and loads the database with
//     recursive-CTE INSERTs of -row-bytes rows (randomblob under
//     ?norwrandom, so that every row differs and gzip has no easy win:
//     the upload is as large as the file);
//  2. copies its SQLite file with cp and sync (the floor);
//  3. restarts the node with -auto-backup (interval 1 s) and times the
//     first round, from ready to the upload counted in /status (the first
//     tick, the backup copy, the content sum, gzip, the transfer), and
//     reports the node's own last_upload_duration (the transfer alone);
//  4. starts a fresh node with -auto-restore from that object and times
//     launch to the restored rows served (download, gunzip, check, boot).
//
// Peak RSS is each process's VmHWM from /proc/<pid>/status, read while it
// still runs. Figures from a shared machine are noisy; run it on an idle
// one for numbers to compare.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdb/skiff/test/benchkit"
	"github.com/skiffdb/skiff/test/s3test"
)

func main() {
	skiffd := flag.String("skiffd", "bin/skiffd", "skiffd binary")
	sizeMB := flag.Int("size-mb", 200, "Database size to load, MB")
	rowBytes := flag.Int("row-bytes", 1000, "Bytes per row")
	dir := flag.String("dir", "", "Working directory (default: a new temporary directory here, removed at the end)")
	timeout := flag.Duration("timeout", 30*time.Minute, "Bound on each wait (load statement, upload, restore)")
	flag.Parse()
	if err := run(*skiffd, *sizeMB, *rowBytes, *dir, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-backup:", err)
		os.Exit(1)
	}
}

// rowsPerInsert bounds one INSERT statement to about 64 MB of rows: a
// small log entry, a large transaction.
const rowsPerInsert = 64 << 20

const key = "bench/skiff.sqlite.gz"

type node struct {
	id, http, raft, dir string
	cmd                 *exec.Cmd
	done                chan struct{}
	launched            time.Time
}

func newNode(base, id string) (*node, error) {
	h, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	r, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	return &node{id: id, http: h, raft: r, dir: filepath.Join(base, id)}, nil
}

func (n *node) url(path string) string { return "http://" + n.http + path }

func (n *node) launch(skiffd string, extra ...string) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, "skiffd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"-node-id", n.id, "-http-addr", n.http, "-raft-addr", n.raft, "-raft-log-level", "WARN"}, extra...)
	n.cmd = exec.Command(skiffd, append(args, filepath.Join(n.dir, "data"))...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.launched = time.Now()
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); logf.Close(); close(n.done) }()
	return nil
}

func (n *node) logPath() string { return filepath.Join(n.dir, "skiffd.log") }

// waitReady polls /readyz until 200, failing early if the process exits.
func (n *node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("%s exited before ready (%s)", n.id, n.logPath())
		default:
		}
		if benchkit.Ready(client, n.url(""), time.Now().Add(50*time.Millisecond), 10*time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("%s not ready within %s (%s)", n.id, timeout, n.logPath())
}

// stop sends SIGTERM and waits for the exit.
func (n *node) stop() error {
	if n.cmd == nil || n.done == nil {
		return nil
	}
	select {
	case <-n.done:
		return nil
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(2 * time.Minute):
		_ = n.cmd.Process.Kill()
		<-n.done
		return fmt.Errorf("%s: no exit within 2m of SIGTERM", n.id)
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s: exit status %d after SIGTERM (%s)", n.id, code, n.logPath())
	}
	return nil
}

// peakRSS is the process's VmHWM in bytes (0 when unreadable).
func (n *node) peakRSS() int64 { return benchkit.ProcPeakRSS(n.cmd.Process.Pid) }

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}

func post(n *node, path, body string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil}}
	st, b, err := benchkit.ReadAll(c.Post(n.url(path), "application/json", strings.NewReader(body)))
	if err == nil && (st != http.StatusOK || strings.Contains(string(b), `"error"`)) {
		err = fmt.Errorf("POST %s: %d %s", path, st, b)
	}
	return string(b), err
}

// doc GETs path and decodes a JSON object.
func doc(n *node, path string) (map[string]any, error) {
	st, b, err := benchkit.ReadAll(client.Get(n.url(path)))
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", path, st, b)
	}
	var d map[string]any
	return d, json.Unmarshal(b, &d)
}

// count is SELECT COUNT(*) FROM big on n.
func count(n *node) (int64, error) {
	d, err := doc(n, "/db/query?level=none&q="+url.QueryEscape("SELECT COUNT(*) FROM big"))
	if err != nil {
		return 0, err
	}
	var out struct {
		Results []struct {
			Values [][]int64 `json:"values"`
			Error  string    `json:"error"`
		} `json:"results"`
	}
	b, _ := json.Marshal(d)
	if err := json.Unmarshal(b, &out); err != nil || len(out.Results) != 1 || len(out.Results[0].Values) != 1 {
		return 0, fmt.Errorf("count: %s (%v)", b, err)
	}
	return out.Results[0].Values[0][0], nil
}

// section returns /status[name] as a map.
func section(n *node, name string) (map[string]any, error) {
	d, err := doc(n, "/status")
	if err != nil {
		return nil, err
	}
	s, ok := d[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("/status has no %s section", name)
	}
	return s, nil
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

// duration reads a duration the daemon reports as a Go duration string or
// as a number of nanoseconds, seconds or milliseconds (by the key's name).
func duration(m map[string]any, k string) (time.Duration, bool) {
	switch v := m[k].(type) {
	case string:
		d, err := time.ParseDuration(v)
		return d, err == nil
	case float64:
		switch {
		case strings.HasSuffix(k, "_ms"):
			return time.Duration(v * float64(time.Millisecond)), true
		case strings.HasSuffix(k, "_s") || strings.HasSuffix(k, "_secs"):
			return time.Duration(v * float64(time.Second)), true
		}
		return time.Duration(v), true
	}
	return 0, false
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func rssText(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", mb(b))
}

func run(skiffd string, sizeMB, rowBytes int, base string, timeout time.Duration) (err error) {
	if base == "" {
		if base, err = os.MkdirTemp(".", "bench-backup-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	s3, err := s3test.New(s3test.Config{})
	if err != nil {
		return err
	}
	defer s3.Close()
	backupCfg, restoreCfg, err := writeConfigs(base, s3)
	if err != nil {
		return err
	}
	src, err := newNode(base, "source")
	if err != nil {
		return err
	}
	dst, err := newNode(base, "restored")
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range []*node{src, dst} {
			if serr := n.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	fmt.Printf("bench-backup: %d MB of %d-byte rows, S3 in process at %s, data under %s\n", sizeMB, rowBytes, s3.Endpoint(), base)

	// 1. Load.
	if err := src.launch(skiffd); err != nil {
		return err
	}
	if err := src.waitReady(time.Minute); err != nil {
		return err
	}
	if _, err := post(src, "/db/execute", `["CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)"]`, time.Minute); err != nil {
		return err
	}
	rows := int64(sizeMB) * 1_000_000 / int64(rowBytes)
	perInsert := int64(max(1, rowsPerInsert/rowBytes))
	began := time.Now()
	for done := int64(0); done < rows; {
		k := min(perInsert, rows-done)
		// norwrandom: randomblob runs in the state machine (seeded by the
		// log index), one value per row, instead of one literal for all.
		if _, err := post(src, "/db/execute?norwrandom&timeout=30m", fmt.Sprintf(
			`["WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO big (b) SELECT randomblob(%d) FROM c"]`,
			k, rowBytes), timeout); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		done += k
		fmt.Printf("loaded %d of %d rows (%.0f MB/s)\n", done, rows, float64(done*int64(rowBytes))/1e6/time.Since(began).Seconds())
	}
	fmt.Printf("loaded in %s\n", time.Since(began).Round(100*time.Millisecond))
	sq, err := section(src, "store")
	if err != nil {
		return err
	}
	sqlite, _ := sq["sqlite3"].(map[string]any)
	dbPath, _ := sqlite["path"].(string)
	if dbPath == "" {
		return errors.New("/status store.sqlite3.path is empty")
	}
	if err := src.stop(); err != nil {
		return err
	}
	st, err := os.Stat(dbPath)
	if err != nil {
		return err
	}
	dbSize := st.Size()

	// 2. The floor: cp and sync of the same file.
	cpTime, err := copyAndSync(dbPath, filepath.Join(base, "cp.sqlite"))
	if err != nil {
		return err
	}

	// 3. One upload.
	if err := src.launch(skiffd, "-auto-backup", backupCfg); err != nil {
		return err
	}
	if err := src.waitReady(timeout); err != nil {
		return err
	}
	ready := time.Now()
	var up map[string]any
	for deadline := time.Now().Add(timeout); ; {
		// The section may appear only once the uploader runs.
		if up, err = section(src, "auto_backups"); err != nil && time.Now().After(deadline) {
			return err
		}
		if err == nil && num(up, "num_uploads_ok") >= 1 {
			break
		}
		if num(up, "num_uploads_fail") >= 1 {
			return fmt.Errorf("upload failed: %v (%s)", up["last_error"], src.logPath())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no upload within %s: %v", timeout, up)
		}
		time.Sleep(20 * time.Millisecond)
	}
	uploadWall := time.Since(ready)
	uploadRSS := src.peakRSS()
	upTime, ok := duration(up, "last_upload_duration")
	objSize, err := s3.Size(s3.Bucket(), key)
	if err != nil {
		return err
	}
	if err := src.stop(); err != nil {
		return err
	}

	// 4. One restore.
	if err := dst.launch(skiffd, "-auto-restore", restoreCfg); err != nil {
		return err
	}
	if err := dst.waitReady(timeout); err != nil {
		return err
	}
	readyTime := time.Since(dst.launched)
	// The restore is done when the rows are served, which may come after
	// /readyz says ready.
	var n int64
	for deadline := time.Now().Add(timeout); ; {
		if n, err = count(dst); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	restoreTime := time.Since(dst.launched)
	restoreRSS := dst.peakRSS()
	if n != rows {
		return fmt.Errorf("the restored node holds %d rows, want %d", n, rows)
	}

	fmt.Printf("\nSQLite file %.0f MB; object %.0f MB (gzip); cp+sync of the file %.2f s (%.0f MB/s)\n",
		mb(dbSize), mb(objSize), cpTime.Seconds(), mb(dbSize)/cpTime.Seconds())
	fmt.Printf("%-14s %9s %9s %12s %14s\n", "", "seconds", "MB/s", "x cp+sync", "peak RSS MiB")
	row := func(name string, d time.Duration, rss int64, note string) {
		fmt.Printf("%-14s %9.2f %9.0f %12.1f %14s   %s\n", name, d.Seconds(), mb(dbSize)/d.Seconds(), d.Seconds()/cpTime.Seconds(), rssText(rss), note)
	}
	row("backup round", uploadWall, uploadRSS, "ready to the upload counted: first tick (<= 1 s), backup copy, content sum, gzip, upload")
	if ok {
		row("  upload step", upTime, 0, "the node's last_upload_duration: the transfer alone")
	}
	row("restore", restoreTime, restoreRSS, fmt.Sprintf("launch on a new data directory to the %d rows served: download, gunzip, check, boot (/readyz 200 after %.2f s)", n, readyTime.Seconds()))
	return nil
}

// writeConfigs writes the -auto-backup and -auto-restore files for s3.
func writeConfigs(base string, s3 *s3test.Server) (backup, restore string, err error) {
	sub := map[string]any{
		"access_key_id": s3.AccessKey(), "secret_access_key": s3.SecretKey(), "endpoint": s3.Endpoint(),
		"region": s3.Region(), "bucket": s3.Bucket(), "path": key, "force_path_style": true,
	}
	backup, restore = filepath.Join(base, "backup.json"), filepath.Join(base, "restore.json")
	for path, cfg := range map[string]map[string]any{
		backup:  {"version": 1, "type": "s3", "interval": "1s", "sub": sub},
		restore: {"version": 1, "type": "s3", "timeout": "30m", "sub": sub},
	} {
		b, err := json.Marshal(cfg)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", "", err
		}
	}
	return backup, restore, nil
}

// copyAndSync times `cp src dst` then `sync dst`, and removes dst.
func copyAndSync(src, dst string) (time.Duration, error) {
	began := time.Now()
	for _, args := range [][]string{{"cp", src, dst}, {"sync", dst}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	d := time.Since(began)
	return d, os.Remove(dst)
}
