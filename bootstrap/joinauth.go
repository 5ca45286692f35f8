package bootstrap

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/gateway/auth"
)

// ErrJoinUnauthorized: a member refused this node's join or
// -bootstrap-expect notify (401); the error carries the member's reason.
var ErrJoinUnauthorized = errors.New("not authorized")

// joinAsTransport adds the -join-as user's Basic credentials to every
// request, and with notify set announces this node as rqlite's Notify
// does (gateway.HeaderNotify). The password is read at each request, so a
// reloaded credentials file applies to the next attempt.
type joinAsTransport struct {
	base   http.RoundTripper
	store  *auth.Store
	user   string
	notify uint64
}

func (t *joinAsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.user != "" {
		pw, _ := t.store.Password(t.user)
		r.SetBasicAuth(t.user, pw)
	}
	if t.notify != 0 {
		r.Header.Set(gateway.HeaderNotify, strconv.FormatUint(t.notify, 10))
	}
	return t.base.RoundTrip(r)
}

// joinClient wraps c for the calls that enter a cluster: joins (both
// forms), and with notify set -bootstrap-expect's metadata requests.
// Without -join-as and notify it returns c.
func (n *Node) joinClient(c *http.Client, notify uint64) *http.Client {
	if n.cfg.JoinAs == "" && notify == 0 {
		return c
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped := *c
	wrapped.Transport = &joinAsTransport{base: base, store: n.cfg.Auth, user: n.cfg.JoinAs, notify: notify}
	return &wrapped
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
