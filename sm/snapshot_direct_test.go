package sm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
)

func fileSum(t *testing.T, path string, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, n)); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// loadRows adds n rows of about 1 KB in one entry.
func loadRows(h *harness, id string, n int) {
	h.apply(cmd(id, false, fmt.Sprintf(
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT %d) INSERT INTO t(v) SELECT randomblob(1000) FROM c", n)))
}

// The leader streams the database file itself, and what it streams is the
// state PrepareSnapshot pinned although writes, SQLite's autocheckpoints
// and explicit PASSIVE and TRUNCATE checkpoints run during the stream: the
// pinned bytes of the file never change, and the receiver ends with the
// pinned state at the pinned index.
func TestSnapshotStreamsPinnedFileWhileWritesGoOn(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("schema", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	loadRows(src, "load", 3000)
	want := dump(t, src)
	wantIndex := src.next - 1
	ctx, err := src.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	sc := ctx.(*snapshotCtx)
	if !sc.direct {
		t.Fatal("PrepareSnapshot did not pin the file for a direct stream")
	}
	pinned := fileSum(t, src.s.path, sc.size)

	// Save runs concurrently with Update, as Dragonboat runs them: a
	// writer that stalls the stream halfway lets writes and checkpoints
	// land in the middle of it.
	var buf bytes.Buffer
	half := make(chan struct{})
	resume := make(chan struct{})
	w := &pausingWriter{w: &buf, at: sc.size / 2, half: half, resume: resume}
	var wg sync.WaitGroup
	var saveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		saveErr = src.s.SaveSnapshot(ctx, w, make(chan struct{}))
	}()
	<-half
	loadRows(src, "late", 5000) // >1000 pages: SQLite's autocheckpoint runs
	src.apply(cmd("upd", false, "UPDATE t SET v = x'00' WHERE id % 3 = 0"))
	if _, err := src.s.Lookup(&Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	res, err := src.s.Lookup(&TruncateWAL{MinSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.(*TruncateWALResult); !tr.Busy {
		t.Fatalf("a TRUNCATE checkpoint completed while a snapshot was pinned: %+v", tr)
	}
	if got := fileSum(t, src.s.path, sc.size); got != pinned {
		t.Fatal("the pinned bytes of the database file changed during the stream")
	}
	close(resume)
	wg.Wait()
	if saveErr != nil {
		t.Fatal(saveErr)
	}

	dst := newHarness(t)
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); got != want {
		t.Fatal("the received database is not the pinned state")
	}
	if dst.s.Applied() != wantIndex {
		t.Fatalf("received applied = %d, want %d", dst.s.Applied(), wantIndex)
	}
	// The pin is released: checkpoints go past it again.
	res, err = src.s.Lookup(&TruncateWAL{MinSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.(*TruncateWALResult); tr.Busy || tr.After != 0 {
		t.Fatalf("WAL not truncated after the stream ended: %+v", tr)
	}
}

// pausingWriter blocks once, after at bytes, until resume is closed.
type pausingWriter struct {
	w            io.Writer
	n, at        int64
	half, resume chan struct{}
	paused       bool
}

func (p *pausingWriter) Write(b []byte) (int, error) {
	if !p.paused && p.n >= p.at {
		p.paused = true
		close(p.half)
		<-p.resume
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	return n, err
}

// A reader of an older state keeps the WAL from being checkpointed fully;
// the snapshot then falls back to a copy of the pinned state, which is as
// exact.
func TestSnapshotFallsBackToCopyWhenWALCannotBeCheckpointed(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("schema", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	loadRows(src, "a", 100)
	old, err := openReader(src.s.path, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := execRaw(old, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := queryInt64(old, "SELECT COUNT(*) FROM t"); err != nil {
		t.Fatal(err)
	}
	loadRows(src, "b", 100)
	want := dump(t, src)
	ctx, err := src.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if ctx.(*snapshotCtx).direct {
		t.Fatal("direct stream although a reader held the WAL")
	}
	var buf bytes.Buffer
	if err := src.s.SaveSnapshot(ctx, &buf, make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst); got != want {
		t.Fatal("the received database is not the pinned state")
	}
}

// A stream cut half-way (the leader's failpoint or a broken transfer)
// leaves the receiver's live database and files as they were: no next
// generation, CURRENT unchanged, the same data after a restart.
func TestRecoverCutStreamLeavesNothingInstalled(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("schema", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	loadRows(src, "a", 3000)
	stream := src.snapshotStream()
	dst := newHarness(t)
	dst.apply(cmd("x", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"), cmd("y", false, "INSERT INTO t (v) VALUES (x'01')"))
	before := dump(t, dst)
	cut := stream[:len(stream)/2]
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(cut), make(chan struct{})); err == nil {
		t.Fatal("a cut stream was installed")
	}
	files, _ := filepath.Glob(filepath.Join(dst.dir, "db-*"))
	if len(files) != 2 && len(files) != 1 { // db-1.sqlite (+ -wal; the WAL index is in memory, conn.go)
		t.Fatalf("files after a cut stream: %v", files)
	}
	for _, f := range files {
		if g, _ := parseGen(filepath.Base(f)); g > 1 || filepath.Ext(f) == tmpSuffix {
			t.Fatalf("a half-received generation is left: %v", files)
		}
	}
	if g, err := readCurrent(dst.dir); err != nil || g != 1 {
		t.Fatalf("CURRENT = %d, %v after a cut stream", g, err)
	}
	if got := dump(t, dst); got != before {
		t.Fatal("the live database changed after a cut stream")
	}
	_ = dst.s.Close()
	dst.open()
	if got := dump(t, dst); got != before {
		t.Fatal("the database changed across a restart after a cut stream")
	}
	// The full stream installs afterwards.
	if err := dst.s.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if got, want := dump(t, dst), dump(t, src); got != want {
		t.Fatal("the retried install differs from the leader")
	}
}

// An aborted send (stop, broken stream) releases the pin like a finished one.
func TestAbortedSnapshotReleasesThePin(t *testing.T) {
	src := newHarness(t)
	src.apply(cmd("schema", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"))
	loadRows(src, "a", 2000)
	ctx, err := src.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	err = src.s.SaveSnapshot(ctx, &failingWriter{n: 1 << 20, err: fmt.Errorf("send: %w", dbsm.ErrSnapshotStreaming)}, make(chan struct{}))
	if err != dbsm.ErrSnapshotStreaming {
		t.Fatalf("SaveSnapshot = %v", err)
	}
	loadRows(src, "b", 2000)
	res, err := src.s.Lookup(&TruncateWAL{MinSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tr := res.(*TruncateWALResult); tr.Busy || tr.After != 0 {
		t.Fatalf("WAL still pinned after an aborted send: %+v", tr)
	}
}
