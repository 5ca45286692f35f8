package filewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s1, err := Take(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := Take(a, b); !s1.Equal(s2) {
		t.Fatal("unchanged files stamp differently")
	}
	if err := os.WriteFile(b, []byte("xy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s3, _ := Take(a, b); s1.Equal(s3) {
		t.Fatal("a size change went unnoticed")
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(a, old, old); err != nil {
		t.Fatal(err)
	}
	s4, _ := Take(a, b)
	if err := os.Chtimes(a, old.Add(time.Second), old.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if s5, _ := Take(a, b); s4.Equal(s5) {
		t.Fatal("an mtime change went unnoticed")
	}
	if _, err := Take(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file stamped")
	}
	if s1.Equal(Stamp{}) {
		t.Fatal("stamps of different file counts equal")
	}
}

// Poll reports each reload, and a repeated failure once.
func TestPollReportsOnce(t *testing.T) {
	results := []struct {
		changed bool
		err     error
	}{{false, errors.New("gone")}, {false, errors.New("gone")}, {true, nil}, {false, nil}, {false, errors.New("gone")}}
	var mu sync.Mutex
	var reports []string
	i := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Poll(ctx, time.Millisecond, func() (bool, error) {
			if i == len(results) {
				return false, nil // a tick raced the cancel
			}
			r := results[i]
			i++
			if i == len(results) {
				cancel()
			}
			return r.changed, r.err
		}, func(changed bool, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				reports = append(reports, "err "+err.Error())
			} else {
				reports = append(reports, "reloaded")
			}
		})
	}()
	<-done
	want := []string{"err gone", "reloaded", "err gone"}
	if len(reports) != len(want) {
		t.Fatalf("reports %v, want %v", reports, want)
	}
	for k := range want {
		if reports[k] != want[k] {
			t.Fatalf("reports %v, want %v", reports, want)
		}
	}
}
