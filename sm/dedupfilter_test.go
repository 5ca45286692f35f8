package sm

import "testing"

func TestDedupFilter(t *testing.T) {
	type op struct {
		add   string // an ID to add at idx
		idx   uint64
		prune uint64 // prune below this, when add is empty
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		has    []string
		hasNot []string
		n      int
	}{
		{name: "empty", hasNot: []string{"a"}},
		{name: "added", ops: []op{{add: "a", idx: 1}, {add: "b", idx: 2}}, has: []string{"a", "b"}, hasNot: []string{"c"}, n: 2},
		{name: "pruned below", ops: []op{{add: "a", idx: 1}, {add: "b", idx: 2}, {prune: 2}}, has: []string{"b"}, hasNot: []string{"a"}, n: 1},
		{name: "prune keeps the bound", ops: []op{{add: "a", idx: 5}, {prune: 5}}, has: []string{"a"}, n: 1},
		{name: "prune all", ops: []op{{add: "a", idx: 1}, {add: "b", idx: 2}, {prune: 100}}, hasNot: []string{"a", "b"}},
		// A batch redone after a client ROLLBACK adds its IDs twice; the
		// ID stays until both are pruned.
		{name: "twice", ops: []op{{add: "a", idx: 1}, {add: "a", idx: 3}, {prune: 2}}, has: []string{"a"}, n: 1},
		{name: "twice pruned", ops: []op{{add: "a", idx: 1}, {add: "a", idx: 3}, {prune: 4}}, hasNot: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDedupFilter()
			for _, o := range tc.ops {
				if o.add != "" {
					f.add(o.idx, []byte(o.add))
				} else {
					f.prune(o.prune)
				}
			}
			for _, id := range tc.has {
				if !f.mayContain([]byte(id)) {
					t.Errorf("%q missing", id)
				}
			}
			for _, id := range tc.hasNot {
				if f.mayContain([]byte(id)) {
					t.Errorf("%q still held", id)
				}
			}
			if f.len() != tc.n {
				t.Errorf("len = %d, want %d", f.len(), tc.n)
			}
		})
	}
}

// TestDedupFilterCompacts checks that a long run of adds and prunes keeps
// the filter's memory at the window's size.
func TestDedupFilterCompacts(t *testing.T) {
	f := newDedupFilter()
	const window = 100
	for i := uint64(1); i <= 100_000; i++ {
		f.add(i, []byte{byte(i), byte(i >> 8), byte(i >> 16)})
		if i > window {
			f.prune(i - window)
		}
	}
	if f.len() != window+1 || len(f.count) != window+1 {
		t.Fatalf("held %d IDs (%d hashes), want %d", f.len(), len(f.count), window+1)
	}
	if cap(f.order) > 4*2048 {
		t.Fatalf("order grew to %d", cap(f.order))
	}
}

// TestDedupWindowForgetsOldIDs checks the filter against the table: inside
// the window a retry is answered from the table (also after a restart,
// which reloads the filter); past it the ID is forgotten by both and the
// request applies again.
func TestDedupWindowForgetsOldIDs(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir()}
	open := func() {
		s, err := New(Config{Dir: h.dir, ReadConns: 1, DedupWindow: 3})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := s.Open(make(chan struct{}))
		if err != nil {
			t.Fatal(err)
		}
		h.s, h.next = s, idx+1
		t.Cleanup(func() { _ = s.Close() })
	}
	open()
	h.apply(cmd("ddl", false, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
	h.apply(cmd("x", false, "INSERT INTO t (v) VALUES ('x')"))
	h.apply(cmd("x", false, "INSERT INTO t (v) VALUES ('x')"))
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	_ = h.s.Close()
	open()
	h.apply(cmd("x", false, "INSERT INTO t (v) VALUES ('x')"))
	if n := h.count("t"); n != 1 {
		t.Fatalf("rows after restart = %d, want 1", n)
	}
	if got := h.s.w.dedup.len(); got != 2 {
		t.Fatalf("filter after restart holds %d IDs, want 2 (ddl, x)", got)
	}
	for i := 0; i < 4; i++ {
		h.apply(cmd("", false, "SELECT 1"))
	}
	h.apply(cmd("x", false, "INSERT INTO t (v) VALUES ('x')"))
	if n := h.count("t"); n != 2 {
		t.Fatalf("rows past the window = %d, want 2", n)
	}
}
