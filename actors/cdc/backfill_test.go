package cdc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// gatedPeer serves ob's peer handler, answering 503 until opened, and
// counts the requests.
type gatedPeer struct {
	h     http.Handler
	open  atomic.Bool
	asked atomic.Int64
}

func (g *gatedPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.asked.Add(1)
	if !g.open.Load() {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	g.h.ServeHTTP(w, r)
}

// multiProposer applies a high-water mark on every outbox, as Raft does
// on every voter.
type multiProposer struct{ obs []*Outbox }

func (p *multiProposer) ProposeHighWater(_ context.Context, hwm uint64) error {
	for _, ob := range p.obs {
		ob.HighWater(hwm)
	}
	return nil
}

// dedup checks that the received indexes, deduplicated (a consumer keeping
// the highest index it processed), are exactly want, in order, and that a
// repeated index only re-sends a prefix already seen.
func dedup(t *testing.T, got, want []uint64) {
	t.Helper()
	var out []uint64
	var high uint64
	for _, i := range got {
		if i <= high {
			continue
		}
		out = append(out, i)
		high = i
	}
	if !equal(out, want) {
		t.Fatalf("received %v, want %v", got, want)
	}
}

// TestServiceBackfill: node B installed a snapshot at 25 after capturing
// 1..5; its peer A captured everything. B leads: it sends 1..5, then waits
// at the missing range (status backfilling) while A cannot answer, fetches
// 6..25 from A once A answers, and delivers every index exactly once, in
// order, nothing skipped and no gap counted.
func TestServiceBackfill(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	a := openOutbox(t, t.TempDir())
	captureRange(t, a, 1, 30)
	var applied atomic.Uint64
	applied.Store(30)
	peer := &gatedPeer{h: a.PeerHandler(applied.Load)}
	psrv := httptest.NewServer(peer)
	defer psrv.Close()

	b := openOutbox(t, t.TempDir())
	captureRange(t, b, 1, 5)
	b.Installed(25)
	captureRange(t, b, 26, 30)
	cfg := testConfig(t, srv.URL)
	cfg.Peers = func() []string { return []string{psrv.URL} }
	s, err := New(cfg, b, func() bool { return true }, &multiProposer{obs: []*Outbox{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	eventually(t, "1..5 sent, then waiting", func() bool {
		st := s.Status().(map[string]any)
		return equal(rc.indexes(), seq(1, 5)) && st["backfilling"] == true && peer.asked.Load() >= 2
	})
	st := s.Status().(map[string]any)
	if st["missing_from"] != uint64(6) || st["missing_to"] != uint64(25) || st["backfill_error"] == "" {
		t.Fatalf("status while waiting: %v", st)
	}
	peer.open.Store(true)
	eventually(t, "all delivered", func() bool { return len(rc.indexes()) == 30 })
	if got := rc.indexes(); !equal(got, seq(1, 30)) {
		t.Fatalf("received %v", got)
	}
	eventually(t, "hwm 30", func() bool { return b.HighWaterMark() == 30 })
	st = s.Status().(map[string]any)
	if st["gaps"] != int64(0) || st["backfilling"] != false || st["missing_to"] != uint64(0) {
		t.Fatalf("status after: %v", st)
	}
	if v := s.Vars().(map[string]any); v["num_backfills"] != int64(1) {
		t.Fatalf("vars %v", v)
	}
	// The events are A's, byte for byte, for the fetched indexes.
	for _, e := range rc.envelopes() {
		for _, p := range e.Payload {
			if p.Index >= 6 && p.Index <= 25 && len(p.Events) == 0 {
				t.Fatalf("index %d delivered without its events", p.Index)
			}
		}
	}
}

// TestServiceBackfillLeaderChange: B, with the gap, leads and waits; the
// leadership moves to A (which holds everything) and back to B, which by
// then fetched the range: the receiver, deduplicating by index, gets every
// index once, in order.
func TestServiceBackfillLeaderChange(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	a := openOutbox(t, t.TempDir())
	b := openOutbox(t, t.TempDir())
	captureRange(t, a, 1, 20)
	captureRange(t, b, 1, 4)
	b.Installed(15)
	captureRange(t, b, 16, 20)
	var applied atomic.Uint64
	applied.Store(20)
	peerA := &gatedPeer{h: a.PeerHandler(applied.Load)}
	srvA := httptest.NewServer(peerA)
	defer srvA.Close()
	srvB := httptest.NewServer(b.PeerHandler(applied.Load))
	defer srvB.Close()

	var leader atomic.Value // "a" or "b"
	leader.Store("b")
	p := &multiProposer{obs: []*Outbox{a, b}}
	cfgA := testConfig(t, srv.URL)
	cfgA.NodeID = "a"
	cfgA.Peers = func() []string { return []string{srvB.URL} }
	sa, err := New(cfgA, a, func() bool { return leader.Load() == "a" }, p)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := testConfig(t, srv.URL)
	cfgB.Peers = func() []string { return []string{srvA.URL} }
	sb, err := New(cfgB, b, func() bool { return leader.Load() == "b" }, p)
	if err != nil {
		t.Fatal(err)
	}
	run(t, sa)
	run(t, sb)
	eventually(t, "B waits at the range", func() bool {
		return sb.Status().(map[string]any)["backfilling"] == true && len(rc.indexes()) >= 4
	})
	if got := rc.indexes(); !equal(got, seq(1, 4)) {
		t.Fatalf("received %v before the range", got)
	}
	leader.Store("a")
	captureRange(t, a, 21, 25)
	captureRange(t, b, 21, 25)
	eventually(t, "A delivers the rest", func() bool {
		ix := rc.indexes()
		return len(ix) > 0 && ix[len(ix)-1] == 25
	})
	peerA.open.Store(true)
	eventually(t, "B fetched the range", func() bool {
		_, _, ok := b.Missing()
		return !ok
	})
	leader.Store("b")
	captureRange(t, a, 26, 30)
	captureRange(t, b, 26, 30)
	eventually(t, "B delivers the rest", func() bool {
		ix := rc.indexes()
		return len(ix) > 0 && ix[len(ix)-1] == 30
	})
	dedup(t, rc.indexes(), seq(1, 30))
	if sa.gaps.Load() != 0 || sb.gaps.Load() != 0 {
		t.Fatal("a gap was counted")
	}
}

// TestServiceGap: when no voter can supply the range (none to ask, or all
// answer 409) for backfill_timeout, the leader counts a gap, skips the
// range, and sends what the outbox holds past it.
func TestServiceGap(t *testing.T) {
	for _, name := range []string{"no peers", "all refuse"} {
		t.Run(name, func(t *testing.T) {
			rc := &receiver{}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			ob := openOutbox(t, t.TempDir())
			captureRange(t, ob, 1, 2)
			ob.Installed(10)
			captureRange(t, ob, 11, 12)
			cfg := testConfig(t, srv.URL)
			cfg.BackfillTimeout = 50 * time.Millisecond
			var refuser *httptest.Server
			if name == "all refuse" {
				other := openOutbox(t, t.TempDir())
				other.Installed(12)
				var applied atomic.Uint64
				applied.Store(12)
				refuser = httptest.NewServer(other.PeerHandler(applied.Load))
				defer refuser.Close()
				cfg.Peers = func() []string { return []string{refuser.URL, refuser.URL} }
			}
			s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
			if err != nil {
				t.Fatal(err)
			}
			run(t, s)
			eventually(t, "delivered", func() bool { return len(rc.indexes()) == 4 })
			if got := rc.indexes(); !equal(got, []uint64{1, 2, 11, 12}) {
				t.Fatalf("received %v", got)
			}
			if g := s.Status().(map[string]any)["gaps"]; g != int64(1) {
				t.Fatalf("gaps %v", g)
			}
			if _, _, ok := ob.Missing(); ok {
				t.Fatal("the range is still missing")
			}
		})
	}
}

// TestGiveUpSaysWhenItCould: the transmitter blocked at a missing range
// sleeps until the soonest giveUp could skip it, not in a poll loop:
// backfill_timeout after both the block and the voters' refusals began.
func TestGiveUpSaysWhenItCould(t *testing.T) {
	const timeout = time.Minute
	cases := []struct {
		name             string
		blockedAgo       time.Duration // 0: not blocked before
		refusedAgo       time.Duration // 0: no refusal recorded
		wantSkip         bool
		wantMin, wantMax time.Duration
	}{
		{"no refusal yet: a whole timeout", 0, 0, false, timeout, timeout},
		{"refused a while ago, blocked now", 0, 40 * time.Second, false, timeout - time.Second, timeout},
		{"blocked longer than refused", 50 * time.Second, 20 * time.Second, false, 39 * time.Second, 40 * time.Second},
		{"refused longer than blocked", 20 * time.Second, 50 * time.Second, false, 39 * time.Second, 40 * time.Second},
		{"both past the timeout: skipped", 61 * time.Second, 70 * time.Second, true, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ob := openOutbox(t, t.TempDir())
			captureRange(t, ob, 1, 2)
			ob.Installed(10)
			cfg := testConfig(t, "http://127.0.0.1:1")
			cfg.BackfillTimeout = timeout
			s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			if tc.blockedAgo > 0 {
				s.blockedSince = now.Add(-tc.blockedAgo)
			}
			if tc.refusedAgo > 0 {
				s.refusedSince.Store(now.Add(-tc.refusedAgo).UnixNano())
			}
			mf, mt, ok := ob.Missing()
			if !ok {
				t.Fatal("no missing range")
			}
			skipped, retry := s.giveUp(mf, mt)
			if skipped != tc.wantSkip || retry < tc.wantMin || retry > tc.wantMax {
				t.Fatalf("giveUp = %v, %s; want %v, in [%s, %s]", skipped, retry, tc.wantSkip, tc.wantMin, tc.wantMax)
			}
			if _, _, still := ob.Missing(); still == tc.wantSkip {
				t.Fatalf("range still missing = %v after giveUp = %v", still, skipped)
			}
		})
	}
}
