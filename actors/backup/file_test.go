package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backups") // created on first upload
	st, err := NewStore(Storage{Type: TypeFile, File: &FileConfig{Dir: dir, File: "db.sqlite.gz"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if sum, err := st.CurrentSum(ctx); err != nil || sum != "" {
		t.Fatalf("sum %q, err %v", sum, err)
	}
	if _, err := st.Download(ctx, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
	for _, body := range []string{"one", "two"} {
		if err := st.Upload(ctx, strings.NewReader(body), int64(len(body)), "sum-"+body); err != nil {
			t.Fatal(err)
		}
		if sum, err := st.CurrentSum(ctx); err != nil || sum != "sum-"+body {
			t.Fatalf("sum %q, err %v", sum, err)
		}
		var buf bytes.Buffer
		if _, err := st.Download(ctx, &buf); err != nil || buf.String() != body {
			t.Fatalf("download %q, err %v", buf.String(), err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Overwritten in place; no temporary file left.
	if strings.Join(names, ",") != "METADATA.json,db.sqlite.gz" {
		t.Fatalf("files %v", names)
	}
	// A short write is an error, not a silent truncation.
	if err := st.Upload(ctx, strings.NewReader("abc"), 10, "s"); !errors.Is(err, ErrStorage) {
		t.Fatalf("err %v", err)
	}
}

func TestFileStoreTimestamped(t *testing.T) {
	dir := t.TempDir()
	fs := newFileStore(FileConfig{Dir: dir, File: "db.gz"}, true)
	clock := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	fs.now = func() time.Time { return clock }
	ctx := context.Background()
	for _, body := range []string{"old", "new"} {
		if err := fs.Upload(ctx, strings.NewReader(body), -1, "s-"+body); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour)
	}
	for _, n := range []string{"20250607080910_db.gz", "20250607090910_db.gz"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if sum, _ := fs.CurrentSum(ctx); sum != "s-new" {
		t.Fatalf("sum %q", sum)
	}
	var buf bytes.Buffer
	if _, err := fs.Download(ctx, &buf); err != nil || buf.String() != "new" {
		t.Fatalf("download %q, err %v", buf.String(), err)
	}
}

func TestFileStoreUnwritable(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st := newFileStore(FileConfig{Dir: filepath.Join(blocker, "sub"), File: "db"}, false)
	if err := st.Upload(context.Background(), strings.NewReader("x"), 1, "s"); !errors.Is(err, ErrStorage) {
		t.Fatalf("err %v", err)
	}
}

func TestTimestampedPath(t *testing.T) {
	at := time.Date(2024, 12, 31, 23, 59, 58, 0, time.FixedZone("x", 3600))
	for in, want := range map[string]string{
		"db.gz":       "20241231225958_db.gz",
		"a/b/db.gz":   "a/b/20241231225958_db.gz",
		"/abs/db.gz":  "/abs/20241231225958_db.gz",
		"trailing/db": "trailing/20241231225958_db",
	} {
		if got := TimestampedPath(in, at); got != want {
			t.Fatalf("TimestampedPath(%q) = %q, want %q", in, got, want)
		}
	}
}
