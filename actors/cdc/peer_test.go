package cdc

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// chunkLog records fetchRange's store calls.
type chunkLog struct {
	ranges [][2]uint64
	groups []Group
}

func (c *chunkLog) store(from, to uint64, gs []Group) error {
	c.ranges = append(c.ranges, [2]uint64{from, to})
	c.groups = append(c.groups, gs...)
	return nil
}

func sameGroups(t *testing.T, got, want []Group) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", indexes(got), indexes(want))
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Request != want[i].Request ||
			got[i].CommitTime != want[i].CommitTime || !bytes.Equal(got[i].Events, want[i].Events) {
			t.Fatalf("group %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func peerServer(t *testing.T, ob *Outbox, applied *atomic.Uint64) *httptest.Server {
	srv := httptest.NewServer(ob.PeerHandler(applied.Load))
	t.Cleanup(srv.Close)
	return srv
}

// TestPeerHandler: a complete stream holds the exact stored groups of the
// range; the high-water mark moves its start; a peer that has not applied
// the range's end answers 503, one whose own missing range meets it 409;
// bad parameters 400.
func TestPeerHandler(t *testing.T) {
	ctx := context.Background()
	ob := openOutbox(t, t.TempDir())
	captureRange(t, ob, 1, 20) // 7 and 14 have two requests
	var applied atomic.Uint64
	applied.Store(20)
	srv := peerServer(t, ob, &applied)
	c := srv.Client()

	var log chunkLog
	if err := fetchRange(ctx, c, srv.URL, 3, 15, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
	sameGroups(t, log.groups, storedGroups(t, ob, 3, 15))
	if len(log.ranges) != 1 || log.ranges[0] != [2]uint64{3, 15} {
		t.Fatalf("stored ranges %v", log.ranges)
	}

	// Chunks of one index each: every chunk is a complete range.
	log = chunkLog{}
	if err := fetchRange(ctx, c, srv.URL, 6, 9, 1, log.store); err != nil {
		t.Fatal(err)
	}
	if want := [][2]uint64{{6, 6}, {7, 7}, {8, 8}, {9, 9}}; len(log.ranges) != 4 || log.ranges[0] != want[0] || log.ranges[3] != want[3] {
		t.Fatalf("stored ranges %v", log.ranges)
	}
	sameGroups(t, log.groups, storedGroups(t, ob, 6, 9))

	// Acknowledged indexes are not needed: the answer starts after the mark.
	ob.HighWater(10)
	eventually(t, "pruned", func() bool { return ob.Stats().First == 11 })
	log = chunkLog{}
	if err := fetchRange(ctx, c, srv.URL, 3, 15, 1<<20, log.store); err != nil {
		t.Fatal(err)
	}
	sameGroups(t, log.groups, storedGroups(t, ob, 11, 15))
	log = chunkLog{}
	if err := fetchRange(ctx, c, srv.URL, 3, 8, 1<<20, log.store); err != nil || len(log.groups) != 0 || log.ranges[0] != [2]uint64{3, 8} {
		t.Fatalf("acknowledged range: %v, %v", err, log)
	}

	// Not applied yet.
	if err := fetchRange(ctx, c, srv.URL, 15, 21, 1<<20, log.store); err == nil || errors.Is(err, errRefused) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("beyond applied: %v", err)
	}
	// This peer installed a snapshot past 21..30 too.
	ob.Installed(30)
	applied.Store(30)
	wantMissing(t, ob, 21, 30)
	if err := fetchRange(ctx, c, srv.URL, 15, 25, 1<<20, log.store); !errors.Is(err, errRefused) {
		t.Fatalf("into the peer's missing range: %v", err)
	}
	if err := fetchRange(ctx, c, srv.URL, 11, 20, 1<<20, log.store); err != nil {
		t.Fatalf("below the peer's missing range: %v", err)
	}
	for _, q := range []string{"", "?from=0&to=3", "?from=5&to=4", "?from=x&to=4", "?from=1&to=18446744073709551615"} {
		resp, err := c.Get(srv.URL + PeerPath + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%q: %s", q, resp.Status)
		}
	}
}

// TestPeerCutOff: a stream that ends before its end frame is an error;
// only the indexes followed by a later one were stored (complete).
func TestPeerCutOff(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	captureRange(t, ob, 1, 20)
	var applied atomic.Uint64
	applied.Store(20)
	h := ob.PeerHandler(applied.Load)
	var cut atomic.Int64 // bytes to drop from the end
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		b := rec.Body.Bytes()
		_, _ = w.Write(b[:len(b)-int(cut.Load())])
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		cut  int64
		// want is the last index stored
		want uint64
	}{
		{"end frame lost", 9, 13},
		{"end frame cut", 4, 13},
		// Index 14 has two groups: the second is cut.
		{"inside the last group", 9 + 20, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cut.Store(tc.cut)
			var log chunkLog
			err := fetchRange(context.Background(), srv.Client(), srv.URL, 5, 14, 1, log.store)
			if err == nil {
				t.Fatal("a cut-off stream was taken for complete")
			}
			if len(log.ranges) == 0 {
				t.Fatalf("nothing stored (%v)", err)
			}
			last := log.ranges[len(log.ranges)-1][1]
			if last != tc.want {
				t.Fatalf("stored through %d, want %d (%v)", last, tc.want, err)
			}
			sameGroups(t, log.groups, storedGroups(t, ob, 5, last))
		})
	}
}
