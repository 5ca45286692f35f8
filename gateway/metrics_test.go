package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/gateway/metrics"
)

func TestRouteName(t *testing.T) {
	for path, want := range map[string]string{
		"/": "/", "/db/execute": "/db/execute", "/db/execute/x": "/db/execute", "/db/query": "/db/query",
		"/db/request": "/db/request", "/db/sql": "/db/sql", "/db/backup": "/db/backup", "/db/load": "/db/load",
		"/boot": "/boot", "/snapshot": "/snapshot", "/reap": "/reap", "/remove": "/remove", "/join": "/join",
		pathPeerJoin: pathPeerJoin, pathPeerNode: pathPeerNode, "/status": "/status", "/status/anything": "/status",
		"/readyz": "/readyz", "/nodes": "/nodes", "/leader": "/leader", "/debug/vars": "/debug/vars",
		"/debug/pprof/heap": "/debug/pprof", "/debug/failpoints/x": pathFailpoints, "/metrics": "/metrics",
		"/console/app.js": "/console", "/licenses": "/licenses",
		// Unrouted paths share one label: the set stays bounded.
		"/nope": "other", "/metrics/x": "other", "/boot/x": "other", "/a/b/c/d": "other",
	} {
		if got := routeName(path); got != want {
			t.Errorf("routeName(%q) = %q, want %q", path, got, want)
		}
	}
}

// /metrics answers in every phase from published state, counts requests
// by route name (not path) and code, and is 404 when metrics are off.
func TestMetricsEndpoint(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Starting, 0)
	m, err := metrics.New(metrics.Config{State: p.st.Load})
	if err != nil {
		t.Fatal(err)
	}
	base := startGatewayCfg(t, Config{Metrics: m}, &fakeData{}, p)
	for _, ph := range metrics.Phases() {
		p.set(ph, 1)
		r := do(t, "GET", base+"/metrics", "")
		if r.status != http.StatusOK || !strings.Contains(r.body, `skiff_lifecycle_phase{phase="`+string(ph)+`"} 1`) {
			t.Fatalf("/metrics in %s: %d %.300q", ph, r.status, r.body)
		}
	}
	p.set(lifecycle.Ready, 1)
	do(t, "GET", base+"/db/query?q=SELECT+1", "")
	do(t, "GET", base+"/db/query/extra?q=SELECT+1", "")
	do(t, "GET", base+"/status/x/y", "")
	do(t, "GET", base+"/no/such/path", "")
	do(t, "POST", base+"/metrics", "")
	r := do(t, "GET", base+"/metrics", "")
	for _, want := range []string{
		`skiff_http_request_duration_seconds_count{code="200",route="/db/query"} 2`,
		`skiff_http_request_duration_seconds_count{code="200",route="/status"} 1`,
		`skiff_http_request_duration_seconds_count{code="404",route="other"} 1`,
		`skiff_http_request_duration_seconds_count{code="405",route="/metrics"} 1`,
		`skiff_http_request_duration_seconds_count{code="200",route="/metrics"} 8`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(r.body, "/no/such") || strings.Contains(r.body, "/x/y") {
		t.Error("a raw path became a label")
	}

	off := startGatewayCfg(t, Config{}, &fakeData{}, p)
	if r := do(t, "GET", off+"/metrics", ""); r.status != http.StatusNotFound {
		t.Errorf("/metrics with metrics off: %d, want 404", r.status)
	}
}

// A handler's panic is counted as the 500 the recovery answers.
func TestMetricsCountsRecoveredPanic(t *testing.T) {
	p := &phases{}
	p.set(lifecycle.Ready, 1)
	m, err := metrics.New(metrics.Config{State: p.st.Load})
	if err != nil {
		t.Fatal(err)
	}
	p.st.Store(nil) // the status handler dereferences it: a panic
	base := startGatewayCfg(t, Config{Metrics: m}, &fakeData{}, p)
	if r := do(t, "GET", base+"/readyz", ""); r.status != http.StatusInternalServerError {
		t.Fatalf("/readyz with a nil state: %d, want the recovered 500", r.status)
	}
	p.set(lifecycle.Ready, 1)
	r := do(t, "GET", base+"/metrics", "")
	if want := `skiff_http_request_duration_seconds_count{code="500",route="/readyz"} 1`; !strings.Contains(r.body, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
