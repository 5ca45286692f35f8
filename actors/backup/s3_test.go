package backup

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestS3UploadDownloadSum(t *testing.T) {
	f := newFakeS3(t)
	st, err := NewStore(Storage{Type: TypeS3, S3: ptr(f.config("dir/db.sqlite.gz"))}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if sum, err := st.CurrentSum(ctx); err != nil || sum != "" {
		t.Fatalf("empty bucket: sum %q, err %v", sum, err)
	}
	if _, err := st.Download(ctx, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("download from an empty bucket: %v, want ErrNotFound", err)
	}
	for i, body := range []string{"first version", "second version, overwriting"} {
		sum := "sum-" + string(rune('a'+i))
		if err := st.Upload(ctx, strings.NewReader(body), int64(len(body)), sum); err != nil {
			t.Fatal(err)
		}
		got, err := st.CurrentSum(ctx)
		if err != nil || got != sum {
			t.Fatalf("sum %q, err %v; want %q", got, err, sum)
		}
		var buf bytes.Buffer
		if n, err := st.Download(ctx, &buf); err != nil || buf.String() != body || n != int64(len(body)) {
			t.Fatalf("download %q (%d), err %v", buf.String(), n, err)
		}
	}
	list, err := f.backend.ListBucket(testBucket, nil, listAll())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || list.Contents[0].Key != "dir/db.sqlite.gz" {
		t.Fatalf("objects %+v, want the one overwritten key", list.Contents)
	}
	if s := st.String(); s != f.srv.URL+"/"+testBucket+"/dir/db.sqlite.gz" {
		t.Fatalf("String %q", s)
	}
}

func TestS3Timestamped(t *testing.T) {
	f := newFakeS3(t)
	st, err := newS3Store(f.config("dir/db.gz"), true)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	st.now = func() time.Time { return clock }
	ctx := context.Background()
	for i, body := range []string{"one", "two", "three"} {
		if err := st.Upload(ctx, strings.NewReader(body), int64(len(body)), "s"+body); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			clock = clock.Add(time.Minute)
		}
	}
	list, err := f.backend.ListBucket(testBucket, nil, listAll())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	want := []string{"dir/20250102030405_db.gz", "dir/20250102030505_db.gz", "dir/20250102030605_db.gz"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if sum, err := st.CurrentSum(ctx); err != nil || sum != "sthree" {
		t.Fatalf("sum %q, err %v: want the newest object's", sum, err)
	}
	// A restore naming the plain key finds the newest timestamped object.
	var buf bytes.Buffer
	if _, err := st.Download(ctx, &buf); err != nil || buf.String() != "three" {
		t.Fatalf("download %q, err %v", buf.String(), err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	f := newFakeS3(t)
	c := f.config("db.gz")
	c.SecretAccessKey, c.AccessKeyID = "wrong", "WRONGKEY"
	st, err := NewStore(Storage{Type: TypeS3, S3: &c}, false)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Upload(context.Background(), strings.NewReader("x"), 1, "s")
	if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "Access Denied") {
		t.Fatalf("err %v, want a storage error naming Access Denied", err)
	}
	if _, err := st.Download(context.Background(), &bytes.Buffer{}); !errors.Is(err, ErrStorage) || errors.Is(err, ErrNotFound) {
		t.Fatalf("download err %v, want a storage error", err)
	}
}

func TestS3Unreachable(t *testing.T) {
	f := newFakeS3(t)
	c := f.config("db.gz")
	f.srv.Close()
	st, err := NewStore(Storage{Type: TypeS3, S3: &c}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Upload(ctx, strings.NewReader("x"), 1, "s"); !errors.Is(err, ErrStorage) {
		t.Fatalf("err %v", err)
	}
}

func TestS3EndpointForms(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		wantErr  bool
	}{
		{endpoint: ""}, {endpoint: "s3.eu-west-1.amazonaws.com"}, {endpoint: "https://storage.example.com:9000"},
		{endpoint: "http://127.0.0.1:9000"}, {endpoint: "ftp://x", wantErr: true}, {endpoint: "http://", wantErr: true},
	} {
		_, err := newS3Store(S3Config{Endpoint: tc.endpoint, Bucket: "b", Path: "p"}, false)
		if (err != nil) != tc.wantErr {
			t.Fatalf("endpoint %q: err %v, wantErr %v", tc.endpoint, err, tc.wantErr)
		}
	}
}

// A listing that fails (here refused) while the plain key is missing is
// a storage error, not a missing backup: continue_on_failure must not read
// it as "nothing to restore".
func TestS3DownloadListError(t *testing.T) {
	f := newFakeS3(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Trim(r.URL.Path, "/") == testBucket && r.URL.Query().Has("list-type") {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		f.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := f.config("db.gz")
	c.Endpoint = srv.URL
	st, err := NewStore(Storage{Type: TypeS3, S3: &c}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Download(context.Background(), &bytes.Buffer{})
	if errors.Is(err, ErrNotFound) || !errors.Is(err, ErrStorage) {
		t.Fatalf("download err %v, want a storage error", err)
	}
}

// The endpoint's user:password@ never shows in the store's name (/status).
func TestS3EndpointCredentialsHidden(t *testing.T) {
	st, err := newS3Store(S3Config{Endpoint: "https://user:secret@storage.example.com:9000", Bucket: "b", Path: "p"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.String(); strings.Contains(got, "secret") || strings.Contains(got, "user") || got != "https://storage.example.com:9000/b/p" {
		t.Fatalf("String() = %q", got)
	}
}

func ptr[T any](v T) *T { return &v }

// An uploader with wrong credentials counts the failures and shows the
// server's reason in its status.
func TestUploaderS3Forbidden(t *testing.T) {
	f := newFakeS3(t)
	c := f.config("db.gz")
	c.AccessKeyID = "SOMEONEELSE"
	cfg := Config{Version: 1, Storage: Storage{Type: TypeS3, S3: &c}, Interval: time.Hour}
	u := newTestUploader(t, nil, cfg, &fileSource{path: newDB(t, t.TempDir(), "live.db", "a")})
	u.index.Store(2)
	u.uploadOnce(context.Background())
	wantCounts(t, u.Uploader, 0, 1, 0, 0)
	st := u.Status().(map[string]any)
	if st[KeySumGetFail] != int64(1) || !strings.Contains(st[KeyLastError].(string), "Access Denied") || st[KeyLastErrorTime] == "" {
		t.Fatalf("status %v", st)
	}
}
