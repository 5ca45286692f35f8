// Command syscount counts the system calls and context switches each node
// of a 3-node loopback cluster makes per request under one `skiff bench`
// workload, with `perf stat` (syscall tracepoints, which cost little)
// attached to every node for the whole run: fsyncs and wake-ups per write,
// per node.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
)

func main() {
	skiffd := flag.String("skiffd", "bin/skiffd", "skiffd binary")
	d := flag.Duration("d", 5*time.Second, "Duration of the workload")
	workers := flag.Int("c", 64, "Workers")
	workload := flag.String("workload", bench.WorkloadInsert, "skiff bench workload (insert, read)")
	level := flag.String("level", "none", "Read consistency level")
	follower := flag.Bool("follower", false, "Send the requests to a follower")
	calls := flag.String("e", "fsync,fdatasync,futex,epoll_pwait,write,read,pwrite64,nanosleep", "System calls to count")
	flag.Parse()
	if err := run(*skiffd, *d, *workers, *workload, *level, *follower, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "syscount:", err)
		os.Exit(1)
	}
}

func run(skiffd string, d time.Duration, workers int, workload, level string, toFollower bool, calls string) error {
	dir, err := os.MkdirTemp("", "skiff-syscount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := benchkit.StartCluster(skiffd, dir)
	defer c.Stop()
	if err != nil {
		return err
	}
	target := c.Leader
	if toFollower {
		target = c.Follower()
	}
	cfg := bench.Config{Addrs: []string{target.HTTP}, Workload: workload, Workers: workers, Duration: d, Level: level}
	if workload == bench.WorkloadRead {
		// Rows to read, made before counting starts.
		pre := cfg
		pre.Duration, pre.Preload = time.Second, 10000
		if _, err := bench.Run(context.Background(), pre, nil); err != nil {
			return err
		}
		cfg.NoSetup, cfg.Preload = true, 10000
	}
	nodes := []*benchkit.Node{c.Leader, c.Follower()}
	for _, n := range c.Nodes {
		if n != nodes[0] && n != nodes[1] {
			nodes = append(nodes, n)
		}
	}
	ts := make([]*tracer, 0, len(nodes))
	// Every perf started is stopped and waited for, on errors too.
	defer func() {
		for _, t := range ts {
			t.stop()
		}
	}()
	for _, n := range nodes {
		t, err := startTracer(n.Cmd.Process.Pid, calls)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	rounds0 := readRounds(target)
	// perf counts only between enable and disable, so neither perf's
	// start nor the /metrics reads are in the per-request figures.
	for _, t := range ts {
		if err := t.command("enable"); err != nil {
			return err
		}
	}
	res, runErr := bench.Run(context.Background(), cfg, nil)
	for _, t := range ts {
		if err := t.command("disable"); err != nil {
			return err
		}
	}
	rounds := readRounds(target) - rounds0
	for _, t := range ts {
		t.stop()
	}
	if runErr != nil {
		return runErr
	}
	fmt.Printf("%s (level %s) on the %s, %d workers, %s: %d requests (%.0f/s)\n", workload, level,
		map[bool]string{false: "leader", true: "follower"}[toFollower], workers, d, res.Requests, res.RequestsPerS)
	if rounds > 0 {
		fmt.Printf("ReadIndex rounds on the %s: %.0f, %.1f reads per round\n", target.ID, rounds, float64(res.Requests)/rounds)
	}
	fmt.Printf("per request (perf stat -p), nodes: leader, follower, other follower\n")
	counts := make([]map[string]int64, len(ts))
	names := map[string]bool{}
	for i, t := range ts {
		counts[i] = parse(t.out.String())
		for k := range counts[i] {
			names[k] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		fmt.Printf("  %-14s", k)
		for i := range counts {
			fmt.Printf(" %8.3f", float64(counts[i][k])/float64(res.Requests))
		}
		fmt.Println()
	}
	return nil
}

// tracer is one `perf stat -p` started with its events disabled and
// driven through --control pipes: each command ("enable", "disable")
// returns once perf has acknowledged it.
type tracer struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	ctl     *os.File
	ack     *bufio.Reader
	ackFile *os.File
	stopped bool
}

func startTracer(pid int, calls string) (*tracer, error) {
	events := []string{"context-switches"}
	for _, c := range strings.Split(calls, ",") {
		events = append(events, "syscalls:sys_enter_"+c)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	t := &tracer{ctl: ctlW, ack: bufio.NewReader(ackR), ackFile: ackR}
	// ExtraFiles are the child's fds 3 (control) and 4 (acknowledgements).
	t.cmd = exec.Command("perf", "stat", "-x", ";", "--delay=-1", "--control", "fd:3,4",
		"-e", strings.Join(events, ","), "-p", strconv.Itoa(pid))
	t.cmd.Stderr = &t.out
	t.cmd.ExtraFiles = []*os.File{ctlR, ackW}
	err = t.cmd.Start()
	ctlR.Close()
	ackW.Close()
	if err != nil {
		ctlW.Close()
		ackR.Close()
		return nil, fmt.Errorf("perf: %w", err)
	}
	return t, nil
}

// command sends perf a control command and waits for its "ack" (perf
// writes it with its terminating NUL, which precedes the next one's text).
func (t *tracer) command(c string) error {
	_, err := fmt.Fprintln(t.ctl, c)
	if err == nil {
		var l string
		if l, err = t.ack.ReadString('\n'); err == nil && strings.Trim(l, "\x00\n") != "ack" {
			err = fmt.Errorf("answered %q", l)
		}
	}
	if err != nil {
		// perf's output is complete (and safe to read) once it has exited.
		t.stop()
		return fmt.Errorf("perf %s: %w (%s)", c, err, strings.TrimSpace(t.out.String()))
	}
	return nil
}

// stop interrupts perf, which then prints its counts, and waits for it.
func (t *tracer) stop() {
	if t.stopped {
		return
	}
	t.stopped = true
	_ = t.cmd.Process.Signal(syscall.SIGINT)
	_ = t.cmd.Wait()
	t.ctl.Close()
	t.ackFile.Close()
}

// readRounds is the node's count of ReadIndex rounds (/metrics), 0 when it
// cannot be read.
func readRounds(n *benchkit.Node) float64 {
	_, body, err := benchkit.ReadAll(n.Get("/metrics"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "skiff_raft_read_index_round_duration_seconds_count "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// parse reads perf stat -x ';' output: count by event, without the
// syscalls:sys_enter_ prefix.
func parse(out string) map[string]int64 {
	m := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ";")
		if len(f) < 3 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[strings.TrimPrefix(f[2], "syscalls:sys_enter_")] = n
		}
	}
	return m
}
