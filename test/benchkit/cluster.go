package benchkit

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Node is one skiffd process (or another server the drivers start and
// measure, such as benchcluster's HTTP floor).
type Node struct {
	ID, HTTP, Raft, Dir string
	Cmd                 *exec.Cmd
	// Access is how its HTTP API is reached (zero: plain HTTP, no
	// credentials).
	Access Access

	clientOnce sync.Once
	client     *http.Client
}

// Access is how a client reaches a node's HTTP API: over HTTPS trusting
// TLS's roots when TLS is set, with Basic credentials when User is.
type Access struct {
	TLS            *tls.Config
	User, Password string
}

// Base is the node's HTTP base URL.
func (n *Node) Base() string {
	if n.Access.TLS != nil {
		return "https://" + n.HTTP
	}
	return "http://" + n.HTTP
}

// Do sends req (made for n.Base()) with n's TLS configuration and
// credentials.
func (n *Node) Do(req *http.Request) (*http.Response, error) {
	if n.Access.User != "" {
		req.SetBasicAuth(n.Access.User, n.Access.Password)
	}
	// One client per node, so that polls reuse a connection rather than
	// each making a TLS handshake.
	n.clientOnce.Do(func() {
		n.client = http.DefaultClient
		if n.Access.TLS != nil {
			n.client = &http.Client{Transport: &http.Transport{TLSClientConfig: n.Access.TLS}}
		}
	})
	return n.client.Do(req)
}

// Get is GET n.Base()+path through Do.
func (n *Node) Get(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, n.Base()+path, nil)
	if err != nil {
		return nil, err
	}
	return n.Do(req)
}

// Cluster is 3 skiffd nodes on loopback and the leader they settled on.
type Cluster struct {
	Nodes  []*Node
	Leader *Node
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// StartCluster starts 3 nodes of skiffd with extra flags each, their data
// in dir/n1..n3 and their logs in dir/n1.log..n3.log, n1 bootstrapping and
// the others joining it, and waits for them to be ready with 3 voters
// under one leader. It returns the cluster even with an error, for Stop.
func StartCluster(skiffd, dir string, extra ...string) (*Cluster, error) {
	return StartClusterWith(skiffd, dir, Access{}, nil, extra...)
}

// StartClusterWith is StartCluster for nodes reached through a, with env
// added to their environment; extra then holds the flags that make a so
// (-http-cert, -auth).
func StartClusterWith(skiffd, dir string, a Access, env []string, extra ...string) (*Cluster, error) {
	c := &Cluster{}
	for i := 1; i <= 3; i++ {
		h, err := FreeAddr()
		if err != nil {
			return c, err
		}
		r, err := FreeAddr()
		if err != nil {
			return c, err
		}
		n := &Node{ID: fmt.Sprintf("n%d", i), HTTP: h, Raft: r, Dir: filepath.Join(dir, fmt.Sprintf("n%d", i)), Access: a}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return c, err
		}
		args := []string{"-node-id", n.ID, "-http-addr", h, "-raft-addr", r, "-log-level", "warn"}
		if i > 1 {
			args = append(args, "-join", c.Nodes[0].Raft)
		}
		n.Cmd = exec.Command(skiffd, append(append(args, extra...), n.Dir)...)
		if len(env) > 0 {
			n.Cmd.Env = append(os.Environ(), env...)
		}
		logf, err := os.Create(n.Dir + ".log")
		if err != nil {
			return c, err
		}
		n.Cmd.Stdout, n.Cmd.Stderr = logf, logf
		err = n.Cmd.Start()
		// The child holds its own descriptor.
		logf.Close()
		if err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, n)
		if i == 1 {
			if err := WaitReady(n, 60*time.Second); err != nil {
				return c, err
			}
		}
	}
	for _, n := range c.Nodes {
		if err := WaitReady(n, 60*time.Second); err != nil {
			return c, err
		}
	}
	var err error
	c.Leader, err = Leader(c.Nodes)
	return c, err
}

// Follower is the first node that is not the leader.
func (c *Cluster) Follower() *Node {
	for _, n := range c.Nodes {
		if n != c.Leader {
			return n
		}
	}
	return nil
}

// Stop stops the cluster's nodes (see Stop).
func (c *Cluster) Stop() { Stop(c.Nodes...) }

// Stop sends SIGTERM to every started node, then waits for each to exit.
// A node already stopped is left alone, so it may be called twice.
func Stop(nodes ...*Node) {
	for _, n := range nodes {
		if n.Cmd != nil && n.Cmd.Process != nil && n.Cmd.ProcessState == nil {
			_ = n.Cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range nodes {
		if n.Cmd != nil && n.Cmd.Process != nil && n.Cmd.ProcessState == nil {
			_ = n.Cmd.Wait()
		}
	}
}

// Ready polls base's /readyz with client every interval until it answers
// 200 (true) or deadline passes (false).
func Ready(client *http.Client, base string, deadline time.Time, interval time.Duration) bool {
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(interval)
	}
	return false
}

// WaitReady waits up to timeout for n to be ready.
func WaitReady(n *Node, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if status, _, err := ReadAll(n.Get("/readyz")); err == nil && status == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("%s not ready within %s (log: %s.log)", n.ID, timeout, n.Dir)
}

// Leader finds the leader from nodes[0]'s /nodes, once all 3 are voters.
func Leader(nodes []*Node) (*Node, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := nodes[0].Get("/nodes?ver=2")
		if err == nil {
			var out struct {
				Nodes []struct {
					ID     string `json:"id"`
					Leader bool   `json:"leader"`
					Voter  bool   `json:"voter"`
				} `json:"nodes"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			voters, lid := 0, ""
			for _, d := range out.Nodes {
				if d.Voter {
					voters++
				}
				if d.Leader {
					lid = d.ID
				}
			}
			if voters == 3 && lid != "" {
				for _, n := range nodes {
					if n.ID == lid {
						return n, nil
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, errors.New("cluster did not settle with 3 voters and a leader")
}

// Profile writes a CPU profile of the node at addr, taken over the middle
// of a workload of duration d (its setup and its tail left out).
func Profile(addr string, d time.Duration, path string) error {
	return ProfileNode(&Node{HTTP: addr}, d, path)
}

// ProfileNode is Profile for a node reached through its Access.
func ProfileNode(n *Node, d time.Duration, path string) error {
	secs := max(1, int((d - 2*time.Second).Seconds()))
	time.Sleep(time.Second)
	resp, err := n.Get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// ReadAll reads and closes the body of the answer to a request (resp and
// err as http.Client's methods return them), and returns its status.
func ReadAll(resp *http.Response, err error) (status int, body []byte, _ error) {
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
