package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"

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

// handleConsolePeerStatus answers GET ?id=<node id> with that member's
// /status, fetched from its API address with the caller's credentials (the
// peer checks them: relaying must not widen anyone's access). Only members
// can be asked, so this cannot be used to reach arbitrary addresses.
func (g *Gateway) handleConsolePeerStatus(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet) {
		return
	}
	id := r.URL.Query().Get("id")
	var addr string
	for _, m := range members(g.state()) {
		if m.NodeID == id && id != "" {
			addr = m.APIAddr
		}
	}
	if addr == "" {
		http.Error(w, "no member with that id and an API address", http.StatusNotFound)
		return
	}
	if !strings.Contains(addr, "://") {
		scheme := "http://"
		if g.cfg.TLS != nil {
			// The cluster's nodes serve the API alike.
			scheme = "https://"
		}
		addr = scheme + addr
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultPeerTimeout)
	defer cancel()
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
