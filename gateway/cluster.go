package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway/auth"
	"github.com/skiffdb/skiff/gateway/rqjson"
)

// Cluster routes. /join is rqlite v7's HTTP join (v8+ joins over the Raft
// port, where Skiff's Raft-port mux serves PeerHandler); /skiff/node is
// what a peer's /nodes asks of this node.
const (
	pathPeerJoin = "/skiff/join"
	pathPeerNode = "/skiff/node"
)

// HeaderNotify on a GET /skiff/node carries the asking -bootstrap-expect
// node's replica ID: rqlite's Notify. A node with -auth answers it only
// with join credentials, and counts as founders only the nodes that
// announced themselves so (Notified).
const HeaderNotify = "X-Skiff-Notify"

// maxJoinBody bounds a join's body, read before its credentials are
// checked (the perm depends on the voter flag in it).
const maxJoinBody = 64 << 10

// DefaultPeerTimeout bounds one peer's answer to /nodes when the request
// has no timeout of its own.
const DefaultPeerTimeout = 5 * time.Second

// JoinRequest is the body of a join (rqlite's id, addr and voter; Skiff's
// joiners add their replica ID and API address).
type JoinRequest struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Voter     *bool  `json:"voter,omitempty"`
	ReplicaID uint64 `json:"replica_id,omitempty"`
	APIAddr   string `json:"api_addr,omitempty"`
}

// NodeMeta is what /skiff/node answers: this node as it sees itself.
type NodeMeta struct {
	NodeID          string `json:"node_id"`
	ReplicaID       uint64 `json:"replica_id"`
	APIAddr         string `json:"api_addr"`
	RaftAddr        string `json:"raft_addr"`
	Version         string `json:"version"`
	Phase           string `json:"phase"`
	LeaderReplicaID uint64 `json:"leader_replica_id"`
	// AppliedIndex is the node's applied index: a recovering peer's
	// target when this node is the leader.
	AppliedIndex uint64 `json:"applied_index"`
	// SentBytes of SentTotal of the snapshot this node streams (to the
	// joiner that asks: its total).
	SentBytes int64 `json:"sent_bytes,omitempty"`
	SentTotal int64 `json:"sent_total_bytes,omitempty"`
	// Members is the Raft membership as this node knows it (replica ID ->
	// Raft address), for -bootstrap-expect.
	Members map[uint64]string `json:"members,omitempty"`
	// Expecting: the node is a -bootstrap-expect node still looking for
	// its founders; Founders are the ones it recorded, once it has.
	Expecting bool              `json:"expecting,omitempty"`
	Founders  map[uint64]string `json:"founders,omitempty"`
	// Removed lists the replica IDs removed from the cluster: a node cut
	// off from its leader asks for it to learn it was removed.
	Removed []uint64 `json:"removed,omitempty"`
}

// ReplicaIDFor derives a replica ID from a node ID for a joiner that did
// not choose one (a client of rqlite's /join).
func ReplicaIDFor(nodeID string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(nodeID))
	return h.Sum64()>>1 | 1
}

// ErrBadJoin refuses a join request that lacks what a join needs.
var ErrBadJoin = errors.New("invalid join request")

// ErrUnknownNode: /remove or stepdown named a node that is not a member.
var ErrUnknownNode = errors.New("node not found")

// PeerHandler serves the node-to-node routes on the Raft port's mux.
func (g *Gateway) PeerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case pathPeerJoin:
			g.handleJoin(w, r)
		case pathPeerNode:
			g.handlePeerNode(w, r)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
}

// handleJoin adds the requesting node as a non-voting member; it promotes
// itself once caught up. Any member may take the request: Dragonboat
// forwards the configuration change to the leader.
func (g *Gateway) handleJoin(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodPost) {
		return
	}
	g.count(&g.ops.joinReq)
	r.Body = http.MaxBytesReader(w, r.Body, maxJoinBody)
	body, err := g.readBody(w, r)
	if err != nil {
		g.writeError(w, err)
		return
	}
	var jr JoinRequest
	if err := json.Unmarshal(body, &jr); err != nil || jr.ID == "" || jr.Addr == "" {
		g.writeError(w, fmt.Errorf("%w: want {\"id\":..., \"addr\":...}", ErrBadJoin))
		return
	}
	if !g.joinAuthorized(w, r, "join", jr.ID, joinPerm(jr)) {
		return
	}
	// A degraded node still hears joins: a member restarting with -join
	// sends one before its Raft starts, and when it is the quorum the
	// others lack (one of two), only it can end the degradation. The
	// replica answers a known member's join without quorum and refuses
	// any other while degraded (ErrNoLeader, as admit would).
	if st := g.state(); st.Phase != lifecycle.Degraded {
		if err := g.admit(false); err != nil {
			g.writeError(w, err)
			return
		}
	}
	if jr.ReplicaID == 0 {
		jr.ReplicaID = ReplicaIDFor(jr.ID)
	}
	ctx, cancel := g.requestContext(r, 0)
	defer cancel()
	if err := g.data.AddNonVoting(ctx, jr.ReplicaID, jr.Addr, jr.ID); err != nil {
		g.writeError(w, err)
		return
	}
	g.log.Info("node joined") // details logged by the replica
	w.WriteHeader(http.StatusOK)
}

