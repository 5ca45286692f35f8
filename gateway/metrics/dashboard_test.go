package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// TestGrafanaDashboard keeps docs/grafana-skiff.json in step with the
// metrics: every skiff_ series it queries exists, and every expression
// parses as PromQL (promtool check rules, Grafana's variables replaced).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana-skiff.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	m, err := New(fakeConfig(fakeState(t, lifecycle.Ready)))
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveHTTP("/status", 200, time.Millisecond)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		known[n] = true
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			known[n+suf] = true
		}
	}
	names := regexp.MustCompile(`skiff_[a-z_]+`)
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				if !known[name] {
					t.Errorf("panel %q queries %s, which /metrics does not serve", p.Title, name)
				}
			}
			expr := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(tg.Expr)
			fmt.Fprintf(&rules, "  - record: dashboard:expr%d\n    expr: %q\n", n, expr)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d queries in the dashboard", n)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it as the repo's setup does (.ci/run: apt-get install -y prometheus)")
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
