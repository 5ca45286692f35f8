package cdc

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/skiffdb/skiff/sm"
)

func wantMissing(t *testing.T, ob *Outbox, from, to uint64) {
	t.Helper()
	f, tt, ok := ob.Missing()
	if to == 0 {
		if ok {
			t.Fatalf("missing %d..%d, want none", f, tt)
		}
		return
	}
	if !ok || f != from || tt != to {
		t.Fatalf("missing %d..%d (%v), want %d..%d", f, tt, ok, from, to)
	}
}

// TestOutboxMissingRange: an install records (max(last captured, hwm),
// S]; installs merge (lowest start, highest end); the high-water mark
// raises the start and clears the range at its end; all of it survives a
// reopen.
func TestOutboxMissingRange(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, dir)
	wantMissing(t, ob, 0, 0)
	captureRange(t, ob, 1, 3)
	ob.Installed(10)
	wantMissing(t, ob, 4, 10)
	ob.HighWater(5)
	wantMissing(t, ob, 6, 10)
	// Nothing captured since: the next install starts at the mark.
	ob.Installed(20)
	wantMissing(t, ob, 6, 20)
	captureRange(t, ob, 21, 22)
	ob.Installed(30)
	wantMissing(t, ob, 6, 30)
	// An install at or below what was captured adds nothing.
	ob.Installed(22)
	wantMissing(t, ob, 6, 30)
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = openOutbox(t, dir)
	wantMissing(t, ob, 6, 30)
	ob.HighWater(29)
	wantMissing(t, ob, 30, 30)
	ob.HighWater(30)
	wantMissing(t, ob, 0, 0)
	// The pruner deletes the recorded range with the groups it covers.
	eventually(t, "pruned", func() bool { return ob.Stats().Groups == 0 })
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = openOutbox(t, dir)
	wantMissing(t, ob, 0, 0)
	if ob.missTo != 0 {
		t.Fatalf("recorded range %d..%d after the mark covered it", ob.missFrom, ob.missTo)
	}
	// An install with nothing captured and no mark misses from 1.
	ob2 := openOutbox(t, t.TempDir())
	ob2.Installed(7)
	wantMissing(t, ob2, 1, 7)
}

