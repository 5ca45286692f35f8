package connlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A body that stops arriving fails the handler's read after the bound and
// the connection is dropped; a body that arrives is read whole, and a
// handler running longer than the bound afterwards is not cut.
func TestBodyProgress(t *testing.T) {
	const bound = 300 * time.Millisecond
	readErr := make(chan error, 4)
	h := BodyProgress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			return
		}
		select {
		case <-time.After(2 * bound): // a slow handler after its body
		case <-r.Context().Done():
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(b)
	}), bound)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	if err := <-readErr; err == nil {
		t.Fatal("a stalled body was read without error")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the stalled connection was not closed: %v", err)
	}

	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c2, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhelloworld")
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.EqualFold(string(b), "helloworld") {
		t.Fatalf("whole body: %d %q", resp.StatusCode, b)
	}
}
