package benchkit

import (
	"os"
	"testing"
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