// storedGroups reads every stored group of [from, to] with Groups.
func storedGroups(t *testing.T, ob *Outbox, from, to uint64) []Group {
	t.Helper()
	it, err := ob.Groups(from, to)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []Group
	for it.Next() {
		i, r, v := it.Group()
		g, err := decodeGroup(i, r, append([]byte(nil), v...))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return out
}

// TestOutboxBackfill: fetched groups are stored once (a second call with
// the same groups changes nothing), shrink the range from its start, keep
// the counters right, and survive a reopen; a group outside the range is
// refused; groups at or below the mark are skipped.
func TestOutboxBackfill(t *testing.T) {
	dir := t.TempDir()
	peer := openOutbox(t, t.TempDir())
	captureRange(t, peer, 1, 20)
	ob := openOutbox(t, dir)
	captureRange(t, ob, 1, 3)
	ob.Installed(15)
	captureRange(t, ob, 16, 20)
	wantMissing(t, ob, 4, 15)
	before := ob.Stats()

	first := storedGroups(t, peer, 4, 9) // index 7 has two requests
	for range 2 {
		if err := ob.Backfill(4, 9, first); err != nil {
			t.Fatal(err)
		}
		wantMissing(t, ob, 10, 15)
		st := ob.Stats()
		if st.Groups != before.Groups+7 || st.First != 1 || st.Last != 20 {
			t.Fatalf("stats %+v (before %+v)", st, before)
		}
	}
	if err := ob.Backfill(4, 9, []Group{{Index: 12, Events: []byte("{}")}}); err == nil {
		t.Fatal("a group outside the range was stored")
	}
	// A range past the start does not shrink it (no holes are kept).
	if err := ob.Backfill(12, 13, nil); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, ob, 10, 15)
	ob.HighWater(11)
	rest := storedGroups(t, peer, 10, 15)
	if err := ob.Backfill(10, 15, rest); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, ob, 0, 0)
	eventually(t, "pruned to 11", func() bool { return ob.Stats().First == 12 })
	want := storedGroups(t, peer, 12, 20)
	got := storedGroups(t, ob, 12, 20)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", indexes(got), indexes(want))
	}
	for i := range got {
		// The fetched groups (12..15) are the peer's bytes; the others are
		// this outbox's own captures of the same changes.
		if got[i].Index != want[i].Index || got[i].Request != want[i].Request || !bytes.Equal(got[i].Events, want[i].Events) {
			t.Fatalf("group %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	st := ob.Stats()
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = openOutbox(t, dir)
	if got := ob.Stats(); got.Groups != st.Groups || got.Bytes != st.Bytes || got.First != st.First || got.Last != st.Last {
		t.Fatalf("reopened %+v, want %+v", got, st)
	}
	wantMissing(t, ob, 0, 0)
}

// TestOutboxGroupsIter: the iterator yields the exact stored bytes of a
// range, in (index, request) order, and the outbox's Close waits for it.
func TestOutboxGroupsIter(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	var gs []sm.ChangeGroup
	for i := uint64(1); i <= 9; i++ {
		gs = append(gs, insert(i, 0, int64(i), "a"))
		if i%3 == 0 {
			gs = append(gs, insert(i, 1, int64(i)+100, "b"), insert(i, 2, int64(i)+200, "c"))
		}
	}
	if err := ob.Capture(gs); err != nil {
		t.Fatal(err)
	}
	it, err := ob.Groups(3, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { it.Close() }) // before the outbox's Close
	var n int
	for it.Next() {
		i, r, v := it.Group()
		var want sm.ChangeGroup
		for _, g := range gs {
			if g.Index == i && g.Request == r {
				want = g
			}
		}
		wv, _ := encodeGroup(want)
		if want.Index == 0 || !bytes.Equal(v, wv) {
			t.Fatalf("group %d/%d: %q, want %q", i, r, v, wv)
		}
		n++
	}
	if n != 3+1+1+3 || it.Err() != nil {
		t.Fatalf("%d groups, err %v", n, it.Err())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Groups(5, 4); err == nil {
		t.Fatal("an empty range was accepted")
	}

	it, err = ob.Groups(1, 9)
	if err != nil {
		t.Fatal(err)
	}
	it2 := it
	t.Cleanup(func() { it2.Close() })
	if !it.Next() {
		t.Fatal("no first group")
	}
	closed := make(chan error, 1)
	go func() { closed <- ob.Close() }()
	eventually(t, "the iterator stops", func() bool { return ob.closed.Load() })
	if it.Next() || !errors.Is(it.Err(), ErrClosed) {
		t.Fatalf("Next after Close: err %v", it.Err())
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) under an open iterator", err)
	default:
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Groups(1, 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("Groups after Close: %v", err)
	}
}

// TestOutboxCaptureStart: the first Opened records where capture began
// (kept across reopens; later calls change nothing), and the peer handler
// refuses ranges at or below it: this node applied them uncaptured.
func TestOutboxCaptureStart(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, dir)
	ob.Opened(40)
	captureRange(t, ob, 41, 50)
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	ob = openOutbox(t, dir)
	ob.Opened(50)
	if got := ob.captureStart.Load(); got != 40 {
		t.Fatalf("capture start %d after a reopen, want 40", got)
	}
	var applied atomic.Uint64
	applied.Store(50)
	srv := peerServer(t, ob, &applied)
	var log chunkLog
	if err := fetchRange(context.Background(), srv.Client(), srv.URL, 30, 45, 1<<20, log.store); !errors.Is(err, errRefused) {
		t.Fatalf("a range applied before capture began: %v", err)
	}
	if err := fetchRange(context.Background(), srv.Client(), srv.URL, 41, 45, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
	// Acknowledged below 45: what is left to vouch for is above the start.
	ob.HighWater(44)
	if err := fetchRange(context.Background(), srv.Client(), srv.URL, 30, 45, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
	// A new cluster's node opens at 0: nothing is refused for that.
	ob2 := openOutbox(t, t.TempDir())
	ob2.Opened(0)
	captureRange(t, ob2, 1, 3)
	srv2 := peerServer(t, ob2, &applied)
	applied.Store(3)
	if err := fetchRange(context.Background(), srv2.Client(), srv2.URL, 1, 3, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
}
