package shell

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffdb/skiff/cmd/skiff/clientcfg"
)

// ErrInvalidConfig wraps every Config.Validate failure.
var ErrInvalidConfig = errors.New("invalid shell configuration")

// Defaults of rqlite's CLI (cmd/rqlite/main.go).
const (
	DefaultHost    = "127.0.0.1"
	DefaultPort    = 4001
	DefaultScheme  = "http"
	DefaultPrefix  = "/"
	DefaultTimeout = 30 * time.Second
	// HistoryFileName is the history file under the home directory.
	HistoryFileName = ".skiff_history"
	// DefaultHistoryLimit is how many lines the history keeps (rqlite
	// keeps 100 by default; RQLITE_HISTFILESIZE changes it).
	DefaultHistoryLimit = 100
)

// Config is how the shell reaches its node and where it keeps history.
type Config struct {
	Scheme string // http or https
	Host   string
	Port   int
	Prefix string // URL prefix, "/" or "/rqlite/"
	// Alternatives are host:port pairs tried, in order, when the current
	// host cannot be reached (rqlite's -a).
	Alternatives []string
	// Credentials are "user:password" for HTTP Basic auth.
	Credentials string
	// Config is the TLS client side: -i, -c, -d and -k.
	clientcfg.Config
	Timeout time.Duration // per HTTP request
	// HistoryFile is the line editor's history ("" keeps none).
	HistoryFile  string
	HistoryLimit int
}

// DefaultConfig is rqlite's defaults, with RQLITE_HOST applied the way
// rqlite's CLI reads it ([scheme://]host[:port]).
func DefaultConfig() Config {
	c := Config{Scheme: DefaultScheme, Host: DefaultHost, Port: DefaultPort, Prefix: DefaultPrefix,
		Timeout: DefaultTimeout, HistoryLimit: DefaultHistoryLimit}
	if home, err := os.UserHomeDir(); err == nil {
		c.HistoryFile = filepath.Join(home, HistoryFileName)
	}
	// rqlite's history size variable; 0 or less keeps no history.
	if n, err := strconv.Atoi(os.Getenv("RQLITE_HISTFILESIZE")); err == nil {
		c.HistoryLimit = n
		if n <= 0 {
			c.HistoryFile, c.HistoryLimit = "", -1
		}
	}
	if env := os.Getenv("RQLITE_HOST"); env != "" {
		if err := c.ApplyHostEnv(env); err != nil {
			// Left at the defaults; Validate cannot see the bad value,
			// so the connection error will name the host tried.
			return c
		}
	}
	return c
}

// ApplyHostEnv sets scheme, host and port from "[scheme://]host[:port]".
func (c *Config) ApplyHostEnv(v string) error {
	if !strings.Contains(v, "://") {
		v = c.Scheme + "://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%w: RQLITE_HOST %q: want [scheme://]host[:port]", ErrInvalidConfig, v)
	}
	c.Scheme, c.Host = u.Scheme, u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("%w: RQLITE_HOST port %q", ErrInvalidConfig, p)
		}
		c.Port = n
	}
	return nil
}

// Validate checks the configuration before any request is made.
func (c Config) Validate() error {
	if c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q: want http or https", ErrInvalidConfig, c.Scheme)
	}
	if c.Host == "" {
		return fmt.Errorf("%w: empty host", ErrInvalidConfig)
	}
	if c.Port <= 0 || c.Port > 65535 {
		return fmt.Errorf("%w: port %d", ErrInvalidConfig, c.Port)
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return fmt.Errorf("%w: prefix %q must start with /", ErrInvalidConfig, c.Prefix)
	}
	if c.Credentials != "" && !strings.Contains(c.Credentials, ":") {
		return fmt.Errorf("%w: credentials: want username:password", ErrInvalidConfig)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: timeout %s", ErrInvalidConfig, c.Timeout)
	}
	for _, a := range c.Alternatives {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%w: alternative %q: want host:port", ErrInvalidConfig, a)
		}
	}
	return nil
}

// addr is the first host as host:port.
func (c Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
