package gateway

import (
	"io"
	"net/http"
	"strings"
)

// routeName names the route ServeHTTP takes for path p, as API.md 1.1 names
// it: the label of /metrics' HTTP series. It follows ServeHTTP's matching
// (prefixes included) so the label set stays bounded whatever paths
// clients send; unrouted paths are "other".
func routeName(p string) string {
	switch {
	case p == "/":
		return "/"
	case strings.HasPrefix(p, "/db/execute"):
		return "/db/execute"
	case strings.HasPrefix(p, "/db/query"):
		return "/db/query"
	case strings.HasPrefix(p, "/db/request"):
		return "/db/request"
	case strings.HasPrefix(p, "/db/sql"):
		return "/db/sql"
	case strings.HasPrefix(p, "/db/backup"):
		return "/db/backup"
	case strings.HasPrefix(p, "/db/load"):
		return "/db/load"
	case p == "/boot", p == "/snapshot", p == "/reap", p == "/join", p == pathPeerJoin, p == pathPeerNode,
		p == "/leader", p == "/debug/vars", p == pathMetrics, p == "/licenses":
		return p
	case strings.HasPrefix(p, "/remove"):
		return "/remove"
	case strings.HasPrefix(p, "/status"):
		return "/status"
	case strings.HasPrefix(p, "/readyz"):
		return "/readyz"
	case strings.HasPrefix(p, "/nodes"):
		return "/nodes"
	case strings.HasPrefix(p, "/debug/pprof"):
		return "/debug/pprof"
	case strings.HasPrefix(p, pathFailpoints):
		return pathFailpoints
	case p == "/console", strings.HasPrefix(p, "/console/"):
		return "/console"
	}
	return "other"
}

// pathMetrics serves Prometheus metrics (gateway/metrics).
const pathMetrics = "/metrics"

// handleMetrics serves the registry; it reads published state only
// (gateway/metrics), so it answers in every lifecycle phase.
func (g *Gateway) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	g.metricsHandler.ServeHTTP(w, r)
}

// statusRecorder keeps the status code a handler answered with, for the
// HTTP metrics.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	written bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.code, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile path for streamed
// backups.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	s.written = true
	return io.Copy(s.ResponseWriter, src)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
