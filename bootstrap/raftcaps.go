package bootstrap

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/gateway/connlimit"
)

// The Raft port is exposed to whoever can reach it. Its bounds:
//
//   - connections: at most MaxConns in total and MaxPerIP from one remote
//     IP (connlimit). Members use few: one message connection per peer,
//     a snapshot stream now and then, a few HTTP calls. Connections from
//     a member's IP do not count against, and are never refused by, the
//     total cap, so that a flood from other hosts cannot lock members
//     out; the per-IP cap applies to everyone.
//   - time before the first byte: firstByteTimeout (30 minutes), because
//     Dragonboat's snapshot sender connects long before its first chunk
//     (see firstByteTimeout). Under pressure (more than half of maxSilent
//     connections silent) a new connection from an IP that hosts no
//     member gets strangerFirstByte (10 s) instead, and the silent cap
//     evicts a stranger's connection before a member's. Not always: a
//     member this node does not know yet (it lags behind the entry that
//     added it: it was down while a node was replaced) may be the leader
//     it needs a snapshot from, and a short bound would cut that stream
//     before its first chunk, every time. Until membership is known (a
//     starting node) nobody is a stranger.
//   - the first Raft frame: its 20-byte head must arrive within
//     firstFrameTimeout of the first byte and be valid (magic, method, size
//     at most raftnet's bound, header checksum) before the transport
//     sees the connection; the payload's bytes are then read as they
//     arrive, never allocated ahead (raftnet's frameReader).
//   - HTTP on the Raft port: headers within httpHeaderTimeout and
//     raftHTTPMaxHeaderBytes, each part of a body within raftHTTPBody.
//   - TLS (nodetls): the handshake within handshakeTimeout.
//
// A member's IP is the one its advertised Raft address resolves to: a
// member connecting from another source address (NAT) is a stranger,
// which matters only under a flood. And an IP is only an IP: a stranger
// on a member's host gets a member's bounds. Proving who a peer is takes
// node TLS; these bounds keep the port alive under a flood, they do not
// authenticate.
const (
	// DefaultRaftMaxConns and DefaultRaftMaxConnsPerIP are the Raft
	// port's caps (Config.RaftMaxConns, -raft-max-conns).
	DefaultRaftMaxConns      = 1024
	DefaultRaftMaxConnsPerIP = 64
	strangerFirstByteTimeout = 10 * time.Second
	// firstFrameTimeout bounds the rest of a first frame's head after its
	// first byte (raftnet's headerTimeout: the sender writes a frame with
	// one write).
	firstFrameTimeout      = 2 * time.Second
	raftHTTPMaxHeaderBytes = 64 << 10
	raftHTTPIdleTimeout    = 2 * time.Minute
	raftHTTPBody           = 30 * time.Second
	// memberResolve is how often the host names of an unchanged
	// membership are resolved again (a change is seen at once: Changed).
	memberResolve = 30 * time.Second
)

// errSilent: no first byte within the bound.
var errSilent = errors.New("no first byte in time")

// raftCaps are the mux's bounds and refusal counters.
type raftCaps struct {
	lim               *connlimit.Limiter
	maxConns, maxPer  int
	strangerFirstByte time.Duration
	handshake         time.Duration
	// members are the IPs the members' Raft addresses resolve to; nil
	// while membership is unknown.
	members atomic.Pointer[map[netip.Addr]bool]

	// Refusals after admission (failed TLS handshakes are counted by the
	// mux's TLS, muxTLS.refused).
	firstByteTimeouts, silentEvicted, badFirstFrame atomic.Uint64

	// logs rate-limits the log lines about connections closed before
	// proving themselves: a flood must not become a flood of log lines
	// (the counters in /status count every one).
	logs *connlimit.LogLimiter
}

// logRefusal logs a closed connection unless one was logged within
// connlimit.DefaultLogEvery.
func (m *raftMux) logRefusal(msg string, c net.Conn, err error) {
	ok, skipped := m.caps.logs.AllowSkipped("")
	if !ok {
		return
	}
	m.log.Warn(msg, zap.Stringer("remote", c.RemoteAddr()), zap.Error(err), zap.Int("refusals_not_logged", skipped))
}

// initCaps sets the default bounds; setLimits changes the caps before
// start.
func (m *raftMux) initCaps() {
	m.caps = &raftCaps{strangerFirstByte: strangerFirstByteTimeout, handshake: handshakeTimeout, logs: connlimit.NewLogLimiter(connlimit.DefaultLogEvery)}
	_ = m.setLimits(0, 0)
	m.http.MaxHeaderBytes = raftHTTPMaxHeaderBytes
	m.http.IdleTimeout = raftHTTPIdleTimeout
	m.http.Handler = connlimit.BodyProgress(m.http.Handler, raftHTTPBody)
}

// setLimits sets the connection caps (0: the default). Call before start.
func (m *raftMux) setLimits(maxConns, maxPerIP int) error {
	if maxConns == 0 {
		maxConns = DefaultRaftMaxConns
	}
	if maxPerIP == 0 {
		maxPerIP = DefaultRaftMaxConnsPerIP
	}
	lim, err := connlimit.New(connlimit.Config{Name: "raft", MaxConns: maxConns, MaxPerIP: maxPerIP,
		Exempt: m.caps.isMember, Logger: m.log})
	if err != nil {
		return err
	}
	m.caps.lim, m.caps.maxConns, m.caps.maxPer = lim, maxConns, maxPerIP
	return nil
}

