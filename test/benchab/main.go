// Command benchab compares two skiffd binaries, or one binary under two
// environments (-a-env, -b-env) or flag sets (-a-flags, -b-flags), under
// one `skiff bench` workload on a
// machine too noisy for separate runs: it starts a 3-node
// loopback cluster of each at once and drives them in short alternating
// slices (A, B, B, A, A, B, ...), so that both see the same phases of the
// machine, then reports each one's req/s and nodes' CPU per request over
// all its slices, and the median of the per-pair ratios B/A.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
)

func main() {
	a := flag.String("a", "", "skiffd binary A (the predecessor)")
	b := flag.String("b", "", "skiffd binary B (the change)")
	aEnv := flag.String("a-env", "", "Comma-separated KEY=VALUE settings added to A's environment")
	bEnv := flag.String("b-env", "", "Comma-separated KEY=VALUE settings added to B's environment")
	aFlags := flag.String("a-flags", "", "Space-separated skiffd flags added to A's command line")
	bFlags := flag.String("b-flags", "", "Space-separated skiffd flags added to B's command line")
	slice := flag.Duration("slice", 2*time.Second, "Duration of one slice")
	pairs := flag.Int("pairs", 10, "Slices of each binary")
	workers := flag.Int("c", 64, "Workers")
	workload := flag.String("workload", bench.WorkloadRead, "skiff bench workload (insert, read)")
	level := flag.String("level", "none", "Read consistency level")
	follower := flag.Bool("follower", false, "Send the requests to a follower")
	queued := flag.Bool("queued", false, "Send writes as queued writes (?queue)")
	rate := flag.Float64("rate", 0, "Open loop: requests per second, sent on schedule by up to -c workers (0: closed loop)")
	flag.Parse()
	if *a == "" || *b == "" {
		fmt.Fprintln(os.Stderr, "benchab: -a and -b are required")
		os.Exit(2)
	}
	if err := validate(*slice, *pairs, *workers, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "benchab:", err)
		os.Exit(2)
	}
	envs := [2][]string{splitEnv(*aEnv), splitEnv(*bEnv)}
	flags := [2][]string{strings.Fields(*aFlags), strings.Fields(*bFlags)}
	if err := run([2]string{*a, *b}, envs, flags, *slice, *pairs, *workers, *rate, *queued, *workload, *level, *follower); err != nil {
		fmt.Fprintln(os.Stderr, "benchab:", err)
		os.Exit(1)
	}
}

// splitEnv splits -a-env's or -b-env's value into KEY=VALUE settings.
func splitEnv(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// validate rejects numeric flags the run cannot use: the report takes the
// median, minimum and maximum over the pairs, so it needs at least one.
func validate(slice time.Duration, pairs, workers int, rate float64) error {
	switch {
	case pairs < 1:
		return fmt.Errorf("-pairs %d: must be at least 1", pairs)
	case slice <= 0:
		return fmt.Errorf("-slice %s: must be positive", slice)
	case workers < 1:
		return fmt.Errorf("-c %d: must be at least 1", workers)
	case rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0):
		return fmt.Errorf("-rate %v: must be 0 (closed loop) or a positive rate", rate)
	}
	return nil
}

type side struct {
	name     string
	dir      string
	cluster  *benchkit.Cluster
	cfg      bench.Config
	requests int64
	elapsed  time.Duration
	cpu      benchkit.CPUSample // over the slices whose CPU could be read
	// cpuRequests are the requests of the slices counted in cpu.
	cpuRequests int64
	rates       []float64 // req/s per slice
	cpus        []float64 // nodes' µs per request per slice
	p50s, p99s  []float64 // ms per slice
}

