package gateway

import (
	"net/http"
	"strings"

	"github.com/skiffdb/skiff/gateway/auth"
)

// routePerms returns the permissions a request to path p needs when auth is
// on (API.md 1.1), matching paths as ServeHTTP routes them. nil means none:
// "/" (a redirect) and paths that answer 404.
func routePerms(p string) []auth.Perm {
	switch {
	case p == "/":
		return nil
	case strings.HasPrefix(p, "/db/execute"):
		return []auth.Perm{auth.PermExecute}
	case strings.HasPrefix(p, "/db/query"), strings.HasPrefix(p, "/db/sql"):
		return []auth.Perm{auth.PermQuery}
	case strings.HasPrefix(p, "/db/request"):
		// The unified endpoint may read and write: it needs both.
		return []auth.Perm{auth.PermQuery, auth.PermExecute}
	case strings.HasPrefix(p, "/db/backup"):
		return []auth.Perm{auth.PermBackup}
	case strings.HasPrefix(p, "/db/load"), p == "/boot":
		return []auth.Perm{auth.PermLoad}
	case p == "/snapshot", p == "/reap":
		return []auth.Perm{auth.PermSnapshot}
	case strings.HasPrefix(p, "/remove"):
		return []auth.Perm{auth.PermRemove}
	case p == "/join", p == pathPeerJoin:
		// rqlite v7's HTTP join. Skiff adds every joiner as a non-voter
		// that promotes itself, so a voter's join perm is required.
		return []auth.Perm{auth.PermJoin}
	case p == pathPeerNode, strings.HasPrefix(p, "/status"), strings.HasPrefix(p, "/nodes"),
		p == "/licenses", p == "/debug/vars", strings.HasPrefix(p, "/debug/"),
		// rqlite has no /metrics, so no permission of its own: it shows
		// what /status and /debug/vars show, and needs what they need.
		p == pathMetrics:
		// /debug/failpoints (test builds) is guarded like pprof.
		return []auth.Perm{auth.PermStatus}
	case strings.HasPrefix(p, "/readyz"):
		return []auth.Perm{auth.PermReady}
	case p == "/leader":
		return []auth.Perm{auth.PermLeaderOps}
	case p == "/console", strings.HasPrefix(p, "/console/"):
		return []auth.Perm{auth.PermUI}
	}
	return nil
}

// authorized reports whether r may reach path p: always when auth is off
// or the path needs no perm.
func (g *Gateway) authorized(r *http.Request, p string) bool {
	if g.cfg.Auth == nil {
		return true
	}
	perms := routePerms(p)
	if len(perms) == 0 {
		return true
	}
	u, pw, ok := r.BasicAuth()
	return g.cfg.Auth.Allowed(u, pw, ok, perms...)
}
