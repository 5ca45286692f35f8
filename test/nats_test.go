package test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffdb/skiff/test/natstest"
)

// natsUpTimeout bounds the NATS calls of the end-to-end tests.
const natsUpTimeout = 10 * time.Second

// TestNATSServerEmbedded checks the test's own NATS server (natstest): a
// message published twice with one Nats-Msg-Id is stored once (the
// de-duplication window CDC's exactly-once-in-the-stream relies on).
func TestNATSServerEmbedded(t *testing.T) {
	url, _ := natstest.Start(t)
	st := natstest.Stream(t, url, "PROBE", "probe.>")
	_, js := natstest.Connect(t, url)
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
