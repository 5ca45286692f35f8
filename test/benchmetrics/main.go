// Command benchmetrics is `make bench-metrics` (issue 19, "Cost"): point
// reads and inserts with Prometheus metrics on, side by side with
// -metrics=false, in one run.
//
// It starts 3-node loopback clusters of a built skiffd that differ by the
// one flag: "on" (the default: /metrics, the HTTP, proposal, ReadIndex and
// apply instruments) and "off" (-metrics=false); and, unless -control=false,
// a second "on" cluster measured like a variant, whose ratio to the first
// (an A/A control) is this run's noise floor. Each cluster runs the same
// closed-loop workloads on its leader: point reads at level none and weak,
// and single-row inserts. The variants of a workload run in alternating
// rounds (on off on2, on2 off on, ...) so that they see the same phases of
// a shared machine; a ratio is the median of the per-round ratios, which
// cancels drift between rounds. The leader's CPU per request is reported
// beside throughput: the instruments cost the node that serves the
// request. The cluster, CPU and /proc code is test/benchkit's;
// cmd/skiff/bench drives the load.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
)

// options are the command line.
type options struct {
	benchkit.Flags
	preload int
	control bool
}

func main() {
	o := options{Flags: benchkit.DefaultFlags()}
	o.Register(flag.CommandLine)
	flag.IntVar(&o.preload, "o", 10000, "Rows preloaded in each cluster (the point reads pick among them)")
	flag.BoolVar(&o.control, "control", true, "Also measure a second metrics-on cluster like any variant (an A/A control): its ratio to \"on\" is this run's noise floor")
	flag.Parse()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchmetrics:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchmetrics:", err)
		os.Exit(1)
	}
}

// variant is one cluster and what it measured.
type variant struct {
	name  string
	flags []string
	c     *benchkit.Cluster
}

// sample is one run of one variant.
type sample struct {
	res *bench.Result
	cpu benchkit.CPUPerRequest // the leader's
}

func run(o options) error {
	// Registered first, so that it runs after the clusters have stopped.
	dir, done, err := benchkit.WorkDir("skiff-benchmetrics-", false, "")
	if err != nil {
		return err
	}
	defer done()
	vs := []*variant{{name: "on"}, {name: "off", flags: []string{"-metrics=false"}}}
	if o.control {
		vs = append(vs, &variant{name: "on (A/A)"})
	}
	defer func() {
		for _, v := range vs {
			if v.c != nil {
				v.c.Stop()
			}
		}
	}()
	for i, v := range vs {
		v.c, err = benchkit.StartCluster(o.Skiffd, filepath.Join(dir, fmt.Sprintf("c%d", i)), v.flags...)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	ctx := context.Background()
	// Preload every cluster (not measured), so the reads find their rows.
	for _, v := range vs {
		cfg := bench.Config{Addrs: []string{v.c.Leader.HTTP}, Workload: bench.WorkloadRead, Workers: o.Workers,
			Preload: o.preload, Level: "none", Duration: 500 * time.Millisecond}
		if _, err := bench.Run(ctx, cfg, nil); err != nil {
			return fmt.Errorf("%s: preload: %w", v.name, err)
		}
	}
	fmt.Printf("3-node loopback clusters: %d workers, %s per run, %d alternating rounds; ratios are medians of per-round ratios to \"off\"\n\n",
		o.Workers, o.D, o.Runs)
	fmt.Printf("%-18s %-10s %10s %8s %8s %14s %10s\n", "workload", "variant", "req/s", "p50 ms", "p99 ms", "leader µs/req", "vs off")
	workloads := []struct {
		name string
		cfg  bench.Config
	}{
		{"point read none", bench.Config{Workload: bench.WorkloadRead, Level: "none", NoSetup: true, Preload: o.preload}},
		{"point read weak", bench.Config{Workload: bench.WorkloadRead, Level: "weak", NoSetup: true, Preload: o.preload}},
		{"insert", bench.Config{Workload: bench.WorkloadInsert}},
	}
	for _, w := range workloads {
		all := make([][]sample, len(vs))
		for r := range o.Runs {
			order := make([]int, len(vs))
			for i := range order {
				order[i] = i
			}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, i := range order {
				v := vs[i]
				cfg := w.cfg
				cfg.Addrs, cfg.Workers, cfg.Duration = []string{v.c.Leader.HTTP}, o.Workers, o.D
				procs := []*benchkit.Node{v.c.Leader}
				before := benchkit.CPUNow(procs)
				res, err := bench.Run(ctx, cfg, nil)
				after := benchkit.CPUNow(procs)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", w.name, v.name, err)
				}
				all[i] = append(all[i], sample{res, after.Sub(before).Per(res.Requests)})
			}
		}
		for i, v := range vs {
			ms := make([]benchkit.Measured, len(all[i]))
			var ratios []float64
			for r, s := range all[i] {
				ms[r] = benchkit.Measured{Res: s.res, CPU: s.cpu}
				if off := all[1][r].res.RequestsPerS; off > 0 {
					ratios = append(ratios, s.res.RequestsPerS/off)
				}
			}
			m := benchkit.Median(ms)
			ratio := "-"
			if i != 1 && len(ratios) > 0 {
				ratio = fmt.Sprintf("%.3f", median(ratios))
			}
			errs := ""
			if n := totalErrors(m.Res); n > 0 {
				errs = fmt.Sprintf("  (%d errors)", n)
			}
			fmt.Printf("%-18s %-10s %10.0f %8.2f %8.2f %14s %10s%s\n", w.name, v.name, m.Res.RequestsPerS,
				m.Res.Latency.P50, m.Res.Latency.P99, m.CPU.String(), ratio, errs)
		}
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func totalErrors(r *bench.Result) int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}
