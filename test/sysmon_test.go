package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// processGODEBUG returns the GODEBUG a running process was started (or
// re-executed) with, as the kernel holds it.
func processGODEBUG(t *testing.T, pid int) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("reading the daemon's environment: %v", err)
	}
	var found string
	ok := false
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, has := bytes.CutPrefix(kv, []byte("GODEBUG=")); has && !ok {
			found, ok = string(v), true
		}
	}
	return found, ok
}

// TestSysmonKeptAwake: skiffd re-executes itself, keeping its pid, its
// flags and its process name, with a schedtrace period in GODEBUG (which keeps the runtime's
// sysmon thread out of its deep sleep and its wake-up storms; see
// cmd/skiffd/sysmon.go), and leaves an operator's own schedtrace alone.
func TestSysmonKeptAwake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env, want string
		gogc            string // "" for unset
		wantGC          string // go_gc_gogc_percent in /metrics
	}{
		{"default", "", "schedtrace=2147483647", "", "200"},
		{"other settings kept", "GODEBUG=madvdontneed=1", "madvdontneed=1,schedtrace=2147483647", "", "200"},
		{"opted out", "GODEBUG=schedtrace=0", "schedtrace=0", "100", "100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t)
			if tc.env != "" {
				n.env = []string{tc.env}
			} else {
				n.env = []string{"GODEBUG="} // whatever the test's own environment holds
			}
			if tc.gogc != "" {
				n.env = append(n.env, "GOGC="+tc.gogc)
			} else {
				n.env = append(n.env, "GOGC") // unset, whatever the test's environment holds
			}
			// start checks that /status is answered by this very pid, on the
			// addresses the flags gave: the re-executed process is the one
			// the harness started, with its arguments.
			n.start()
			n.waitReady(readyTimeout)
			wantOK(t, "a write after the re-execution", n.execute(`["CREATE TABLE t (x)"]`),
				`{"results":[{}]}`)
			// The collector's target: skiffd's default unless GOGC is set
			// (cmd/skiffd/gcpercent.go).
			m := n.get("/metrics")
			if gc := metricLine(string(m.body), "go_gc_gogc_percent"); gc != tc.wantGC {
				t.Fatalf("go_gc_gogc_percent = %q, want %q", gc, tc.wantGC)
			}
			pid := n.proc.cmd.Process.Pid
			got, ok := processGODEBUG(t, pid)
			if !ok || got != tc.want {
				t.Fatalf("daemon's GODEBUG = %q (set: %v), want %q", got, ok, tc.want)
			}
			// The process keeps its binary's name (what pkill, ps -C and
			// top match), which a re-execution through /proc/self/exe
			// would have made "exe"; the kernel keeps 15 bytes of it.
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Base(skiffdBin)
			if len(want) > 15 {
				want = want[:15]
			}
			if got := strings.TrimSuffix(string(comm), "\n"); got != want {
				t.Fatalf("daemon's process name = %q, want %q", got, want)
			}
		})
	}
}

// metricLine returns the value of the unlabelled sample name in a
// Prometheus text exposition, or "" if there is none.
func metricLine(exposition, name string) string {
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}
