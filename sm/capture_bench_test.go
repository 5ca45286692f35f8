//go:build sqlite_preupdate_hook

package sm

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// countSink only counts what it is given.
type countSink struct{ groups, events int }

func (c *countSink) Capture(gs []ChangeGroup) error {
	c.groups += len(gs)
	for _, g := range gs {
		c.events += len(g.Events)
	}
	return nil
}
func (c *countSink) HighWater(uint64) {}
func (c *countSink) Installed(uint64) {}

// openBench opens a state machine in a temporary directory, capturing
// into sink unless it is nil, and closes it when the benchmark ends; it
// returns the machine and the index of the next entry to apply.
func openBench(b *testing.B, sink ChangeSink) (*StateMachine, uint64) {
	b.Helper()
	cfg := Config{Dir: b.TempDir(), ReadConns: 1}
	if sink != nil {
		cfg.Capture = &CaptureConfig{Sink: sink}
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := s.Open(make(chan struct{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s, idx + 1
}

// BenchmarkCaptureApply applies single-row INSERT entries, and BATCH
// entries of 100 single-row INSERT requests (coalesced writes), one entry
// per Update, without capture and with capture into a sink that only
// counts: the cost capture adds to the apply path, side by side.
func BenchmarkCaptureApply(b *testing.B) {
	for _, shape := range []string{"insert", "batch100"} {
		for _, on := range []bool{false, true} {
			name := shape + "/capture=off"
			if on {
				name = shape + "/capture=on"
			}
			b.Run(name, func(b *testing.B) {
				sink := &countSink{}
				var capture ChangeSink
				if on {
					capture = sink
				}
				s, next := openBench(b, capture)
				apply := func(c []byte) {
					if _, err := s.Update([]dbsm.Entry{{Index: next, Cmd: c}}); err != nil {
						b.Fatal(err)
					}
					next++
				}
				apply(execCmd(req(false, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, data BLOB)")))
				entry, rows := benchEntry(shape)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := processCPU(b)
				for range b.N {
					apply(entry)
				}
				cpu := processCPU(b) - cpu0
				b.StopTimer()
				// The process's CPU time (every thread, GC included) is
				// what capture costs a node, and it is less disturbed than
				// wall time on a shared machine.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*rows), "cpu-ns/row")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
				if on && sink.events != b.N*rows {
					b.Fatalf("captured %d events, want %d", sink.events, b.N*rows)
				}
			})
		}
	}
}

// processCPU is the CPU time this process used so far (user + system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCaptureOverhead is BenchmarkCaptureApply's comparison made
// robust to a loaded machine: two machines, one capturing, are fed the
// same entries alternately from one locked thread, and each side's cost is
// that thread's CPU time (which includes the hook, the cgo calls and GC
// assists, not background GC). Reported: cpu-ns/row of each side and the
// ratio on/off.
func BenchmarkCaptureOverhead(b *testing.B) {
	for _, shape := range []string{"insert", "batch100"} {
		b.Run(shape, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			type side struct {
				s    *StateMachine
				next uint64
				cpu  time.Duration
			}
			var sides [2]*side
			for i := range sides {
				var capture ChangeSink
				if i == 1 {
					capture = &countSink{}
				}
				s, next := openBench(b, capture)
				sides[i] = &side{s: s, next: next}
			}
			apply := func(sd *side, c []byte) time.Duration {
				t0 := threadCPU()
				if _, err := sd.s.Update([]dbsm.Entry{{Index: sd.next, Cmd: c}}); err != nil {
					b.Fatal(err)
				}
				sd.next++
				return threadCPU() - t0
			}
			schema := execCmd(req(false, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, data BLOB)"))
			entry, rows := benchEntry(shape)
			for _, sd := range sides {
				apply(sd, schema)
			}
			b.ResetTimer()
			for i := range b.N {
				// Alternate which side goes first.
				for j := range sides {
					sd := sides[(i+j)%2]
					sd.cpu += apply(sd, entry)
				}
			}
			b.StopTimer()
			off := float64(sides[0].cpu.Nanoseconds()) / float64(b.N*rows)
			on := float64(sides[1].cpu.Nanoseconds()) / float64(b.N*rows)
			b.ReportMetric(off, "off-cpu-ns/row")
			b.ReportMetric(on, "on-cpu-ns/row")
			b.ReportMetric(on/off, "on/off")
		})
	}
}

// benchEntry is the entry of a benchmark shape and the rows it inserts.
func benchEntry(shape string) ([]byte, int) {
	ins := &cmdpb.Request{Statements: []*cmdpb.Statement{{
		Sql: "INSERT INTO t (name, n, data) VALUES (?, ?, ?)",
		Parameters: []*cmdpb.Parameter{
			{Value: &cmdpb.Parameter_S{S: "some name"}},
			{Value: &cmdpb.Parameter_I{I: 123456}},
			{Value: &cmdpb.Parameter_Y{Y: []byte("0123456789abcdef")}},
		},
	}}}
	if shape == "insert" {
		return execCmd(ins), 1
	}
	reqs := make([]*cmdpb.Request, 100)
	for i := range reqs {
		reqs[i] = ins
	}
	return batchCmd("", reqs...), len(reqs)
}

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	_, _, _ = syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
