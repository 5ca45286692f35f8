package cdc

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffdb/skiff/test/natstest"
)

func streamMsgs(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestServiceNATS: one JetStream message per index, Nats-Msg-Id
// <service_id>-<index>, the stream found by subject; a second node that
// sends the same indexes again (a new leader that had not seen the
// high-water mark) is deduplicated by the stream.
func TestServiceNATS(t *testing.T) {
	url, _ := natstest.Start(t)
	st := natstest.Stream(t, url, "CDC", "cdc.>")
	endpoint := url + "/cdc.events"

	send := func(node string) *Service {
		ob := openOutbox(t, t.TempDir())
		cfg := testConfig(t, endpoint)
		cfg.NodeID, cfg.ServiceID = node, "svc"
		s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
		if err != nil {
			t.Fatal(err)
		}
		captureRange(t, ob, 1, 20)
		stop := run(t, s)
		eventually(t, node+" delivered 20", func() bool { return s.lastSent.Load() == 20 })
		stop()
		return s
	}
	send("node-1")
	if n := streamMsgs(t, st); n != 20 {
		t.Fatalf("stream holds %d messages, want 20", n)
	}
	s2 := send("node-2")
	if n := streamMsgs(t, st); n != 20 {
		t.Fatalf("after a re-send the stream holds %d messages, want 20", n)
	}
	if d := s2.Vars().(map[string]any)["num_nats_duplicates"]; d != int64(20) {
		t.Fatalf("duplicates %v", d)
	}
	// Each message: the envelope of one index, with its ID.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for seq := uint64(1); seq <= 20; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var env rqEnvelopeIn
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if len(env.Payload) != 1 || env.Payload[0].Index != seq || env.NodeID != "node-1" || env.ServiceID != "svc" || m.Subject != "cdc.events" {
			t.Fatalf("message %d: subject %s, %s", seq, m.Subject, m.Data)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != "svc-"+strconv.FormatUint(seq, 10) {
			t.Fatalf("message %d: Nats-Msg-Id %q", seq, id)
		}
	}
}

// TestServiceNATSNoStream: while no stream captures the subject, tries
// fail (counted) and nothing is lost; once an operator creates one, it is
// found by subject and every index is delivered.
func TestServiceNATSNoStream(t *testing.T) {
	url, _ := natstest.Start(t)
	ob := openOutbox(t, t.TempDir())
	cfg := testConfig(t, url+"/nowhere")
	s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 2)
	run(t, s)
	eventually(t, "failures", func() bool { return s.Vars().(map[string]any)["num_failed"].(int64) >= 2 })
	st := natstest.Stream(t, url, "LATE", "nowhere")
	eventually(t, "delivered once the stream exists", func() bool { return s.lastSent.Load() == 2 })
	if n := streamMsgs(t, st); n != 2 {
		t.Fatalf("stream holds %d", n)
	}
}

// TestServiceNATSReconnect: the NATS server goes away and comes back on
// the same port (and store); the sink reconnects and nothing is lost.
func TestServiceNATSReconnect(t *testing.T) {
	url, srv := natstest.Start(t)
	natstest.Stream(t, url, "CDC", "cdc.>")

	ob := openOutbox(t, t.TempDir())
	cfg := testConfig(t, url+"/cdc.events")
	s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 5)
	run(t, s)
	eventually(t, "1..5", func() bool { return s.lastSent.Load() == 5 })
	srv.Shutdown()
	captureRange(t, ob, 6, 10)
	eventually(t, "failures while down", func() bool { return s.Vars().(map[string]any)["num_failed"].(int64) > 0 })
	srv.Restart()
	eventually(t, "6..10 after the restart", func() bool { return s.lastSent.Load() == 10 })
	_, js := natstest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	str, err := js.Stream(ctx, "CDC")
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, str); n != 10 {
		t.Fatalf("stream holds %d messages, want 10", n)
	}
}
