package gateway

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

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
		// A voter's join; a non-voter's needs join-read-only instead
		// (joinPerm), which handleJoin checks once it has read the body.
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
// or the path needs no perm. With auth on, each check counts in
// /debug/vars http authOK or authFail; with auth off it returns at once,
// off the hot path, and authOK is derived from the routes' own counts
// (httpVars), as rqlite's CheckRequestPerm counts every check as OK.
func (g *Gateway) authorized(r *http.Request, p string) bool {
	if g.cfg.Auth == nil {
		return true
	}
	perms := routePerms(p)
	if len(perms) == 0 || p == "/join" || p == pathPeerJoin || (p == pathPeerNode && r.Header.Get(HeaderNotify) != "") {
		// Joins and notifies are checked by their handlers, which
		// answer why (joinAuthorized).
		return true
	}
	u, pw, hasBasic := r.BasicAuth()
	ok := g.cfg.Auth.Allowed(u, pw, hasBasic, perms...)
	g.countAuth(ok)
	return ok
}

func (g *Gateway) countAuth(ok bool) {
	if ok {
		g.count(&g.stats.authOK)
	} else {
		g.count(&g.stats.authFail)
	}
}

// joinPerm is the perm a join needs, as rqlite's cluster service asks it:
// join for a voter (the default, as in rqlite's /join), join-read-only (or
// its alias join-read-replica) for a non-voter. `all` grants both. As in
// rqlite, join alone does not grant a non-voter's join.
func joinPerm(jr JoinRequest) auth.Perm {
	if jr.Voter == nil || *jr.Voter {
		return auth.PermJoin
	}
	return auth.PermJoinReadOnly
}

// joinAuthorized checks a join (both ports) or a -bootstrap-expect notify
// against this node's own -auth file, and answers a refusal with 401 and
// a body naming the cause, which the joiner logs and exits with.
func (g *Gateway) joinAuthorized(w http.ResponseWriter, r *http.Request, what, nodeID string, perm auth.Perm) bool {
	if g.cfg.Auth == nil {
		g.countAuth(true)
		return true
	}
	u, pw, hasBasic := r.BasicAuth()
	err := g.cfg.Auth.Check(u, pw, hasBasic, perm)
	g.countAuth(err == nil)
	if err == nil {
		return true
	}
	msg := what + " refused by " + g.cfg.AdvAddr + ": " + err.Error()
	if errors.Is(err, auth.ErrNoCredentials) {
		msg += " (start the joining node with -join-as <user>)"
	}
	// The username is logged, never the password.
	g.log.Warn(what+" refused", zap.String("node_id", nodeID), zap.String("remote", r.RemoteAddr),
		zap.String("user", u), zap.Error(err))
	w.Header().Set("WWW-Authenticate", `Basic realm="rqlite"`)
	http.Error(w, msg, http.StatusUnauthorized)
	return false
}
