package sm

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// TestInterruptConn pins what interruptConn reads out of mattn's
// connection: a pointer field named db.
func TestInterruptConn(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir()}
	s, err := New(Config{Dir: h.dir, ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	h.s = s
	slow := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT COUNT(*) FROM c"
	for _, tc := range []struct {
		name   string
		cancel func(context.CancelFunc)
		// deadline, after the read's start (0: none).
		deadline time.Duration
	}{
		{"cancelled while running", func(cancel context.CancelFunc) { time.AfterFunc(50*time.Millisecond, cancel) }, 0},
		{"cancelled before", func(cancel context.CancelFunc) { cancel() }, 0},
		{"deadline passed while running", func(context.CancelFunc) {}, 50 * time.Millisecond},
		{"deadline passed before", func(context.CancelFunc) {}, -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.cancel(cancel)
			start := time.Now()
			q := &Query{Ctx: ctx, Request: &cmdpb.Request{Statements: stmts(slow)}}
			if tc.deadline != 0 {
				q.Deadline = start.Add(tc.deadline)
			}
			out, err := s.Lookup(q)
			if err == nil {
				if got := out.(*cmdpb.Response).Results[0].GetError(); got != "query timeout" {
					t.Fatalf("slow read answered %v, want query timeout", out)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("slow read ran %v after cancel", d)
			}
			// The one connection reads again: no interrupt is left over.
			for i := 0; i < 20; i++ {
				if r := h.query("SELECT 1").Results[0]; r.GetError() != "" || r.Rows[0].Values[0].GetI() != 1 {
					t.Fatalf("read after interrupt: %v", r)
				}
			}
		})
	}
}

// The watchdog's decision for one watch: interrupt once, for the first
// of the context's end and the deadline, and only while armed.
func TestWatchCheck(t *testing.T) {
	now := time.Now()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	for _, tc := range []struct {
		name     string
		arm      bool
		ctx      context.Context
		deadline time.Time
		// fired: an earlier check already interrupted this arming.
		fired     bool
		want      bool
		wantCause error
	}{
		{"not armed", false, done, now.Add(-time.Second), false, false, nil},
		{"running", true, live, now.Add(time.Second), false, false, nil},
		{"no deadline", true, live, time.Time{}, false, false, nil},
		{"context ended", true, done, now.Add(time.Second), false, true, context.Canceled},
		{"deadline now", true, live, now, false, true, context.DeadlineExceeded},
		{"deadline passed", true, live, now.Add(-time.Millisecond), false, true, context.DeadlineExceeded},
		{"both: context first", true, done, now.Add(-time.Millisecond), false, true, context.Canceled},
		{"already interrupted", true, done, now, true, false, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w watch
			if tc.arm {
				w.arm(tc.ctx, tc.deadline)
			}
			if tc.fired {
				w.check(now, func() {})
			}
			calls := 0
			if got := w.check(now, func() { calls++ }); got != tc.want || calls != map[bool]int{true: 1}[tc.want] {
				t.Fatalf("check = %v with %d interrupts, want %v", got, calls, tc.want)
			}
			if cause := w.disarm(); !errors.Is(cause, tc.wantCause) || (cause == nil) != (tc.wantCause == nil) {
				t.Fatalf("disarm = %v, want %v", cause, tc.wantCause)
			}
			if w.check(now.Add(time.Hour), func() { t.Fatal("interrupted after disarm") }) {
				t.Fatal("check fired after disarm")
			}
		})
	}
}

// The watchdog runs only while reads do: an idle node has no timer firing.
func TestWatchdogStopsWhenIdle(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 10; i++ {
		h.query("SELECT 1")
	}
	p := h.s.readers.Load()
	deadline := time.Now().Add(10 * time.Second)
	for p.watching.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog still runs with no read running")
		}
		time.Sleep(watchInterval)
	}
	if n := p.running.Load(); n != 0 {
		t.Fatalf("running = %d after the reads", n)
	}
	// It starts again for the next read, which it bounds.
	out, err := h.s.Lookup(&Query{Deadline: time.Now().Add(50 * time.Millisecond),
		Request: &cmdpb.Request{Statements: stmts("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT COUNT(*) FROM c")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*cmdpb.Response).Results[0].GetError(); got != "query timeout" {
		t.Fatalf("read past its deadline answered %v", out)
	}
}
