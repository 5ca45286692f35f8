//go:build failpoints

package failpoint

import (
	"errors"
	"testing"
	"time"
)

func TestInject(t *testing.T) {
	s, err := New("a=2*error;b=sleep(20ms)")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{ErrInjected, ErrInjected, nil} {
		if err := s.Inject("a", nil); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("a, call %d: %v, want %v", i, err, want)
		}
	}
	start := time.Now()
	if err := s.Inject("b", nil); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("b: %v after %v", err, time.Since(start))
	}
	if err := s.Inject("unset", nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, st := range s.List() {
		got[st.Name] = st
	}
	if got["a"].Hits != 3 || got["a"].Action != "off" || got["b"].Action != "sleep(20ms)" || got["unset"].Hits != 1 {
		t.Fatalf("list: %+v", got)
	}
}

// A pause holds until the failpoint changes, or until stop.
func TestPause(t *testing.T) {
	s, err := New("p=pause")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Inject("p", nil) }()
	select {
	case err := <-done:
		t.Fatalf("pause returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Enable("p", "off"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Enable("p", "pause"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() { done <- s.Inject("p", stop) }()
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Enable("p", "bogus"); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("bad action: %v", err)
	}
}
