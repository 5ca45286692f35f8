package test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSkiffBench runs the load generator (`skiff bench`, built here) briefly
// against a real node, closed and open loop, and checks its JSON report.
func TestSkiffBench(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "skiff")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/skiffdb/skiff/cmd/skiff")
	build.Dir = moduleDir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build skiff: %v\n%s", err, out)
	}
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	for _, args := range [][]string{
		{"-w", "insert", "-c", "8", "-d", "1s"},
		{"-w", "batch", "-b", "10", "-x", "-c", "4", "-n", "40"},
		{"-w", "read", "-o", "100", "-level", "none", "-c", "8", "-d", "1s"},
		{"-w", "mixed", "-o", "100", "-rate", "200", "-c", "8", "-d", "1s"},
	} {
		out, err := exec.Command(bin, append([]string{"bench", "-a", n.httpAddr, "-json"}, args...)...).Output()
		if err != nil {
			t.Fatalf("skiff bench %v: %v\n%s", args, err, out)
		}
		var res struct {
			Requests   int64            `json:"requests"`
			Statements int64            `json:"statements"`
			Errors     map[string]int64 `json:"errors"`
			Latency    struct {
				P50 float64 `json:"p50_ms"`
				P99 float64 `json:"p99_ms"`
				Max float64 `json:"max_ms"`
			} `json:"latency"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("skiff bench %v: report %q: %v", args, out, err)
		}
		t.Logf("skiff bench %v: %s", args, out)
		if res.Requests == 0 || len(res.Errors) != 0 || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 || res.Latency.Max < res.Latency.P99 {
			t.Errorf("skiff bench %v: report %+v", args, res)
		}
		if args[1] == "batch" && (res.Requests != 40 || res.Statements != 400) {
			t.Errorf("batch: %d requests, %d statements; want 40 and 400", res.Requests, res.Statements)
		}
	}
}
