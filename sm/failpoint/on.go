//go:build failpoints

package failpoint

import (
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Compiled reports whether failpoints are compiled into this binary.
const Compiled = true

// Set is one process's failpoints. Its zero value is not usable; use New.
type Set struct {
	mu     sync.Mutex
	points map[string]*point
}

type point struct {
	act  Action
	hits uint64
	// changed is closed (and replaced) whenever the action changes, which
	// releases a pause.
	changed chan struct{}
}

// New returns the failpoints of spec (ParseSpec).
func New(spec string) (*Set, error) {
	acts, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	s := &Set{points: map[string]*point{}}
	for name, a := range acts {
		s.set(name, a)
	}
	return s, nil
}

// Status is a failpoint's action and how often it was reached.
type Status struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Hits   uint64 `json:"hits"`
}

// List returns every failpoint that was set or reached, sorted by name.
func (s *Set) List() []Status {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.points))
	for name, p := range s.points {
		out = append(out, Status{Name: name, Action: p.act.String(), Hits: p.hits})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Enable sets name's action (ParseAction); "off" disables it. A paused
// caller is released either way.
func (s *Set) Enable(name, action string) error {
	if s == nil {
		return ErrNotCompiled
	}
	a, err := ParseAction(action)
	if err != nil {
		return err
	}
	s.set(name, a)
	return nil
}

func (s *Set) set(name string, a Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.points[name]
	if p == nil {
		p = &point{changed: make(chan struct{})}
		s.points[name] = p
	} else {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.act = a
}

// Inject evaluates name: it returns at once if the failpoint is off, sleeps
// or pauses (until stop is closed, or the action changes), returns
// ErrInjected, or kills the process.
func (s *Set) Inject(name string, stop <-chan struct{}) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	p := s.points[name]
	if p == nil {
		p = &point{changed: make(chan struct{})}
		s.points[name] = p
	}
	p.hits++
	a, changed := p.act, p.changed
	if a.Count > 0 {
		p.act.Count--
		if p.act.Count == 0 {
			p.act = Action{}
		}
	}
	s.mu.Unlock()
	switch a.Kind {
	case Sleep:
		t := time.NewTimer(a.Sleep)
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
		case <-changed:
		}
	case Pause:
		select {
		case <-stop:
		case <-changed:
		}
	case Error:
		return ErrInjected
	case Crash:
		// SIGKILL, not os.Exit: nothing deferred runs, as in a real crash.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return nil
}