// handlePeerNode answers a peer's /nodes with this node's own view.
func (g *Gateway) handlePeerNode(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodGet) {
		return
	}
	g.count(&g.ops.nodeMetaReq)
	if v := r.Header.Get(HeaderNotify); v != "" {
		// rqlite's Notify needs the join perm (cluster/service.go).
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil || id == 0 {
			http.Error(w, "invalid "+HeaderNotify, http.StatusBadRequest)
			return
		}
		if !g.joinAuthorized(w, r, "bootstrap notify", "replica "+v, auth.PermJoin) {
			return
		}
		g.notify(id)
	}
	st := g.state()
	id := st.Identity
	meta := NodeMeta{NodeID: id.NodeID, ReplicaID: id.ReplicaID, APIAddr: g.scheme() + "://" + g.cfg.AdvAddr, RaftAddr: id.RaftAddr,
		Version: g.cfg.Version, Phase: string(st.Phase), LeaderReplicaID: st.LeaderReplicaID, AppliedIndex: st.Progress.AppliedIndex,
		SentBytes: st.Progress.SentBytes, SentTotal: st.Progress.SentTotal,
		Expecting: id.Expecting, Founders: id.Founders, Removed: st.RemovedReplicas}
	if len(st.RaftMembers) > 0 {
		meta.Members = make(map[uint64]string, len(st.RaftMembers))
		for _, m := range st.RaftMembers {
			meta.Members[m.ReplicaID] = m.RaftAddr
		}
	}
	b, _ := json.Marshal(meta)
	writeJSON(w, http.StatusOK, b)
}

// Notified reports whether replica id announced itself to this node with
// credentials holding the join perm (or auth is off): a -bootstrap-expect
// node with -auth counts only such nodes as founders, as rqlite's
// bootstrapping node counts only the Notify requests it authorized.
func (g *Gateway) Notified(id uint64) bool {
	if g.cfg.Auth == nil {
		return true
	}
	g.notifiedMu.Lock()
	defer g.notifiedMu.Unlock()
	_, ok := g.notified[id]
	return ok
}

// maxNotified bounds the notify IDs kept: a -bootstrap-expect cluster has
// a handful of founders, and a client with join credentials sending a new
// ID each time must not grow the map without end.
const maxNotified = 1024

// notify records an authorized notify from replica id. With auth off
// Notified answers true without it, so nothing is kept.
func (g *Gateway) notify(id uint64) {
	if g.cfg.Auth == nil {
		return
	}
	g.notifiedMu.Lock()
	defer g.notifiedMu.Unlock()
	if g.notified == nil {
		g.notified = make(map[uint64]struct{})
	}
	if len(g.notified) >= maxNotified {
		return
	}
	g.notified[id] = struct{}{}
}

