package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/queue"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway/connlimit"
	"github.com/skiffdb/skiff/gateway/console"
	"github.com/skiffdb/skiff/gateway/tlsreload"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/sm/failpoint"
)

// Data is what the gateway needs from the replica actor.
type Data interface {
	Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error)
	Query(ctx context.Context, req *cmdpb.Request, opts replica.ReadOptions) (*cmdpb.Response, error)
	Backup(ctx context.Context, b *sm.Backup) (*sm.BackupResult, error)
	Checkpoint(ctx context.Context) (*sm.CheckpointResult, error)
	Snapshot(ctx context.Context, trailingLogs int64) (uint64, error)
	Boot(ctx context.Context, r io.Reader) error
	AddNonVoting(ctx context.Context, replicaID uint64, raftAddr, nodeID string) error
	RemoveMember(ctx context.Context, replicaID uint64) error
	TransferLeader(ctx context.Context, replicaID uint64) error
	ExportSnapshot(ctx context.Context) (string, error)
}

// Queue is what the gateway needs from the queued-writes actor.
type Queue interface {
	Enqueue(ctx context.Context, stmts []*cmdpb.Statement) (int64, error)
	Wait(ctx context.Context, seq int64) error
	Stats(ctx context.Context) (queue.Stats, error)
}

// StateSource returns the latest published lifecycle state (never nil).
type StateSource func() *lifecycle.State

// Gateway is the HTTP actor.
type Gateway struct {
	cfg Config
	// version is the X-Rqlite-Version and X-Skiff-Version header value.
	version []string
	log     *zap.Logger
	ln      net.Listener
	data    Data
	queue   Queue
	state   StateSource
	srv     *http.Server
	stats   counters
	ops     opCounters
	// peers asks other nodes for /nodes.
	peers *http.Client
	// certs and tlsConf are set when serving HTTPS.
	certs   *tlsreload.Reloader
	tlsConf *tls.Config
	// conns caps the listener's connections (counted in /status http).
	conns *connlimit.Limiter
	// notified holds the replica IDs of -bootstrap-expect nodes that
	// announced themselves with join credentials (Notified); kept only
	// with auth on, and at most maxNotified of them.
	notifiedMu sync.Mutex
	notified   map[uint64]struct{}
	// metricsHandler serves /metrics when Config.Metrics is set.
	metricsHandler http.Handler
	// consoleFiles serves the web console's embedded assets.
	consoleFiles http.Handler
	// answers holds encoding buffers for data responses (*[]byte): a
	// point read's answer otherwise grows a new one four times.
	answers sync.Pool
	// fastWriters holds the native fasthttp path's writers (*fastWriter).
	fastWriters sync.Pool
}

// maxPooledAnswer is the largest buffer kept for reuse; a bigger answer's
// buffer goes to the collector, so one large SELECT does not pin memory.
const maxPooledAnswer = 64 << 10

// writeAnswer encodes a data response with encode into a pooled buffer
// and writes it; w copies it, so the buffer is reused at once.
func (g *Gateway) writeAnswer(w http.ResponseWriter, encode func([]byte) []byte) {
	bp, _ := g.answers.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 1024)
		bp = &b
	}
	*bp = encode((*bp)[:0])
	writeJSON(w, http.StatusOK, *bp)
	if cap(*bp) <= maxPooledAnswer {
		g.answers.Put(bp)
	}
}

// counters are the gateway's request counts, shown in /debug/vars.
type counters struct {
	execute, query, request, status, readyz, nodes, backup atomic.Int64
	// authOK and authFail count permission checks (rqlite's names).
	authOK, authFail atomic.Int64
}

