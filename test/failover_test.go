package test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/skiffdb/skiff/test/failover/nemesis"
)

// TestFailoverNemesis is the short version of `make failover` (issue 14,
// item 6): 3 nodes formed with -bootstrap-expect (API.md 5), clients with
// 5 s timeouts inserting through random nodes and reading back, level=
// linearizable (API.md 1.8), rows they know were acknowledged, while the
// leader is SIGKILLed and restarted three times. Writes in flight at a
// kill are proposed again to the new leader under their request IDs, so
// some commit twice in the log: the state machine must apply them once.
// It checks what must hold whatever the machine's speed: no acknowledged
// write lost, no stale read, identical replicas. It asserts no time; the
// figures are logged.
func TestFailoverNemesis(t *testing.T) {
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := nemesis.Run(ctx, nemesis.Config{
		Skiffd: skiffdBin, Dir: t.TempDir(), Kills: 3,
		MinInterval: 2 * time.Second, MaxInterval: 3 * time.Second,
		Log: &log,
	})
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	res.Print(&report)
	t.Log(report.String())
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
}
