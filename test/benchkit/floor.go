package benchkit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Floor servers: what a node would cost if it did nothing but answer.
const (
	FloorNetHTTP  = "nethttp"
	FloorFastHTTP = "fasthttp"
	// FloorAdaptor is fasthttp calling the net/http handler through
	// fasthttpadaptor: what serving Skiff's handlers unchanged would cost.
	FloorAdaptor = "adaptor"
)

// ServeFloor answers every request on addr as a node answers a point read
// (body, with a node's headers), doing no other work, with the named HTTP
// server, until the process is stopped.
func ServeFloor(server, addr string, body []byte) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("X-Rqlite-Version", "floor")
		h.Set("X-Skiff-Version", "floor")
		h.Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
	switch server {
	case FloorNetHTTP:
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: handler}
		return srv.Serve(ln)
	case FloorAdaptor:
		srv := &fasthttp.Server{ReadTimeout: 10 * time.Second, Handler: fasthttpadaptor.NewFastHTTPHandler(handler)}
		return srv.Serve(ln)
	case FloorFastHTTP:
		srv := &fasthttp.Server{ReadTimeout: 10 * time.Second, Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("X-Rqlite-Version", "floor")
			ctx.Response.Header.Set("X-Skiff-Version", "floor")
			ctx.SetContentType("application/json; charset=utf-8")
			ctx.SetBody(body)
		}}
		return srv.Serve(ln)
	}
	_ = ln.Close()
	return fmt.Errorf("unknown floor server %q", server)
}

// StartSelf starts this executable again as a helper process listening on
// a free loopback address (args gets the address and returns the
// command's arguments) and returns once the address accepts connections.
func StartSelf(id string, args func(addr string) []string) (*Node, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, HTTP: addr}
	n.Cmd = exec.Command(self, args(addr)...)
	n.Cmd.Stdout, n.Cmd.Stderr = os.Stderr, os.Stderr
	if err := n.Cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return n, nil
		}
	}
	Stop(n)
	return nil, errors.New(id + " did not start")
}
