package actors

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

type echo struct {
	inbox chan Envelope[int, int]
	done  *Done
}

func (e *echo) Run(ctx context.Context) error {
	defer e.done.Close()
	for {
		select {
		case env := <-e.inbox:
			env.Answer(env.Req*2, nil)
		case <-ctx.Done():
			return nil
		}
	}
}

func TestCall(t *testing.T) {
	e := &echo{inbox: make(chan Envelope[int, int]), done: NewDone()}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = e.Run(ctx) }()
	v, err := Call(context.Background(), e.done.C(), e.inbox, 21)
	if err != nil || v != 42 {
		t.Fatalf("Call = %d, %v", v, err)
	}
	cancel()
	<-e.done.C()
	// A stopped actor: Call returns at once instead of blocking.
	if _, err := Call(context.Background(), e.done.C(), e.inbox, 1); !errors.Is(err, ErrStopped) {
		t.Fatalf("Call on stopped actor = %v", err)
	}
	// A caller that gives up.
	stuck := make(chan Envelope[int, int])
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer ccancel()
	if _, err := Call(cctx, NewDone().C(), stuck, 1); !errors.Is(err, ErrCanceled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call with expired ctx = %v", err)
	}
}

func TestDoneIdempotent(t *testing.T) {
	d := NewDone()
	d.Close()
	d.Close()
	<-d.C()
}

type recorder struct {
	mu    sync.Mutex
	order []string
}

type fake struct {
	name string
	rec  *recorder
	err  error
}

func (f *fake) Run(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	f.rec.mu.Lock()
	f.rec.order = append(f.rec.order, f.name)
	f.rec.mu.Unlock()
	return nil
}

func TestSupervisorShutdownOrder(t *testing.T) {
	rec := &recorder{}
	s := NewSupervisor(zap.NewNop())
	for _, n := range []string{"a", "b", "c", "d"} {
		s.Start(n, &fake{name: n, rec: rec})
	}
	err := s.Shutdown(context.Background(), []Step{{Name: "c", Reason: "first"}, {Name: "a", Reason: "second"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.order; len(got) != 4 || got[0] != "c" || got[1] != "a" || got[2] != "d" || got[3] != "b" {
		t.Fatalf("order = %v, want [c a d b]", got)
	}
	if err := s.Shutdown(context.Background(), []Step{{Name: "zz"}}); !errors.Is(err, ErrUnknownActor) {
		t.Fatalf("unknown step: %v", err)
	}
}

func TestSupervisorReportsFirstFailure(t *testing.T) {
	s := NewSupervisor(zap.NewNop())
	boom := errors.New("boom")
	s.Start("ok", &fake{name: "ok", rec: &recorder{}})
	s.Start("bad", &fake{name: "bad", err: boom})
	select {
	case err := <-s.Failed():
		if !errors.Is(err, boom) {
			t.Fatalf("Failed = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	if err := s.Shutdown(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// Shutdown skips a step naming a declared actor that never started (a
// startup that failed before reaching it), but still reports a step naming
// no known actor; either way the other steps run.
func TestSupervisorShutdownSteps(t *testing.T) {
	cases := []struct {
		name      string
		declare   []string
		steps     []string
		wantErr   error
		wantOrder []string
	}{
		{name: "all started", steps: []string{"b", "a"}, wantOrder: []string{"b", "a"}},
		{name: "declared, never started: skipped", declare: []string{"late"}, steps: []string{"b", "late", "a"},
			wantOrder: []string{"b", "a"}},
		{name: "unknown name: error, the rest still stopped", steps: []string{"b", "zz", "a"},
			wantErr: ErrUnknownActor, wantOrder: []string{"b", "a"}},
		{name: "declared and unknown", declare: []string{"late"}, steps: []string{"late", "zz"},
			wantErr: ErrUnknownActor, wantOrder: []string{"b", "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			s := NewSupervisor(zap.NewNop())
			s.Declare(tc.declare...)
			s.Start("a", &fake{name: "a", rec: rec})
			s.Start("b", &fake{name: "b", rec: rec})
			var steps []Step
			for _, n := range tc.steps {
				steps = append(steps, Step{Name: n})
			}
			err := s.Shutdown(context.Background(), steps)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Shutdown = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && strings.Contains(err.Error(), "late") {
				t.Fatalf("declared actor reported: %v", err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if !reflect.DeepEqual(rec.order, tc.wantOrder) {
				t.Fatalf("order = %v, want %v", rec.order, tc.wantOrder)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	if _, ok := RequestID(context.Background()); ok {
		t.Fatal("request ID in a bare context")
	}
	a, b := NewRequestID(), NewRequestID()
	if len(a) != 16 || bytes.Equal(a, b) {
		t.Fatalf("NewRequestID: %x %x", a, b)
	}
	ctx := WithRequestID(context.Background(), a)
	got, ok := RequestID(ctx)
	if !ok || !bytes.Equal(got, a) {
		t.Fatalf("RequestID = %x %v, want %x", got, ok, a)
	}
	got[0] ^= 0xff // the caller's copy: the context's ID is unchanged
	if again, _ := RequestID(ctx); !bytes.Equal(again, a) {
		t.Fatal("request ID in context was modified through a returned slice")
	}
	// A derived context (a deadline per attempt) keeps the ID.
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if got, _ := RequestID(dctx); !bytes.Equal(got, a) {
		t.Fatal("derived context lost the request ID")
	}
}
