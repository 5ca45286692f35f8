//go:build sqlite_preupdate_hook

package replica

import (
	"sync"
	"testing"
	"time"

	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// chanSink passes what the state machine captures to the test goroutine.
type chanSink struct {
	mu     sync.Mutex
	groups []sm.ChangeGroup
	hwm    chan uint64
}

func (c *chanSink) Capture(gs []sm.ChangeGroup) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = append(c.groups, gs...)
	return nil
}

func (c *chanSink) HighWater(hwm uint64) {
	select {
	case c.hwm <- hwm:
	default:
	}
}

func (c *chanSink) Installed(uint64) {}

func (c *chanSink) captured() []sm.ChangeGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sm.ChangeGroup(nil), c.groups...)
}

// Config.Capture reaches the state machine, and ProposeHighWater reaches
// the sink through the log.
func TestCaptureAndProposeHighWater(t *testing.T) {
	sink := &chanSink{hwm: make(chan uint64, 4)}
	n := startNodeWith(t, t.TempDir(), freeAddr(t), func(c *Config) { c.Capture = &sm.CaptureConfig{Sink: sink} })
	defer n.stop(t)
	resp, err := n.r.Execute(ctxT(t), &cmdpb.Request{Statements: []*cmdpb.Statement{
		{Sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}, {Sql: "INSERT INTO t (v) VALUES ('a')"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Execute returns once the entry applied, which is after its Capture.
	got := sink.captured()
	if len(got) != 1 || got[0].Index != resp.RaftIndex || len(got[0].Events) != 1 || got[0].Events[0].Op != sm.ChangeInsert {
		t.Fatalf("captured %+v, want the insert at index %d", got, resp.RaftIndex)
	}
	if err := n.r.ProposeHighWater(ctxT(t), resp.RaftIndex); err != nil {
		t.Fatal(err)
	}
	select {
	case hwm := <-sink.hwm:
		if hwm != resp.RaftIndex {
			t.Fatalf("HighWater(%d), want %d", hwm, resp.RaftIndex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HighWater not called")
	}
}
