package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/test/testcert"
)

// tlsCluster is one test's CA and the node TLS flags every member uses.
type tlsCluster struct {
	t      *testing.T
	dir    string
	ca     *testcert.CA
	caFile string
	// flags are the -node-* flags other than the certificate and key.
	flags nodetls.Config
}

func newTLSCluster(t *testing.T, flags nodetls.Config) *tlsCluster {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "skiff-test-ca")
	flags.CACertFile = ca.WriteCA(t, dir, "ca")
	return &tlsCluster{t: t, dir: dir, ca: ca, caFile: flags.CACertFile, flags: flags}
}

// nodeTLS is the node TLS configuration of a member with leaf's
// certificate (issued by the CA, or self-signed).
func (tc *tlsCluster) nodeTLS(name string, leaf testcert.Leaf, selfSigned bool) *nodetls.Config {
	c := tc.flags
	if selfSigned {
		c.CertFile, c.KeyFile = testcert.SelfSigned(tc.t, tc.dir, name, leaf)
	} else {
		c.CertFile, c.KeyFile = tc.ca.Issue(tc.t, tc.dir, name, leaf)
	}
	return &c
}

// observed is a logger whose entries a test reads.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(core), logs
}

// hasLog reports whether logs holds an entry whose message contains msg
// and whose error contains reason.
func hasLog(logs *observer.ObservedLogs, msg, reason string) bool {
	for _, e := range logs.FilterMessageSnippet(msg).All() {
		for _, f := range e.Context {
			if err, ok := f.Interface.(error); ok && f.Key == "error" && strings.Contains(err.Error(), reason) {
				return true
			}
		}
	}
	return false
}

func startTLSNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// httpDo sends a request to a node's (plain) HTTP API and returns the body.
func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startTLSTrio starts a cluster of three (n1, n2 and n3 joining it) with
// tc's flags and certificates of common name skiff-node, and waits until
// each is ready.
func startTLSTrio(t *testing.T, tc *tlsCluster) ([]*Node, []*observer.ObservedLogs) {
	t.Helper()
	var nodes []*Node
	var logs []*observer.ObservedLogs
	var raft1 string
	for i, id := range []string{"n1", "n2", "n3"} {
		log, l := observed()
		cfg := Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: id, Logger: log,
			NodeTLS: tc.nodeTLS(id, testcert.Leaf{CommonName: "skiff-node"}, false), JoinInterval: 200 * time.Millisecond}
		if i == 0 {
			raft1 = cfg.RaftAddr
		} else {
			cfg.Join = []string{raft1}
		}
		nodes = append(nodes, startTLSNode(t, cfg))
		logs = append(logs, l)
		waitPhase(t, nodes[i], lifecycle.Ready)
	}
	return nodes, logs
}

// Three nodes verifying each other's certificates (mutual TLS, common name
// and server name checked) form a cluster over node TLS through joins on
// the Raft port; a write replicates; /nodes reaches every peer over TLS;
// no handshake fails.
func TestNodeTLSClusterFormsAndReplicates(t *testing.T) {
	tc := newTLSCluster(t, nodetls.Config{VerifyClient: true, VerifyCommonName: "skiff-node"})
	nodes, logs := startTLSTrio(t, tc)
	base := func(i int) string { return "http://" + nodes[i].HTTPAddr().String() }
	if code, b := httpDo(t, http.MethodPost, base(0)+"/db/execute",
		`["CREATE TABLE t (x TEXT)", "INSERT INTO t VALUES ('over tls')"]`); code != http.StatusOK || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", code, b)
	}
	for i := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, b := httpDo(t, http.MethodGet, base(i)+"/db/query?level=none&q=SELECT+x+FROM+t", "")
			if strings.Contains(b, "over tls") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d never had the row: %s", i+1, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// /nodes asks every peer on its Raft port, over TLS.
	if code, b := httpDo(t, http.MethodGet, base(1)+"/nodes?nonvoters", ""); code != http.StatusOK ||
		strings.Count(b, `"reachable":true`) != 3 {
		t.Fatalf("/nodes: %d %s", code, b)
	}
	for i, n := range nodes {
		st := n.mux.tlsStatus()
		if st["tls"] != "enabled" || st["verify_client"] != true || st["tls_handshakes"].(uint64) == 0 || st["tls_handshake_failures"].(uint64) != 0 {
			t.Errorf("node %d mux TLS status %v", i+1, st)
		}
		if l := logs[i].FilterMessageSnippet("TLS handshake"); l.Len() != 0 {
			t.Errorf("node %d logged handshake failures: %v", i+1, l.All())
		}
	}
}

