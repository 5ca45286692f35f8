// Command failover is `make failover`'s driver (issue 14, item 6): the
// failover nemesis of package nemesis on a 3-node loopback cluster of a
// built skiffd, with its figures printed and the command to reproduce
// them. It exits 1 if an acknowledged write was lost, a linearizable read
// was stale or the replicas differ; the times are figures, not checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skiffdb/skiff/test/failover/nemesis"
)

func main() {
	var cfg nemesis.Config
	flag.StringVar(&cfg.Skiffd, "skiffd", "bin/skiffd", "skiffd binary")
	flag.StringVar(&cfg.Dir, "dir", "", "Working directory (default: a new temporary directory, removed after a clean run)")
	flag.IntVar(&cfg.Kills, "kills", 20, "How many times the leader is SIGKILLed and restarted")
	flag.DurationVar(&cfg.Every, "every", 0, "Kill at this fixed interval (default: random intervals between -min and -max)")
	flag.DurationVar(&cfg.MinInterval, "min", 3*time.Second, "Shortest random interval between kills")
	flag.DurationVar(&cfg.MaxInterval, "max", 6*time.Second, "Longest random interval between kills")
	flag.IntVar(&cfg.Clients, "clients", 8, "Concurrent clients, one request at a time each")
	flag.DurationVar(&cfg.ClientTimeout, "timeout", 5*time.Second, "Each client request's timeout")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "Seed of the intervals and the clients' choices (0: random)")
	flag.Parse()
	cfg.Log = os.Stdout
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := nemesis.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
	res.Print(os.Stdout)
	if err := res.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}
