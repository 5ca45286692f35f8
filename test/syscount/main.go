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
	type traced struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	ts := make([]*traced, len(nodes))
	for i, n := range nodes {
		t := &traced{}
		events := []string{"context-switches"}
		for _, c := range strings.Split(calls, ",") {
			events = append(events, "syscalls:sys_enter_"+c)
		}
		t.cmd = exec.Command("perf", "stat", "-x", ";", "-e", strings.Join(events, ","), "-p", strconv.Itoa(n.Cmd.Process.Pid))
		t.cmd.Stderr = &t.out
		if err := t.cmd.Start(); err != nil {
			return err
		}
		ts[i] = t
	}
	time.Sleep(time.Second) // perf attaches to every thread
	rounds0 := readRounds(target)
	res, runErr := bench.Run(context.Background(), cfg, nil)
	rounds := readRounds(target) - rounds0
	for _, t := range ts {
		_ = t.cmd.Process.Signal(syscall.SIGINT)
		_ = t.cmd.Wait()
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
