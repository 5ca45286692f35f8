package backup

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/skiffdb/skiff/test/testdb"
)

// Credentials the fake S3 server accepts.
const (
	testKey    = "AKIDSKIFFTEST"
	testSecret = "skiff-test-secret"
	testBucket = "skiff-backups"
)

// fakeS3 serves an in-memory S3 API on a loopback port. gofakes3 checks
// no signatures, so a wrapper answers 403 AccessDenied, as S3 does, to a
// request signed with another access key.
type fakeS3 struct {
	srv     *httptest.Server
	backend *s3mem.Backend
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(be).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Authorization"), "Credential="+testKey+"/") {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &fakeS3{srv: srv, backend: be}
}

func (f *fakeS3) config(path string) S3Config {
	return S3Config{Endpoint: f.srv.URL, Region: "us-east-1", AccessKeyID: testKey, SecretAccessKey: testSecret,
		Bucket: testBucket, Path: path, ForcePathStyle: true}
}

// newDB writes a SQLite database at dir/name with the given rows in
// table t, and returns its path.
func newDB(t *testing.T, dir, name string, rows ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	testdb.Create(t, path, rows...)
	return path
}

// rowsOf reads table t of the database at path.
func rowsOf(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query("SELECT v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var v string
		if err := rs.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func listAll() gofakes3.ListBucketPage { return gofakes3.ListBucketPage{} }

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
