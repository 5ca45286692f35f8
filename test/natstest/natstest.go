package natstest

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// timeout bounds the wait for the server to accept clients and each
// JetStream call made here.
const timeout = 20 * time.Second

// Option changes the server's options.
type Option func(*natsserver.Options)

// Port listens on port instead of a free one.
func Port(port int) Option { return func(o *natsserver.Options) { o.Port = port } }

// StoreDir keeps JetStream's store in dir instead of a temporary one.
func StoreDir(dir string) Option { return func(o *natsserver.Options) { o.StoreDir = dir } }

// TLS makes the server require TLS with cfg.
func TLS(cfg *tls.Config) Option {
	return func(o *natsserver.Options) { o.TLS, o.TLSTimeout, o.TLSConfig = true, 5, cfg }
}

// Server is a running (or shut down) embedded server.
type Server struct {
	t    testing.TB
	opts natsserver.Options
	srv  *natsserver.Server
}

// Start starts a NATS server with JetStream and returns its client URL
// (nats://127.0.0.1:port) and the server; it is shut down when the test
// ends.
func Start(t testing.TB, opts ...Option) (string, *Server) {
	t.Helper()
	s := &Server{t: t, opts: natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.start()
	// A restart takes the same port.
	s.opts.Port = s.Port()
	t.Cleanup(s.Shutdown)
	return s.URL(), s
}

func (s *Server) start() {
	s.t.Helper()
	opts := s.opts
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		s.t.Fatalf("nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		s.t.Fatalf("nats server not ready within %v", timeout)
	}
	s.srv = srv
}

// URL is the server's client URL.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Port is the port the server listens on.
func (s *Server) Port() int { return s.srv.Addr().(*net.TCPAddr).Port }

// Shutdown stops the server and waits for it to be gone.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Restart starts the server again, on the same port and store, shutting
// it down first if it runs.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Connect connects to the server at url and returns the connection,
// closed when the test ends, and its JetStream context.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// CreateStream creates the stream cfg on js.
func CreateStream(t testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
	}
	return st
}

// Stream creates the stream name capturing subjects on the server at url,
// as an operator would before pointing Skiff at it, with a 2-minute
// duplicate window (Nats-Msg-Id de-duplication).
func Stream(t testing.TB, url, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	_, js := Connect(t, url)
	return CreateStream(t, js, jetstream.StreamConfig{Name: name, Subjects: subjects, Duplicates: 2 * time.Minute})
}
