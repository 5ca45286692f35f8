// Command benchsec is `make bench-security` (issue 16, "Performance"): the
// cost of Skiff's security features per request, side by side in one run.
//
// It starts 3-node loopback clusters of a built skiffd that differ by one
// setting each: plain HTTP; HTTPS on the API (-http-cert/-http-key, a
// certificate made for the run), driven over keep-alive TLS connections;
// -auth with Basic credentials on every request (over plain HTTP, so that
// the row is the credentials' cost alone); node-to-node TLS on the Raft
// port (-node-cert/-node-key/-node-ca-cert); and a second
// plain cluster, measured like a variant, whose ratios to the first (an
// A/A control) show how far two identical clusters differ in the same
// run, the noise floor the other ratios are read against. Every cluster
// runs the same closed-loop workloads on its leader with the same
// concurrency: point reads at level none and at the default level (weak),
// and single-row inserts (node TLS: inserts only, the traffic it
// encrypts). The variants of a workload run in alternating rounds (A B C,
// C B A, ...) so that they see the same phases of a shared machine.
//
// Clusters rather than one node: HTTPS and -auth cost only the node that
// serves the request, so the leader's own CPU per request is reported
// beside the three nodes' and is the one the TLS target is judged on (it
// is the larger share); node-to-node TLS needs peers.
//
// The cluster, CPU and /proc code is test/benchkit's; cmd/skiff/bench
// drives the load.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/test/benchkit"
	"github.com/skiffdb/skiff/test/testcert"
)

// options are the command line.
type options struct {
	benchkit.Flags
	preload int
	nodeTLS bool
	control bool
	keep    bool
	profile string
}

func main() {
	o := options{Flags: benchkit.DefaultFlags()}
	o.Register(flag.CommandLine)
	flag.IntVar(&o.preload, "o", 10000, "Rows preloaded in each cluster (the point reads pick among them)")
	flag.BoolVar(&o.nodeTLS, "node-tls", true, "Also measure inserts on a cluster with node-to-node TLS (-node-cert, -node-key, -node-ca-cert)")
	flag.BoolVar(&o.control, "control", true, "Also measure a second plain HTTP cluster like any variant (an A/A control): its ratios to plain show this run's noise floor")
	flag.BoolVar(&o.keep, "keep", false, "Keep the data directories, logs and certificate (printed at the end)")
	flag.StringVar(&o.profile, "profile", "", "Directory to write a CPU profile of each variant's leader per workload, first round (go tool pprof -top bin/skiffd dir/read-none-https.prof)")
	flag.Parse()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchsec:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchsec:", err)
		os.Exit(1)
	}
}

// Variant names: the baseline and what each other cluster adds.
const (
	plain   = "plain HTTP"
	control = "plain HTTP again (A/A control)"
	https   = "HTTPS (keep-alive)"
	auth    = "-auth (Basic, plain HTTP)"
	nodeTLS = "node-to-node TLS"
)

// variant is one cluster and how it is reached.
type variant struct {
	name   string
	file   string // in profile file names
	flags  []string
	access benchkit.Access
	c      *benchkit.Cluster
}

// sample is one run of a workload on a variant.
type sample struct {
	res          *bench.Result
	nodes, lead  benchkit.CPUPerRequest // the three nodes', the leader's
	selfPerReqUS float64
}

// workload is one group of rows: the same load on several variants.
type workload struct {
	name     string
	file     string // in profile file names
	cfg      bench.Config
	variants []*variant
	samples  map[*variant][]sample
}

