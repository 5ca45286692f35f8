package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

func tcp(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1234} }

func TestAdmit(t *testing.T) {
	member := netip.MustParseAddr("10.0.0.9")
	type step struct {
		ip      string
		release int // >0: release the admission made at this step (1-based) instead
		want    error
	}
	cases := []struct {
		name  string
		cfg   Config
		steps []step
		open  int
		total uint64
		perIP uint64
	}{
		{name: "no caps", cfg: Config{}, steps: []step{{ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.2"}}, open: 3},
		{name: "per-IP cap", cfg: Config{MaxPerIP: 2}, steps: []step{
			{ip: "10.0.0.1"}, {ip: "10.0.0.1"}, {ip: "10.0.0.1", want: ErrPerIPCap}, {ip: "10.0.0.2"},
		}, open: 3, perIP: 1},
		{name: "IPv4-mapped counts as IPv4", cfg: Config{MaxPerIP: 1}, steps: []step{
			{ip: "10.0.0.1"}, {ip: "::ffff:10.0.0.1", want: ErrPerIPCap},
		}, open: 1, perIP: 1},
		{name: "total cap", cfg: Config{MaxConns: 2}, steps: []step{
			{ip: "10.0.0.1"}, {ip: "10.0.0.2"}, {ip: "10.0.0.3", want: ErrTotalCap},
		}, open: 2, total: 1},
		{name: "release frees a slot", cfg: Config{MaxConns: 1, MaxPerIP: 1}, steps: []step{
			{ip: "10.0.0.1"}, {ip: "10.0.0.1", want: ErrPerIPCap}, {release: 1}, {ip: "10.0.0.1"},
		}, open: 1, perIP: 1},
		{name: "exempt IPs pass the total cap and do not use it", cfg: Config{MaxConns: 1, MaxPerIP: 2, Exempt: func(ip netip.Addr) bool { return ip == member }}, steps: []step{
			{ip: "10.0.0.1"}, {ip: "10.0.0.2", want: ErrTotalCap}, {ip: "10.0.0.9"}, {ip: "10.0.0.9"},
			{ip: "10.0.0.9", want: ErrPerIPCap},
		}, open: 3, total: 1, perIP: 1},
		{name: "released twice counts once", cfg: Config{MaxConns: 1}, steps: []step{
			{ip: "10.0.0.1"}, {release: 1}, {release: 1}, {ip: "10.0.0.2"}, {ip: "10.0.0.3", want: ErrTotalCap},
		}, open: 1, total: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			releases := map[int]func(){}
			for i, s := range tc.steps {
				if s.release > 0 {
					releases[s.release]()
					continue
				}
				rel, err := l.Admit(tcp(s.ip))
				if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
					t.Fatalf("step %d (%s): got %v, want %v", i+1, s.ip, err, s.want)
				}
				if err == nil {
					releases[i+1] = rel
				}
			}
			st := l.Stats()
			if st.Open != tc.open || st.RefusedTotal != tc.total || st.RefusedPerIP != tc.perIP {
				t.Fatalf("stats %+v, want open %d, refused total %d, per IP %d", st, tc.open, tc.total, tc.perIP)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{MaxConns: -1}, {MaxPerIP: -1}, {LogEvery: -time.Second}} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: got %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

// The listener hands out admitted connections only; a refused one is
// closed at once, and closing an admitted one frees its slot.
func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim, err := New(Config{MaxPerIP: 2})
	if err != nil {
		t.Fatal(err)
	}
	ln := lim.Listen(inner)
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial("127.0.0.1")
	dial("127.0.0.1")
	first, second := <-accepted, <-accepted
	// Refused: reset before the dial returns, or closed after.
	if refused, err := net.Dial("tcp", inner.Addr().String()); err == nil {
		defer refused.Close()
		_ = refused.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := refused.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection past the per-IP cap got bytes")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a connection past the per-IP cap was not closed")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	// Another IP is not affected.
	dial("127.0.0.2")
	<-accepted
	if st := lim.Stats(); st.Open != 3 || st.RefusedPerIP != 1 {
		t.Fatalf("stats %+v", st)
	}
	first.Close()
	dial("127.0.0.1")
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("closing an admitted connection did not free its slot")
	}
	second.Close()
	if st := lim.Stats(); st.Open != 2 {
		t.Fatalf("open %d after closing two of four admitted", st.Open)
	}
}