// handleRemove: DELETE /remove {"id":"<node id>"} (API.md 1.1, 5).
func (g *Gateway) handleRemove(w http.ResponseWriter, r *http.Request) {
	if !methods(w, r, http.MethodDelete) {
		return
	}
	g.count(&g.ops.removeReq)
	params, nodeID, ok := g.nodeRequest(w, r, true)
	if !ok {
		return
	}
	if err := g.admit(false); err != nil {
		g.writeError(w, err)
		return
	}
	m, ok := memberByNodeID(g.state(), nodeID)
	if !ok {
		// Removing a node that is not a member succeeds, as in rqlite:
		// remove scripts are repeated.
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	if err := g.data.RemoveMember(ctx, m.ReplicaID); err != nil {
		g.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// nodeRequest reads the parameters and the {"id":"<node id>"} body of
// /remove (required) and /leader POST (optional), answering bad input.
func (g *Gateway) nodeRequest(w http.ResponseWriter, r *http.Request, required bool) (rqjson.Params, string, bool) {
	params, err := rqjsonParams(r)
	if err != nil {
		g.writeError(w, err)
		return params, "", false
	}
	body, err := g.readBody(w, r)
	if err != nil {
		g.writeError(w, err)
		return params, "", false
	}
	var req struct {
		ID string `json:"id"`
	}
	if len(body) > 0 || required {
		if err := json.Unmarshal(body, &req); err != nil || (required && req.ID == "") {
			g.writeError(w, fmt.Errorf("%w: want {\"id\":\"<node id>\"}", rqjson.ErrInvalidRequest))
			return params, "", false
		}
	}
	return params, req.ID, true
}

// memberByNodeID finds a member by node ID (or, for a member that never
// registered, by the Raft address it is named by).
func memberByNodeID(st *lifecycle.State, nodeID string) (lifecycle.Member, bool) {
	for _, m := range st.Members {
		if m.NodeID == nodeID {
			return m, true
		}
	}
	if n, ok := st.NodeByID(nodeID); ok {
		return lifecycle.Member{NodeID: n.NodeID, ReplicaID: n.ReplicaID, RaftAddr: n.RaftAddr}, true
	}
	return lifecycle.Member{}, false
}

// handleStepdown: POST /leader hands leadership to the node named in the
// optional body {"id":"..."}, else to another voter (API.md 1.1).
func (g *Gateway) handleStepdown(w http.ResponseWriter, r *http.Request) {
	params, nodeID, ok := g.nodeRequest(w, r, false)
	if !ok {
		return
	}
	if err := g.admit(false); err != nil {
		g.writeError(w, err)
		return
	}
	var target uint64
	if nodeID != "" {
		m, ok := memberByNodeID(g.state(), nodeID)
		if !ok {
			g.writeError(w, fmt.Errorf("%w: %s", ErrUnknownNode, nodeID))
			return
		}
		target = m.ReplicaID
	}
	ctx, cancel := g.requestContext(r, params.Timeout)
	defer cancel()
	if err := g.data.TransferLeader(ctx, target); err != nil {
		g.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// peerDocs asks every peer for its own view, in parallel, each bounded by
// timeout: a dead or hung peer costs at most the timeout, never more.
// Peers are asked on their Raft address, which every member has (the API
// address needs the peer to have registered).
func (g *Gateway) peerDocs(ctx context.Context, st *lifecycle.State, ms []lifecycle.Member, timeout time.Duration) map[uint64]obj {
	out := make(map[uint64]obj, len(ms))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range ms {
		if m.ReplicaID == st.Identity.ReplicaID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			meta, err := g.askPeer(pctx, m.RaftAddr)
			d := obj{"id": m.NodeID, "api_addr": apiURL(m.APIAddr), "addr": m.RaftAddr, "voter": m.Voter,
				"leader": m.ReplicaID == st.ReportedLeaderID()}
			if err != nil {
				d["reachable"], d["version"], d["error"] = false, "", err.Error()
			} else {
				el := time.Since(start)
				d["reachable"], d["version"], d["time"], d["time_s"], d["state"] = true, meta.Version, el.Seconds(), el.String(), meta.Phase
				if meta.APIAddr != "" {
					d["api_addr"] = meta.APIAddr
				}
				if meta.NodeID != "" && m.NodeID == m.RaftAddr && meta.RaftAddr == m.RaftAddr {
					// A member that has not registered in the node table
					// yet (a joiner still recovering) names itself.
					d["id"] = meta.NodeID
				}
			}
			mu.Lock()
			out[m.ReplicaID] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (g *Gateway) askPeer(ctx context.Context, raftAddr string) (NodeMeta, error) {
	var meta NodeMeta
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nodetls.PeerURL(g.cfg.PeerTLS != nil, raftAddr, pathPeerNode), nil)
	if err != nil {
		return meta, err
	}
	resp, err := g.peers.Do(req)
	if err != nil {
		return meta, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return meta, err
	}
	if resp.StatusCode != http.StatusOK {
		return meta, fmt.Errorf("peer answered %d", resp.StatusCode)
	}
	err = json.Unmarshal(b, &meta)
	return meta, err
}

// redirect answers 301 to the leader's API address with the original path
// and raw query (API.md 1.7) and reports true, when the request asked for
// it and this node is not the leader.
func (g *Gateway) redirect(w http.ResponseWriter, r *http.Request) bool {
	st := g.state()
	if st.IsLeader() {
		return false
	}
	leader, ok := st.Leader()
	if !ok || leader.APIAddr == "" {
		http.Error(w, "leader not found", http.StatusInternalServerError)
		return true
	}
	loc := apiURL(leader.APIAddr) + r.URL.Path
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusMovedPermanently)
	return true
}

// servedBy sets X-Rqlite-Served-By as rqlite does (API.md 1.7): this node's
// HTTP address when it served the request itself, the leader's Raft address
// when the request went to the leader.
func (g *Gateway) servedBy(w http.ResponseWriter, local bool) {
	st := g.state()
	if local || st.IsLeader() {
		w.Header().Set("X-Rqlite-Served-By", g.cfg.AdvAddr)
		return
	}
	if leader, ok := st.Leader(); ok {
		w.Header().Set("X-Rqlite-Served-By", leader.RaftAddr)
	}
}

// sortedDocs orders node documents by id (API.md 2.2).
func sortedDocs(list []obj) {
	sort.Slice(list, func(i, j int) bool { return list[i]["id"].(string) < list[j]["id"].(string) })
}
