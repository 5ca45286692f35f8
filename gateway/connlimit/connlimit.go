package connlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

var (
	// ErrInvalidConfig is returned by Config.Validate.
	ErrInvalidConfig = errors.New("invalid connlimit config")
	// ErrTotalCap refuses a connection past Config.MaxConns.
	ErrTotalCap = errors.New("connection cap reached")
	// ErrPerIPCap refuses a connection past Config.MaxPerIP from its IP.
	ErrPerIPCap = errors.New("per-address connection cap reached")
)

// DefaultLogEvery is the least time between two refusal log lines.
const DefaultLogEvery = 10 * time.Second

// Config configures a Limiter.
type Config struct {
	// Name names the port in log lines ("http", "raft").
	Name string
	// MaxConns caps the open connections; 0 is no cap.
	MaxConns int
	// MaxPerIP caps the open connections from one remote IP; 0 is no cap.
	MaxPerIP int
	// Exempt, if set, reports the IPs that MaxConns does not count or
	// refuse (the Raft port's cluster members: a flood from elsewhere
	// must not lock them out). MaxPerIP still applies to them. It is
	// called on the accepting goroutine: it must not block.
	Exempt func(netip.Addr) bool
	// LogEvery is the least time between two refusal log lines
	// (default DefaultLogEvery).
	LogEvery time.Duration
	Logger   *zap.Logger
}

// WithDefaults fills the zero fields that have a default.
func (c Config) WithDefaults() Config {
	if c.LogEvery == 0 {
		c.LogEvery = DefaultLogEvery
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports a configuration a Limiter cannot run with.
func (c Config) Validate() error {
	if c.MaxConns < 0 || c.MaxPerIP < 0 || c.LogEvery < 0 {
		return fmt.Errorf("%w: negative cap or interval", ErrInvalidConfig)
	}
	return nil
}

// Stats are a Limiter's counters.
type Stats struct {
	// Open is the connections admitted and not yet closed.
	Open int
	// RefusedTotal and RefusedPerIP count the connections refused by
	// MaxConns and MaxPerIP.
	RefusedTotal, RefusedPerIP uint64
}

// Limiter admits connections under the caps.
type Limiter struct {
	cfg          Config
	refusedTotal atomic.Uint64
	refusedPerIP atomic.Uint64

	mu     sync.Mutex
	counts map[netip.Addr]int
	open   int // counted against MaxConns (exempt IPs are not)
	all    int // every open connection
	// logs rate-limits the refusal log.
	logs *LogLimiter
}

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg, counts: map[netip.Addr]int{}, logs: NewLogLimiter(cfg.LogEvery)}, nil
}

// Admit counts a connection from remote and returns the function that
// uncounts it (call it once, when the connection closes), or ErrTotalCap
// or ErrPerIPCap. An address that is not IP (a pipe in tests) counts as
// one unnamed IP.
func (l *Limiter) Admit(remote net.Addr) (func(), error) {
	ip := IPOf(remote)
	exempt := l.cfg.Exempt != nil && ip.IsValid() && l.cfg.Exempt(ip)
	l.mu.Lock()
	var err error
	switch {
	case l.cfg.MaxPerIP > 0 && l.counts[ip] >= l.cfg.MaxPerIP:
		err = ErrPerIPCap
		l.refusedPerIP.Add(1)
	case !exempt && l.cfg.MaxConns > 0 && l.open >= l.cfg.MaxConns:
		err = ErrTotalCap
		l.refusedTotal.Add(1)
	}
	if err != nil {
		l.logRefusal(remote, err)
		l.mu.Unlock()
		return nil, err
	}
	l.counts[ip]++
	l.all++
	if !exempt {
		l.open++
	}
	l.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { l.release(ip, exempt) }) }, nil
}

func (l *Limiter) release(ip netip.Addr, exempt bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts[ip]--; l.counts[ip] <= 0 {
		delete(l.counts, ip)
	}
	l.all--
	if !exempt {
		l.open--
	}
}

// logRefusal logs at most one line per LogEvery (under mu): a flood must
// not turn into a flood of log lines.
func (l *Limiter) logRefusal(remote net.Addr, err error) {
	ok, skipped := l.logs.AllowSkipped("")
	if !ok {
		return
	}
	l.cfg.Logger.Warn("refusing connection", zap.String("port", l.cfg.Name), zap.Stringer("remote", remote),
		zap.Error(err), zap.Int("open", l.all), zap.Int("max_conns", l.cfg.MaxConns),
		zap.Int("max_per_ip", l.cfg.MaxPerIP), zap.Int("refusals_not_logged", skipped))
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	open := l.all
	l.mu.Unlock()
	return Stats{Open: open, RefusedTotal: l.refusedTotal.Load(), RefusedPerIP: l.refusedPerIP.Load()}
}

// IPOf returns remote's IP (IPv4-mapped addresses unmapped), or the zero
// Addr when remote is not a TCP or UDP address.
func IPOf(remote net.Addr) netip.Addr {
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// Listen wraps ln: Accept returns only admitted connections, each
// uncounted when closed; refused ones are closed at once and Accept goes
// on to the next.
func (l *Limiter) Listen(ln net.Listener) net.Listener { return &listener{Listener: ln, lim: l} }

type listener struct {
	net.Listener
	lim *Limiter
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, err := ln.lim.Admit(c.RemoteAddr())
		if err != nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // reset: no TIME_WAIT kept here per refusal
			}
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

// conn uncounts itself when closed.
type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite lets net/http half-close a TCP connection, as it does
// unwrapped ones, so that a client reads the last response before the
// close.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile/splice for responses copied from files.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }
