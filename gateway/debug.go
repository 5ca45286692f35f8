package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strings"

	"go.uber.org/zap"
)

// handleVars serves expvar-style JSON at /debug/vars (API.md 1.1): the
// process's command line and memory statistics, rqlite's "http" counters,
// and Skiff's own. ?key= returns one top-level section.
func (g *Gateway) handleVars(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := g.state()
	httpSec := obj{
		"num_execute": g.stats.execute.Load(), "num_query": g.stats.query.Load(),
		"num_request": g.stats.request.Load(), "num_status": g.stats.status.Load(),
		"num_readyz": g.stats.readyz.Load(), "num_nodes": g.stats.nodes.Load(),
		"backups": g.stats.backup.Load(),
	}
	// rqlite's names for the same counters, and its operator counters
	// (storestats.go).
	g.httpVars(httpSec)
	vars := obj{
		"cmdline":  os.Args,
		"memstats": ms,
		"http":     httpSec,
		"store":    g.storeVars(st),
		"cluster":  g.clusterVars(),
		"skiff": obj{
			"lifecycle_state":          string(st.Phase),
			"lifecycle_dropped_events": st.Dropped,
			"applied_index":            st.Progress.AppliedIndex,
			"num_goroutine":            runtime.NumGoroutine(),
		},
	}
	for _, sec := range g.cfg.Sections {
		if sec.Vars != nil {
			vars[sec.Name] = sec.Vars()
		}
	}
	var doc any = vars
	if k := r.URL.Query().Get("key"); k != "" {
		v, ok := vars[k]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		doc = v
	}
	writeJSON(w, http.StatusOK, marshal(doc, r.URL.Query().Has("pretty")))
}

// handlePprof serves Go's profiles under /debug/pprof/ without the global
// ServeMux.
func (g *Gateway) handlePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}

// pathFailpoints lists failpoints (GET) and sets one (PUT
// /debug/failpoints/<name> with the action as the body), in binaries built
// with the failpoints tag only.
const pathFailpoints = "/debug/failpoints"

func (g *Gateway) handleFailpoints(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, pathFailpoints), "/")
	switch {
	case r.Method == http.MethodGet && name == "":
		b, _ := json.Marshal(g.cfg.Failpoints.List())
		writeJSON(w, http.StatusOK, b)
	case r.Method == http.MethodPut && name != "":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		if err == nil {
			err = g.cfg.Failpoints.Enable(name, string(body))
		}
		if err != nil {
			g.writeError(w, err)
			return
		}
		g.log.Warn("failpoint set", zap.String("name", name), zap.String("action", string(body)))
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, PUT")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
