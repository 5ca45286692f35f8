package bootstrap

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/ingest"
	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/test/natstest"
)

// A node with -ingest-config applies SQL from NATS through Raft and
// replies; a message stored twice under one Nats-Msg-Id (a publisher's
// retry after the stream's duplicate window) is applied once, the second
// answered from the state machine's dedup record; /status shows the
// section.
func TestIngestThroughRaft(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js := natstest.Connect(t, url)
	// A tiny duplicate window: the same Nats-Msg-Id published again is
	// stored again, as a publisher's late retry would be.
	natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "SQL", Subjects: []string{"sql.>"}, Duplicates: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ic, err := ingest.ParseConfig(url + "/sql.in")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(), Ingest: &ic})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Shutdown(); err != nil {
			t.Error(err)
		}
	}()
	waitPhase(t, n, lifecycle.Ready)
	replies, err := nc.SubscribeSync("reply.t")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(body, msgID string) (string, bool) {
		t.Helper()
		m := nats.NewMsg("sql.in")
		m.Data = []byte(body)
		m.Header.Set("Reply-To", "reply.t")
		if msgID != "" {
			m.Header.Set(jetstream.MsgIDHeader, msgID)
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate {
			return "", false
		}
		r, err := replies.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("no reply to %s: %v", body, err)
		}
		return string(r.Data), true
	}
	if got, _ := ask(`["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]`, ""); got != `{"results":[{}]}` {
		t.Fatalf("create: %s", got)
	}
	const insert = `[["INSERT INTO t(v) VALUES(?)", "a"]]`
	first, _ := ask(insert, "order-1")
	if first != `{"results":[{"last_insert_id":1,"rows_affected":1}]}` {
		t.Fatalf("insert: %s", first)
	}
	// Published again until the stream stores it (its duplicate window
	// has passed), then answered from the dedup record.
	deadline := time.Now().Add(20 * time.Second)
	for {
		again, stored := ask(insert, "order-1")
		if stored {
			if again != first {
				t.Fatalf("second delivery answered %s, want the first answer %s", again, first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream never stored the retry")
		}
	}
	if got, _ := ask(`["SELECT COUNT(*) FROM t"]`, ""); got != `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[1]]}]}` {
		t.Fatalf("count: %s", got)
	}
	resp, err := http.Get("http://" + n.HTTPAddr().String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st struct {
		Ingest map[string]any `json:"ingest"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ingest["connected"] != true || st.Ingest["stream"] != "SQL" || st.Ingest["num_applied"] != float64(3) {
		t.Fatalf("/status ingest = %v", st.Ingest)
	}
	// /metrics reads the same published counters.
	if m := getMetrics(t, n); !strings.Contains(m, "\nskiff_ingest_applied_total 3\n") || !strings.Contains(m, "\nskiff_ingest_connected 1\n") {
		t.Errorf("/metrics lacks the ingest counters:\n%.3000s", m)
	}
}
