package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/gateway/console"
)

// pathConsolePeerStatus relays a peer's /status to the console's cluster
// page: a browser may not read another node's answer (another origin)
// unless that node sends CORS headers, which it does not by default.
const pathConsolePeerStatus = "/console/peer/status"

// consoleStatusBytes bounds a relayed /status document.
const consoleStatusBytes = 1 << 20

// handleConsole serves the web console (gateway/console).
func (g *Gateway) handleConsole(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/console":
		http.Redirect(w, r, console.Prefix, http.StatusMovedPermanently)
	case pathConsolePeerStatus:
		g.handleConsolePeerStatus(w, r)
	default:
		g.consoleFiles.ServeHTTP(w, r)
	}
}

// handleConsolePeerStatus answers GET ?id=<node id> (or ?addr=<Raft
// address>, for a joiner that has not registered its ID yet) with that
// member's /status, fetched from its API address with the caller's
// credentials (the peer checks them: relaying must not widen anyone's
// access). Only members can be asked, so this cannot be used to reach
// arbitrary addresses.
func (g *Gateway) handleConsolePeerStatus(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet) {
		return
	}
	q := r.URL.Query()
	id, raftAddr := q.Get("id"), q.Get("addr")
	var m lifecycle.Member
	found := false
	for _, c := range members(g.state()) {
		if (id != "" && c.NodeID == id) || (raftAddr != "" && c.RaftAddr == raftAddr) {
			m, found = c, true
		}
	}
	if !found {
		http.Error(w, "no member with that id or address", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultPeerTimeout)
	defer cancel()
	addr := m.APIAddr
	if addr == "" {
		// Not in the node table yet: the peer itself says where its API
		// is, over its Raft address (as /nodes learns it).
		meta, err := g.askPeer(ctx, m.RaftAddr)
		if err != nil || meta.APIAddr == "" {
			http.Error(w, fmt.Sprintf("peer's API address unknown: %v", err), http.StatusBadGateway)
			return
		}
		addr = meta.APIAddr
	}
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if g.cfg.TLS != nil {
			// The cluster's nodes serve the API alike.
			scheme = "https://"
		}
		addr = scheme + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+"/status", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := g.peers.Do(req)
	if err != nil {
		http.Error(w, "peer unreachable: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, consoleStatusBytes))
	if err != nil {
		http.Error(w, "reading the peer's answer: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}
