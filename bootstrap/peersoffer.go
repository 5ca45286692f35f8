package bootstrap

// The voters applying one peers.json compare the indexes they recovered at
// and fetch the snapshot of a node ahead (peers.go, applyPeers), over the
// Raft port's mux.

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Where a node applying peers.json serves, on the Raft port's mux (the
// addresses peers.json lists), the index it recovered at and its export.
const (
	pathPeersOffer    = "/skiff/peers-offer"
	pathPeersSnapshot = "/skiff/peers-snapshot"
)

// peersOffer is a voter's answer on pathPeersOffer.
type peersOffer struct {
	NodeID string `json:"node_id"`
	Index  uint64 `json:"index"`
}

// withPeersOffer serves pathPeersOffer in front of next.
func (n *Node) withPeersOffer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pathPeersSnapshot {
			n.servePeersSnapshot(w, r)
			return
		}
		if r.URL.Path != pathPeersOffer {
			next.ServeHTTP(w, r)
			return
		}
		o := n.offer.Load()
		if o == nil {
			http.Error(w, "no peers.json applied yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(o)
	})
}

// gatherOffers asks every other listed voter, at its listed address, for
// the index it recovered at, until all have answered (they start one after
// another: the runbook restarts every listed node). It returns the highest
// index, the addresses of the other nodes at it, and whether any voter
// recovered at another index. Waiting for all, not a majority: the one
// missing could be the one ahead.
func (n *Node) gatherOffers(peers []peer, self string, own uint64) (uint64, []string, bool, error) {
	pending := map[string]string{}
	for _, p := range peers {
		if !p.NonVoter && p.ID != self {
			pending[p.ID] = p.Address
		}
	}
	offers := map[string]uint64{}
	client := n.peerClient(peerTimeout)
	defer client.CloseIdleConnections()
	backoff, logged := 100*time.Millisecond, time.Now()
	for len(pending) > 0 {
		for nodeID, addr := range pending {
			o, err := n.fetchOffer(client, addr)
			if err != nil {
				continue
			}
			if o.NodeID != nodeID {
				return 0, nil, false, fmt.Errorf("%w: %s is node %q, not %q", ErrPeers, addr, o.NodeID, nodeID)
			}
			offers[addr] = o.Index
			delete(pending, nodeID)
		}
		if len(pending) == 0 {
			break
		}
		if time.Since(logged) > 10*time.Second {
			n.log.Info("peers.json: waiting for the other listed voters to start", zap.Any("waiting_for", pending))
			logged = time.Now()
		}
		select {
		case <-n.stopCtx.Done():
			return 0, nil, false, fmt.Errorf("%w: stopped while waiting for %v", ErrPeers, pending)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	highest, lowest := own, own
	for _, idx := range offers {
		highest, lowest = max(highest, idx), min(lowest, idx)
	}
	var ahead []string
	for addr, idx := range offers {
		if idx == highest {
			ahead = append(ahead, addr)
		}
	}
	sort.Strings(ahead)
	return highest, ahead, lowest < highest, nil
}

// fetchSnapshot copies the snapshot a voter ahead exported at index into
// dir, from the first of the nodes at addrs that serves it, and returns its
// directory. The import checks it against its checksum.
func (n *Node) fetchSnapshot(addrs []string, index uint64, dir string) (string, error) {
	var errs []string
	for _, addr := range addrs {
		out, err := n.fetchSnapshotFrom(addr, index, dir)
		if err == nil {
			n.log.Info("peers.json: fetched the snapshot of a voter ahead", zap.String("from", addr), zap.Uint64("index", index))
			return out, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
	}
	return "", fmt.Errorf("%w: no voter at index %d serves its snapshot (%s); start every listed node together",
		ErrPeers, index, strings.Join(errs, "; "))
}

func (n *Node) fetchSnapshotFrom(addr string, index uint64, dir string) (string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(n.stopCtx, http.MethodGet, n.raftURL(addr, fmt.Sprintf("%s?index=%d", pathPeersSnapshot, index)), nil)
	if err != nil {
		return "", err
	}
	client := n.peerClient(0)
	// Its idle connection would count against the peer's per-IP cap
	// until the peer's idle timeout.
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		name := filepath.Base(h.Name)
		if h.Typeflag != tar.TypeReg || name != h.Name || name == "." || name == ".." {
			return "", fmt.Errorf("unexpected entry %q in the snapshot", h.Name)
		}
		if err := writeFileSynced(filepath.Join(tmp, name), tr); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("snapshot-%016X", index))
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

func writeFileSynced(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// servePeersSnapshot streams this node's export (a tar of its files) to a
// voter behind, while this process keeps it.
func (n *Node) servePeersSnapshot(w http.ResponseWriter, r *http.Request) {
	p := n.export.Load()
	o := n.offer.Load()
	if p == nil || o == nil || r.URL.Query().Get("index") != fmt.Sprint(o.Index) {
		http.Error(w, "no exported snapshot at that index here", http.StatusNotFound)
		return
	}
	entries, err := os.ReadDir(*p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addTarFile(tw, filepath.Join(*p, e.Name())); err != nil {
			n.log.Warn("sending the exported snapshot failed", zap.Error(err))
			return
		}
	}
	if err := tw.Close(); err != nil {
		n.log.Warn("sending the exported snapshot failed", zap.Error(err))
	}
}

func addTarFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(path), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, st.Size())
	return err
}

func (n *Node) fetchOffer(client *http.Client, addr string) (peersOffer, error) {
	var o peersOffer
	req, err := http.NewRequestWithContext(n.stopCtx, http.MethodGet, n.raftURL(addr, pathPeersOffer), nil)
	if err != nil {
		return o, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return o, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return o, fmt.Errorf("%s: %s", addr, resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&o)
	return o, err
}
