package main

// traceJoin (SOAK_TRACE_JOIN=1) prints, every 500 ms of a join, what each
// side of the snapshot stream is doing: the joiner's bytes written to
// storage, the CPU each process used, and the bytes queued on the
// loopback connections into the joiner's Raft port, unread by the joiner
// (rx) or unacknowledged on the leader's side (tx). A full rx queue means
// the joiner is the slower stage; an empty one with the leader's CPU
// below a core means the leader or the transport is.

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skiffdb/skiff/test/benchkit"
)

func traceJoin(leader, joiner *node, stop <-chan struct{}) {
	_, portText, err := net.SplitHostPort(joiner.raft)
	if err != nil {
		fmt.Println("trace:", err)
		return
	}
	port, _ := strconv.Atoi(portText)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	lastW, lastLC, lastJC := joiner.diskIO().write, cpuTime(leader), cpuTime(joiner)
	lastBusy, lastAll := machineTicks()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		w, lc, jc := joiner.diskIO().write, cpuTime(leader), cpuTime(joiner)
		rx, tx := loopbackQueues(port)
		busy, all := machineTicks()
		// CPU time per 500 ms × 200 = percent of a core.
		fmt.Printf("trace %5.1fs joiner wrote %4d MB/s  cpu leader %3d%% joiner %3d%% machine %3d%% busy  joiner threads in D %d  queued rx %5d KB tx %5d KB\n",
			time.Since(began).Seconds(), (w-lastW)*2>>20, 200*(lc-lastLC)/time.Second, 200*(jc-lastJC)/time.Second,
			100*(busy-lastBusy)/max(1, all-lastAll), threadsInD(joiner), rx>>10, tx>>10)
		lastW, lastLC, lastJC, lastBusy, lastAll = w, lc, jc, busy, all
	}
}

// machineTicks is the machine's busy and total CPU time (/proc/stat):
// everything but idle and iowait is busy.
func machineTicks() (busy, all int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		all += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, all
}

// threadsInD counts the process's threads waiting on storage
// (uninterruptible sleep) at this instant.
func threadsInD(n *node) int {
	pid := n.pid()
	if pid == 0 {
		return 0
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	d := 0
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "D" {
			d++
		}
	}
	return d
}

// cpuTime is the process's user plus system time (0: unknown).
func cpuTime(n *node) time.Duration {
	pid := n.pid()
	if pid == 0 {
		return 0
	}
	u, k, err := benchkit.ProcCPU(pid)
	if err != nil {
		return 0
	}
	return u + k
}

// loopbackQueues sums /proc/net/tcp's queues of the connections into
// port: rx on the accepting side, tx on the dialing side.
func loopbackQueues(port int) (rx, tx int64) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lp, rp := hexPort(f[1]), hexPort(f[2])
		txq, rxq, _ := strings.Cut(f[4], ":")
		t, _ := strconv.ParseInt(txq, 16, 64)
		r, _ := strconv.ParseInt(rxq, 16, 64)
		if lp == port {
			rx += r
		}
		if rp == port {
			tx += t
		}
	}
	return rx, tx
}

func hexPort(addr string) int {
	_, p, _ := strings.Cut(addr, ":")
	v, _ := strconv.ParseInt(p, 16, 32)
	return int(v)
}
