package tlsreload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/testcert"
)

// rewrite writes a fresh pair over the files and moves their mtimes
// forward, so the change is seen whatever the filesystem's granularity.
func rewrite(t *testing.T, dir string, bump time.Duration) {
	t.Helper()
	cert, key := testcert.Write(t, dir)
	future := time.Now().Add(bump)
	for _, f := range []string{cert, key} {
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
	}
}

func leaf(r *Reloader) []byte { return r.Current().Certificate[0] }

func TestBothOrNeither(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	for _, c := range []Config{{CertFile: cert}, {KeyFile: key}} {
		if _, err := New(c); !errors.Is(err, ErrIncompletePair) {
			t.Fatalf("%+v: err %v, want ErrIncompletePair", c, err)
		}
	}
	if err := CheckPair("", ""); err != nil {
		t.Fatalf("neither: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty config: err %v", err)
	}
	if _, err := New(Config{CertFile: cert, KeyFile: dir + "/missing.pem"}); !errors.Is(err, ErrLoad) {
		t.Fatalf("missing key: err %v", err)
	}
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	r, err := New(Config{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	old := leaf(r)
	if changed, err := r.Check(); changed || err != nil {
		t.Fatalf("unchanged files: changed %v err %v", changed, err)
	}
	rewrite(t, dir, time.Hour)
	if changed, err := r.Check(); !changed || err != nil {
		t.Fatalf("rewritten files: changed %v err %v", changed, err)
	}
	if bytes.Equal(old, leaf(r)) {
		t.Fatal("certificate not reloaded")
	}
	got, err := r.GetCertificate(nil)
	if err != nil || !bytes.Equal(got.Certificate[0], leaf(r)) {
		t.Fatalf("GetCertificate: %v", err)
	}
}

func TestBadPairKeepsOld(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	r, err := New(Config{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	old := leaf(r)
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(key, future, future); err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Check(); changed || !errors.Is(err, ErrLoad) {
		t.Fatalf("bad key: changed %v err %v", changed, err)
	}
	if !bytes.Equal(old, leaf(r)) {
		t.Fatal("a bad pair replaced the certificate")
	}
	// Fixing the files is picked up.
	rewrite(t, dir, 2*time.Hour)
	if changed, err := r.Check(); !changed || err != nil {
		t.Fatalf("fixed files: changed %v err %v", changed, err)
	}
}

func TestRunPolls(t *testing.T) {
	dir := t.TempDir()
	cert, key := testcert.Write(t, dir)
	r, err := New(Config{CertFile: cert, KeyFile: key, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	old := leaf(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	rewrite(t, dir, time.Hour)
	deadline := time.After(10 * time.Second)
	for bytes.Equal(old, leaf(r)) {
		select {
		case <-deadline:
			t.Fatal("Run did not reload the changed files")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
