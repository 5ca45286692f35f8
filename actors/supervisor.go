package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
)

// ErrUnknownActor is returned by Shutdown for a step naming an actor that
// was neither started nor declared.
var ErrUnknownActor = errors.New("unknown actor")

// Actor is anything run by a Supervisor. Run blocks until ctx ends (then it
// returns nil after cleaning up) or the actor fails (it returns the error).
type Actor interface {
	Run(ctx context.Context) error
}

// Step is one step of a shutdown: which actor to stop, and why it stops at
// that point.
type Step struct {
	Name   string
	Reason string
}

type member struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Supervisor runs a group of actors. The first one to fail (or to return
// while the group is still meant to run) is reported on Failed; Shutdown
// then stops the rest in the written order.
type Supervisor struct {
	log *zap.Logger

	mu      sync.Mutex
	members []*member
	// declared holds the names of actors that may be started later (and
	// every started one): a shutdown step naming one that never started
	// is skipped, not an error.
	declared map[string]bool
	failed   chan error
	once     sync.Once
}

// NewSupervisor returns an empty supervisor.
func NewSupervisor(log *zap.Logger) *Supervisor {
	return &Supervisor{log: log, declared: make(map[string]bool), failed: make(chan error, 1)}
}

// Declare names actors that may be started later, or never (an actor that
// a failed startup did not reach). Shutdown skips a step naming a declared
// actor that is not running; a step naming an undeclared, unstarted actor
// is still an error (ErrUnknownActor), so a misspelt step is caught.
func (s *Supervisor) Declare(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.declared[n] = true
	}
}

// Start runs a under name with a context of its own, so that Shutdown can
// stop actors one at a time.
func (s *Supervisor) Start(name string, a Actor) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.members = append(s.members, m)
	s.declared[name] = true
	s.mu.Unlock()
	go func() {
		defer close(m.done)
		err := a.Run(ctx)
		if err == nil && ctx.Err() == nil {
			err = fmt.Errorf("actor %s returned while it should still run", name)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Error("actor failed", zap.String("actor", name), zap.Error(err))
			s.once.Do(func() { s.failed <- fmt.Errorf("%s: %w", name, err) })
		}
	}()
}

// Failed delivers the first actor failure.
func (s *Supervisor) Failed() <-chan error { return s.failed }

// Shutdown stops the actors in the order of steps, waiting for each to
// return before the next; actors not named are stopped last, in reverse
// start order. A step naming a declared actor that was never started is
// skipped; one naming no known actor is reported (ErrUnknownActor) and the
// rest still run. It gives up waiting when ctx ends (every actor's context
// is cancelled regardless).
func (s *Supervisor) Shutdown(ctx context.Context, steps []Step) error {
	s.mu.Lock()
	members := append([]*member(nil), s.members...)
	declared := make(map[string]bool, len(s.declared))
	for n := range s.declared {
		declared[n] = true
	}
	s.mu.Unlock()
	byName := make(map[string]*member, len(members))
	for _, m := range members {
		byName[m.name] = m
	}
	var order []*member
	seen := make(map[string]bool)
	var errs []error
	for _, st := range steps {
		m, ok := byName[st.Name]
		if !ok {
			if declared[st.Name] {
				s.log.Debug("skipping actor that never started", zap.String("actor", st.Name))
			} else {
				errs = append(errs, fmt.Errorf("%w: %s", ErrUnknownActor, st.Name))
			}
			continue
		}
		order = append(order, m)
		seen[st.Name] = true
	}
	for i := len(members) - 1; i >= 0; i-- {
		if !seen[members[i].name] {
			order = append(order, members[i])
		}
	}
	reasons := make(map[string]string, len(steps))
	for _, st := range steps {
		reasons[st.Name] = st.Reason
	}
	for _, m := range order {
		s.log.Info("stopping actor", zap.String("actor", m.name), zap.String("reason", reasons[m.name]))
		m.cancel()
		select {
		case <-m.done:
		case <-ctx.Done():
			for _, rest := range order {
				rest.cancel()
			}
			return errors.Join(append(errs, fmt.Errorf("shutdown: actor %s did not stop: %w", m.name, ctx.Err()))...)
		}
	}
	return errors.Join(errs...)
}
