package sm

import (
	"testing"
	"time"
)

func TestSentGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var g sentGuard
	if ok, _ := g.refuse(7, t0); ok {
		t.Fatal("nothing sent yet, but refused")
	}
	g.sent(7, 5*time.Second, t0)
	cases := []struct {
		name  string
		index uint64
		at    time.Duration
		want  bool
		left  time.Duration
	}{
		{"same index right after", 7, time.Second, true, 4 * time.Second},
		{"another index", 8, time.Second, false, 0},
		{"index zero", 0, time.Second, false, 0},
		{"same index once the stream's duration passed", 7, 5 * time.Second, false, 0},
	}
	for _, c := range cases {
		ok, left := g.refuse(c.index, t0.Add(c.at))
		if ok != c.want || left != c.left {
			t.Errorf("%s: refuse = %v, %s; want %v, %s", c.name, ok, left, c.want, c.left)
		}
	}
	// The refusal is bounded both ways.
	g.sent(9, time.Millisecond, t0)
	if ok, left := g.refuse(9, t0); !ok || left != minResendGuard {
		t.Errorf("short stream: refuse = %v, %s; want true, %s", ok, left, minResendGuard)
	}
	g.sent(9, time.Hour, t0)
	if ok, left := g.refuse(9, t0); !ok || left != maxResendGuard {
		t.Errorf("long stream: refuse = %v, %s; want true, %s", ok, left, maxResendGuard)
	}
}
