package test

import (
	"context"
	"fmt"
	"testing"

	"github.com/skiffdb/skiff/test/testport"
	"github.com/skiffdb/skiff/test/webhook"
)

// TestCDCSnapshotGapBackfill (issue 15, "never gaps"): with the webhook
// down (nothing acknowledged, high-water mark 0), a stopped follower falls
// behind a forced log truncation and catches up by installing a snapshot,
// so it never captures the entries the snapshot covers. It then becomes the
// leader; once the receiver listens it gets every insert's index - the
// new leader fetched the changes it never captured from another voter's
// outbox - and no gap is counted.
func TestCDCSnapshotGapBackfill(t *testing.T) {
	addr := testport.Addr(t)
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON("http://"+addr+"/cdc", nil))
	c := newClusterWith(t, 3, withFlags("-cdc-config", cfg))
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createItems), `{"results":[{}]}`)
	l := &cdcLoad{changedAt: map[uint64]int64{}}
	var indexes []uint64
	insert := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			a, ok, err := execIndexed(context.Background(), leader.client, leader.baseURL(),
				[]any{"INSERT INTO items(id, v, n, f) VALUES(?, ?, ?, 2.5)", i, fmt.Sprintf("row%d", i), i})
			l.record(a, ok, err)
			if !ok || err != nil {
				t.Fatalf("insert %d: %v", i, err)
			}
			indexes = append(indexes, a.RaftIndex)
		}
	}
	insert(1, 10)
	behind := others(c.ms, leader)[0]
	if err := behind.stop(); err != nil {
		t.Fatal(err)
	}
	insert(11, 60)
	// Truncate the leader's log: the stopped node can only catch up by a
	// snapshot.
	if r := leader.post("/snapshot?trailing_logs=0", ""); r.status/100 != 2 {
		t.Fatalf("POST /snapshot: %s", r)
	}
	behind.start()
	behind.waitReady(clusterTimeout)
	waitCDC(t, behind, "a snapshot installed past the unacknowledged changes", func(d jsonDoc) bool {
		return d.num("snapshot_floor") >= float64(indexes[len(indexes)-1])
	})
	wantOK(t, "stepdown to "+behind.id, leader.post("/leader", fmt.Sprintf(`{"id":%q}`, behind.id)), "")
	c.waitLeader(behind)
	insert2 := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			a, ok, err := execIndexed(context.Background(), behind.client, behind.baseURL(),
				[]any{"INSERT INTO items(id, v, n, f) VALUES(?, ?, ?, 2.5)", i, fmt.Sprintf("row%d", i), i})
			l.record(a, ok, err)
			if !ok || err != nil {
				t.Fatalf("insert %d on the new leader: %v", i, err)
			}
			indexes = append(indexes, a.RaftIndex)
		}
	}
	insert2(61, 70)

	recv, err := webhook.New(webhook.Config{Addr: addr})
	if err != nil {
		t.Fatalf("the receiver cannot take the sink's address: %v", err)
	}
	defer recv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cdcDeliveryTimeout)
	defer cancel()
	if err := recv.WaitIndex(ctx, indexes[len(indexes)-1]); err != nil {
		c.dumpLogs()
		t.Fatal(err)
	}
	for _, v := range recv.Violations() {
		t.Errorf("webhook: %s", v)
	}
	got := map[uint64]bool{}
	for _, g := range recv.Delivered() {
		got[g.Index] = true
	}
	for i, idx := range indexes {
		if !got[idx] {
			c.dumpLogs()
			t.Fatalf("insert %d (index %d) never delivered", i+1, idx)
		}
	}
	model := checkDelivery(t, recv.Delivered(), l)
	checkAgainstTables(t, c, behind, model)
	waitCDC(t, behind, "no gap, nothing missing", func(d jsonDoc) bool {
		return d.num("gaps") == 0 && d.num("missing_to") == 0
	})
	vars, _ := getDoc(t, behind, "/debug/vars")["cdc"].(map[string]any)
	if n, _ := vars["num_backfills"].(float64); n < 1 {
		t.Fatalf("%s never fetched the range it missed from a peer: /debug/vars cdc %v", behind.id, vars)
	}
}
