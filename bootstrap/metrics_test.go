package bootstrap

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/sm"
)

// getMetrics returns n's /metrics text.
func getMetrics(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// With CDC on, /metrics carries the cdc section's figures (the same
// published map /status shows): the backlog, the high-water mark and
// whether this node transmits.
func TestMetricsCDCSection(t *testing.T) {
	if !sm.CaptureSupported() {
		t.Fatal("this build lacks the pre-update hook: build with -tags sqlite_preupdate_hook (GOFLAGS in the Makefile)")
	}
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(), CDC: stdoutCDC(t)}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown() }()
	waitPhase(t, n, lifecycle.Ready)
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := getMetrics(t, n)
		if strings.Contains(body, "\nskiff_cdc_transmitting 1\n") {
			for _, s := range []string{"\nskiff_cdc_backlog_groups ", "\nskiff_cdc_high_water_mark ", "\nskiff_cdc_sent_total ",
				"\nskiff_lifecycle_phase{phase=\"ready\"} 1\n"} {
				if !strings.Contains(body, s) {
					t.Errorf("/metrics lacks %q", strings.TrimSpace(s))
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("skiff_cdc_transmitting never 1:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
