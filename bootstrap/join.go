package bootstrap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway"
)

// ErrJoinFailed: no member accepted the join within -join-attempts.
var ErrJoinFailed = errors.New("join failed")

// peerTimeout bounds one metadata request to a peer (the requests that
// report a recovering node's progress: a dead peer costs one of them).
const peerTimeout = 2 * time.Second

// peerClient talks to other nodes' Raft ports directly: no HTTP proxy
// from the environment may sit between members, and node-to-node TLS when
// it is on.
func (n *Node) peerClient(timeout time.Duration) *http.Client {
	return n.tls.HTTPClient(timeout)
}

// raftURL is the URL of path on a peer's Raft port (https:// with
// node-to-node TLS).
func (n *Node) raftURL(addr, path string) string {
	return nodetls.PeerURL(n.tls != nil, addr, path)
}

// randomReplicaID picks a non-zero replica ID.
func randomReplicaID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])>>1 | 1
}

// joinURL turns a -join entry into the URL of a member's join endpoint: a
// Raft address (rqlited v8+) is asked on the Raft port's mux, an http://
// URL (v7) on its API.
func (n *Node) joinURL(addr string) string {
	if isAPIEntry(addr) {
		return strings.TrimRight(addr, "/") + "/join"
	}
	return n.raftURL(addr, "/skiff/join")
}

