package sm

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Config.Observe hears each Update batch once, with its entries and the
// client statements run; a whole snapshot send is reported once, with its
// size (the figures /metrics serves).
func TestObserveAndSnapshotSent(t *testing.T) {
	type obs struct{ entries, statements int }
	var (
		mu   sync.Mutex
		seen []obs
		sent []Event
	)
	h := &harness{t: t, dir: t.TempDir(), mod: func(c *Config) {
		c.Observe = func(d time.Duration, entries, statements int) {
			if d < 0 {
				t.Errorf("negative apply duration %s", d)
			}
			mu.Lock()
			seen = append(seen, obs{entries, statements})
			mu.Unlock()
		}
		c.Notify = func(e Event) {
			if e.Kind == EventSnapshotSent {
				mu.Lock()
				sent = append(sent, e)
				mu.Unlock()
			}
		}
	}}
	h.open()
	h.apply(cmd("a", false, "CREATE TABLE t (v)"))
	h.apply(cmd("b", false, "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"), cmd("c", false, "INSERT INTO t VALUES (3)"))
	mu.Lock()
	got := append([]obs(nil), seen...)
	mu.Unlock()
	if want := []obs{{1, 1}, {2, 3}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("observed %v, want %v", got, want)
	}
	ctx, err := h.s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := h.s.SaveSnapshot(ctx, &buf, make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0].Bytes <= 0 || sent[0].Bytes > int64(buf.Len()) {
		t.Fatalf("snapshot sent events %+v for a stream of %d bytes, want one with the file's size", sent, buf.Len())
	}
}