func run(o options) error {
	// Registered first, so that it runs after the clusters have stopped.
	dir, done, err := benchkit.WorkDir("skiff-benchsec-", o.keep, "data, logs and certificate")
	if err != nil {
		return err
	}
	defer done()
	cert, key, err := testcert.Generate(dir, 24*time.Hour)
	if err != nil {
		return err
	}
	pool, err := certPool(cert)
	if err != nil {
		return err
	}
	const user, password = "bench", "bench-password"
	authFile := filepath.Join(dir, "users.json")
	users, _ := json.Marshal([]map[string]any{{"username": user, "password": password, "perms": []string{"all"}}})
	if err := os.WriteFile(authFile, users, 0o600); err != nil {
		return err
	}

	vs := []*variant{
		{name: plain, file: "plain"},
		{name: https, file: "https", flags: []string{"-http-cert", cert, "-http-key", key}, access: benchkit.Access{TLS: &tls.Config{RootCAs: pool}}},
		{name: auth, file: "auth", flags: []string{"-auth", authFile, "-join-as", user}, access: benchkit.Access{User: user, Password: password}},
	}
	if o.control {
		vs = append(vs, &variant{name: control, file: "control"})
	}
	if o.nodeTLS {
		// The certificate is its own CA and names 127.0.0.1, the address
		// peers dial.
		vs = append(vs, &variant{name: nodeTLS, file: "nodetls", flags: []string{"-node-cert", cert, "-node-key", key, "-node-ca-cert", cert}})
	}
	defer func() {
		for _, v := range vs {
			if v.c != nil {
				v.c.Stop()
			}
		}
	}()
	for i, v := range vs {
		v.c, err = benchkit.StartClusterWith(o.Skiffd, filepath.Join(dir, fmt.Sprintf("c%d", i)), v.access, nil, v.flags...)
		if err != nil {
			return fmt.Errorf("%s cluster: %w", v.name, err)
		}
		if err := check(v, pool); err != nil {
			return fmt.Errorf("%s cluster: %w", v.name, err)
		}
		if _, err := bench.Run(context.Background(), config(v, bench.Config{Workload: bench.WorkloadRead,
			Preload: o.preload, Level: "none", Workers: 1, Requests: 1}), nil); err != nil {
			return fmt.Errorf("%s cluster: preload: %w", v.name, err)
		}
	}
	tlsInfo, err := negotiated(vs[1]) // https
	if err != nil {
		return err
	}
	fmt.Printf("security benchmark: 3-node loopback clusters side by side, closed loop on each leader, %d workers, %s per run, median of %d run(s) in alternating rounds\n",
		o.Workers, o.D, o.Runs)
	fmt.Printf("HTTPS: %s, HTTP/1.1, one keep-alive connection per worker (handshakes before the clock starts)\n\n", tlsInfo)

	read := func(level string) bench.Config {
		return bench.Config{Workload: bench.WorkloadRead, Level: level, Preload: o.preload, NoSetup: true}
	}
	var api []*variant // every variant but node TLS, which only inserts measure
	for _, v := range vs {
		if v.name != nodeTLS {
			api = append(api, v)
		}
	}
	ws := []*workload{
		{name: "point read, level=none", file: "read-none", cfg: read("none"), variants: api},
		{name: "point read, level=weak (the default)", file: "read-weak", cfg: read("weak"), variants: api},
		{name: "insert, one row per request", file: "insert", cfg: bench.Config{Workload: bench.WorkloadInsert, NoSetup: true}, variants: vs},
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	for _, w := range ws {
		w.cfg.Workers, w.cfg.Duration = o.Workers, o.D
		w.samples = map[*variant][]sample{}
		for i := range o.Runs {
			order := slices.Clone(w.variants)
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, v := range order {
				prof := ""
				if o.profile != "" && i == 0 {
					prof = filepath.Join(o.profile, w.file+"-"+v.file+".prof")
				}
				s, err := measure(v, config(v, w.cfg), prof)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", w.name, v.name, err)
				}
				w.samples[v] = append(w.samples[v], s)
			}
		}
	}
	report(ws, vs[0])
	fmt.Printf("\ncommand: %s\n", command())
	return nil
}

// config is cfg aimed at v's leader, with v's TLS and credentials.
func config(v *variant, cfg bench.Config) bench.Config {
	cfg.Addrs = []string{v.c.Leader.Base()}
	cfg.TLS, cfg.User, cfg.Password = v.access.TLS, v.access.User, v.access.Password
	return cfg
}

// check makes sure a cluster is what its name says before it is measured:
// HTTPS refuses plain HTTP, -auth refuses a request without credentials,
// node-to-node TLS completes a TLS handshake on the Raft port.
func check(v *variant, pool *x509.CertPool) error {
	l := v.c.Leader
	switch v.name {
	case nodeTLS:
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Raft, &tls.Config{RootCAs: pool})
		if err != nil {
			return fmt.Errorf("no TLS on the Raft port: %w", err)
		}
		_ = c.Close()
	case https:
		status, _, err := benchkit.ReadAll(http.Get("http://" + l.HTTP + "/readyz"))
		if err == nil && status != http.StatusBadRequest {
			return fmt.Errorf("plain HTTP to the HTTPS API answered %d", status)
		}
	case auth:
		status, _, err := benchkit.ReadAll(http.Get(l.Base() + "/db/query?q=SELECT+1"))
		if err != nil {
			return err
		}
		if status != http.StatusUnauthorized {
			return fmt.Errorf("a query without credentials answered %d, want 401", status)
		}
	}
	return nil
}

