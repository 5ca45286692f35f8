package actors

import (
	"context"
	"errors"
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
