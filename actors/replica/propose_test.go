package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"
)

// sentCopy is one copy a fake proposeFunc was asked to send.
type sentCopy struct {
	sink chan<- outcome
	stop <-chan struct{}
}

// answer delivers the copy's outcome unless the proposal has its answer.
func (c sentCopy) answer(o outcome) {
	select {
	case c.sink <- o:
	case <-c.stop:
	}
}

// fakeRaft stands in for Dragonboat: each copy sent is handed to the test
// on copies; refuse, when set, is returned by the next Propose instead.
type fakeRaft struct {
	copies chan sentCopy
	refuse chan error
}

func newFakeRaft() *fakeRaft {
	return &fakeRaft{copies: make(chan sentCopy, 16), refuse: make(chan error, 16)}
}

func (f *fakeRaft) propose(_ time.Duration, sink chan<- outcome, stop <-chan struct{}) error {
	select {
	case err := <-f.refuse:
		return err
	default:
	}
	f.copies <- sentCopy{sink: sink, stop: stop}
	return nil
}

func (f *fakeRaft) next(t *testing.T) sentCopy {
	t.Helper()
	select {
	case c := <-f.copies:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no copy was proposed")
		return sentCopy{}
	}
}

// none checks that no copy is sent while the proposal waits on something
// else (its result is checked after).
func (f *fakeRaft) none(t *testing.T) {
	t.Helper()
	select {
	case <-f.copies:
		t.Fatal("a copy was proposed that should not have been")
	default:
	}
}

type runResult struct {
	data []byte
	err  error
}

func startProposal(t *testing.T, f *fakeRaft, w *leaderWatch, repropose bool, timeout time.Duration) <-chan runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	p := &proposal{propose: f.propose, leaders: w, repropose: repropose, self: 1, log: zap.NewNop(),
		mapErr: func(err error) error {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dragonboat.ErrTimeout) {
				return ErrTimeout
			}
			return err
		}}
	out := make(chan runResult, 1)
	go func() {
		data, err := p.run(ctx)
		out <- runResult{data, err}
	}()
	return out
}

func wait(t *testing.T, out <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-out:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the proposal did not return")
		return runResult{}
	}
}

// A copy lost with a dead leader is proposed again as soon as a new leader
// is known, under the same bytes; whichever copy is answered first wins.
func TestProposalInFlightGoesToNewLeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		winner int // the copy answered first
	}{
		{"the new copy is answered", 1},
		{"the old copy was committed by the new leader after all", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, w := newFakeRaft(), newLeaderWatch()
			w.update(leaderView{leader: 1, term: 2})
			out := startProposal(t, f, w, true, time.Minute)
			copies := []sentCopy{f.next(t)}
			w.update(leaderView{leader: 0, term: 3}) // an election: nobody to send to
			w.update(leaderView{leader: 0, term: 3}) // a repeat wakes nobody
			w.update(leaderView{leader: 2, term: 3})
			copies = append(copies, f.next(t))
			copies[tc.winner].answer(outcome{data: []byte("applied")})
			if r := wait(t, out); r.err != nil || string(r.data) != "applied" {
				t.Fatalf("run = %q, %v", r.data, r.err)
			}
		})
	}
}

// Commands the state machine does not deduplicate are never sent twice
// while a copy is in flight; they wait for their answer or deadline.
func TestProposalNotReproposable(t *testing.T) {
	f, w := newFakeRaft(), newLeaderWatch()
	w.update(leaderView{leader: 1, term: 2})
	out := startProposal(t, f, w, false, 300*time.Millisecond)
	f.next(t)
	w.update(leaderView{leader: 2, term: 3})
	if r := wait(t, out); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("run = %q, %v; want a timeout", r.data, r.err)
	}
	f.none(t)
}

// A dropped copy (no leader) is sent again when a leader is known; a busy
// refusal is retried after a backoff; a copy that fails for good while
// another is in flight does not end the proposal.
func TestProposalRetries(t *testing.T) {
	t.Run("dropped, then a leader", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		out := startProposal(t, f, w, true, time.Minute)
		f.next(t).answer(outcome{err: dragonboat.ErrShardNotReady})
		// Without a leader it waits (backing off); with one it is sent.
		w.update(leaderView{leader: 3, term: 4})
		c := f.next(t)
		c.answer(outcome{data: []byte("ok")})
		if r := wait(t, out); r.err != nil || string(r.data) != "ok" {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		w.update(leaderView{leader: 1, term: 1})
		f.refuse <- dragonboat.ErrSystemBusy
		f.refuse <- dragonboat.ErrSystemBusy
		out := startProposal(t, f, w, true, time.Minute)
		f.next(t).answer(outcome{data: []byte("ok")})
		if r := wait(t, out); r.err != nil || string(r.data) != "ok" {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
	})
	t.Run("one copy fails for good, the other is answered", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		w.update(leaderView{leader: 1, term: 1})
		out := startProposal(t, f, w, true, time.Minute)
		first := f.next(t)
		w.update(leaderView{leader: 2, term: 2})
		second := f.next(t)
		first.answer(outcome{err: dragonboat.ErrTimeout})
		second.answer(outcome{data: []byte("ok")})
		if r := wait(t, out); r.err != nil || string(r.data) != "ok" {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
	})
	t.Run("the only copy fails for good", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		w.update(leaderView{leader: 1, term: 1})
		out := startProposal(t, f, w, true, time.Minute)
		f.next(t).answer(outcome{err: dragonboat.ErrShardClosed})
		if r := wait(t, out); !errors.Is(r.err, dragonboat.ErrShardClosed) {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
	})
	t.Run("no leader until the deadline: the drop is the answer", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		out := startProposal(t, f, w, true, 300*time.Millisecond)
		go func() {
			for c := range f.copies {
				c.answer(outcome{err: dragonboat.ErrShardNotReady})
			}
		}()
		if r := wait(t, out); !errors.Is(r.err, dragonboat.ErrShardNotReady) {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
		close(f.copies)
	})
	t.Run("deadline", func(t *testing.T) {
		f, w := newFakeRaft(), newLeaderWatch()
		w.update(leaderView{leader: 1, term: 1})
		out := startProposal(t, f, w, true, 200*time.Millisecond)
		f.next(t)
		if r := wait(t, out); !errors.Is(r.err, ErrTimeout) {
			t.Fatalf("run = %q, %v", r.data, r.err)
		}
	})
}

// A copy forwarded to the leader and never answered (a message Dragonboat
// dropped on the way, say while its circuit breaker to a restarted leader
// was open) is sent again with no leader change; a copy proposed on the
// leader itself is not (it cannot be lost in transit).
func TestProposalResendsUnansweredForwardedCopy(t *testing.T) {
	f, w := newFakeRaft(), newLeaderWatch()
	w.update(leaderView{leader: 2, term: 1})
	out := startProposal(t, f, w, true, time.Minute)
	f.next(t)                                     // lost
	f.next(t).answer(outcome{data: []byte("ok")}) // the resent copy
	if r := wait(t, out); r.err != nil || string(r.data) != "ok" {
		t.Fatalf("run = %q, %v", r.data, r.err)
	}

	f, w = newFakeRaft(), newLeaderWatch()
	w.update(leaderView{leader: 1, term: 1}) // self is 1 (startProposal)
	out = startProposal(t, f, w, true, 2*resendAfter)
	f.next(t)
	if r := wait(t, out); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("run = %q, %v; want a timeout", r.data, r.err)
	}
	f.none(t)
}
