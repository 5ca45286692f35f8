package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
)

// fileSource serves backups of a SQLite file the test writes to, as the
// replica serves them: a copy of the whole file.
type fileSource struct {
	path  string
	calls atomic.Int64
	fail  atomic.Bool
}

func (f *fileSource) Backup(_ context.Context, b *sm.Backup) (*sm.BackupResult, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, errors.New("replica not started")
	}
	src, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	n, err := io.Copy(b.W, src)
	return &sm.BackupResult{Bytes: n}, err
}

// insert adds a row to the source database.
func (f *fileSource) insert(t *testing.T, v string) {
	t.Helper()
	db := openDB(t, f.path)
	defer db.Close()
	if _, err := db.Exec("INSERT INTO t(v) VALUES (?)", v); err != nil {
		t.Fatal(err)
	}
}

// failingStore fails every call until healed.
type failingStore struct {
	Store
	broken atomic.Bool
}

func (s *failingStore) Upload(ctx context.Context, r io.Reader, size int64, sum string) error {
	if s.broken.Load() {
		return errors.New("endpoint unreachable")
	}
	return s.Store.Upload(ctx, r, size, sum)
}

type testUploader struct {
	*Uploader
	src   *fileSource
	index atomic.Uint64
	lead  atomic.Bool
	dir   string
}

func newTestUploader(t *testing.T, st Store, cfg Config, src *fileSource) *testUploader {
	t.Helper()
	tu := &testUploader{src: src, dir: t.TempDir()}
	tu.lead.Store(true)
	u, err := New(UploaderConfig{Backup: cfg, Dir: tu.dir, Store: st,
		IsLeader: tu.lead.Load, AppliedIndex: tu.index.Load}, src)
	if err != nil {
		t.Fatal(err)
	}
	tu.Uploader = u
	return tu
}

func counters(u *Uploader) map[string]any { return u.Vars().(map[string]any) }

func wantCounts(t *testing.T, u *Uploader, ok, fail, skipped, skippedID int64) {
	t.Helper()
	c := counters(u)
	if c[KeyUploadsOK] != ok || c[KeyUploadsFail] != fail || c[KeyUploadsSkipped] != skipped || c[KeyUploadsSkippedID] != skippedID {
		t.Fatalf("counters %v; want ok %d fail %d skipped %d skipped_id %d", c, ok, fail, skipped, skippedID)
	}
}

func fileBackupConfig(dir string) Config {
	return Config{Version: 1, Storage: Storage{Type: TypeFile, File: &FileConfig{Dir: dir, File: "db.sqlite.gz"}}, Interval: time.Hour}
}

func TestUploaderSkipsUnchanged(t *testing.T) {
	ctx := context.Background()
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")}
	cfg := fileBackupConfig(t.TempDir())
	st, err := NewStore(cfg.Storage, false)
	if err != nil {
		t.Fatal(err)
	}
	u := newTestUploader(t, st, cfg, src)
	u.index.Store(10)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 1, 0, 0, 0)
	if got := restoreRows(t, st); strings.Join(got, ",") != "a" {
		t.Fatalf("stored rows %v", got)
	}
	// Nothing applied: skipped without taking a backup.
	calls := src.calls.Load()
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 1, 0, 1, 0)
	if src.calls.Load() != calls {
		t.Fatal("a skipped interval took a backup")
	}
	// Entries applied that changed no data (a no-op, a CDC mark): the
	// content sum matches, nothing is uploaded.
	u.index.Store(11)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 1, 0, 1, 1)
	// A write: uploaded.
	src.insert(t, "b")
	u.index.Store(12)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 2, 0, 1, 1)
	if got := restoreRows(t, st); strings.Join(got, ",") != "a,b" {
		t.Fatalf("stored rows %v", got)
	}
	// A new leader (a new uploader, at a later index) finds the stored
	// sum equal to its own and uploads nothing.
	next := newTestUploader(t, st, cfg, src)
	next.index.Store(15)
	next.uploadOnce(ctx)
	wantCounts(t, next.Uploader, 0, 0, 0, 1)
	// No staged file is left in the data directory.
	for _, d := range []string{u.dir, next.dir} {
		if names, _ := filepath.Glob(filepath.Join(d, "*")); len(names) != 0 {
			t.Fatalf("left behind: %v", names)
		}
	}
	st2 := u.Status().(map[string]any)
	if st2["upload_destination"] != st.String() || st2[KeyLastUploadTime] == "" || st2[KeyLastUploadBytes].(int64) <= 0 || st2[KeyLastError] != "" {
		t.Fatalf("status %v", st2)
	}
}

