package failpoint

import (
	"errors"
	"testing"
	"time"
)

func TestParseAction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Action
		err  bool
	}{
		{in: "off", want: Action{}},
		{in: "", want: Action{}},
		{in: "pause", want: Action{Kind: Pause}},
		{in: " error ", want: Action{Kind: Error}},
		{in: "crash", want: Action{Kind: Crash}},
		{in: "sleep(250ms)", want: Action{Kind: Sleep, Sleep: 250 * time.Millisecond}},
		{in: "3*error", want: Action{Kind: Error, Count: 3}},
		{in: "1 * sleep(1s)", want: Action{Kind: Sleep, Sleep: time.Second, Count: 1}},
		{in: "0*error", err: true},
		{in: "x*error", err: true},
		{in: "2*off", err: true},
		{in: "sleep(forever)", err: true},
		{in: "sleep(-1s)", err: true},
		{in: "explode", err: true},
	} {
		got, err := ParseAction(tc.in)
		if tc.err {
			if !errors.Is(err, ErrBadSpec) {
				t.Errorf("%q: error %v, want ErrBadSpec", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if again, err := ParseAction(got.String()); err != nil || again != got {
			t.Errorf("%q: String %q does not parse back: %+v, %v", tc.in, got.String(), again, err)
		}
	}
}

func TestParseSpec(t *testing.T) {
	got, err := ParseSpec(" sm/open=pause; ;sm/apply=2*sleep(10ms);")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["sm/open"].Kind != Pause || got["sm/apply"] != (Action{Kind: Sleep, Sleep: 10 * time.Millisecond, Count: 2}) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"sm/open", "=pause", "sm/open=nope"} {
		if _, err := ParseSpec(bad); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%q: error %v, want ErrBadSpec", bad, err)
		}
	}
}

// A nil set has no failpoints in either build.
func TestNilSet(t *testing.T) {
	var s *Set
	if err := s.Inject(SMOpen, nil); err != nil {
		t.Fatal(err)
	}
	if s.List() != nil {
		t.Fatal("nil set lists failpoints")
	}
	if err := s.Enable(SMOpen, "pause"); !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("Enable on nil: %v", err)
	}
}