func run(bins [2]string, envs, flags [2][]string, slice time.Duration, pairs, workers int, rate float64, queued bool, workload, level string, toFollower bool) error {
	ctx := context.Background()
	var sides [2]*side
	// Each cluster's nodes exit before its data directory goes.
	defer func() {
		for _, s := range sides {
			if s == nil {
				continue
			}
			if s.cluster != nil {
				s.cluster.Stop()
			}
			os.RemoveAll(s.dir)
		}
	}()
	for i, bin := range bins {
		dir, err := os.MkdirTemp("", "skiff-benchab-")
		if err != nil {
			return err
		}
		sides[i] = &side{name: string(rune('A' + i)), dir: dir}
		c, err := benchkit.StartClusterWith(bin, dir, benchkit.Access{}, envs[i], flags[i]...)
		sides[i].cluster = c
		if err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
		target := c.Leader
		if toFollower {
			target = c.Follower()
		}
		cfg := bench.Config{Addrs: []string{target.HTTP}, Workload: workload, Workers: workers, Level: level, Queued: queued}
		if workload == bench.WorkloadRead {
			cfg.Preload = 10000
		}
		// Setup (table, rows) and warm-up, not counted.
		warm := cfg
		warm.Duration = slice
		if _, err := bench.Run(ctx, warm, nil); err != nil {
			return fmt.Errorf("%s: warm-up: %w", bin, err)
		}
		cfg.NoSetup, cfg.Duration, cfg.Rate = true, slice, rate
		sides[i].cfg = cfg
	}
	for p := range pairs {
		order := []int{0, 1}
		if p%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			s := sides[i]
			before := benchkit.CPUNow(s.cluster.Nodes)
			res, err := bench.Run(ctx, s.cfg, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			d := benchkit.CPUNow(s.cluster.Nodes).Sub(before)
			s.requests += res.Requests
			s.elapsed += time.Duration(res.ElapsedS * float64(time.Second))
			s.rates = append(s.rates, res.RequestsPerS)
			s.p50s = append(s.p50s, res.Latency.P50)
			s.p99s = append(s.p99s, res.Latency.P99)
			// A slice whose /proc reads failed has no CPU figure: NaN, so
			// that it is not counted as 0 µs.
			if d.OK && res.Requests > 0 {
				s.cpu.Nodes += d.Nodes
				s.cpuRequests += res.Requests
				s.cpus = append(s.cpus, float64(d.Nodes.Microseconds())/float64(res.Requests))
			} else {
				s.cpus = append(s.cpus, math.NaN())
			}
		}
	}
	where := "leader"
	if toFollower {
		where = "follower"
	}
	loop := fmt.Sprintf("%d workers", workers)
	if rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f req/s (up to %d workers)", rate, workers)
	}
	fmt.Printf("%s (level %s) on the %s, %s, %d slices of %s each, alternating\n", workload, level, where, loop, pairs, slice)
	for i, s := range sides {
		cpu := "n/a"
		if s.cpuRequests > 0 {
			cpu = fmt.Sprintf("%.1f", float64(s.cpu.Nodes.Microseconds())/float64(s.cpuRequests))
		}
		fmt.Printf("%s %-40s req/s %8.0f   nodes' CPU µs/req %6s\n", s.name, strings.Join(append(append([]string{bins[i]}, envs[i]...), flags[i]...), " "),
			float64(s.requests)/s.elapsed.Seconds(), cpu)
		fmt.Printf("  ms per slice, median [min max]: p50 %s, p99 %s\n", spread(s.p50s), spread(s.p99s))
	}
	rates := make([]float64, pairs)
	var cpu []float64 // only the pairs with both sides' CPU known
	for p := range pairs {
		rates[p] = sides[1].rates[p] / sides[0].rates[p]
		if a, b := sides[0].cpus[p], sides[1].cpus[p]; !math.IsNaN(a) && !math.IsNaN(b) && a > 0 {
			cpu = append(cpu, b/a)
		}
	}
	fmt.Printf("B/A per pair of slices, median [min max]: req/s %s, CPU/req %s\n", spread(rates), spread(cpu))
	return nil
}

// spread is "median [min max]" of v, "n/a" when v is empty.
func spread(v []float64) string {
	if len(v) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f [%.3f %.3f]", median(v), minOf(v), maxOf(v))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
