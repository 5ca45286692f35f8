package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/skiffdb/skiff/cmd/skiff/bench"
	"github.com/skiffdb/skiff/cmd/skiff/clientcfg"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: skiff <command> [flags]   (skiff <command> -h for the flags)

commands:
  shell    interactive SQL shell for any rqlite-compatible node
  status   live view of every node's role, lifecycle phase and progress
  bench    load generator: throughput and latency percentiles
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "shell":
		return runShell(args[1:], os.Stdin, stdout, stderr)
	case "status":
		return runStatus(args[1:], os.Stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "skiff: unknown command %q\n%s", args[0], usage)
	return 2
}

func runBench(args []string, stdout, stderr io.Writer) int {
	cfg, opts, err := parseBench(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "skiff bench: %v\n", err)
		return 2
	}
	asJSON := opts.json
	if opts.cpuProfile != "" {
		// The load generator shares the machine with what it measures; its
		// own profile shows what each request costs it.
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "skiff bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "skiff bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var progress io.Writer
	if f, ok := stderr.(*os.File); ok && !asJSON {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			progress = f
		}
	}
	res, err := bench.Run(ctx, cfg, progress)
	if err != nil {
		fmt.Fprintf(stderr, "skiff bench: %v\n", err)
		if errors.Is(err, bench.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, res.Text())
	}
	return 0
}

// benchOpts are the flags that are not the run's configuration.
type benchOpts struct {
	json       bool
	cpuProfile string
}

func parseBench(args []string, stderr io.Writer) (bench.Config, benchOpts, error) {
	var c bench.Config
	var o benchOpts
	fs := flag.NewFlagSet("skiff bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("a", "localhost:4001", "Comma-separated HTTP addresses of the target nodes (spread round-robin)")
	fs.IntVar(&c.Workers, "c", 64, "Workers (closed loop), or most requests in flight (open loop)")
	fs.Float64Var(&c.Rate, "rate", 0, "Open loop: requests per second at constant arrival (0: closed loop)")
	fs.DurationVar(&c.Duration, "d", 0, "Duration (default 10s unless -n)")
	fs.Int64Var(&c.Requests, "n", 0, "Stop after this many requests")
	fs.StringVar(&c.Workload, "w", bench.WorkloadInsert, "Workload: insert, batch, read, mixed, sql")
	fs.IntVar(&c.Batch, "b", 100, "Statements per request of the batch workload")
	fs.BoolVar(&c.Tx, "x", false, "Wrap each request in a transaction")
	fs.BoolVar(&c.Queued, "q", false, "Queued writes")
	fs.StringVar(&c.Level, "level", "weak", "Read consistency level: none, weak, linearizable, strong, auto")
	fs.Float64Var(&c.ReadFraction, "r", 0.9, "Share of reads in the mixed workload")
	fs.IntVar(&c.Preload, "o", 0, "Rows to preload (reads pick among them)")
	fs.BoolVar(&c.NoSetup, "no-setup", false, "Use the table as it is: no CREATE TABLE, no preload (reads still pick among the first -o ids)")
	fs.StringVar(&c.SQLFile, "f", "", "SQL file of the sql workload, one statement per line")
	fs.StringVar(&c.Table, "t", "bench", "Table of the built-in workloads")
	fs.IntVar(&c.ValueSize, "s", 16, "Bytes of each inserted value")
	fs.DurationVar(&c.Timeout, "timeout", 0, "Per-request timeout (default 10s)")
	creds := fs.String("u", "", "HTTP Basic credentials user:password, sent with every request (a target URL's user:pass@ wins)")
	var tc clientcfg.Config
	fs.StringVar(&tc.CACert, "ca-cert", "", "PEM CA certificate to trust for https:// targets (default: the system's roots)")
	fs.BoolVar(&tc.Insecure, "insecure", false, "Do not verify https:// targets' certificates")
	fs.StringVar(&tc.ClientCert, "client-cert", "", "PEM client certificate for mutual TLS (with -client-key)")
	fs.StringVar(&tc.ClientKey, "client-key", "", "PEM client key for mutual TLS (with -client-cert)")
	fs.BoolVar(&o.json, "json", false, "Print the result as one JSON object")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "Write the load generator's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return c, o, err
	}
	if fs.NArg() > 0 {
		return c, o, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *creds != "" {
		var ok bool
		if c.User, c.Password, ok = strings.Cut(*creds, ":"); !ok || c.User == "" {
			return c, o, errors.New("-u wants user:password")
		}
	}
	// TLS only, no proxy: the workers dial the targets themselves.
	var err error
	if c.TLS, err = tc.TLS(); err != nil {
		return c, o, err
	}
	for _, a := range strings.Split(*addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Addrs = append(c.Addrs, a)
		}
	}
	return c, o, nil
}
