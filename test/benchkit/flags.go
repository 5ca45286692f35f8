package benchkit

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// ErrFlags is a bench driver's command-line value it cannot run with.
var ErrFlags = errors.New("invalid flag")

// Flags are the options every rounds-based bench driver takes.
type Flags struct {
	Skiffd  string        // -skiffd: the skiffd binary
	D       time.Duration // -d: each closed-loop run's duration
	Workers int           // -c: closed-loop workers
	Runs    int           // -runs: runs of each workload, in rounds
}

// DefaultFlags are the defaults drivers start from (and may change before
// Register).
func DefaultFlags() Flags {
	return Flags{Skiffd: "bin/skiffd", D: 3 * time.Second, Workers: 64, Runs: 5}
}

// Register adds -skiffd, -d, -c and -runs to fs, with f's values as the
// defaults.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Skiffd, "skiffd", f.Skiffd, "skiffd binary")
	fs.DurationVar(&f.D, "d", f.D, "Duration of each closed-loop run")
	fs.IntVar(&f.Workers, "c", f.Workers, "Closed-loop workers (every variant and workload)")
	fs.IntVar(&f.Runs, "runs", f.Runs, "Runs of each workload (and variant), in rounds; each figure is the median of its runs")
}

// Validate rejects values the drivers cannot run with: each figure is a
// median over at least one run.
func (f Flags) Validate() error {
	switch {
	case f.Skiffd == "":
		return fmt.Errorf("%w: -skiffd is empty", ErrFlags)
	case f.D <= 0:
		return fmt.Errorf("%w: -d %s must be positive", ErrFlags, f.D)
	case f.Workers < 1:
		return fmt.Errorf("%w: -c %d must be at least 1", ErrFlags, f.Workers)
	case f.Runs < 1:
		return fmt.Errorf("%w: -runs %d must be at least 1", ErrFlags, f.Runs)
	}
	return nil
}

// WorkDir makes a temporary directory for a driver's clusters. done
// removes it, or with keep prints where what (e.g. "data and logs") was
// kept; call it after the clusters have stopped.
func WorkDir(prefix string, keep bool, what string) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		return dir, func() { fmt.Printf("\n%s kept in %s\n", what, dir) }, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