// negotiated names the TLS version and cipher suite the load generator's
// connections get from v's leader.
func negotiated(v *variant) (string, error) {
	c, err := tls.Dial("tcp", v.c.Leader.HTTP, v.access.TLS)
	if err != nil {
		return "", fmt.Errorf("TLS probe: %w", err)
	}
	defer c.Close()
	st := c.ConnectionState()
	return tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite), nil
}

func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return p, nil
}

// measure runs cfg on v, sampling the nodes' CPU (and the leader's alone)
// around it, and writes the leader's CPU profile to prof unless it is "".
func measure(v *variant, cfg bench.Config, prof string) (sample, error) {
	leader := []*benchkit.Node{v.c.Leader}
	var profiled chan error
	if prof != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- benchkit.ProfileNode(v.c.Leader, cfg.Duration, prof) }()
	}
	nb, lb := benchkit.CPUNow(v.c.Nodes), benchkit.CPUNow(leader)
	res, err := bench.Run(context.Background(), cfg, nil)
	na, la := benchkit.CPUNow(v.c.Nodes), benchkit.CPUNow(leader)
	if profiled != nil {
		if perr := <-profiled; perr != nil {
			fmt.Fprintf(os.Stderr, "benchsec: %s: profile: %v\n", prof, perr)
		}
	}
	if err != nil {
		return sample{}, err
	}
	if n := res.Errors["http_401"] + res.Errors["http_403"]; n > 0 {
		return sample{}, fmt.Errorf("%d requests refused (credentials): the variant is misconfigured", n)
	}
	nodes := na.Sub(nb)
	return sample{res: res, nodes: nodes.Per(res.Requests), lead: la.Sub(lb).Per(res.Requests),
		selfPerReqUS: us(nodes.Self) / float64(max(1, res.Requests))}, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median is the middle of xs (the upper middle for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// figures are the medians of a variant's runs of a workload, each taken
// on its own.
type figures struct {
	rps, p50, p99           float64
	errs                    int64
	nodesUS, leadUS, selfUS float64
	cpuOK                   bool
	rates                   []string
}

func summarize(ss []sample) figures {
	var rps, p50, p99, nodes, lead, self []float64
	f := figures{cpuOK: true}
	for _, s := range ss {
		rps = append(rps, s.res.RequestsPerS)
		p50 = append(p50, s.res.Latency.P50)
		p99 = append(p99, s.res.Latency.P99)
		nodes = append(nodes, us(s.nodes.Nodes))
		lead = append(lead, us(s.lead.Nodes))
		self = append(self, s.selfPerReqUS)
		f.cpuOK = f.cpuOK && s.nodes.OK && s.lead.OK
		for _, n := range s.res.Errors {
			f.errs += n
		}
		f.rates = append(f.rates, fmt.Sprintf("%.0f", s.res.RequestsPerS))
	}
	f.rps, f.p50, f.p99 = median(rps), median(p50), median(p99)
	f.nodesUS, f.leadUS, f.selfUS = median(nodes), median(lead), median(self)
	return f
}

// paired is the median over rounds of f(a run of the variant) / f(the
// baseline's run in the same round): pairs within a round cancel the
// drift between rounds that a ratio of medians keeps.
func paired(vs, bs []sample, f func(sample) float64) float64 {
	var rs []float64
	for i := range min(len(vs), len(bs)) {
		if b := f(bs[i]); b > 0 {
			rs = append(rs, f(vs[i])/b)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

func reqPerS(s sample) float64   { return s.res.RequestsPerS }
func nodesCPU(s sample) float64  { return us(s.nodes.Nodes) }
func leaderCPU(s sample) float64 { return us(s.lead.Nodes) }

// share is the part of a variant's CPU per request that it adds over the
// baseline, (cpu - base) / cpu, from their ratio cpu / base.
func share(ratio float64) float64 {
	if ratio <= 0 {
		return 0
	}
	return 1 - 1/ratio
}

func report(ws []*workload, base *variant) {
	fmt.Printf("%-40s %9s %8s %8s %7s %25s %9s %9s %17s\n", "", "req/s", "p50 ms", "p99 ms", "errors",
		"cpu µs/req nodes (leader)", "req/s", "cpu/req", "added cpu share")
	fmt.Printf("%-40s %9s %8s %8s %7s %25s %9s %9s %17s\n", "", "", "", "", "", "+ load generator", "vs plain", "vs plain", "leader (nodes)")
	type verdictRow struct {
		workload string
		share    float64
	}
	var tlsShares []verdictRow
	var nodeTLSLine string
	var runs []string
	for _, w := range ws {
		fmt.Println(w.name)
		b := summarize(w.samples[base])
		bs := w.samples[base]
		for _, v := range w.variants {
			vs := w.samples[v]
			f := summarize(vs)
			cpu := "-"
			if f.cpuOK {
				cpu = fmt.Sprintf("%.0f (%.0f) + %.0f", f.nodesUS, f.leadUS, f.selfUS)
			}
			ratio, cpuRatio, added := "", "", ""
			if v != base {
				rps := paired(vs, bs, reqPerS)
				ratio = fmt.Sprintf("%.3f", rps)
				if f.cpuOK && b.cpuOK {
					lead, nodes := paired(vs, bs, leaderCPU), paired(vs, bs, nodesCPU)
					// Node TLS works on every node: its ratio is the three
					// nodes'; the API's features cost the leader.
					if v.name == nodeTLS {
						cpuRatio = fmt.Sprintf("%.3f", nodes)
					} else {
						cpuRatio = fmt.Sprintf("%.3f", lead)
					}
					added = fmt.Sprintf("%.1f%% (%.1f%%)", 100*share(lead), 100*share(nodes))
					switch v.name {
					case https:
						tlsShares = append(tlsShares, verdictRow{w.name, share(lead)})
					case nodeTLS:
						nodeTLSLine = fmt.Sprintf("node-to-node TLS / without, %s: req/s %.3f, CPU of the three nodes per request %.3f (%.1f%% of it added by TLS)",
							w.name, rps, nodes, 100*share(nodes))
					}
				}
			}
			fmt.Printf("  %-38s %9.0f %8.2f %8.2f %7d %25s %9s %9s %17s\n", v.name, f.rps, f.p50, f.p99, f.errs, cpu, ratio, cpuRatio, added)
			runs = append(runs, fmt.Sprintf("%s / %s: %s", w.name, v.name, strings.Join(f.rates, ", ")))
		}
	}
	fmt.Printf("\nruns (req/s, round by round):\n  %s\n", strings.Join(runs, "\n  "))
	fmt.Printf("\ncpu µs/req: CPU time per request of the three nodes together, (of the leader alone, which serves every\n" +
		"request), + of the load generator (this process), from /proc/<pid>/stat and getrusage over each run.\n" +
		"cpu/req vs plain: the leader's (node-to-node TLS: the three nodes'). added cpu share: (cpu - cpu plain) / cpu.\n" +
		"Each ratio and share is the median over rounds of the variant's run against plain HTTP's run in the same\n" +
		"round (pairs cancel the drift between rounds); the other columns are the medians of the runs.\n")
	if slices.ContainsFunc(ws[0].variants, func(v *variant) bool { return v.name == control }) {
		fmt.Printf("A/A control: a second cluster identical to plain HTTP; its distance from 1.000 is this run's noise.\n")
	}
	if len(tlsShares) > 0 {
		fmt.Printf("TLS cost per request as a share of the leader's CPU (target < 15%%):")
		for i, r := range tlsShares {
			sep := ";"
			if i == 0 {
				sep = ""
			}
			fmt.Printf("%s %s %.1f%% (%s)", sep, r.workload, 100*r.share, verdict(r.share < 0.15))
		}
		fmt.Println()
	}
	if nodeTLSLine != "" {
		fmt.Println(nodeTLSLine)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// command is this run's command line, to repeat it.
func command() string {
	return "go run ./test/benchsec " + strings.Join(os.Args[1:], " ")
}