// isMember reports whether ip hosts a member; false while membership is
// unknown.
func (c *raftCaps) isMember(ip netip.Addr) bool {
	s := c.members.Load()
	return s != nil && (*s)[ip.Unmap()]
}

// firstByteFor is the bound on c's silence before its first byte (c is
// among the silent already).
func (m *raftMux) firstByteFor(c net.Conn) time.Duration {
	m.mu.Lock()
	pressure := len(m.silent) > m.silentCap/2
	m.mu.Unlock()
	if !pressure || m.caps.members.Load() == nil || m.caps.isMember(connlimit.IPOf(c.RemoteAddr())) {
		return m.firstByte
	}
	return min(m.firstByte, m.caps.strangerFirstByte)
}

// noFirstByte counts and logs a connection that ended before its first
// byte: a timeout is a refusal, a peer hanging up is not.
func (m *raftMux) noFirstByte(c net.Conn, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		m.caps.firstByteTimeouts.Add(1)
		m.logRefusal("raft port: closing a connection silent past its bound", c, errSilent)
	}
}

// firstFrameOK checks a Raft connection's first frame head (its first
// byte is the magic's) before the transport serves it.
func (m *raftMux) firstFrameOK(c net.Conn, br *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(firstFrameTimeout))
	head, err := br.Peek(raftnet.FrameHeadSize)
	if err == nil {
		err = raftnet.CheckFrameStart(head)
	}
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		m.caps.badFirstFrame.Add(1)
		m.logRefusal("raft port: closing a connection whose first frame is incomplete or invalid", c, err)
		return false
	}
	return true
}

// status is /status mux: rqlite's keys (tcp/mux.go Stats: addr, timeout,
// encrypted) and the connection bounds and refusals.
func (m *raftMux) status() any {
	s := map[string]any{"addr": m.ln.Addr().String(), "timeout": m.firstByte.String()}
	for k, v := range m.tlsStatus() {
		s[k] = v
	}
	m.caps.addStatus(s, m.tls.refused.Load())
	return s
}

func (c *raftCaps) addStatus(s map[string]any, handshakeFailed uint64) {
	st := c.lim.Stats()
	refused := map[string]uint64{
		"total_cap": st.RefusedTotal, "per_ip_cap": st.RefusedPerIP, "first_byte_timeout": c.firstByteTimeouts.Load(),
		"silent_evicted": c.silentEvicted.Load(), "bad_first_frame": c.badFirstFrame.Load(), "handshake_failed": handshakeFailed,
	}
	var sum uint64
	for _, n := range refused {
		sum += n
	}
	members := -1 // unknown
	if p := c.members.Load(); p != nil {
		members = len(*p)
	}
	s["conns_open"] = st.Open
	s["max_conns"] = c.maxConns
	s["max_conns_per_ip"] = c.maxPer
	s["stranger_timeout"] = c.strangerFirstByte.String()
	s["handshake_timeout"] = c.handshake.String()
	s["member_ips"] = members
	s["refused"] = refused
	s["refused_total"] = sum
}

// memberSource is the published membership and its change signal (the
// lifecycle).
type memberSource interface {
	State() *lifecycle.State
	Changed() <-chan struct{}
}

// watchMembers keeps the member IPs current from the published membership
// until ctx ends or the mux closes, which waits for it. The lifecycle's
// Changed wakes it on a membership change; host names are resolved here,
// off the accept path, and again every memberResolve.
func (m *raftMux) watchMembers(ctx context.Context, src memberSource) {
	ctx, cancel := context.WithCancel(ctx)
	m.stopWatch = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.followMembers(ctx, src)
	}()
}

func (m *raftMux) followMembers(ctx context.Context, src memberSource) {
	var last []string
	var resolvedAt time.Time
	resolve := time.NewTimer(memberResolve)
	defer resolve.Stop()
	for {
		changed := src.Changed()
		var addrs []string
		for _, mem := range src.State().RaftMembers {
			addrs = append(addrs, mem.RaftAddr)
		}
		slices.Sort(addrs)
		if len(addrs) > 0 && (!slices.Equal(addrs, last) || time.Since(resolvedAt) >= memberResolve) {
			m.caps.members.Store(resolveIPs(ctx, addrs))
			last, resolvedAt = addrs, time.Now()
			resolve.Reset(memberResolve)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-resolve.C:
			resolve.Reset(memberResolve)
		}
	}
}

// resolveIPs returns the IPs of the hosts in addrs (host:port), or nil
// (membership unknown: everyone gets a member's bounds) if one does not
// resolve: a member taken for a stranger would have its snapshot streams
// cut.
func resolveIPs(ctx context.Context, addrs []string) *map[netip.Addr]bool {
	ips := map[netip.Addr]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil
		}
		if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			ips[ip.Unmap()] = true
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		found, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil {
			return nil
		}
		for _, ip := range found {
			ips[ip.Unmap()] = true
		}
	}
	return &ips
}
