package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testdb"
)

// blockingStore's Download blocks until ctx ends.
type blockingStore struct{ Store }

func (blockingStore) Download(ctx context.Context, _ io.Writer) (int64, error) {
	<-ctx.Done()
	return 0, fmt.Errorf("%w: %w", ErrStorage, ctx.Err())
}

func TestDownload(t *testing.T) {
	dbBytes, err := os.ReadFile(newDB(t, t.TempDir(), "src.db", "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	// Damaged inside, with a valid header: the table's page overwritten.
	damaged := bytes.Clone(dbBytes)
	for i := 4096; i < len(damaged) && i < 8192; i++ {
		damaged[i] = 0xA5
	}
	truncatedGzip := testdb.Gzip(t, dbBytes)
	truncatedGzip = truncatedGzip[:len(truncatedGzip)/2]
	corruptGzip := testdb.Gzip(t, dbBytes)
	for i := 20; i < len(corruptGzip)-8 && i < 200; i++ {
		corruptGzip[i] ^= 0x5A
	}
	tests := []struct {
		name     string
		object   []byte // nil: no object
		wantErr  error
		wantRows string
	}{
		{name: "gzip", object: testdb.Gzip(t, dbBytes), wantRows: "x,y"},
		{name: "plain", object: dbBytes, wantRows: "x,y"},
		{name: "missing", wantErr: ErrNotFound},
		{name: "not SQLite", object: []byte("this is not a database at all, just some text"), wantErr: ErrInvalidBackup},
		{name: "gzip of not SQLite", object: testdb.Gzip(t, []byte("nope")), wantErr: ErrInvalidBackup},
		{name: "damaged inside", object: damaged, wantErr: ErrInvalidBackup},
		{name: "truncated gzip", object: truncatedGzip, wantErr: ErrInvalidBackup},
		{name: "corrupt gzip", object: corruptGzip, wantErr: ErrInvalidBackup},
		{name: "empty", object: []byte{}, wantErr: ErrInvalidBackup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			if tc.object != nil {
				if err := os.WriteFile(filepath.Join(src, "db.gz"), tc.object, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := ParseRestoreConfig(fmt.Sprintf(`{"type":"file","sub":{"dir":%q,"file":"db.gz"}}`, src))
			if err != nil {
				t.Fatal(err)
			}
			dataDir := t.TempDir()
			r, err := Download(context.Background(), cfg, dataDir, nil, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				// Nothing half-restored: no staged file left.
				if names, _ := filepath.Glob(filepath.Join(dataDir, "*")); len(names) != 0 {
					t.Fatalf("left behind: %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rowsOf(t, r.Path), ","); got != tc.wantRows {
				t.Fatalf("rows %q", got)
			}
			r.Remove()
			if names, _ := filepath.Glob(filepath.Join(dataDir, "*")); len(names) != 0 {
				t.Fatalf("left behind after Remove: %v", names)
			}
		})
	}
}

func TestDownloadTimeout(t *testing.T) {
	cfg := RestoreConfig{Storage: Storage{Type: TypeFile, File: &FileConfig{Dir: "d", File: "f"}}, Timeout: 50 * time.Millisecond}
	dataDir := t.TempDir()
	start := time.Now()
	_, err := Download(context.Background(), cfg, dataDir, blockingStore{}, nil)
	if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "timeout 50ms") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	if names, _ := filepath.Glob(filepath.Join(dataDir, "*")); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

// instantStore's Download writes its object at once, whatever ctx says.
type instantStore struct {
	Store
	object []byte
}

func (s instantStore) Download(_ context.Context, w io.Writer) (int64, error) {
	n, err := w.Write(s.object)
	return int64(n), err
}

func (instantStore) String() string { return "instant" }

// The timeout bounds the download only, as rqlite's: gunzip and the check
// after a good download are not cut short by it.
func TestDownloadTimeoutCoversDownloadOnly(t *testing.T) {
	dbBytes, err := os.ReadFile(newDB(t, t.TempDir(), "src.db", "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := RestoreConfig{Storage: Storage{Type: TypeFile, File: &FileConfig{Dir: "d", File: "f"}}, Timeout: time.Nanosecond}
	r, err := Download(context.Background(), cfg, t.TempDir(), instantStore{object: testdb.Gzip(t, dbBytes)}, nil)
	if err != nil {
		t.Fatalf("a good download failed after it ended: %v", err)
	}
	defer r.Remove()
	if got := strings.Join(rowsOf(t, r.Path), ","); got != "x,y" {
		t.Fatalf("rows %q", got)
	}
}

// minS3PartSize is S3's smallest part (minio-go's absMinPartSize).
const minS3PartSize = 5 << 20

// TestS3BackupRestoreMultipart uploads a database larger than one part
// through the uploader to the fake S3 server, then restores it.
func TestS3BackupRestoreMultipart(t *testing.T) {
	f := newFakeS3(t)
	dir := t.TempDir()
	// Random-looking rows so that gzip leaves it above one 16 MiB part.
	path := newDB(t, dir, "big.db")
	db := openDB(t, path)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := tx.Prepare("INSERT INTO t(v) VALUES (hex(randomblob(2048)))")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3500; i++ {
		if _, err := stmt.Exec(); err != nil {
			t.Fatal(err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	want := rowsOf(t, path)
	s3c := f.config("backups/big.sqlite.gz")
	cfg := Config{Version: 1, Storage: Storage{Type: TypeS3, S3: &s3c}, Interval: time.Hour}
	st, err := newS3Store(s3c, false)
	if err != nil {
		t.Fatal(err)
	}
	st.partSize = minS3PartSize
	u := newTestUploader(t, st, cfg, &fileSource{path: path})
	u.index.Store(1)
	u.uploadOnce(context.Background())
	wantCounts(t, u.Uploader, 1, 0, 0, 0)
	if n := counters(u.Uploader)[KeyLastUploadBytes].(int64); n <= minS3PartSize {
		t.Fatalf("uploaded %d bytes: not a multipart upload", n)
	}
	rc, err := ParseRestoreConfig(fmt.Sprintf(`{"version":1,"type":"s3","timeout":"1m","sub":{"endpoint":%q,"region":"us-east-1",
		"access_key_id":%q,"secret_access_key":%q,"bucket":%q,"path":"backups/big.sqlite.gz","force_path_style":true}}`,
		f.srv.URL, testKey, testSecret, testBucket))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Download(context.Background(), rc, t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Remove()
	if !r.Compressed {
		t.Fatal("object was not gzip")
	}
	if got := rowsOf(t, r.Path); len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("restored %d rows, want %d", len(got), len(want))
	}
}
