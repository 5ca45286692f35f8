package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/gateway/rqjson"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// jsonString encodes s as a JSON string (HTML-escaped, like rqlite).
func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// obj is an ordered-enough JSON object for status output: encoding/json
// sorts map keys, which is what rqlite's /status does too.
type obj = map[string]any

// raftState names the Raft role the way hashicorp/raft does, since rqlite
// clients read store.raft.state (API.md 2.1).
func raftState(st *lifecycle.State) string {
	switch {
	case st.Phase == lifecycle.Stopping || st.Phase == lifecycle.Removed:
		// A removed node takes no part in Raft any more.
		return "Shutdown"
	case st.IsLeader():
		return "Leader"
	case st.LeaderReplicaID == 0 && st.NodeReady:
		return "Candidate"
	}
	return "Follower"
}

func apiURL(addr string) string {
	if addr == "" || strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

// lifecycleSection is Skiff's own addition to /status: the phase with its
// numbers (DESIGN.md).
func lifecycleSection(st *lifecycle.State, now time.Time) obj {
	p := st.Progress
	return obj{
		"state":          string(st.Phase),
		"since":          st.Since.UTC().Format(time.RFC3339Nano),
		"in_state_s":     now.Sub(st.Since).Seconds(),
		"node_ready":     st.NodeReady,
		"last_error":     st.LastError,
		"dropped_events": st.Dropped,
		"version":        st.Version,
		"progress": obj{
			"db_bytes":                p.DBBytes,
			"applied_index":           p.AppliedIndex,
			"target_index":            p.TargetIndex,
			"snapshot_index":          p.SnapshotIndex,
			"snapshot_bytes":          p.SnapshotBytes,
			"snapshot_total_bytes":    p.SnapshotTotal,
			"sent_bytes":              p.SentBytes,
			"sent_total_bytes":        p.SentTotal,
			"received_bytes":          p.ReceivedBytes,
			"leader_sent_bytes":       p.LeaderSentBytes,
			"leader_sent_total_bytes": p.LeaderSentTotal,
			"step":                    p.Step,
			"entries_per_s":           round1(p.ApplyRate),
			"received_bytes_per_s":    round1(p.ReceiveRate),
			"installed_bytes_per_s":   round1(p.InstallRate),
			"sent_bytes_per_s":        round1(p.SendRate),
			"eta_s":                   round1(p.ETA.Seconds()),
		},
	}
}

// round1 rounds to one decimal, for rates and times meant for people.
func round1(f float64) float64 { return math.Round(f*10) / 10 }

func (g *Gateway) statusDoc(st *lifecycle.State, now time.Time) obj {
	id := st.Identity
	// store.leader is set only while this node is ready, so a client that
	// waits for it and then expects /readyz 200 (rqlite's scripts do)
	// never sees a leader and a 503 (lifecycle.State.ReportedLeader).
	leader := obj{"addr": "", "node_id": ""}
	if l, ok := st.ReportedLeader(); ok {
		leader = obj{"addr": l.RaftAddr, "node_id": l.NodeID}
	}
	nodes := make([]obj, 0, len(st.Members))
	for _, m := range st.Members {
		suffrage := "nonvoter"
		if m.Voter {
			suffrage = "voter"
		}
		nodes = append(nodes, obj{"id": m.NodeID, "addr": m.RaftAddr, "suffrage": suffrage})
	}
	// store.open is {} once the database is open and false before, as
	// rqlite serialises it; the rest of store is always present because
	// clients (gorqlite) read store.leader unconditionally (API.md 4.1).
	var open any = false
	if st.NodeReady {
		open = obj{}
	}
	hostname, _ := os.Hostname()
	exe, _ := os.Executable()
	store := obj{
		"open":             open,
		"node_id":          id.NodeID,
		"addr":             id.RaftAddr,
		"leader":           leader,
		"ready":            st.Phase == lifecycle.Ready,
		"fsm_index":        st.Progress.AppliedIndex,
		"db_applied_index": st.Progress.AppliedIndex,
		"nodes":            nodes,
	}
	// raft, sqlite3 and the store's configuration (storestats.go).
	g.addStoreStats(store, st, now)
	doc := obj{
		"build": obj{
			"version": g.cfg.Version, "commit": g.cfg.Commit, "build_time": g.cfg.BuildTime,
			"compiler": runtime.Compiler, "branch": "",
		},
		"cluster": obj{"addr": id.RaftAddr, "api_addr": id.APIAddr, "https": strconv.FormatBool(g.cfg.TLS != nil)},
		"http":    g.httpSection(),
		"node": obj{
			"start_time":   st.StartedAt.UTC().Format(time.RFC3339Nano),
			"current_time": now.UTC().Format(time.RFC3339Nano),
			"uptime":       now.Sub(st.StartedAt).String(),
		},
		"os": obj{"pid": os.Getpid(), "ppid": os.Getppid(), "page_size": os.Getpagesize(),
			"executable": exe, "hostname": hostname},
		"runtime": obj{"GOARCH": runtime.GOARCH, "GOOS": runtime.GOOS, "GOMAXPROCS": runtime.GOMAXPROCS(0),
			"num_cpu": runtime.NumCPU(), "num_goroutine": runtime.NumGoroutine(), "version": runtime.Version()},
		"store":     store,
		"lifecycle": lifecycleSection(st, now),
	}
	for _, sec := range g.cfg.Sections {
		if sec.Status != nil {
			doc[sec.Name] = sec.Status()
		}
	}
	return doc
}

// statusParams checks the method and parses parameters of a status route,
// answering the client itself when it returns false.
func (g *Gateway) statusParams(w http.ResponseWriter, r *http.Request) (rqjson.Params, bool) {
	if !methods(w, r, http.MethodGet) {
		return rqjson.Params{}, false
	}
	params, err := rqjson.ParseRawQuery(r.URL.RawQuery)
	if err != nil {
		g.writeError(w, err)
		return params, false
	}
	return params, true
}

// httpSection reports the queue as rqlite does (http.queue._default,
// API.md 2.1). The queue actor answers at once (it never waits on Raft in
// its loop); if it does not within the bound, the section is left out.
func (g *Gateway) httpSection() obj {
	authState := "disabled"
	if g.cfg.Auth != nil {
		authState = "enabled"
	}
	sec := obj{"auth": authState, "bind_addr": g.ln.Addr().String(), "tls": g.tlsSection()}
	g.connSection(sec)
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	if st, err := g.queue.Stats(ctx); err == nil {
		sec["queue"] = obj{"_default": obj{"batch_size": st.BatchSize, "max_size": st.MaxSize,
			"sequence_number": st.SequenceNumber, "timeout": st.Timeout.String(), "pending": st.Pending}}
	}
	return sec
}

// connSection adds Skiff's connection counters (connlimit) to http.
func (g *Gateway) connSection(sec obj) {
	st := g.conns.Stats()
	sec["conns_open"] = st.Open
	sec["conns_refused"] = st.RefusedTotal + st.RefusedPerIP
	sec["conns"] = obj{"max": g.cfg.MaxConns, "max_per_ip": g.cfg.MaxConnsPerIP,
		"refused_total_cap": st.RefusedTotal, "refused_per_ip_cap": st.RefusedPerIP,
		"read_header_timeout": g.cfg.ReadHeaderTimeout.String(), "body_read_timeout": g.cfg.BodyReadTimeout.String(),
		"idle_timeout": g.cfg.IdleTimeout.String(), "max_header_bytes": g.maxHeaderBytes()}
	sec["server"] = g.server()
}

// server is the HTTP server that serves the port: HTTPS is net/http's
// whatever Config.Server says.
func (g *Gateway) server() string {
	if g.tlsConf != nil {
		return ServerNet
	}
	return g.cfg.Server
}

// maxHeaderBytes is the header bound the serving server applies.
func (g *Gateway) maxHeaderBytes() int {
	if g.server() == ServerFast {
		return min(g.cfg.MaxHeaderBytes, fastMaxHeaderBytes)
	}
	return g.cfg.MaxHeaderBytes
}

// statsTimeout bounds asking another actor for /status counters.
const statsTimeout = 200 * time.Millisecond

// handleStatus answers 200 whenever the process lives (DESIGN.md): it reads
// the published lifecycle state and nothing else.
func (g *Gateway) handleStatus(w http.ResponseWriter, r *http.Request) {
	params, ok := g.statusParams(w, r)
	if !ok {
		return
	}
	var doc any = g.statusDoc(g.state(), time.Now())
	if params.Key != "" {
		// ?key=a.b.c returns that sub-object (API.md 2.1).
		for _, k := range strings.Split(params.Key, ".") {
			m, ok := doc.(obj)
			if !ok {
				doc = nil
				break
			}
			doc = m[k]
		}
		if doc == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
	}
	writeJSON(w, http.StatusOK, marshal(doc, params.Pretty))
}

func marshal(v any, pretty bool) []byte {
	var b []byte
	if pretty {
		b, _ = json.MarshalIndent(v, "", "    ")
	} else {
		b, _ = json.Marshal(v)
	}
	return b
}

// handleReadyz: 200 only when ready; the reason otherwise (API.md 2.3).
func (g *Gateway) handleReadyz(w http.ResponseWriter, r *http.Request) {
	params, ok := g.statusParams(w, r)
	if !ok {
		return
	}
	st := g.state()
	var b bytes.Buffer
	b.WriteString("[+]node ok")
	status := http.StatusOK
	switch {
	case params.NoLeader:
	case st.LeaderReplicaID == 0:
		b.WriteString("\n[+]leader does not exist")
		if st.Phase != lifecycle.Ready {
			// The phase says why, and for how long it may last.
			b.WriteString("\n[+]store not ready (" + string(st.Phase) + ")")
		}
		status = http.StatusServiceUnavailable
	case st.Phase != lifecycle.Ready:
		b.WriteString("\n[+]leader ok\n[+]store not ready (" + string(st.Phase) + ")")
		status = http.StatusServiceUnavailable
	default:
		b.WriteString("\n[+]leader ok\n[+]store ok")
		if params.Sync {
			// A ReadIndex round: it returns once this node has applied
			// everything the leader had committed when it began.
			ctx, cancel := g.requestContext(r, params.Timeout)
			_, err := g.data.Query(ctx, &cmdpb.Request{}, replica.ReadOptions{Level: replica.LevelLinearizable})
			cancel()
			if err != nil {
				b.WriteString("\n[+]sync failed: " + err.Error())
				status = http.StatusServiceUnavailable
				break
			}
			b.WriteString("\n[+]sync ok")
		}
		b.WriteString("\n[+]db ok")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// nodeDoc is one node in /nodes and /leader (API.md 2.2).
func (g *Gateway) nodeDoc(st *lifecycle.State, m lifecycle.Member, start time.Time) obj {
	d := obj{"id": m.NodeID, "api_addr": apiURL(m.APIAddr), "addr": m.RaftAddr, "voter": m.Voter,
		"leader": m.ReplicaID != 0 && m.ReplicaID == st.ReportedLeaderID()}
	if m.ReplicaID == st.Identity.ReplicaID {
		el := time.Since(start)
		d["reachable"] = true
		d["version"] = g.cfg.Version
		d["time"] = el.Seconds()
		d["time_s"] = el.String()
		d["state"] = string(st.Phase)
		return d
	}
	// Peers are asked by peerDocs; this is only reached for a peer that
	// was not asked.
	d["reachable"] = false
	d["version"] = ""
	d["error"] = "not asked"
	return d
}

// members returns the membership, or this node alone before it is known.
func members(st *lifecycle.State) []lifecycle.Member {
	if len(st.Members) > 0 {
		return st.Members
	}
	id := st.Identity
	return []lifecycle.Member{{NodeID: id.NodeID, ReplicaID: id.ReplicaID, RaftAddr: id.RaftAddr, APIAddr: id.APIAddr, Voter: id.Voter}}
}

// handleNodes: the legacy map keyed by node ID, or {"nodes":[...]} with
// ver=2 (API.md 2.2). Voters only unless nonvoters. Every peer is asked in
// parallel, each within the request's timeout (default DefaultPeerTimeout).
func (g *Gateway) handleNodes(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	params, ok := g.statusParams(w, r)
	if !ok {
		return
	}
	st := g.state()
	var ms []lifecycle.Member
	for _, m := range members(st) {
		if m.Voter || params.NonVoters {
			ms = append(ms, m)
		}
	}
	timeout := params.Timeout
	if timeout <= 0 {
		timeout = DefaultPeerTimeout
	}
	peers := g.peerDocs(r.Context(), st, ms, timeout)
	list := []obj{}
	for _, m := range ms {
		if d, ok := peers[m.ReplicaID]; ok {
			list = append(list, d)
		} else {
			list = append(list, g.nodeDoc(st, m, start))
		}
	}
	sortedDocs(list)
	if params.Ver == "2" {
		writeJSON(w, http.StatusOK, marshal(obj{"nodes": list}, params.Pretty))
		return
	}
	legacy := make(obj, len(list))
	for _, d := range list {
		legacy[d["id"].(string)] = d
	}
	writeJSON(w, http.StatusOK, marshal(legacy, params.Pretty))
}

// handleLeader: GET returns the leader's node object, POST steps the
// leader down (API.md 1.1, 2.2).
func (g *Gateway) handleLeader(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		g.handleStepdown(w, r)
		return
	}
	start := time.Now()
	params, ok := g.statusParams(w, r)
	if !ok {
		return
	}
	st := g.state()
	var m lifecycle.Member
	found := false
	// The same leader as store.leader in /status: none until ready.
	for _, c := range members(st) {
		if c.ReplicaID != 0 && c.ReplicaID == st.ReportedLeaderID() {
			m, found = c, true
		}
	}
	if !found {
		g.writeError(w, ErrNoLeader)
		return
	}
	doc := g.nodeDoc(st, m, start)
	if m.ReplicaID != st.Identity.ReplicaID {
		timeout := params.Timeout
		if timeout <= 0 {
			timeout = DefaultPeerTimeout
		}
		doc = g.peerDocs(r.Context(), st, []lifecycle.Member{m}, timeout)[m.ReplicaID]
	}
	writeJSON(w, http.StatusOK, marshal(doc, params.Pretty))
}
