package sm

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestSentGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var g sentGuard
	if ok, _, _ := g.refuse(7, t0); ok {
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
	if _, _, first := g.refuse(7, t0); !first {
		t.Error("the first refusal is not reported first")
	}
	for _, c := range cases {
		ok, left, first := g.refuse(c.index, t0.Add(c.at))
		if first {
			t.Errorf("%s: a later refusal reported first", c.name)
		}
		if ok != c.want || left != c.left {
			t.Errorf("%s: refuse = %v, %s; want %v, %s", c.name, ok, left, c.want, c.left)
		}
	}
	// The refusal is bounded both ways.
	g.sent(9, time.Millisecond, t0)
	if ok, left, _ := g.refuse(9, t0); !ok || left != minResendGuard {
		t.Errorf("short stream: refuse = %v, %s; want true, %s", ok, left, minResendGuard)
	}
	g.sent(9, time.Hour, t0)
	if ok, left, _ := g.refuse(9, t0); !ok || left != maxResendGuard {
		t.Errorf("long stream: refuse = %v, %s; want true, %s", ok, left, maxResendGuard)
	}
}

// Exports and any writer that is not Dragonboat's chunk writer are never
// refused nor recorded.
func TestStreamsToReplicaOnlyForChunkWriters(t *testing.T) {
	var buf bytes.Buffer
	if streamsToReplica(&buf) {
		t.Fatal("a bytes.Buffer taken for a stream to a replica")
	}
	if streamsToReplica(nopWriteCloser{&buf}) {
		t.Fatal("a wrapper taken for a stream to a replica")
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
