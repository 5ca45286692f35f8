package test

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/test/testcert"
)

// buildSkiff is the skiff client TestMain built.
func buildSkiff(t *testing.T) string {
	t.Helper()
	return skiffBin
}

// TestSkiffBench runs the load generator (`skiff bench`, built here) briefly
// against a real node, closed and open loop, and checks its JSON report.
func TestSkiffBench(t *testing.T) {
	bin := buildSkiff(t)
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

// TestSkiffBenchHTTPSAuth drives a node serving HTTPS with -auth, as
// `make bench-security` does: the CA from -ca-cert, the credentials from
// -u or from the URL; without credentials or without the CA it fails and
// says why.
func TestSkiffBenchHTTPSAuth(t *testing.T) {
	bin := buildSkiff(t)
	n := newNode(t)
	cert, key := testcert.Write(t, t.TempDir())
	users := filepath.Join(n.dir, "auth.json")
	if err := os.WriteFile(users, []byte(authFile), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, _ := certPool(t, cert)
	n.args = []string{"-http-cert", cert, "-http-key", key, "-auth", users}
	n.tlsClient = &tls.Config{RootCAs: pool}
	n.useTLS(n.client)
	n.start()
	n.waitReady(readyTimeout)

	base := "https://" + n.httpAddr
	for _, args := range [][]string{
		{"-a", base, "-u", "bob:secret1", "-w", "read", "-o", "100", "-level", "none", "-c", "4", "-d", "1s"},
		{"-a", "https://bob:secret1@" + n.httpAddr, "-w", "insert", "-c", "4", "-n", "50"},
	} {
		out, err := exec.Command(bin, append([]string{"bench", "-json", "-ca-cert", cert}, args...)...).Output()
		if err != nil {
			t.Fatalf("skiff bench %v: %v\n%s", args, err, out)
		}
		var res struct {
			Requests int64            `json:"requests"`
			Targets  string           `json:"targets"`
			Errors   map[string]int64 `json:"errors"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("skiff bench %v: report %q: %v", args, out, err)
		}
		if res.Requests == 0 || len(res.Errors) != 0 || strings.Contains(res.Targets, "secret1") {
			t.Errorf("skiff bench %v: report %s", args, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ca-cert", cert}, "http_401"},
		{[]string{"-u", "bob:secret1"}, "certificate"},
	} {
		out, err := exec.Command(bin, append([]string{"bench", "-a", base, "-n", "10"}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("skiff bench %v: %v, output %q; want a failure naming %s", tc.args, err, out, tc.want)
		}
	}
}