func TestUploaderNoCompress(t *testing.T) {
	ctx := context.Background()
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "plain")}
	cfg := fileBackupConfig(t.TempDir())
	cfg.NoCompress = true
	st, _ := NewStore(cfg.Storage, false)
	u := newTestUploader(t, st, cfg, src)
	u.index.Store(1)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 1, 0, 0, 0)
	var buf bytes.Buffer
	if _, err := st.Download(ctx, &buf); err != nil || !bytes.HasPrefix(buf.Bytes(), sqliteMagic) {
		t.Fatalf("stored object is not a plain SQLite file: %v", err)
	}
}

func TestUploaderFailureCounted(t *testing.T) {
	ctx := context.Background()
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")}
	cfg := fileBackupConfig(t.TempDir())
	inner, _ := NewStore(cfg.Storage, false)
	st := &failingStore{Store: inner}
	st.broken.Store(true)
	u := newTestUploader(t, st, cfg, src)
	u.index.Store(3)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 0, 1, 0, 0)
	if msg := counters(u.Uploader)[KeyLastError].(string); !strings.Contains(msg, "endpoint unreachable") {
		t.Fatalf("last_error %q", msg)
	}
	// A failed backup is counted too, and retried at the next interval.
	src.fail.Store(true)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 0, 2, 0, 0)
	src.fail.Store(false)
	st.broken.Store(false)
	u.uploadOnce(ctx)
	wantCounts(t, u.Uploader, 1, 2, 0, 0)
	if msg := counters(u.Uploader)[KeyLastError]; msg != "" {
		t.Fatalf("last_error %q after a success", msg)
	}
}

// TestUploaderLeaderOnly runs the actor: a follower's intervals upload
// nothing; once it leads (announced on Changed), they do.
func TestUploaderLeaderOnly(t *testing.T) {
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")}
	cfg := fileBackupConfig(t.TempDir())
	cfg.Interval = 5 * time.Millisecond
	st, _ := NewStore(cfg.Storage, false)
	u := newTestUploader(t, st, cfg, src)
	u.lead.Store(false)
	u.index.Store(7)
	var mu sync.Mutex
	changed := make(chan struct{})
	u.cfg.Changed = func() <-chan struct{} { mu.Lock(); defer mu.Unlock(); return changed }
	ticked := make(chan bool)
	u.ticked = ticked
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := 0; i < 3; i++ {
		if lead := <-ticked; lead {
			t.Fatal("a follower's interval saw itself leading")
		}
	}
	if src.calls.Load() != 0 || u.Leading() {
		t.Fatalf("follower took %d backups", src.calls.Load())
	}
	u.lead.Store(true)
	mu.Lock()
	close(changed)
	changed = make(chan struct{})
	mu.Unlock()
	for lead := false; !lead; {
		lead = <-ticked
	}
	// Later intervals (running meanwhile) skip: nothing changed.
	if c := counters(u.Uploader); c[KeyUploadsOK] != int64(1) || c[KeyUploadsFail] != int64(0) {
		t.Fatalf("counters %v", c)
	}
	if !u.Leading() || u.Status().(map[string]any)["leading"] != true {
		t.Fatal("status does not say leading")
	}
	// Leadership lost: the next intervals do nothing.
	u.lead.Store(false)
	for lead := true; lead; {
		lead = <-ticked
	}
	calls := src.calls.Load()
	<-ticked
	if src.calls.Load() != calls {
		t.Fatal("a former leader took a backup")
	}
}

func TestNewUploaderRemovesStaleFiles(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, stagePrefix+"123"+tmpSuffix)
	keep := filepath.Join(dir, "other.tmp")
	for _, p := range []string{stale, keep} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := NewStore(fileBackupConfig(t.TempDir()).Storage, false)
	if _, err := New(UploaderConfig{Backup: fileBackupConfig(t.TempDir()), Dir: dir, Store: st,
		IsLeader: func() bool { return false }, AppliedIndex: func() uint64 { return 0 }}, &fileSource{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale staged file kept: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("unrelated file removed: %v", err)
	}
}

