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
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway"
)

// ErrJoinFailed: no member accepted the join within -join-attempts.
var ErrJoinFailed = errors.New("join failed")

// randomReplicaID picks a non-zero replica ID.
func randomReplicaID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])>>1 | 1
}

// joinURL turns a -join entry into the URL of a member's join endpoint: a
// Raft address (rqlited v8+) is asked on the Raft port's mux, an http://
// URL (v7) on its API.
func joinURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/") + "/join"
	}
	return "http://" + addr + "/skiff/join"
}

// join asks the members listed in -join, in turn, to add this node, for up
// to -join-attempts rounds -join-interval apart (rqlited's rules). The
// node's own addresses are skipped: a node cannot join itself.
func (n *Node) join(id identity) error {
	c := n.cfg
	voter := !c.NonVoter
	body, _ := json.Marshal(gateway.JoinRequest{ID: id.NodeID, Addr: id.RaftAddr, Voter: &voter,
		ReplicaID: id.ReplicaID, APIAddr: c.HTTPAdvAddr})
	client := &http.Client{Timeout: 30 * time.Second}
	var errs []string
	for attempt := 1; attempt <= c.JoinAttempts; attempt++ {
		for _, addr := range c.Join {
			if addr == c.RaftAdvAddr || addr == c.RaftAddr || strings.TrimPrefix(addr, "http://") == c.HTTPAdvAddr {
				continue
			}
			err := n.joinOne(client, joinURL(addr), body)
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
	return fmt.Errorf("%w after %d attempts: %s", ErrJoinFailed, c.JoinAttempts, strings.Join(errs[max(0, len(errs)-len(c.Join)):], "; "))
}

func (n *Node) joinOne(client *http.Client, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
