package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/skiffdb/skiff/cmd/skiff/nodeview"
	"github.com/skiffdb/skiff/cmd/skiff/shell"
)

// splitAddrs splits a comma-separated address list.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// parseShell takes rqlite's CLI flags (API.md 4.2); RQLITE_HOST sets the
// defaults, the flags override it.
func parseShell(args []string, stderr io.Writer) (shell.Config, error) {
	c := shell.DefaultConfig()
	fs := flag.NewFlagSet("skiff shell", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Host, "H", c.Host, "Node host address (env RQLITE_HOST: [scheme://]host[:port])")
	fs.IntVar(&c.Port, "p", c.Port, "Node HTTP port")
	fs.StringVar(&c.Scheme, "s", c.Scheme, "Protocol scheme (http or https)")
	fs.StringVar(&c.Prefix, "P", c.Prefix, "HTTP URL prefix")
	fs.StringVar(&c.Credentials, "u", "", "Basic auth credentials in the form username:password")
	fs.BoolVar(&c.Insecure, "i", false, "Do not verify the node's HTTPS certificate")
	fs.StringVar(&c.CACert, "c", "", "Path to trusted X.509 root CA certificate")
	fs.StringVar(&c.ClientCert, "d", "", "Path to client X.509 certificate for mutual TLS")
	fs.StringVar(&c.ClientKey, "k", "", "Path to client X.509 key for mutual TLS")
	alts := fs.String("a", "", "Comma-separated host:port pairs to use as fallback")
	fs.DurationVar(&c.Timeout, "t", c.Timeout, "Timeout of each HTTP request")
	fs.StringVar(&c.HistoryFile, "history", c.HistoryFile, "History file (empty: no history)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	c.Alternatives = splitAddrs(*alts)
	return c, c.Validate()
}

func runShell(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	cfg, err := parseShell(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "skiff shell: %v\n", err)
		return 2
	}
	// SIGINT is the shell's own (it cancels a running request); SIGTERM
	// ends the session.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := shell.Run(ctx, cfg, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "ERR! %v\n", err)
		return 1
	}
	return 0
}

func parseStatus(args []string, stderr io.Writer) (nodeview.Config, bool, error) {
	c := nodeview.DefaultConfig()
	fs := flag.NewFlagSet("skiff status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrs := fs.String("a", strings.Join(c.Addrs, ","), "Comma-separated HTTP addresses of nodes (host:port or URL); the first that answers /nodes lists the cluster")
	fs.StringVar(&c.Scheme, "s", c.Scheme, "Protocol scheme for addresses without one (http or https)")
	fs.StringVar(&c.Credentials, "u", "", "Basic auth credentials in the form username:password")
	fs.BoolVar(&c.Insecure, "i", false, "Do not verify the nodes' HTTPS certificates")
	fs.StringVar(&c.CACert, "c", "", "Path to trusted X.509 root CA certificate")
	fs.StringVar(&c.ClientCert, "d", "", "Path to client X.509 certificate for mutual TLS")
	fs.StringVar(&c.ClientKey, "k", "", "Path to client X.509 key for mutual TLS")
	fs.DurationVar(&c.Interval, "n", c.Interval, "Redraw interval")
	fs.DurationVar(&c.Timeout, "t", c.Timeout, "Timeout of each HTTP request")
	once := fs.Bool("once", false, "Print one frame and exit (exit status 1 if no node answered)")
	if err := fs.Parse(args); err != nil {
		return c, false, err
	}
	if fs.NArg() > 0 {
		return c, false, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	c.Addrs = splitAddrs(*addrs)
	return c, *once, c.Validate()
}

func runStatus(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	cfg, once, err := parseStatus(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "skiff status: %v\n", err)
		return 2
	}
	v, err := nodeview.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "skiff status: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if once {
		if err := v.Once(ctx, stdout); err != nil {
			fmt.Fprintf(stderr, "skiff status: %v\n", err)
			return 1
		}
		return 0
	}
	if err := v.Watch(ctx, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "skiff status: %v\n", err)
		return 1
	}
	return 0
}
