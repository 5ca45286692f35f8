package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/gateway/metrics"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// Defaults for Config.
const (
	// DefaultMaxBodyBytes bounds a request body held in memory for
	// parsing. SQL and parameters rarely come near it; /db/load and /boot
	// stream instead.
	DefaultMaxBodyBytes = 64 << 20
	// DefaultRequestTimeout is the deadline of a data request without a
	// timeout parameter (rqlite's default timeout, API.md 1.2).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultShutdownTimeout bounds the wait for in-flight requests.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultReadHeaderTimeout drops clients that never finish headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes bounds a request's headers (net/http's
	// default, which rqlite serves with).
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultBodyReadTimeout bounds the wait for each part of a request
	// body (connlimit.BodyProgress), not the whole body: /db/load and
	// /boot stream bodies of any size.
	DefaultBodyReadTimeout = time.Minute
	// DefaultMaxConns and DefaultMaxConnsPerIP cap the HTTP port's open
	// connections. They are generous: load generators and connection
	// pools keep hundreds of keep-alive connections from one host.
	DefaultMaxConns      = 4096
	DefaultMaxConnsPerIP = 1024
)

// Config.Server's values: which HTTP server serves plain HTTP.
const (
	// ServerFast is valyala/fasthttp: the data routes are served on it
	// natively, the rest through net/http's handler (fastserve.go).
	ServerFast = "fasthttp"
	// ServerNet is net/http for every route.
	ServerNet = "net/http"
)

// ErrInvalidConfig is returned by Config.Validate.
var ErrInvalidConfig = errors.New("invalid gateway config")

// Config configures the gateway.
type Config struct {
	// AdvAddr is the advertised HTTP address (host:port) for api_addr.
	AdvAddr           string
	MaxBodyBytes      int64
	RequestTimeout    time.Duration
	ShutdownTimeout   time.Duration
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes, IdleTimeout and BodyReadTimeout bound what a client
	// may send and hold (defaults above).
	MaxHeaderBytes  int
	IdleTimeout     time.Duration
	BodyReadTimeout time.Duration
	// MaxConns and MaxConnsPerIP cap the open connections, in total and
	// from one remote IP; a connection past a cap is closed at once and
	// counted in /status http.
	MaxConns, MaxConnsPerIP int
	// Version is reported in X-Rqlite-Version, X-Skiff-Version and /status.
	Version string
	// AllowOrigin is sent as Access-Control-Allow-Origin (rqlited's
	// -http-allow-origin); empty sends none.
	AllowOrigin string
	// Commit and BuildTime are reported in /status build.
	Commit, BuildTime string
	Logger            *zap.Logger
	// Store describes the store in /status (API.md 2.1).
	Store StoreInfo
	// Failpoints are served at /debug/failpoints (tests only; nil, or a
	// build without the failpoints tag, serves 404 there).
	Failpoints *failpoint.Set
	// Auth checks every HTTP API request's permission (rqlited's -auth,
	// API.md 1.12); nil serves everyone.
	Auth *auth.Store
	// Sections are the parts of /status and /debug/vars that other actors
	// own (CDC, ingest), served in every lifecycle phase.
	Sections []Section
	// TLS, if set, serves HTTPS instead of HTTP on the listener.
	TLS *TLS
	// Server is the server for plain HTTP: ServerFast (the default) or
	// ServerNet. HTTPS is always net/http's, which speaks HTTP/2 as
	// rqlite's does.
	Server string
	// PeerTLS, when set, is node-to-node TLS (bootstrap/nodetls): peers'
	// Raft ports (/nodes) are asked over https:// with it.
	PeerTLS *tls.Config
	// Peers asks other nodes for /nodes; nil builds one with PeerTLS
	// (nodetls.NewPeerClient). bootstrap passes the node's one peer
	// client.
	Peers *http.Client
	// Metrics serves /metrics and counts HTTP requests by route and code.
	// Bootstrap sets it unless -metrics=false: the same registry also
	// holds the replica's instruments. Nil turns both off (/metrics is
	// 404), which is how the cost of metrics is measured.
	Metrics *metrics.Metrics
}

// Section is a top-level key of /status and /debug/vars whose value another
// actor publishes. Its functions read published stats (atomics, a copied
// struct): they must not block, and must answer in every lifecycle phase,
// as the rest of /status does.
type Section struct {
	// Name is the top-level key, in both documents.
	Name string
	// Status returns the value under Name in /status; nil adds none.
	Status func() any
	// Vars returns the value under Name in /debug/vars; nil adds none.
	Vars func() any
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.Version == "" {
		c.Version = "unknown"
	}
	if c.Server == "" {
		c.Server = ServerFast
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.AdvAddr == "":
		return fmt.Errorf("%w: AdvAddr is required", ErrInvalidConfig)
	case c.MaxBodyBytes < 1:
		return fmt.Errorf("%w: MaxBodyBytes %d < 1", ErrInvalidConfig, c.MaxBodyBytes)
	case c.RequestTimeout <= 0 || c.ShutdownTimeout <= 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrInvalidConfig)
	case c.MaxHeaderBytes < 0 || c.IdleTimeout < 0 || c.BodyReadTimeout < 0 || c.MaxConns < 0 || c.MaxConnsPerIP < 0:
		return fmt.Errorf("%w: header, idle, body and connection bounds must not be negative", ErrInvalidConfig)
	case c.Server != ServerFast && c.Server != ServerNet:
		return fmt.Errorf("%w: HTTP server %q is neither %q nor %q", ErrInvalidConfig, c.Server, ServerFast, ServerNet)
	}
	if c.TLS != nil {
		if err := c.TLS.Validate(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, sec := range c.Sections {
		if sec.Name == "" || seen[sec.Name] {
			return fmt.Errorf("%w: status section name %q is empty or repeated", ErrInvalidConfig, sec.Name)
		}
		seen[sec.Name] = true
	}
	return nil
}