// join asks the members listed in -join, in turn, to add this node, for up
// to -join-attempts rounds -join-interval apart (rqlited's rules). The
// node's own addresses are skipped: a node cannot join itself.
func (n *Node) join(id identity, via []string) error {
	c := n.cfg
	voter := !id.isNonVoter()
	body, _ := json.Marshal(gateway.JoinRequest{ID: id.NodeID, Addr: id.RaftAddr, Voter: &voter,
		ReplicaID: id.ReplicaID, APIAddr: c.apiAddr()})
	client := n.peerClient(30 * time.Second)
	// Idle connections left open would count against the members'
	// per-IP caps until their idle timeout.
	defer client.CloseIdleConnections()
	var errs []string
	for attempt := 1; attempt <= c.JoinAttempts; attempt++ {
		for _, addr := range via {
			if n.stopCtx.Err() != nil {
				return fmt.Errorf("%w: node is stopping", ErrJoinFailed)
			}
			if addr == c.RaftAdvAddr || addr == c.RaftAddr || c.isOwnAPIAddr(addr) {
				continue
			}
			err := n.joinOne(client, n.joinURL(addr), body)
			if err == nil {
				n.log.Info("joined the cluster", zap.String("via", addr), zap.Uint64("replica_id", id.ReplicaID))
				id.Joining = false
				return n.store.saveIdentity(id)
			}
			n.log.Warn("join attempt failed", zap.String("via", addr), zap.Int("attempt", attempt), zap.Error(err))
			errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
		}
		if attempt < c.JoinAttempts {
			select {
			case <-time.After(c.JoinInterval):
			case <-n.stopping:
				return fmt.Errorf("%w: node is stopping", ErrJoinFailed)
			}
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: -join lists only this node", ErrJoinFailed)
	}
	return fmt.Errorf("%w after %d attempts: %s", ErrJoinFailed, c.JoinAttempts, strings.Join(errs[max(0, len(errs)-len(via)):], "; "))
}

func (n *Node) joinOne(client *http.Client, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(n.stopCtx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	n.setJoinAs(req)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: %s (%s)", ErrJoinUnauthorized, strings.TrimSpace(string(msg)), n.unauthorizedHint())
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// expect finds the founding members for -bootstrap-expect: it asks every
// -join address for its node metadata (on the Raft port's mux, or the API
// of an http:// entry) until BootstrapExpect nodes, this one included, are
// known; they all start Raft with that same set. If a listed node already
// belongs to a working cluster, formed is true: join it instead.
func (n *Node) expect(id identity) (members map[uint64]string, formedVia string, err error) {
	c := n.cfg
	deadline := time.Now().Add(c.BootstrapExpectTimeout)
	client := n.peerClient(2 * time.Second)
	defer client.CloseIdleConnections()
	// refused holds, by address, why a member refused this node's
	// notify; unnotified the members not yet announced to this one.
	refused := map[string]error{}
	unnotified := map[string]bool{}
	addrs := func() []string { return c.Join }
	if c.DiscoMode != "" {
		dc, err := parseDiscoConfig(c.DiscoMode, c.DiscoConfig)
		if err != nil {
			return nil, "", err
		}
		addrs = func() []string {
			found, err := dc.discover(n.stopCtx, c.DiscoMode)
			if err != nil {
				n.log.Info("discovery found nothing yet", zap.String("mode", c.DiscoMode), zap.Error(err))
			}
			return found
		}
	}
	for {
		members = map[uint64]string{id.ReplicaID: id.RaftAddr}
		found := addrs()
		for _, addr := range found {
			if n.stopCtx.Err() != nil {
				return nil, "", fmt.Errorf("%w: node is stopping", ErrJoinFailed)
			}
			if addr == c.RaftAdvAddr || addr == c.RaftAddr || c.isOwnAPIAddr(addr) {
				continue // this node
			}
			// Every request announces this node with its -join-as
			// credentials (rqlite's Notify): a member with -auth
			// answers and counts it only so.
			meta, err := n.peerMeta(n.stopCtx, client, addr, id.ReplicaID)
			if errors.Is(err, ErrJoinUnauthorized) {
				if refused[addr] == nil {
					n.log.Warn("bootstrap peer refused this node's credentials", zap.String("addr", addr), zap.Error(err))
				}
				refused[addr] = err
				continue
			}
			if err != nil {
				n.log.Debug("bootstrap peer not answering yet", zap.String("addr", addr), zap.Error(err))
				continue
			}
			delete(refused, addr)
			if meta.ReplicaID == id.ReplicaID {
				continue // this node, by another name
			}
			switch {
			case meta.Expecting && !n.gw.Notified(meta.ReplicaID):
				// With -auth, a founder must have announced itself
				// with join credentials (rqlite counts authorized
				// Notify requests only).
				unnotified[addr] = true
			case meta.Expecting:
				delete(unnotified, addr)
				members[meta.ReplicaID] = meta.RaftAddr
			case len(meta.Founders) > 0:
				if _, founder := meta.Founders[id.ReplicaID]; founder {
					// The others found this node and recorded it before
					// it finished looking: the same founders, then.
					return meta.Founders, "", nil
				}
				if meta.LeaderReplicaID != 0 {
					n.log.Info("a listed node already belongs to a cluster; joining it", zap.String("via", addr))
					return nil, addr, nil
				}
				// Formed without this node, but no leader right now:
				// joining needs one, so wait.
			case meta.LeaderReplicaID != 0:
				// A member that was never a -bootstrap-expect founder.
				n.log.Info("a listed node already belongs to a cluster; joining it", zap.String("via", addr))
				return nil, addr, nil
			}
			// Anything else (starting, or a member between leaders) is
			// neither counted nor joined: ask again.
		}
		// Exactly N: with identical lists every node then sees the same
		// set. More addresses than N (a list or DNS name naming more
		// nodes) waits rather than guess which N found the cluster.
		if len(members) == c.BootstrapExpect && len(found) <= c.BootstrapExpect {
			n.log.Info("founding members found", zap.Any("members", members))
			return members, "", nil
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("%w: %d of %d expected nodes found within %s (addresses: %v)%s",
				ErrJoinFailed, len(members), c.BootstrapExpect, c.BootstrapExpectTimeout, found, n.expectAuthCause(refused, unnotified))
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-n.stopping:
			return nil, "", fmt.Errorf("%w: node is stopping", ErrJoinFailed)
		}
	}
}

// peerMeta asks a -join address for the node's own metadata. A non-zero
// notify announces this node as rqlite's Notify does, with the -join-as
// credentials; without it they go only to an http(s):// entry's API, which
// checks them (a Raft port's /skiff/node does not).
func (n *Node) peerMeta(ctx context.Context, client *http.Client, addr string, notify uint64) (gateway.NodeMeta, error) {
	// A dead peer costs one peerTimeout (the shared n.peers has no
	// timeout of its own).
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	var meta gateway.NodeMeta
	url := n.raftURL(addr, "/skiff/node")
	if isAPIEntry(addr) {
		url = strings.TrimRight(addr, "/") + "/skiff/node"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return meta, err
	}
	if notify != 0 {
		req.Header.Set(gateway.HeaderNotify, strconv.FormatUint(notify, 10))
	}
	if notify != 0 || isAPIEntry(addr) {
		n.setJoinAs(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return meta, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode == http.StatusUnauthorized {
			return meta, fmt.Errorf("%w: %s", ErrJoinUnauthorized, strings.TrimSpace(string(msg)))
		}
		return meta, fmt.Errorf("answered %d", resp.StatusCode)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&meta)
	return meta, err
}

// leaderProgress asks the leader for its applied index and the snapshot it
// streams (replica.Config's LeaderProgress). Without the leader's address
// (a joiner that has not yet applied the membership) it asks the -join
// peers, which name the leader's.
func (n *Node) leaderProgress(ctx context.Context, leader uint64, addr string) (lifecycle.LeaderIndex, error) {
	client := n.peers
	progress := func(m gateway.NodeMeta) lifecycle.LeaderIndex {
		return lifecycle.LeaderIndex{Index: m.AppliedIndex, SentBytes: m.SentBytes, SentTotal: m.SentTotal}
	}
	if addr == "" {
		for _, via := range n.cfg.Join {
			meta, err := n.peerMeta(ctx, client, via, 0)
			if err != nil {
				continue
			}
			if meta.ReplicaID == leader {
				return progress(meta), nil
			}
			if a := meta.Members[leader]; a != "" {
				addr = a
				break
			}
		}
		if addr == "" {
			return lifecycle.LeaderIndex{}, fmt.Errorf("%w: leader %d's address is unknown", ErrJoinFailed, leader)
		}
	}
	meta, err := n.peerMeta(ctx, client, addr, 0)
	if err != nil {
		return lifecycle.LeaderIndex{}, err
	}
	if meta.ReplicaID != leader {
		return lifecycle.LeaderIndex{}, fmt.Errorf("%s is replica %d, not the leader %d", addr, meta.ReplicaID, leader)
	}
	return progress(meta), nil
}

// checkRemoved asks peers (Raft addresses: the mux serves /skiff/node)
// whether replica self was removed from the cluster (replica.Config's
// CheckRemoved). A peer's list is its committed membership's, and a
// removal is final, so one peer that lists it is enough.
func (n *Node) checkRemoved(ctx context.Context, peers []string, self uint64) (string, error) {
	var errs []error
	for _, addr := range peers {
		meta, err := n.peerMeta(ctx, n.peers, addr, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		for _, id := range meta.Removed {
			if id == self {
				return fmt.Sprintf("member %q at %s lists replica %d as removed", meta.NodeID, addr, self), nil
			}
		}
	}
	return "", errors.Join(errs...)
}

// ErrOtherCluster: a node that already holds data of its own was started
// with -join naming members of another cluster.
var ErrOtherCluster = errors.New("this node belongs to another cluster")

// membershipChecks is how many times confirmMember asks a -join target
// that does not list this node: a member refreshes its view of the
// membership about once a second, so a change just made may not show yet.
const membershipChecks = 3

// confirmMember runs when a node that already holds Raft state is started
// with -join. rqlite ignores -join for a node already a member of that
// cluster; a node that holds a cluster of its own (a single-node leader
// restarted with -join pointing elsewhere, say) must not run on as if it
// had joined. So each target is asked for its membership: if one lists
// this node (its replica ID at its Raft address), the join is a no-op; if
// a ready member does not (after a few looks) or lists it as removed, the
// node refuses to start. Targets that cannot tell (unreachable, not ready)
// leave it undecided, and the node starts from its data as before.
func (n *Node) confirmMember(id identity, via []string) error {
	c := n.cfg
	client := n.peerClient(2 * time.Second)
	defer client.CloseIdleConnections()
	for round := 1; round <= membershipChecks; round++ {
		foreign := ""
		for _, addr := range via {
			if addr == c.RaftAdvAddr || addr == c.RaftAddr || c.isOwnAPIAddr(addr) {
				continue
			}
			meta, err := n.peerMeta(n.stopCtx, client, addr, 0)
			if err != nil {
				n.log.Debug("-join target not answering", zap.String("via", addr), zap.Error(err))
				continue
			}
			if meta.ReplicaID == id.ReplicaID && meta.RaftAddr == id.RaftAddr {
				continue // this node, by another name
			}
			if a, ok := meta.Members[id.ReplicaID]; ok && a == id.RaftAddr {
				n.log.Info("ignoring -join: this node is already a member of that cluster",
					zap.String("via", addr), zap.Uint64("replica_id", id.ReplicaID))
				// As rqlite's nodes do, the join is still sent: the
				// member answers it as a no-op and counts it (an
				// ignored join). Best effort: the node is a member.
				n.noopJoin(id, addr)
				return nil
			}
			for _, r := range meta.Removed {
				if r == id.ReplicaID {
					return fmt.Errorf("%w: -join target %s (node %q) says this node (replica %d) was removed from its cluster; "+
						"to join it again, start with a new data directory", ErrOtherCluster, addr, meta.NodeID, id.ReplicaID)
				}
			}
			if meta.Phase == string(lifecycle.Ready) && len(meta.Members) > 0 {
				foreign = fmt.Sprintf("%s (node %q, members %v)", addr, meta.NodeID, meta.Members)
			}
		}
		if foreign == "" {
			break
		}
		if round == membershipChecks {
			return fmt.Errorf("%w: the data directory holds node %q (replica %d at %s), which is not a member of the cluster of -join target %s; "+
				"restart without -join to run the node's own cluster, or with a new data directory to join that one",
				ErrOtherCluster, id.NodeID, id.ReplicaID, id.RaftAddr, foreign)
		}
		select {
		case <-time.After(time.Second):
		case <-n.stopping:
			return fmt.Errorf("%w: node is stopping", ErrJoinFailed)
		}
	}
	n.log.Info("ignoring -join: no target could confirm this node's membership; starting from its data", zap.Strings("join", via))
	return nil
}

// noopJoin sends the join request of a node already a member (confirmMember)
// so that the cluster sees and counts it as rqlite's does; its outcome
// changes nothing.
func (n *Node) noopJoin(id identity, addr string) {
	voter := !n.cfg.NonVoter
	body, _ := json.Marshal(gateway.JoinRequest{ID: id.NodeID, Addr: id.RaftAddr, Voter: &voter,
		ReplicaID: id.ReplicaID, APIAddr: n.cfg.apiAddr()})
	client := n.peerClient(peerTimeout)
	defer client.CloseIdleConnections()
	if err := n.joinOne(client, n.joinURL(addr), body); err != nil {
		n.log.Debug("no-op join not answered", zap.String("via", addr), zap.Error(err))
	}
}
