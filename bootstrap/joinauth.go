package bootstrap

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ErrJoinUnauthorized: a member refused this node's join or
// -bootstrap-expect notify (401); the error carries the member's reason.
var ErrJoinUnauthorized = errors.New("not authorized")

// setJoinAs adds the -join-as user's Basic credentials to r, a request a
// member checks them on: a join, a -bootstrap-expect notify, or a call to
// an http(s):// -join entry's API. They are set on the request, never in
// a RoundTripper, so that net/http drops them on a redirect to another
// host (and peer clients refuse redirects that change host or scheme:
// nodetls.HTTPClient). The password is read at each request, so a
// reloaded credentials file applies to the next attempt.
func (n *Node) setJoinAs(r *http.Request) {
	if n.cfg.JoinAs == "" || n.cfg.Auth == nil {
		return
	}
	pw, _ := n.cfg.Auth.Password(n.cfg.JoinAs)
	r.SetBasicAuth(n.cfg.JoinAs, pw)
}

// isAPIEntry reports whether a -join entry is an http(s):// API URL
// (rqlited v7) rather than a Raft address.
func isAPIEntry(addr string) bool {
	return strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://")
}

// unauthorizedHint completes a refused join's error for the log and the
// exit: which credentials this node sent.
func (n *Node) unauthorizedHint() string {
	if n.cfg.JoinAs == "" {
		return "this node has no -join-as"
	}
	return "this node sent -join-as user " + strconv.Quote(n.cfg.JoinAs)
}

// expectAuthCause explains a -bootstrap-expect timeout that credentials
// caused: the members that refused this node's notify, and those that
// never announced themselves to it with join credentials.
func (n *Node) expectAuthCause(refused map[string]error, unnotified map[string]bool) string {
	var parts []string
	for _, addr := range slices.Sorted(maps.Keys(refused)) {
		parts = append(parts, fmt.Sprintf("%s refused this node: %v (%s)", addr, refused[addr], n.unauthorizedHint()))
	}
	if len(unnotified) > 0 {
		parts = append(parts, fmt.Sprintf("%v never announced themselves to this node with credentials holding the join permission "+
			"(start them with -join-as a user of this node's -auth file)", slices.Sorted(maps.Keys(unnotified))))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}