// New returns a gateway serving on ln, which the caller has bound already:
// binding first means a client never sees a refused connection while the
// node starts.
func New(cfg Config, ln net.Listener, data Data, q Queue, state StateSource) (*Gateway, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ln == nil || data == nil || q == nil || state == nil {
		return nil, fmt.Errorf("%w: listener, data, queue and state are required", ErrInvalidConfig)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, ln: ln, data: data, queue: q, state: state,
		version:      []string{cfg.Version},
		peers:        cfg.Peers,
		consoleFiles: console.Handler()}
	if g.peers == nil {
		g.peers = nodetls.NewPeerClient(cfg.PeerTLS, 0)
	}
	conns, err := connlimit.New(connlimit.Config{Name: "http", MaxConns: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	g.conns = conns
	g.srv = &http.Server{
		Handler:           connlimit.BodyProgress(g, cfg.BodyReadTimeout),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(cfg.Logger.Named("http")),
	}
	if cfg.Metrics != nil {
		g.metricsHandler = cfg.Metrics.Handler()
	}
	if t := cfg.TLS; t != nil {
		certs, err := tlsreload.New(tlsreload.Config{CertFile: t.CertFile, KeyFile: t.KeyFile, Logger: cfg.Logger.Named("tls")})
		if err != nil {
			return nil, err
		}
		tc, err := t.serverTLS(certs)
		if err != nil {
			return nil, err
		}
		g.certs, g.tlsConf = certs, tc
	}
	return g, nil
}

// Run serves until ctx ends, then stops accepting and lets in-flight
// requests finish (bounded by ShutdownTimeout).
func (g *Gateway) Run(ctx context.Context) error {
	errC := make(chan error, 1)
	// Capped before TLS: a refused connection costs no handshake.
	ln := g.conns.Listen(g.ln)
	if g.tlsConf != nil {
		// The listener stays the one bootstrap bound (no refused
		// connections at start); TLS wraps each accepted connection.
		ln = tls.NewListener(ln, g.tlsConf)
		rctx, stopReload := context.WithCancel(ctx)
		defer stopReload()
		go func() { _ = g.certs.Run(rctx) }()
	}
	if g.server() == ServerFast {
		return newFastServer(g).run(ctx, ln)
	}
	go func() { errC <- g.srv.Serve(ln) }()
	select {
	case err := <-errC:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	if err := g.srv.Shutdown(sctx); err != nil {
		g.log.Warn("http shutdown timed out; closing connections", zap.Error(err))
		_ = g.srv.Close()
	}
	if err := <-errC; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// ServeHTTP routes by path as rqlite does (API.md 1.1): prefix matching,
// except for the exact paths listed there.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m := g.cfg.Metrics; m != nil {
		// Deferred before the panic recovery below, so it runs after it
		// and sees the 500 that recovery writes (through rec: the
		// recovery's closure reads w after this assignment).
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		w = rec
		defer func() { m.ObserveHTTP(routeName(r.URL.Path), rec.code, time.Since(start)) }()
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			g.log.Error("panic in handler", zap.Any("panic", p), zap.String("path", r.URL.Path),
				zap.ByteString("stack", debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	h := w.Header()
	g.commonHeaders(h)
	if r.Method == http.MethodOptions {
		// CORS preflight answers before any routing (API.md 1.1).
		h.Set("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
		if g.cfg.Auth != nil {
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			h.Set("Access-Control-Allow-Credentials", "true")
		} else {
			h.Set("Access-Control-Allow-Headers", "Content-Type")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	p := r.URL.Path
	if !g.authorized(r, p) {
		h.Set("WWW-Authenticate", `Basic realm="rqlite"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case p == "/":
		http.Redirect(w, r, "/status", http.StatusFound)
	case strings.HasPrefix(p, "/db/execute"):
		g.count(&g.stats.execute)
		g.handleExecute(w, r)
	case strings.HasPrefix(p, "/db/query"):
		g.count(&g.stats.query)
		g.handleQuery(w, r)
	case strings.HasPrefix(p, "/db/request"):
		g.count(&g.stats.request)
		g.handleRequest(w, r)
	case strings.HasPrefix(p, "/db/sql"):
		g.handleSQL(w, r)
	case strings.HasPrefix(p, "/db/backup"):
		g.count(&g.stats.backup)
		g.handleBackup(w, r)
	case strings.HasPrefix(p, "/db/load"):
		g.count(&g.ops.loads)
		g.handleLoad(w, r)
	case p == "/boot":
		g.count(&g.ops.boots)
		g.handleBoot(w, r)
	case p == "/snapshot":
		g.count(&g.ops.userSnapshots)
		g.handleSnapshot(w, r)
	case p == "/reap":
		g.count(&g.ops.userReaps)
		g.handleReap(w, r)
	case strings.HasPrefix(p, "/remove"):
		g.handleRemove(w, r)
	case p == "/join" || p == pathPeerJoin:
		g.handleJoin(w, r)
	case p == pathPeerNode:
		g.handlePeerNode(w, r)
	case strings.HasPrefix(p, "/status"):
		g.count(&g.stats.status)
		g.handleStatus(w, r)
	case strings.HasPrefix(p, "/readyz"):
		g.count(&g.stats.readyz)
		g.handleReadyz(w, r)
	case strings.HasPrefix(p, "/nodes"):
		g.count(&g.stats.nodes)
		g.handleNodes(w, r)
	case p == "/leader":
		g.handleLeader(w, r)
	case p == "/debug/vars":
		g.handleVars(w, r)
	case p == pathMetrics && g.metricsHandler != nil:
		g.handleMetrics(w, r)
	case strings.HasPrefix(p, "/debug/pprof"):
		g.handlePprof(w, r)
	case p == "/console", strings.HasPrefix(p, console.Prefix):
		g.handleConsole(w, r)
	case strings.HasPrefix(p, pathFailpoints) && failpoint.Compiled && g.cfg.Failpoints != nil:
		g.handleFailpoints(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// commonHeaders sets the headers of every answer: the versions and CORS's
// origin. One shared value slice: a server copies the header when it
// writes it, and Set would allocate a slice per header per request.
func (g *Gateway) commonHeaders(h http.Header) {
	h["X-Rqlite-Version"] = g.version
	h["X-Skiff-Version"] = g.version
	if g.cfg.AllowOrigin != "" {
		h.Set("Access-Control-Allow-Origin", g.cfg.AllowOrigin)
	}
}

// count increments a request counter for /debug/vars.
func (g *Gateway) count(c *atomic.Int64) { c.Add(1) }

// methods answers 405 (empty body, API.md 1.6) unless r uses one of ms.
func methods(w http.ResponseWriter, r *http.Request, ms ...string) bool {
	for _, m := range ms {
		if r.Method == m {
			return true
		}
	}
	w.WriteHeader(http.StatusMethodNotAllowed)
	return false
}

// writeError writes err through the error table.
func (g *Gateway) writeError(w http.ResponseWriter, err error) {
	status, form, msg := classify(err)
	if status >= 500 {
		g.log.Warn("request failed", zap.Int("status", status), zap.Error(err))
	}
	if form == jsonError {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		b := append([]byte(`{"error":`), jsonString(msg)...)
		_, _ = w.Write(append(b, "}\n"...))
		return
	}
	http.Error(w, msg, status)
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// requestContext bounds a data request by its timeout parameter or the
// default.
func (g *Gateway) requestContext(r *http.Request, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), g.timeout(timeout))
}

// timeout is a data request's timeout: its parameter's, or the default.
func (g *Gateway) timeout(param time.Duration) time.Duration {
	if param <= 0 {
		return g.cfg.RequestTimeout
	}
	return param
}
