// Command httpfloor measures what the HTTP server alone costs per request
// on this machine, net/http against valyala/fasthttp (issue 20: "if a
// faster server gets there, measure it against net/http"). Each server
// runs in its own process and answers every request with a node's
// point-read bytes and headers, doing nothing else; `skiff bench`'s read
// workload drives them in alternating rounds, and the server process's
// CPU per request is read from /proc.
//
//	go run ./test/httpfloor [-rounds 3] [-d 4s] [-c 64]
//
// A third process serves the net/http floor's handler through
// fasthttpadaptor: fasthttp with Skiff's handlers unchanged. The
// differences between the floors bound what moving Skiff's data routes to
// another server could gain, against a node's CPU per point read in
// `make bench-cluster`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
)

// body is a node's answer to a point read of `skiff bench`'s table.
const body = `{"results":[{"columns":["id","v"],"types":["integer","text"],"values":[[1,"xxxxxxxxxxxxxxxx"]]}]}`

func main() {
	serve := flag.String("serve", "", "Internal: serve this server kind (nethttp or fasthttp) on -addr")
	addr := flag.String("addr", "", "Internal: the address to serve on")
	rounds := flag.Int("rounds", 3, "Rounds; each drives both servers in turn")
	d := flag.Duration("d", 4*time.Second, "Duration of each server's run in a round")
	workers := flag.Int("c", 64, "Workers (keep-alive connections)")
	flag.Parse()
	if *serve != "" {
		if err := benchkit.ServeFloor(*serve, *addr, []byte(body)); err != nil {
			fmt.Fprintln(os.Stderr, "httpfloor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*rounds, *d, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "httpfloor:", err)
		os.Exit(1)
	}
}

func start(kind string) (*benchkit.Node, error) {
	return benchkit.StartSelf(kind, func(addr string) []string { return []string{"-serve", kind, "-addr", addr} })
}

func run(rounds int, d time.Duration, workers int) error {
	kinds := []string{benchkit.FloorNetHTTP, benchkit.FloorFastHTTP, benchkit.FloorAdaptor}
	var nodes []*benchkit.Node
	defer func() { benchkit.Stop(nodes...) }()
	for _, k := range kinds {
		n, err := start(k)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	fmt.Printf("%-6s %-9s %10s %8s %8s %22s\n", "round", "server", "req/s", "p99 ms", "cpu µs", "bench's own cpu µs/req")
	sums := make([]float64, len(kinds))
	for r := 1; r <= rounds; r++ {
		for i, n := range nodes {
			cfg := bench.Config{Addrs: []string{n.HTTP}, Workers: workers, Duration: d,
				Workload: bench.WorkloadRead, Level: "none", Preload: 10000, NoSetup: true}
			before := benchkit.CPUNow([]*benchkit.Node{n})
			res, err := bench.Run(context.Background(), cfg, nil)
			after := benchkit.CPUNow([]*benchkit.Node{n})
			if err != nil {
				return fmt.Errorf("%s: %w", n.ID, err)
			}
			cpu := after.Sub(before).Per(res.Requests)
			us := float64(cpu.Nodes) / float64(time.Microsecond)
			sums[i] += us
			fmt.Printf("%-6d %-9s %10.0f %8.1f %8.1f %22.1f\n", r, n.ID, res.RequestsPerS, res.Latency.P99, us,
				float64(cpu.Self)/float64(time.Microsecond))
		}
	}
	fmt.Printf("mean server CPU per request: net/http %.1f µs, fasthttp %.1f µs (÷ net/http %.2f), fasthttp through fasthttpadaptor %.1f µs (÷ net/http %.2f)\n",
		sums[0]/float64(rounds), sums[1]/float64(rounds), sums[1]/sums[0], sums[2]/float64(rounds), sums[2]/sums[0])
	return nil
}
