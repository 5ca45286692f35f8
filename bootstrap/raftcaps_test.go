package bootstrap

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// startCappedMux starts a mux serving echoRaft with the given caps and
// member IPs (nil: membership unknown); tune, if set, adjusts it before it
// starts.
func startCappedMux(t *testing.T, maxConns, maxPerIP int, members []string, tune func(*raftMux)) *raftMux {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newRaftMux(ln, echoRaft, http.NotFoundHandler(), zap.NewNop())
	if err := m.setLimits(maxConns, maxPerIP); err != nil {
		t.Fatal(err)
	}
	if members != nil {
		ips := map[netip.Addr]bool{}
		for _, s := range members {
			ips[netip.MustParseAddr(s)] = true
		}
		m.caps.members.Store(&ips)
	}
	if tune != nil {
		tune(m)
	}
	m.start()
	t.Cleanup(m.close)
	return m
}

// dialMux connects from the loopback IP local; nil if the mux reset the
// connection before the dial returned (a refusal).
func dialMux(t *testing.T, m *raftMux, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", m.ln.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoes reports whether c reaches Raft: a valid frame comes back.
func echoes(c net.Conn) bool {
	msg := testFrame([]byte("ping"))
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return false
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return err == nil && string(got) == string(msg)
}

// closed reports whether the mux closed c (nil: refused at dial) within
// the bound.
func closed(c net.Conn, within time.Duration) bool {
	if c == nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func refusedCounts(m *raftMux) map[string]uint64 {
	return m.status().(map[string]any)["refused"].(map[string]uint64)
}

// Past the per-IP cap a connection is refused at once; other IPs, and the
// connections admitted, are served.
func TestRaftCapsPerIP(t *testing.T) {
	m := startCappedMux(t, 0, 3, nil, nil)
	var held []net.Conn
	for range 3 {
		held = append(held, dialMux(t, m, "127.0.0.2"))
	}
	if !closed(dialMux(t, m, "127.0.0.2"), 5*time.Second) {
		t.Fatal("a fourth connection from one IP (cap 3) was not closed")
	}
	if c := dialMux(t, m, "127.0.0.1"); !echoes(c) {
		t.Fatal("another IP was not served")
	}
	if !echoes(held[0]) {
		t.Fatal("an admitted silent connection was not served once it spoke")
	}
	if n := refusedCounts(m)["per_ip_cap"]; n != 1 {
		t.Fatalf("per_ip_cap refusals %d, want 1", n)
	}
	st := m.status().(map[string]any)
	for _, k := range []string{"addr", "timeout", "encrypted"} { // rqlite's keys
		if _, ok := st[k].(string); !ok {
			t.Fatalf("status lacks rqlite's %q: %v", k, st)
		}
	}
}

// The total cap refuses strangers; members' IPs pass it and do not use it.
func TestRaftCapsMembersExemptFromTotal(t *testing.T) {
	m := startCappedMux(t, 2, 10, []string{"127.0.0.1"}, nil)
	dialMux(t, m, "127.0.0.2")
	dialMux(t, m, "127.0.0.3")
	// Admission is counted by the accept loop: wait until both are.
	deadline := time.Now().Add(5 * time.Second)
	for m.caps.lim.Stats().Open < 2 {
		if time.Now().After(deadline) {
			t.Fatal("two connections never admitted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !closed(dialMux(t, m, "127.0.0.4"), 5*time.Second) {
		t.Fatal("a stranger past the total cap was not closed")
	}
	for range 3 {
		if c := dialMux(t, m, "127.0.0.1"); !echoes(c) {
			t.Fatal("a member's connection was refused by the total cap")
		}
	}
	if n := refusedCounts(m)["total_cap"]; n != 1 {
		t.Fatalf("total_cap refusals %d, want 1", n)
	}
}

// Under pressure (more than half the silent cap silent) a stranger's new
// silent connection is cut after the short bound; a member's may stay
// silent (a snapshot sender before its first chunk), and so may a
// stranger's without pressure.
func TestRaftCapsStrangerFirstByte(t *testing.T) {
	m := startCappedMux(t, 0, 0, []string{"127.0.0.1"}, func(m *raftMux) {
		m.caps.strangerFirstByte = 300 * time.Millisecond
		m.silentCap = 4
	})
	calm := []net.Conn{dialMux(t, m, "127.0.0.2"), dialMux(t, m, "127.0.0.2")}
	waitSilent(t, m, 2)
	pressed := dialMux(t, m, "127.0.0.2")
	waitSilent(t, m, 3)
	member := dialMux(t, m, "127.0.0.1")
	if !closed(pressed, 5*time.Second) {
		t.Fatal("a silent stranger under pressure was not cut")
	}
	if !echoes(member) {
		t.Fatal("a member's silent connection was cut with the stranger's")
	}
	for _, c := range calm {
		if !echoes(c) {
			t.Fatal("a stranger's silent connection without pressure was cut")
		}
	}
	if n := refusedCounts(m)["first_byte_timeout"]; n != 1 {
		t.Fatalf("first_byte_timeout refusals %d, want 1", n)
	}
}

// waitSilent waits until n connections wait for their first byte.
func waitSilent(t *testing.T, m *raftMux, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		got := len(m.silent)
		m.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d silent connections, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Past the silent cap a stranger's connection is evicted before an older
// member's.
func TestRaftCapsEvictsStrangerFirst(t *testing.T) {
	m := startCappedMux(t, 0, 0, []string{"127.0.0.1"}, func(m *raftMux) { m.silentCap = 2 })
	member := dialMux(t, m, "127.0.0.1")
	waitSilent(t, m, 1)
	stranger := dialMux(t, m, "127.0.0.2")
	waitSilent(t, m, 2)
	late := dialMux(t, m, "127.0.0.3")
	if !closed(stranger, 5*time.Second) {
		t.Fatal("the stranger's silent connection was not evicted")
	}
	if !echoes(member) || !echoes(late) {
		t.Fatal("the member's (older) or the newest connection was cut")
	}
	if n := refusedCounts(m)["silent_evicted"]; n != 1 {
		t.Fatalf("silent_evicted %d, want 1", n)
	}
}

// A first frame that is invalid, or whose head does not follow its first
// byte, never reaches Raft.
func TestRaftCapsBadFirstFrame(t *testing.T) {
	m := startCappedMux(t, 0, 0, nil, nil)
	bad := testFrame([]byte("x"))
	bad[5] ^= 0xFF // size changed: the header checksum fails
	c := dialMux(t, m, "127.0.0.2")
	if _, err := c.Write(bad); err != nil {
		t.Fatal(err)
	}
	if !closed(c, 5*time.Second) {
		t.Fatal("a bad first frame was not refused")
	}
	half := dialMux(t, m, "127.0.0.2")
	if _, err := half.Write(testFrame([]byte("x"))[:5]); err != nil {
		t.Fatal(err)
	}
	if !closed(half, firstFrameTimeout+5*time.Second) {
		t.Fatal("a first frame stalled after its first bytes was not refused")
	}
	if n := refusedCounts(m)["bad_first_frame"]; n != 2 {
		t.Fatalf("bad_first_frame refusals %d, want 2", n)
	}
}

// HTTP on the Raft port: headers past raftHTTPMaxHeaderBytes are refused
// (431), not buffered.
func TestRaftCapsHTTPHeaderBytes(t *testing.T) {
	m := startCappedMux(t, 0, 0, nil, nil)
	req, err := http.NewRequest(http.MethodGet, "http://"+m.ln.Addr().String()+"/skiff/node", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 2*raftHTTPMaxHeaderBytes))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d for %d bytes of headers", resp.StatusCode, 2*raftHTTPMaxHeaderBytes)
	}
}

// Member IPs: literal addresses as they are (IPv4-mapped unmapped), names
// resolved; one that does not resolve makes the membership unknown rather
// than take a member for a stranger.
func TestResolveMemberIPs(t *testing.T) {
	ctx := t.Context()
	got := resolveIPs(ctx, []string{"10.1.2.3:4002", "[::ffff:10.1.2.4]:4002", "[fd00::1]:4002", "localhost:4002"})
	if got == nil {
		t.Fatal("resolvable addresses gave no member set")
	}
	for _, want := range []string{"10.1.2.3", "10.1.2.4", "fd00::1"} {
		if !(*got)[netip.MustParseAddr(want)] {
			t.Errorf("%s missing from %v", want, *got)
		}
	}
	if !(*got)[netip.MustParseAddr("127.0.0.1")] && !(*got)[netip.MustParseAddr("::1")] {
		t.Errorf("localhost not resolved: %v", *got)
	}
	if got := resolveIPs(ctx, []string{"10.1.2.3:4002", "no-such-host.invalid:4002"}); got != nil {
		t.Fatalf("an unresolvable member gave a member set %v", *got)
	}
}

// fakeMembers is a memberSource whose Changed reports each call: the
// watcher calls it at the top of each round, after the previous round's
// member IPs are stored.
type fakeMembers struct {
	mu      sync.Mutex
	st      lifecycle.State
	changed chan struct{}
	calls   chan struct{}
}

func (f *fakeMembers) State() *lifecycle.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	return &st
}

func (f *fakeMembers) Changed() <-chan struct{} {
	f.mu.Lock()
	ch := f.changed
	f.mu.Unlock()
	f.calls <- struct{}{}
	return ch
}

// set publishes members and wakes the watcher, as the lifecycle does.
func (f *fakeMembers) set(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.RaftMembers = nil
	for i, a := range addrs {
		f.st.RaftMembers = append(f.st.RaftMembers, lifecycle.Member{ReplicaID: uint64(i + 1), RaftAddr: a})
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// The member IPs follow a membership change when the lifecycle signals
// it (no polling), and close waits for the watcher.
func TestWatchMembersOnChange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := newRaftMux(ln, echoRaft, http.NotFoundHandler(), zap.NewNop())
	m.start()
	src := &fakeMembers{changed: make(chan struct{}), calls: make(chan struct{})}
	m.watchMembers(t.Context(), src)
	<-src.calls // first round: no members yet
	if m.caps.members.Load() != nil {
		t.Fatal("member IPs set without a membership")
	}
	src.set("10.0.0.1:4002", "10.0.0.2:4002")
	<-src.calls // woken; this round stores the IPs
	src.set("10.0.0.1:4002", "10.0.0.2:4002")
	<-src.calls // the previous round is done
	if got := m.caps.members.Load(); got == nil || len(*got) != 2 || !(*got)[netip.MustParseAddr("10.0.0.2")] {
		t.Fatalf("member IPs %v after the change", got)
	}
	done := make(chan struct{})
	go func() {
		// Drain the watcher's calls until close has waited for it.
		for {
			select {
			case <-src.calls:
			case <-done:
				return
			}
		}
	}()
	m.close()
	close(done)
}
