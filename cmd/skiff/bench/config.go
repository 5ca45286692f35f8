package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidConfig reports a Config that cannot run.
var ErrInvalidConfig = errors.New("invalid bench config")

// Workloads.
const (
	WorkloadInsert = "insert" // one INSERT per request
	WorkloadBatch  = "batch"  // Batch INSERTs per request
	WorkloadRead   = "read"   // a point read by primary key
	WorkloadMixed  = "mixed"  // reads with probability ReadFraction, else inserts
	WorkloadSQL    = "sql"    // the statements of SQLFile, in turn
)

// Config is one benchmark run.
type Config struct {
	// Addrs are the target nodes' HTTP addresses (host:port or URLs);
	// requests are spread over them round-robin.
	Addrs []string
	// Workers is the number of concurrent clients (closed loop), or the
	// most requests in flight (open loop).
	Workers int
	// Rate > 0 runs open loop at Rate requests/s.
	Rate float64
	// Duration bounds the run; Requests, when > 0, stops it after that many.
	Duration time.Duration
	Requests int64
	Workload string
	// Batch is the statements per request of the batch workload.
	Batch int
	// Tx wraps each request's statements in a transaction (?transaction).
	Tx bool
	// Queued sends writes as queued writes (?queue).
	Queued bool
	// Level is the read consistency level of reads (?level=).
	Level string
	// ReadFraction is the share of reads in the mixed workload.
	ReadFraction float64
	// Preload inserts this many rows before the run (reads pick among them).
	Preload int
	// NoSetup skips creating the table and preloading: the rows of an
	// earlier run are there (reads still pick among the first Preload).
	NoSetup bool
	// SQLFile holds the sql workload's statements, one per line.
	SQLFile string
	// Table is the table the built-in workloads use.
	Table string
	// ValueSize is the size of each inserted text value.
	ValueSize int
	// Timeout bounds one request.
	Timeout time.Duration
	// TLS is the client configuration for https:// targets (the CA to
	// trust, a client certificate for mutual TLS); nil: the system's
	// roots.
	TLS *tls.Config
	// User and Password are HTTP Basic credentials sent with every
	// request; a target's own user:pass@ wins.
	User, Password string
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{"localhost:4001"}
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Workload == "" {
		c.Workload = WorkloadInsert
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Level == "" {
		c.Level = "weak"
	}
	if c.ReadFraction == 0 {
		c.ReadFraction = 0.9
	}
	if c.Table == "" {
		c.Table = "bench"
	}
	if c.ValueSize == 0 {
		c.ValueSize = 16
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Validate reports whether c can run.
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...) }
	switch {
	case c.Workers < 1:
		return bad("workers must be >= 1")
	case c.Rate < 0:
		return bad("rate must be >= 0")
	case c.Duration < 0 || c.Requests < 0:
		return bad("duration and requests must be >= 0")
	case c.Batch < 1:
		return bad("batch must be >= 1")
	case c.ReadFraction < 0 || c.ReadFraction > 1:
		return bad("read fraction must be within [0, 1]")
	case c.Preload < 0 || c.ValueSize < 1:
		return bad("preload must be >= 0 and value size >= 1")
	case strings.ContainsAny(c.Table, " \"';"):
		return bad("table %q", c.Table)
	case c.Password != "" && c.User == "":
		return bad("a password needs a user")
	}
	switch c.Workload {
	case WorkloadInsert, WorkloadBatch, WorkloadMixed:
	case WorkloadRead:
		if c.Preload < 1 {
			return bad("the read workload needs -o (rows to preload)")
		}
	case WorkloadSQL:
		if c.SQLFile == "" {
			return bad("the sql workload needs -f FILE")
		}
	default:
		return bad("unknown workload %q (insert, batch, read, mixed, sql)", c.Workload)
	}
	switch c.Level {
	case "none", "weak", "linearizable", "strong", "auto":
	default:
		return bad("unknown level %q", c.Level)
	}
	return nil
}
