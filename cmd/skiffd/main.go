package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/skiffdb/skiff/bootstrap"
	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version   = "0.1.0-dev"
	commit    = "unknown"
	buildTime = "unknown"
)

// failpointEnv names the failpoint spec's environment variable.
const failpointEnv = "SKIFF_FAILPOINTS"

func main() {
	// Before anything else: a re-execution must not find files or ports
	// of its own already open.
	sysmonErr := keepSysmonAwake()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sysmonErr))
}

// run is the daemon; sysmonErr is keepSysmonAwake's answer, logged once
// the logger exists.
func run(args []string, stdout, stderr io.Writer, sysmonErr error) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "skiffd: %v\n", err)
		return 2
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "skiffd %s (commit %s, built %s)\n", version, commit, buildTime)
		return 0
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "skiffd: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	for _, f := range o.warnings {
		log.Warn("rqlited flag accepted but not implemented; ignored", zap.String("flag", f))
	}
	if sysmonErr != nil {
		log.Warn("Go runtime left at its default sysmon wake-ups", zap.Error(sysmonErr))
	}
	log.Info("Go garbage collector target", zap.String("gc_percent", applyGCPercent(os.LookupEnv, debug.SetGCPercent)))
	if err := o.profiles.start(); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 2
	}
	defer func() {
		if err := o.profiles.stop(); err != nil {
			log.Error("profiles not written", zap.Error(err))
		}
	}()
	cfg := o.cfg
	cfg.Version, cfg.Commit, cfg.BuildTime, cfg.Logger = version, commit, buildTime, log
	// Failpoints come from the environment, as gofail's do, so that no
	// production flag exists for them; a binary built without the
	// failpoints tag refuses a non-empty spec.
	if spec := os.Getenv(failpointEnv); spec != "" {
		fps, err := failpoint.New(spec)
		if err != nil {
			log.Error("cannot start", zap.String("env", failpointEnv), zap.Error(err))
			return 2
		}
		log.Warn("failpoints set", zap.String("spec", spec))
		cfg.Failpoints = fps
	} else if failpoint.Compiled {
		cfg.Failpoints, _ = failpoint.New("")
	}
	if o.recoverSnapshot != "" {
		// Offline: rewrite the Raft state for lost-quorum recovery, exit.
		if err := bootstrap.Recover(cfg, o.recoverSnapshot, o.recoverVoters); err != nil {
			log.Error("recovery failed", zap.Error(err))
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.authFile != "" {
		store, err := auth.Open(auth.Config{Path: o.authFile, Logger: log.Named("auth")})
		if err != nil {
			log.Error("cannot start", zap.String("flag", "-auth"), zap.Error(err))
			return 2
		}
		cfg.Auth = store
		go store.Watch(ctx)
		// Registered before the node starts so that a SIGHUP never takes
		// its default action (exit) once -auth is given.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go reloadOnHUP(ctx, hup, store, log)
	}
	node, err := bootstrap.Start(cfg)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		if errors.Is(err, bootstrap.ErrInvalidConfig) {
			return 2
		}
		return 1
	}
	if err := node.Wait(ctx); err != nil {
		log.Error("stopped with error", zap.Error(err))
		if errors.Is(err, bootstrap.ErrInvalidConfig) {
			// The first-start rules are checked once the data
			// directory is known to be new (bootstrap.Start returned).
			return 2
		}
		return 1
	}
	return 0
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.AddCaller()), nil
}

// reloadOnHUP re-reads the credentials file at each SIGHUP until ctx ends;
// a bad file keeps the old credentials.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, store *auth.Store, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if err := store.Reload(); err != nil {
			log.Warn("SIGHUP: credentials file not reloaded; keeping the previous credentials", zap.Error(err))
			continue
		}
		log.Info("SIGHUP: credentials file reloaded")
	}
}
