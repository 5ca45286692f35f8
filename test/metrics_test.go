package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promSamples parses Prometheus' text format into "name{labels}" -> value
// (labels as the server wrote them).
func promSamples(b []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// waitMetrics polls m's /metrics until cond holds (catchUpTimeout).
func waitMetrics(t *testing.T, m *member, what string, cond func(map[string]float64) bool) ([]byte, map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	for {
		r := m.get("/metrics")
		if r.status != http.StatusOK {
			t.Fatalf("%s: GET /metrics: %s", m.id, r)
		}
		s := promSamples(r.body)
		if cond(s) {
			return r.body, s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never held within %s; last /metrics:\n%.4000s", m.id, what, catchUpTimeout, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetricsCluster: on a real 3-node cluster, after writes and reads the
// leader's /metrics shows the applied index, the phase gauge, Raft and
// state machine figures and HTTP counts by route; the followers applied
// the same; promtool accepts the real output; a snapshot sent to a joiner
// is counted on both ends; -metrics=false serves none.
func TestMetricsCluster(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.leader
	wantOK(t, "CREATE TABLE", leader.execute(createT), `{"results":[{}]}`)
	const writes = 10
	for i := range writes {
		r := leader.execute(fmt.Sprintf(`["INSERT INTO t(v) VALUES('m%d')"]`, i))
		if r.status != http.StatusOK {
			t.Fatalf("insert %d: %s", i, r)
		}
	}
	for range 3 {
		if r := leader.query("SELECT COUNT(*) FROM t", "level=linearizable"); r.status != http.StatusOK {
			t.Fatalf("linearizable read: %s", r)
		}
	}
	body, s := waitMetrics(t, leader, "applied index and statements past the writes", func(s map[string]float64) bool {
		return s["skiff_raft_applied_index"] >= writes+1 && s["skiff_sm_statements_applied_total"] >= writes+1
	})
	want := map[string]func(float64) bool{
		`skiff_lifecycle_phase{phase="ready"}`:                                      func(v float64) bool { return v == 1 },
		`skiff_lifecycle_phase{phase="recovering"}`:                                 func(v float64) bool { return v == 0 },
		`skiff_raft_leader`:                                                         func(v float64) bool { return v == 1 },
		`skiff_raft_term`:                                                           func(v float64) bool { return v >= 1 },
		`skiff_raft_commit_index`:                                                   func(v float64) bool { return v >= writes+1 },
		`skiff_raft_members{suffrage="voter"}`:                                      func(v float64) bool { return v == 3 },
		`skiff_raft_leader_changes_total`:                                           func(v float64) bool { return v >= 1 },
		`skiff_raft_proposal_duration_seconds_count`:                                func(v float64) bool { return v >= writes+1 },
		`skiff_raft_proposal_writes_sum`:                                            func(v float64) bool { return v >= writes+1 },
		`skiff_raft_read_index_round_duration_seconds_count`:                        func(v float64) bool { return v >= 1 },
		`skiff_sm_apply_duration_seconds_count`:                                     func(v float64) bool { return v >= 1 },
		`skiff_http_request_duration_seconds_count{code="200",route="/db/execute"}`: func(v float64) bool { return v >= writes+1 },
		`skiff_http_request_duration_seconds_count{code="200",route="/db/query"}`:   func(v float64) bool { return v >= 3 },
		`skiff_sqlite_db_bytes`:                                                     func(v float64) bool { return v > 0 },
		`skiff_sqlite_wal_bytes`:                                                    func(v float64) bool { return v > 0 },
		`skiff_queue_pending_requests`:                                              func(v float64) bool { return v == 0 },
	}
	for k, ok := range want {
		v, present := s[k]
		if !present || !ok(v) {
			t.Errorf("leader: %s = %v (present %v)", k, v, present)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it as the repo's setup does (.ci/run: apt-get install -y prometheus)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the leader's output: %v\n%s", err, out)
	}
	// Followers applied the same entries through their own state machine.
	for _, m := range others(c.ms, leader) {
		waitMetrics(t, m, "followers applied the writes", func(s map[string]float64) bool {
			return s["skiff_raft_applied_index"] >= writes+1 && s["skiff_sm_statements_applied_total"] >= writes+1 &&
				s[`skiff_lifecycle_phase{phase="ready"}`] == 1 && s["skiff_raft_leader"] == 0
		})
	}

	// A snapshot streamed to a joiner (the log compacted first) is counted
	// on both ends, with its bytes.
	wantResp(t, "POST /snapshot?trailing_logs=0", leader.post("/snapshot?trailing_logs=0", ""), http.StatusOK, "")
	n4 := c.add("n4", "-join", leader.raftAddr)
	n4.start()
	n4.waitReady(clusterTimeout)
	waitMetrics(t, n4, "the joiner installed a snapshot", func(s map[string]float64) bool {
		return s["skiff_snapshot_receives_total"] >= 1 && s["skiff_snapshot_received_bytes_total"] > 0 &&
			s["skiff_raft_applied_index"] >= writes+1
	})
	sends, sentBytes := 0.0, 0.0
	for _, m := range c.ms[:3] {
		s := promSamples(m.get("/metrics").body)
		sends += s["skiff_snapshot_sends_total"]
		sentBytes += s["skiff_snapshot_sent_bytes_total"]
	}
	if sends < 1 || sentBytes <= 0 {
		t.Errorf("snapshots sent by the cluster: %v of %v bytes, want >= 1 and > 0", sends, sentBytes)
	}

	// -metrics=false: no /metrics at all (how their cost is measured).
	off := newNode(t)
	off.args = []string{"-metrics=false"}
	off.start()
	off.waitReady(readyTimeout)
	if r := off.get("/metrics"); r.status != http.StatusNotFound {
		t.Errorf("-metrics=false: GET /metrics %s, want 404", r)
	}
}