// restoreRows downloads st's backup as a restore does and reads it.
func restoreRows(t *testing.T, st Store) []string {
	t.Helper()
	r, err := Download(context.Background(), RestoreConfig{Storage: Storage{Type: TypeFile, File: &FileConfig{Dir: "unused", File: "unused"}}}, t.TempDir(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Remove()
	return rowsOf(t, r.Path)
}

// The content sum depends on the data only, not on the file's layout:
// two nodes' copies of the same data sum alike, even when their pages
// differ (another history of writes, free pages, header counters).
func TestDumpSumIgnoresLayout(t *testing.T) {
	dir := t.TempDir()
	a := newDB(t, dir, "a.db", "x", "y")
	b := newDB(t, dir, "b.db")
	db := openDB(t, b)
	for _, q := range []string{
		"CREATE TABLE scratch (v BLOB)", "INSERT INTO scratch VALUES (randomblob(100000))",
		"INSERT INTO t(v) VALUES ('x')", "DROP TABLE scratch", "INSERT INTO t(v) VALUES ('y')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	fa, _ := os.ReadFile(a)
	fb, _ := os.ReadFile(b)
	if bytes.Equal(fa, fb) {
		t.Fatal("the two files are byte-identical: the test shows nothing")
	}
	ctx := context.Background()
	sa, err := dumpSum(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := dumpSum(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb || !strings.HasPrefix(sa, sumPrefix) {
		t.Fatalf("sums %q and %q differ for the same data", sa, sb)
	}
	db = openDB(t, b)
	if _, err := db.Exec("UPDATE t SET v = 'z' WHERE v = 'y'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if sc, _ := dumpSum(ctx, b); sc == sa {
		t.Fatal("a change of data left the sum unchanged")
	}
}

// blockingUploadStore's Upload blocks until its ctx ends, and reports it.
type blockingUploadStore struct {
	Store
	started   chan struct{}
	cancelled chan error
	uploads   atomic.Int64
}

func (s *blockingUploadStore) Upload(ctx context.Context, _ io.Reader, _ int64, _ string) error {
	s.uploads.Add(1)
	close(s.started)
	<-ctx.Done()
	s.cancelled <- ctx.Err()
	return ctx.Err()
}

// A leader deposed while it uploads abandons the upload: a change that
// shows it no longer leads cancels it.
func TestUploaderDeposedCancelsUpload(t *testing.T) {
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")}
	cfg := fileBackupConfig(t.TempDir())
	cfg.Interval = 5 * time.Millisecond
	fs, _ := NewStore(cfg.Storage, false)
	st := &blockingUploadStore{Store: fs, started: make(chan struct{}), cancelled: make(chan error, 1)}
	u := newTestUploader(t, st, cfg, src)
	u.index.Store(3)
	var mu sync.Mutex
	changed := make(chan struct{})
	u.cfg.Changed = func() <-chan struct{} { mu.Lock(); defer mu.Unlock(); return changed }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-st.started
	u.lead.Store(false)
	mu.Lock()
	close(changed)
	changed = make(chan struct{})
	mu.Unlock()
	select {
	case err := <-st.cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("upload ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a deposed leader's upload was not cancelled")
	}
	if c := counters(u.Uploader); c[KeyUploadsOK] != int64(0) || c[KeyUploadsFail] != int64(0) {
		t.Fatalf("counters %v", c)
	}
}

// leaderFlipSource ends leadership while it takes the backup.
type leaderFlipSource struct {
	*fileSource
	lead *atomic.Bool
}

func (s leaderFlipSource) Backup(ctx context.Context, b *sm.Backup) (*sm.BackupResult, error) {
	s.lead.Store(false)
	return s.fileSource.Backup(ctx, b)
}

// Leadership is checked again just before the upload: a node deposed
// while it staged the backup uploads nothing.
func TestUploaderChecksLeaderBeforeUpload(t *testing.T) {
	cfg := fileBackupConfig(t.TempDir())
	st, _ := NewStore(cfg.Storage, false)
	src := &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")}
	u := newTestUploader(t, st, cfg, src)
	u.Uploader.src = leaderFlipSource{fileSource: src, lead: &u.lead}
	u.index.Store(3)
	u.uploadOnce(context.Background())
	wantCounts(t, u.Uploader, 0, 0, 0, 0)
	if _, err := os.Stat(filepath.Join(cfg.Storage.File.Dir, cfg.Storage.File.File)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stored after deposition: %v", err)
	}
}
