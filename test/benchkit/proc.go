package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcCPU reads a process's user and system time from /proc/<pid>/stat
// (fields 14 and 15, in clock ticks: USER_HZ, 100 on Linux).
func ProcCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	const userHZ = 100
	var ticks [2]int64
	for j, v := range f[11:13] {
		if ticks[j], err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return time.Duration(ticks[0]) * time.Second / userHZ, time.Duration(ticks[1]) * time.Second / userHZ, nil
}

// ProcRSS is a process's resident set in bytes from /proc/<pid>/status
// (VmRSS), 0 when it cannot be read.
func ProcRSS(pid int) int64 { return ProcStatusBytes(pid, "VmRSS") }

// ProcPeakRSS is a process's peak resident set in bytes (VmHWM), 0 when it
// cannot be read.
func ProcPeakRSS(pid int) int64 { return ProcStatusBytes(pid, "VmHWM") }

// ProcStatusBytes reads one "<field>: <n> kB" line of /proc/<pid>/status
// as bytes, 0 when it cannot be read.
func ProcStatusBytes(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// CPUSample is the CPU time (user and system) used so far by some nodes
// together and by this process, the load generator; NodesSys is the
// nodes' system (kernel) part of it.
type CPUSample struct {
	Nodes, NodesSys, Self time.Duration
	// PerNode is each node's CPU time (user and system), in the order
	// the nodes were given.
	PerNode []time.Duration
	OK      bool // the nodes' figure could be read (/proc: Linux)
}

// CPUNow samples the nodes' CPU time and this process's.
func CPUNow(nodes []*Node) CPUSample {
	s := CPUSample{OK: true, PerNode: make([]time.Duration, len(nodes))}
	for i, n := range nodes {
		user, sys, err := ProcCPU(n.Cmd.Process.Pid)
		if err != nil {
			s.OK = false
			continue
		}
		s.Nodes += user + sys
		s.NodesSys += sys
		s.PerNode[i] = user + sys
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.Self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// Sub is the CPU time used between b and a.
func (a CPUSample) Sub(b CPUSample) CPUSample {
	d := CPUSample{Nodes: a.Nodes - b.Nodes, NodesSys: a.NodesSys - b.NodesSys, Self: a.Self - b.Self, OK: a.OK && b.OK}
	if len(a.PerNode) == len(b.PerNode) {
		d.PerNode = make([]time.Duration, len(a.PerNode))
		for i := range a.PerNode {
			d.PerNode[i] = a.PerNode[i] - b.PerNode[i]
		}
	}
	return d
}

// Per divides a run's CPU time by its requests.
func (a CPUSample) Per(requests int64) CPUPerRequest {
	if requests <= 0 || a.Nodes <= 0 {
		return CPUPerRequest{}
	}
	n := time.Duration(requests)
	c := CPUPerRequest{Nodes: a.Nodes / n, Self: a.Self / n, Kernel: float64(a.NodesSys) / float64(a.Nodes), OK: a.OK}
	for _, v := range a.PerNode {
		c.PerNode = append(c.PerNode, v/n)
	}
	return c
}

// CPUPerRequest is a run's CPU time per request, split as CPUSample.
type CPUPerRequest struct {
	Nodes, Self time.Duration
	PerNode     []time.Duration
	Kernel      float64 // share of the nodes' CPU spent in the kernel
	OK          bool
}

// PerNodeString is each node's µs per request: "120/55/51"; "-" when it
// could not be read.
func (c CPUPerRequest) PerNodeString() string {
	if !c.OK || len(c.PerNode) == 0 {
		return "-"
	}
	parts := make([]string, len(c.PerNode))
	for i, v := range c.PerNode {
		parts[i] = fmt.Sprintf("%.0f", us(v))
	}
	return strings.Join(parts, "/")
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// String is the nodes' µs per request and the kernel share: "812 (31%)";
// "-" when it could not be read.
func (c CPUPerRequest) String() string {
	if !c.OK {
		return "-"
	}
	return fmt.Sprintf("%.0f (%2.0f%%)", us(c.Nodes), 100*c.Kernel)
}

// WithSelf is String with the load generator's µs per request after the
// nodes': "812 + 95 (31%)".
func (c CPUPerRequest) WithSelf() string {
	if !c.OK {
		return "-"
	}
	return fmt.Sprintf("%.0f + %.0f (%2.0f%%)", us(c.Nodes), us(c.Self), 100*c.Kernel)
}
