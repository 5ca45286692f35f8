package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"go.uber.org/zap/zaptest"
)

// dialFrom connects to base's host from the loopback IP local (another
// host, as the server sees it).
func dialFrom(t *testing.T, base, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// served sends one request on c and reports whether an answer came (the
// connection was admitted and stays open, keep-alive).
func served(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return true
}

// refusedFrom reports whether a connection from local is closed by the
// server at once: reset before the dial returns, or closed after.
func refusedFrom(t *testing.T, base, local string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return closedByServer(c, 5*time.Second)
}

// closedByServer reports whether c is closed by the far end (EOF or reset)
// rather than left open.
func closedByServer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Connections past the per-IP cap and past the total cap are closed at
// once and counted in /status http; closing one frees its slot.
func TestHTTPConnectionCaps(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGatewayCfg(t, Config{MaxConns: 3, MaxConnsPerIP: 2, Logger: zaptest.NewLogger(t)}, &fakeData{}, p)

	a1, a2 := dialFrom(t, base, "127.0.0.1"), dialFrom(t, base, "127.0.0.1")
	if !served(a1) || !served(a2) {
		t.Fatal("connections within the caps were not served")
	}
	if !refusedFrom(t, base, "127.0.0.1") {
		t.Fatal("a third connection from one IP (cap 2) was not closed")
	}
	b1 := dialFrom(t, base, "127.0.0.2")
	if !served(b1) {
		t.Fatal("another IP's connection within the total cap was not served")
	}
	if !refusedFrom(t, base, "127.0.0.3") {
		t.Fatal("a connection past the total cap (3) was not closed")
	}
	if !served(a1) {
		t.Fatal("an admitted keep-alive connection was cut by the refusals")
	}
	a2.Close()

	// The freed slot serves /status; the admitted connections count.
	var doc struct {
		HTTP struct {
			Open    int `json:"conns_open"`
			Refused int `json:"conns_refused"`
		} `json:"http"`
	}
	var raw map[string]map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		// a2's close reaches the server asynchronously: its slot frees
		// when the server reads the EOF.
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "/status")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after freeing a slot: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll: nothing to wait on across the socket
	}
	conns, _ := raw["http"]["conns"].(map[string]any)
	if doc.HTTP.Refused < 2 || conns["refused_per_ip_cap"].(float64) < 1 || conns["refused_total_cap"].(float64) < 1 {
		t.Fatalf("refusals not counted: http %v", raw["http"])
	}
	if doc.HTTP.Open != 3 || conns["max"].(float64) != 3 || conns["max_per_ip"].(float64) != 2 {
		t.Fatalf("open %d (want a1, b1 and this request), conns %v", doc.HTTP.Open, conns)
	}
}

// A client trickling its headers (slow loris) is cut at ReadHeaderTimeout
// however steadily it sends.
func TestHTTPSlowHeadersCut(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	const headerTimeout = 500 * time.Millisecond
	base := startGatewayCfg(t, Config{ReadHeaderTimeout: headerTimeout}, &fakeData{}, p)
	start := time.Now() // the server's clock starts at its accept, after this
	c := dialFrom(t, base, "127.0.0.2")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		if _, err := io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n"); err != nil {
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := fmt.Fprintf(c, "X-Slow-%d: x\r\n", i); err != nil {
				return
			}
		}
	}()
	if !closedByServer(c, 10*time.Second) {
		t.Fatal("a slow-loris header sender was not cut")
	}
	if took := time.Since(start); took < headerTimeout {
		t.Fatalf("cut after %v, before ReadHeaderTimeout %v", took, headerTimeout)
	}
}

// Headers past MaxHeaderBytes are refused (431), not buffered.
func TestHTTPMaxHeaderBytes(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	base := startGatewayCfg(t, Config{MaxHeaderBytes: 4 << 10}, &fakeData{}, p)
	req, err := http.NewRequest(http.MethodGet, base+"/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d for 64 KiB of headers with a 4 KiB bound", resp.StatusCode)
	}
}