// A node whose certificate is untrusted (self-signed), expired, for
// another common name or another server name, or that has no node TLS at
// all, cannot join a node-TLS cluster: its join fails, and both it and the
// member it asked log the refusal with the reason.
func TestNodeTLSRefusesBadJoiners(t *testing.T) {
	const name = "raft.skiff.internal"
	tc := newTLSCluster(t, nodetls.Config{VerifyClient: true, VerifyCommonName: "skiff-node", VerifyServerName: name})
	good := testcert.Leaf{CommonName: "skiff-node", DNSNames: []string{name}}
	log1, logs1 := observed()
	n1 := startTLSNode(t, Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: "n1", Logger: log1,
		NodeTLS: tc.nodeTLS("n1", good, false)})
	waitPhase(t, n1, lifecycle.Ready)
	raft1 := n1.cfg.RaftAddr
	nb, na := testcert.Expired()
	for _, c := range []struct {
		name string
		// nodeTLS is the joiner's (nil: none).
		nodeTLS func() *nodetls.Config
		// memberSees and joinerSees are the reasons each side logs.
		memberSees, joinerSees string
	}{
		{name: "self-signed", nodeTLS: func() *nodetls.Config { return tc.nodeTLS("self", good, true) },
			memberSees: "unknown authority", joinerSees: "unknown certificate authority"},
		{name: "expired", nodeTLS: func() *nodetls.Config {
			return tc.nodeTLS("expired", testcert.Leaf{CommonName: "skiff-node", DNSNames: []string{name}, NotBefore: nb, NotAfter: na}, false)
		}, memberSees: "expired", joinerSees: "expired certificate"},
		{name: "wrong common name", nodeTLS: func() *nodetls.Config {
			return tc.nodeTLS("cn", testcert.Leaf{CommonName: "intruder", DNSNames: []string{name}}, false)
		}, memberSees: `got "intruder", want "skiff-node"`, joinerSees: "bad certificate"},
		{name: "wrong server name", nodeTLS: func() *nodetls.Config {
			return tc.nodeTLS("sn", testcert.Leaf{CommonName: "skiff-node", DNSNames: []string{"elsewhere.internal"}}, false)
		}, memberSees: "not " + name, joinerSees: "bad certificate"},
		{name: "no node TLS", nodeTLS: func() *nodetls.Config { return nil },
			memberSees: "does not look like a TLS handshake", joinerSees: "requires node-to-node TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log, logs := observed()
			n, err := Start(Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: "bad", Logger: log,
				NodeTLS: c.nodeTLS(), Join: []string{raft1}, JoinAttempts: 2, JoinInterval: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := n.Wait(ctx); !errors.Is(err, ErrJoinFailed) || !strings.Contains(err.Error(), c.joinerSees) {
				t.Fatalf("joiner: %v, want a failed join saying %q", err, c.joinerSees)
			}
			if !hasLog(logs, "join attempt failed", c.joinerSees) {
				t.Errorf("the joiner did not log the refusal with %q: %v", c.joinerSees, logs.All())
			}
			deadline := time.Now().Add(10 * time.Second)
			for !hasLog(logs1, "raft port: TLS handshake failed", c.memberSees) {
				if time.Now().After(deadline) {
					t.Fatalf("the member did not log the refusal with %q: %v", c.memberSees, logs1.All())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	if st := n1.mux.tlsStatus(); st["tls_handshake_failures"].(uint64) < 5 {
		t.Fatalf("mux TLS status %v: the refusals are not counted", st)
	}
	if m := n1.State().Members; len(m) != 1 {
		t.Fatalf("members %v: a refused node joined", m)
	}
	// The refusals were about those certificates: a node with the
	// cluster's name and common name joins.
	n2 := startTLSNode(t, Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: "n2", Logger: zap.NewNop(),
		NodeTLS: tc.nodeTLS("n2", good, false), Join: []string{raft1}, JoinInterval: 50 * time.Millisecond})
	waitPhase(t, n2, lifecycle.Ready)
	deadline := time.Now().Add(20 * time.Second)
	for len(n1.State().Members) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("members %v: the good node did not join", n1.State().Members)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With -node-no-verify, nodes whose certificates nobody could verify
// (self-signed, no CA) still form an encrypted cluster, as in rqlite.
func TestNodeTLSNoVerifySelfSigned(t *testing.T) {
	dir := t.TempDir()
	var nodes []*Node
	var raft1 string
	for i, id := range []string{"n1", "n2"} {
		cert, key := testcert.SelfSigned(t, dir, id, testcert.Leaf{})
		cfg := Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: id, Logger: zap.NewNop(),
			NodeTLS: &nodetls.Config{CertFile: cert, KeyFile: key, NoVerify: true}, JoinInterval: 50 * time.Millisecond}
		if i == 0 {
			raft1 = cfg.RaftAddr
		} else {
			cfg.Join = []string{raft1}
		}
		nodes = append(nodes, startTLSNode(t, cfg))
		waitPhase(t, nodes[i], lifecycle.Ready)
	}
	if code, b := httpDo(t, http.MethodPost, "http://"+nodes[1].HTTPAddr().String()+"/db/execute",
		`["CREATE TABLE t (x)"]`); code != http.StatusOK || strings.Contains(b, "error") {
		t.Fatalf("write through the joiner: %d %s", code, b)
	}
	if st := nodes[0].mux.tlsStatus(); st["skip_verify"] != "true" || st["tls_handshakes"].(uint64) == 0 {
		t.Fatalf("status %v", st)
	}
}

func TestNodeTLSConfigValidate(t *testing.T) {
	good := Config{DataDir: "d"}.WithDefaults()
	for _, c := range []nodetls.Config{{CertFile: "c"}, {KeyFile: "k"}, {CACertFile: "ca"}, {VerifyClient: true},
		{CertFile: "c", KeyFile: "k", VerifyCommonName: "x"}} {
		cfg := good
		cfg.NodeTLS = &c
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, nodetls.ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	// Files that cannot be loaded refuse the start, naming the flag.
	cfg := good
	cfg.DataDir, cfg.HTTPAddr, cfg.RaftAddr, cfg.HTTPAdvAddr, cfg.RaftAdvAddr = t.TempDir(), freeAddr(t), freeAddr(t), "", ""
	cfg.NodeTLS = &nodetls.Config{CertFile: "/no/such/cert.pem", KeyFile: "/no/such/key.pem"}
	if n, err := Start(cfg); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "/no/such/cert.pem") {
		if n != nil {
			_ = n.Shutdown()
		}
		t.Fatalf("missing files: %v", err)
	}
}

// -bootstrap-expect finds its founding members over node TLS (their node
// metadata on the Raft port) and forms the cluster.
func TestNodeTLSBootstrapExpect(t *testing.T) {
	tc := newTLSCluster(t, nodetls.Config{VerifyClient: true})
	raft := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var nodes []*Node
	for i, id := range []string{"n1", "n2", "n3"} {
		log, _ := observed()
		nodes = append(nodes, startTLSNode(t, Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: raft[i], NodeID: id, Logger: log,
			NodeTLS: tc.nodeTLS(id, testcert.Leaf{}, false), Join: raft, BootstrapExpect: 3}))
	}
	for _, n := range nodes {
		waitPhase(t, n, lifecycle.Ready)
	}
	if code, b := httpDo(t, http.MethodPost, "http://"+nodes[2].HTTPAddr().String()+"/db/execute",
		`["CREATE TABLE t (x)"]`); code != http.StatusOK || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", code, b)
	}
	for i, n := range nodes {
		deadline := time.Now().Add(20 * time.Second)
		for len(n.State().Members) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d members %v", i+1, n.State().Members)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// A joiner of a node-TLS cluster whose log was compacted catches up from a
// snapshot streamed through the TLS mux.
func TestNodeTLSJoinerGetsSnapshot(t *testing.T) {
	tc := newTLSCluster(t, nodetls.Config{VerifyClient: true, VerifyCommonName: "skiff-node"})
	leaf := testcert.Leaf{CommonName: "skiff-node"}
	log1, logs1 := observed()
	n1 := startTLSNode(t, Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: "n1", Logger: log1,
		NodeTLS: tc.nodeTLS("n1", leaf, false)})
	waitPhase(t, n1, lifecycle.Ready)
	base1 := "http://" + n1.HTTPAddr().String()
	stmts := []string{`"CREATE TABLE t (x TEXT)"`}
	for range 300 {
		stmts = append(stmts, `"INSERT INTO t VALUES (hex(randomblob(2048)))"`)
	}
	if code, b := httpDo(t, http.MethodPost, base1+"/db/execute", "["+strings.Join(stmts, ",")+"]"); code != http.StatusOK || strings.Contains(b, "error") {
		t.Fatalf("write: %d %.300s", code, b)
	}
	if code, b := httpDo(t, http.MethodPost, base1+"/snapshot?trailing_logs=0", ""); code != http.StatusOK {
		t.Fatalf("/snapshot: %d %s", code, b)
	}
	log2, logs2 := observed()
	n2 := startTLSNode(t, Config{DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t), NodeID: "n2", Logger: log2,
		NodeTLS: tc.nodeTLS("n2", leaf, false), Join: []string{n1.cfg.RaftAddr}, JoinInterval: 200 * time.Millisecond})
	waitPhase(t, n2, lifecycle.Ready)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, b := httpDo(t, http.MethodGet, "http://"+n2.HTTPAddr().String()+"/db/query?level=none&q=SELECT+count(*)+FROM+t", "")
		if strings.Contains(b, "[[300]]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the joiner did not catch up: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs2.FilterMessage("snapshot installed").Len() == 0 {
		t.Fatal("the joiner caught up without a snapshot: the test no longer streams one")
	}
	for i, l := range []*observer.ObservedLogs{logs1, logs2} {
		if f := l.FilterMessageSnippet("TLS handshake"); f.Len() != 0 {
			t.Errorf("node %d logged handshake failures: %v", i+1, f.All())
		}
	}
}

// Every node's certificate is rotated (new files, same CA) while writes
// run: the nodes reload them, new connections present the new ones, and
// no write fails.
func TestNodeTLSRotateCertificatesUnderWrites(t *testing.T) {
	tc := newTLSCluster(t, nodetls.Config{VerifyClient: true, VerifyCommonName: "skiff-node", ReloadInterval: 100 * time.Millisecond})
	nodes, logs := startTLSTrio(t, tc)
	base := "http://" + nodes[1].HTTPAddr().String() // a follower: writes cross the Raft port
	if code, b := httpDo(t, http.MethodPost, base+"/db/execute", `["CREATE TABLE t (x INTEGER)"]`); code != http.StatusOK || strings.Contains(b, "error") {
		t.Fatalf("create: %d %s", code, b)
	}
	stop := make(chan struct{})
	type result struct {
		ok     int
		failed []string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		c := &http.Client{Timeout: 30 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			resp, err := c.Post(base+"/db/execute", "application/json", strings.NewReader(fmt.Sprintf(`["INSERT INTO t VALUES (%d)"]`, i)))
			if err != nil {
				r.failed = append(r.failed, err.Error())
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "error") {
				r.failed = append(r.failed, fmt.Sprintf("%d %s", resp.StatusCode, b))
				continue
			}
			r.ok++
		}
	}()
	// Rotate: fresh pairs over the same files, mtimes moved forward so
	// the change is seen whatever the filesystem's granularity.
	future := time.Now().Add(time.Hour)
	for _, n := range nodes {
		cert, key := tc.ca.Issue(t, tc.dir, n.cfg.NodeID, testcert.Leaf{CommonName: "skiff-node"})
		for _, f := range []string{cert, key} {
			if err := os.Chtimes(f, future, future); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, n := range nodes {
		want, err := tls.LoadX509KeyPair(n.cfg.NodeTLS.CertFile, n.cfg.NodeTLS.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !bytes.Equal(n.tls.Certificate().Certificate[0], want.Certificate[0]) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not reload its certificate: %v", i+1, logs[i].All())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A new connection to its Raft port gets the new certificate.
		c, err := tls.Dial("tcp", n.cfg.RaftAddr, nodes[(i+1)%3].tls.Client())
		if err != nil {
			t.Fatal(err)
		}
		got := c.ConnectionState().PeerCertificates[0].Raw
		c.Close()
		if !bytes.Equal(got, want.Certificate[0]) {
			t.Fatalf("node %d still presents its old certificate", i+1)
		}
	}
	// Writes go on after the rotation.
	count := func() int {
		_, b := httpDo(t, http.MethodGet, base+"/db/query?level=none&q=SELECT+count(*)+FROM+t", "")
		var doc struct {
			Results []struct{ Values [][]int }
		}
		if err := json.Unmarshal([]byte(b), &doc); err != nil || len(doc.Results) == 0 || len(doc.Results[0].Values) == 0 {
			t.Fatalf("count: %v %s", err, b)
		}
		return doc.Results[0].Values[0][0]
	}
	after := count() + 20
	deadline := time.Now().Add(30 * time.Second)
	for count() < after {
		if time.Now().After(deadline) {
			t.Fatal("writes stopped after the rotation")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	r := <-done
	if len(r.failed) != 0 || r.ok == 0 {
		t.Fatalf("%d writes succeeded, %d failed: %v", r.ok, len(r.failed), r.failed)
	}
	for i, l := range logs {
		if f := l.FilterMessageSnippet("TLS handshake"); f.Len() != 0 {
			t.Errorf("node %d logged handshake failures: %v", i+1, f.All())
		}
	}
}
