package bootstrap

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/gateway/connlimit"
)

// raftMux shares the advertised Raft address between Dragonboat and Skiff's
// node-to-node HTTP service (join, node metadata), the way rqlite shares its
// Raft port with its cluster service. Raft's transport (raftnet, Dragonboat's
// wire format) opens every connection with the magic bytes 0xAE 0x7D;
// anything else is HTTP. A Raft connection is served by the transport on
// the goroutine that accepted it: no copy, no extra hop. (It used to be
// spliced to Dragonboat's own listener on a private loopback port, which
// cost every Raft message two more syscalls and a wake-up here.)
type raftMux struct {
	ln net.Listener
	// raft serves a Raft connection until it ends; false: Raft is not
	// running here (the connection is closed and the peer retries).
	raft   func(net.Conn) bool
	http   *http.Server
	httpLn *chanListener
	log    *zap.Logger
	tls    muxTLS // node-to-node TLS (raftmux_tls.go); zero: plaintext
	wg     sync.WaitGroup
	// conns are the connections being routed or served as Raft's; the
	// HTTP server tracks its own.
	conns raftnet.ConnSet
	// firstByte is firstByteTimeout (tests shorten it); silent holds the
	// connections waiting for their first byte, with when they came (under
	// mu).
	mu        sync.Mutex
	firstByte time.Duration
	silent    map[net.Conn]time.Time
	silentCap int
	// caps are the connection bounds and refusal counters (raftcaps.go).
	caps *raftCaps
	// stopWatch ends watchMembers' goroutine (nil: not started).
	stopWatch context.CancelFunc
}

// dragonboatMagic starts every Raft transport connection (Dragonboat's
// wire format, which raftnet speaks), except one that opens with the
// poison's first byte.
const (
	dragonboatMagic = 0xAE
	raftPoison      = 0x00
)

// firstByteTimeout bounds how long a new connection may stay silent before
// its first byte. It is long because Dragonboat's snapshot sender connects
// when a transfer begins and writes its first chunk only once the state
// machine has produced 2 MiB of it, and Skiff's state machine may first
// copy the whole database aside (sm.Config.SnapshotViaCopy, or a WAL that
// cannot be checkpointed): a short bound would cut every transfer of a
// large database before its first byte, forever. Dragonboat's own
// receiver lets a connection idle between messages, and drops a transfer
// idle for 15 minutes.
const firstByteTimeout = 30 * time.Minute

// maxSilent bounds the connections waiting for their first byte, so that
// the long timeout cannot pile up goroutines.
const maxSilent = 256

// httpHeaderTimeout drops HTTP clients that never finish their headers.
const httpHeaderTimeout = 10 * time.Second

func newRaftMux(ln net.Listener, raft func(net.Conn) bool, h http.Handler, log *zap.Logger) *raftMux {
	m := &raftMux{ln: ln, raft: raft, log: log, firstByte: firstByteTimeout, silent: map[net.Conn]time.Time{}, silentCap: maxSilent,
		httpLn: &chanListener{addr: ln.Addr(), c: make(chan net.Conn), done: make(chan struct{})}}
	m.http = &http.Server{Handler: h, ReadHeaderTimeout: httpHeaderTimeout, ErrorLog: zap.NewStdLog(log)}
	m.initCaps()
	return m
}

// start serves until close. Its goroutines are counted before they start,
// so close's wait cannot miss one.
func (m *raftMux) start() {
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		_ = m.http.Serve(m.httpLn)
	}()
	go func() {
		defer m.wg.Done()
		m.accept()
	}()
}

// accept accepts until the listener is closed.
func (m *raftMux) accept() {
	raftnet.AcceptLoop(m.caps.lim.Listen(m.ln), m.log, func(c net.Conn) {
		m.wg.Add(1) // accept's own count keeps the group above zero
		go func() { defer m.wg.Done(); m.route(c) }()
	})
}

func (m *raftMux) route(c net.Conn) {
	// Tracked from the start, so that close() cuts a connection still
	// waiting for its first byte instead of waiting out firstByteTimeout.
	if !m.conns.Add(c) {
		_ = c.Close()
		return
	}
	defer m.conns.Remove(c)
	if c = m.tls.accept(c); c == nil {
		return // refused: closed, logged and counted
	}
	m.waitFirstByte(c)
	_ = c.SetReadDeadline(time.Now().Add(m.firstByteFor(c)))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	m.mu.Lock()
	delete(m.silent, c)
	m.mu.Unlock()
	if err != nil {
		m.noFirstByte(c, err)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	// A snapshot stream aborted before its first chunk opens with the
	// poison (0x00 0x00) instead of the magic; that is Raft's too. HTTP
	// opens with a method name.
	if first[0] != dragonboatMagic && first[0] != raftPoison {
		// The HTTP server owns it from here (and closes it at shutdown).
		select {
		case m.httpLn.c <- pc:
		case <-m.httpLn.done:
			_ = c.Close()
		}
		return
	}
	if first[0] == dragonboatMagic && !m.firstFrameOK(c, br) {
		_ = c.Close()
		return
	}
	if !m.raft(pc) {
		_ = c.Close() // Raft has not started here yet; the peer retries
	}
}

// waitFirstByte records c as silent; past maxSilent the oldest silent
// connection is closed, a stranger's before a member's (raftcaps.go), so
// that idle connections cannot lock real peers out (a real peer
// reconnects; its transport retries).
func (m *raftMux) waitFirstByte(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.silent[c] = time.Now()
	if len(m.silent) <= m.silentCap {
		return
	}
	var oldest, stranger net.Conn
	var at, strangerAt time.Time
	for sc, t := range m.silent {
		if oldest == nil || t.Before(at) {
			oldest, at = sc, t
		}
		if (stranger == nil || t.Before(strangerAt)) && !m.caps.isMember(connlimit.IPOf(sc.RemoteAddr())) {
			stranger, strangerAt = sc, t
		}
	}
	if stranger != nil {
		oldest = stranger
	}
	delete(m.silent, oldest)
	m.caps.silentEvicted.Add(1)
	m.logRefusal("raft port: too many connections waiting for their first byte; closing the oldest", oldest, errSilent)
	_ = oldest.Close()
}

// close stops accepting, ends the HTTP side and cuts every Raft
// connection (Dragonboat is stopped by then or reconnects on its own).
func (m *raftMux) close() {
	if m.stopWatch != nil {
		m.stopWatch()
	}
	_ = m.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.http.Shutdown(ctx); err != nil {
		_ = m.http.Close()
	}
	m.httpLn.Close()
	m.conns.CloseAll()
	m.wg.Wait()
}

// peekedConn replays what was peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener hands the mux's HTTP connections to an http.Server.
type chanListener struct {
	addr net.Addr
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
