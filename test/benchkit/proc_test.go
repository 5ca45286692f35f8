package benchkit

import (
	"os"
	"testing"
	"time"
)

// The peak resident set is read from the same status file as the current
// one, and is never below it.
func TestProcRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("no /proc: %v", err)
	}
	rss, peak := ProcRSS(os.Getpid()), ProcPeakRSS(os.Getpid())
	if rss <= 0 || peak < rss {
		t.Fatalf("VmRSS %d, VmHWM %d", rss, peak)
	}
	if got := ProcStatusBytes(os.Getpid(), "NoSuchField"); got != 0 {
		t.Fatalf("unknown field read as %d", got)
	}
}

// Each node's CPU per request is its own difference divided by the
// requests, in the order the nodes were given.
func TestCPUPerNode(t *testing.T) {
	before := CPUSample{Nodes: 30 * time.Millisecond, PerNode: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, OK: true}
	after := CPUSample{Nodes: 90 * time.Millisecond, PerNode: []time.Duration{50 * time.Millisecond, 40 * time.Millisecond}, OK: true}
	c := after.Sub(before).Per(1000)
	if c.Nodes != 60*time.Microsecond || len(c.PerNode) != 2 || c.PerNode[0] != 40*time.Microsecond || c.PerNode[1] != 20*time.Microsecond {
		t.Fatalf("per request %+v", c)
	}
	if got := c.PerNodeString(); got != "40/20" {
		t.Fatalf("PerNodeString %q", got)
	}
	if got := (CPUPerRequest{}).PerNodeString(); got != "-" {
		t.Fatalf("unread PerNodeString %q", got)
	}
}
