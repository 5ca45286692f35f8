package test

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsUpTimeout bounds the wait for the embedded NATS server to accept
// clients.
const natsUpTimeout = 10 * time.Second

// startNATS starts a real NATS server with JetStream in the test process,
// on a free loopback port and a temporary store, and returns its client
// URL (nats://127.0.0.1:port). It is shut down when the test ends.
func startNATS(t *testing.T) string {
	t.Helper()
	opts := &natsserver.Options{
		Host:      "127.0.0.1",
		Port:      natsserver.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	}
	s, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(natsUpTimeout) {
		s.Shutdown()
		t.Fatalf("nats server not ready within %v", natsUpTimeout)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// natsStream creates the JetStream stream name capturing subjects on the
// server at url, as an operator would before pointing Skiff at it.
func natsStream(t *testing.T, url, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsUpTimeout)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: subjects, Duplicates: 2 * time.Minute})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return st
}

// TestNATSServerEmbedded checks the test's own NATS server: a message
// published twice with one Nats-Msg-Id is stored once (the de-duplication
// window CDC's exactly-once-in-the-stream relies on).
func TestNATSServerEmbedded(t *testing.T) {
	url := startNATS(t)
	st := natsStream(t, url, "PROBE", "probe.>")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsUpTimeout)
	defer cancel()
	for range 2 {
		if _, err := js.Publish(ctx, "probe.a", []byte("x"), jetstream.WithMsgID("id-1")); err != nil {
			t.Fatal(err)
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
}
