package cdc

import (
	"errors"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/skiffdb/skiff/sm"
)

func indexes(gs []Group) []uint64 {
	var out []uint64
	for _, g := range gs {
		out = append(out, g.Index)
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutboxOrderAndRange(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	// Two calls, the second with a BATCH entry's three requests.
	if err := ob.Capture([]sm.ChangeGroup{insert(5, 0, 1, "a"), insert(7, 0, 2, "b")}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Capture([]sm.ChangeGroup{insert(8, 0, 3, "c"), insert(8, 1, 4, "d"), insert(8, 2, 5, "e"), insert(300, 0, 6, "f")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ob.Notify():
	default:
		t.Fatal("Capture did not wake the transmitter")
	}
	all, err := ob.Range(0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := indexes(all); !equal(got, []uint64{5, 7, 8, 8, 8, 300}) {
		t.Fatalf("range %v", got)
	}
	if all[3].Request != 1 || all[4].Request != 2 || all[0].CommitTime != insert(5, 0, 0, "").CommitTime {
		t.Fatalf("groups %+v", all)
	}
	// At most 3 indexes: the three groups of index 8 stay together.
	gs, _ := ob.Range(6, 2, 1<<20)
	if got := indexes(gs); !equal(got, []uint64{7, 8, 8, 8}) {
		t.Fatalf("range from 6, 2 indexes: %v", got)
	}
	// A byte bound stops at an index boundary, never inside one, and
	// never returns nothing.
	gs, _ = ob.Range(8, 100, 1)
	if got := indexes(gs); !equal(got, []uint64{8, 8, 8}) {
		t.Fatalf("range from 8, 1 byte: %v", got)
	}
	gs, _ = ob.Range(301, 100, 1<<20)
	if len(gs) != 0 {
		t.Fatalf("range past the end: %v", indexes(gs))
	}
	st := ob.Stats()
	if st.Groups != 6 || st.First != 5 || st.Last != 300 || st.Bytes <= 0 || st.Captures != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOutboxIdempotent: a re-apply after a crash before SQLite's commit
// writes the same groups again; they are stored, and counted, once.
func TestOutboxIdempotent(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, dir)
	batch := []sm.ChangeGroup{insert(1, 0, 1, "a"), insert(2, 0, 2, "b"), insert(2, 1, 3, "c")}
	if err := ob.Capture(batch); err != nil {
		t.Fatal(err)
	}
	before := ob.Stats()
	if err := ob.Capture(batch); err != nil {
		t.Fatal(err)
	}
	if st := ob.Stats(); st.Groups != 3 || st.Bytes != before.Bytes {
		t.Fatalf("after a re-write: %+v, before %+v", st, before)
	}
	ob.Close()
	ob = openOutbox(t, dir)
	if err := ob.Capture(batch); err != nil {
		t.Fatal(err)
	}
	if st := ob.Stats(); st.Groups != 3 || st.Bytes != before.Bytes {
		t.Fatalf("after a re-write on reopen: %+v, before %+v", st, before)
	}
	gs, _ := ob.Range(0, 100, 1<<20)
	if got := indexes(gs); !equal(got, []uint64{1, 2, 2}) {
		t.Fatalf("range %v", got)
	}
}

func TestOutboxPrune(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	var gs []sm.ChangeGroup
	for i := uint64(1); i <= 100; i++ {
		gs = append(gs, insert(i, 0, int64(i), "x"))
	}
	if err := ob.Capture(gs); err != nil {
		t.Fatal(err)
	}
	full := ob.Stats()
	ob.HighWater(40)
	eventually(t, "prune to 40", func() bool { st := ob.Stats(); return st.Groups == 60 && st.First == 41 })
	st := ob.Stats()
	if st.Last != 100 || st.HighWater != 40 || st.Bytes >= full.Bytes || st.Bytes <= 0 {
		t.Fatalf("after prune: %+v", st)
	}
	got, _ := ob.Range(0, 1000, 1<<20)
	if len(got) != 60 || got[0].Index != 41 {
		t.Fatalf("range after prune starts at %d, %d groups", got[0].Index, len(got))
	}
	// A lower mark changes nothing; groups at or below the mark are not
	// stored any more.
	ob.HighWater(10)
	if err := ob.Capture([]sm.ChangeGroup{insert(30, 0, 1, "late"), insert(101, 0, 2, "new")}); err != nil {
		t.Fatal(err)
	}
	if st := ob.Stats(); st.HighWater != 40 || st.Groups != 61 || st.Last != 101 {
		t.Fatalf("after a late capture: %+v", st)
	}
	ob.HighWater(101)
	eventually(t, "prune everything", func() bool { st := ob.Stats(); return st.Groups == 0 && st.Bytes == 0 })
	if st := ob.Stats(); st.First != 0 || st.Last != 0 {
		t.Fatalf("empty outbox: %+v", st)
	}
}

// TestOutboxReopen: groups, the high-water mark, the floor and the acked
// index survive a close, and the counters are rebuilt.
func TestOutboxReopen(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, dir)
	if err := ob.Capture([]sm.ChangeGroup{insert(1, 0, 1, "a"), insert(2, 0, 2, "b"), insert(3, 0, 3, "c")}); err != nil {
		t.Fatal(err)
	}
	ob.HighWater(1)
	eventually(t, "prune", func() bool { return ob.Stats().Groups == 2 })
	ob.Installed(2)
	if err := ob.SetAcked(2); err != nil {
		t.Fatal(err)
	}
	want := ob.Stats()
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := ob.Capture([]sm.ChangeGroup{insert(9, 0, 1, "x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Capture after Close: %v", err)
	}
	_ = ob.Stats() // safe after Close
	ob = openOutbox(t, dir)
	got := ob.Stats()
	if got.Groups != want.Groups || got.Bytes != want.Bytes || got.First != 2 || got.Last != 3 ||
		got.HighWater != 1 || got.Floor != 2 || got.Acked != 2 {
		t.Fatalf("reopened %+v, want %+v", got, want)
	}
	gs, _ := ob.Range(0, 10, 1<<20)
	if got := indexes(gs); !equal(got, []uint64{2, 3}) {
		t.Fatalf("range %v", got)
	}
}

func TestOutboxFloor(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	ob.Installed(50)
	ob.Installed(20)
	if ob.Floor() != 50 {
		t.Fatalf("floor %d", ob.Floor())
	}
}

// BenchmarkCapture measures one Capture call: a batch of groups written
// and fsynced (pebble.Sync), as the state machine calls it before each
// SQLite commit.
func BenchmarkCapture(b *testing.B) {
	for _, n := range []int{1, 16, 128} {
		b.Run("groups="+strconv.Itoa(n), func(b *testing.B) {
			ob, err := OpenOutbox(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			idx := uint64(0)
			b.ResetTimer()
			for range b.N {
				gs := make([]sm.ChangeGroup, n)
				for j := range gs {
					idx++
					gs[j] = insert(idx, 0, int64(idx), "benchmark-row")
				}
				if err := ob.Capture(gs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCaptureNoSync is BenchmarkCapture's write without the fsync,
// to tell the fsync's share of a Capture.
func BenchmarkCaptureNoSync(b *testing.B) {
	ob, err := OpenOutbox(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	idx := uint64(0)
	for range b.N {
		batch := ob.db.NewBatch()
		for range 16 {
			idx++
			v, err := encodeGroup(insert(idx, 0, int64(idx), "benchmark-row"))
			if err != nil {
				b.Fatal(err)
			}
			if err := batch.Set(groupKey(idx, 0), v, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
}
