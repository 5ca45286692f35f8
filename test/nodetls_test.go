package test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rqlite/gorqlite"
	"github.com/skiffdb/skiff/test/testcert"
)

// End-to-end tests of node-to-node TLS (API.md 1.13 "Internode": -node-cert,
// -node-key, -node-ca-cert, -node-no-verify, -node-verify-client,
// -node-verify-server-name, -node-verify-common-name). When it is on, every
// connection on the Raft port is TLS: Raft messages, snapshot streams, joins,
// the /nodes peer queries (API.md 2.2) and -bootstrap-expect's metadata
// calls. Certificates are made by testcert in each test's directories.

// tlsWaitTimeout bounds the wait for a node to serve a rotated certificate
// (the files are polled about every second) and for a refused node to give
// up its join.
const tlsWaitTimeout = 60 * time.Second

// withNodeTLS is a newClusterWith setup: each member gets a certificate of
// its own from ca (common name testcert.NodeCN, 127.0.0.1 and localhost)
// and the node TLS flags, plus extra. newClusterWith applies setup to n1
// twice: the second call must not rotate n1's running certificate.
func withNodeTLS(p *nodePKI, extra ...string) func(*member) {
	return func(m *member) {
		if slices.Contains(m.args, "-node-cert") {
			return
		}
		cert, key := p.Issue(m.t, m.dir, "node", testcert.Leaf{})
		m.args = append(m.args, "-node-cert", cert, "-node-key", key, "-node-ca-cert", p.caFile)
		m.args = append(m.args, extra...)
	}
}

// nodePKI is a test CA and its certificate file.
type nodePKI struct {
	*testcert.CA
	caFile string
}

func newNodePKI(t *testing.T) *nodePKI {
	ca := testcert.NewCA(t, "skiff-test-ca")
	return &nodePKI{CA: ca, caFile: ca.WriteCA(t, t.TempDir(), "ca")}
}

// nodeCertFile and nodeKeyFile are the pair withNodeTLS gave m.
func nodeCertFile(m *member) string { return filepath.Join(m.dir, "node.crt") }
func nodeKeyFile(m *member) string  { return filepath.Join(m.dir, "node.key") }

// raftTLSClient is what the test presents on a Raft port: a client-only
// certificate from ca (so -node-verify-client lets it finish a handshake),
// trusting ca only, checking the node's name as a peer would (127.0.0.1).
func raftTLSClient(t *testing.T, ca *nodePKI) *tls.Config {
	t.Helper()
	cert, key := ca.ClientOnly(t, t.TempDir(), "probe", testcert.NodeCN)
	return raftTLSClientWith(t, ca, cert, key)
}

// raftTLSClientWith is raftTLSClient presenting the given pair.
func raftTLSClientWith(t *testing.T, ca *nodePKI, cert, key string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// raftPeerSerial completes a TLS handshake with the Raft port at addr and
// returns the serial number of the certificate the node presents.
func raftPeerSerial(addr string, cfg *tls.Config) (*big.Int, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// wantTLSOnly checks that m's Raft port speaks TLS with m's own certificate
// and serves nothing to a plaintext request (/skiff/node is one of the
// mux's HTTP routes).
func wantTLSOnly(t *testing.T, m *member, cfg *tls.Config) {
	t.Helper()
	got, err := raftPeerSerial(m.raftAddr, cfg)
	if want := testcert.Serial(t, nodeCertFile(m)); err != nil || got.Cmp(want) != 0 {
		t.Errorf("%s: TLS on the Raft port: serial %v, %v; want the node's certificate, serial %v", m.id, got, err, want)
	}
	c := newClient(5*time.Second, true)
	defer c.CloseIdleConnections()
	// A 400 saying that TLS is expected, as net/http's HTTPS server
	// answers, is no service.
	if resp, err := c.Get("http://" + m.raftAddr + "/skiff/node"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: plaintext HTTP on the Raft port got %d; want no answer (every connection is TLS)", m.id, resp.StatusCode)
		}
	}
}

// TestNodeTLSCluster: three nodes with node TLS and mutual verification
// (-node-verify-client, -node-verify-common-name) form a cluster, n2
// joining through n1's Raft address and n3 through its API URL (API.md 5);
// /nodes, whose answer comes from peer queries over the Raft port, shows
// every node reachable (API.md 2.2); writes on the leader are read on every
// node; no Raft port answers in plaintext.
func TestNodeTLSCluster(t *testing.T) {
	ca := newNodePKI(t)
	c := newClusterWith(t, 3, withNodeTLS(ca, "-node-verify-client", "-node-verify-common-name", testcert.NodeCN))
	probe := raftTLSClient(t, ca)
	for _, m := range c.ms {
		wantTLSOnly(t, m, probe)
	}
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for i := range 20 {
		rs.insert(t, c.leader, fmt.Sprintf("tls-%d", i))
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
		// Legacy /nodes too: gorqlite's discovery reads it (API.md 4.1).
		docs, r, err := fetchNodes(m.node, "/nodes")
		if err != nil {
			t.Fatalf("/nodes on %s: %v", m.id, err)
		}
		if _, err := c.settled(docs, c.ids(), nil); err != nil {
			t.Errorf("/nodes on %s: %v: %s", m.id, err, r.body)
		}
	}
}

// TestNodeTLSBootstrapExpect: three nodes started together with
// -bootstrap-expect 3 and the same -join list (API.md 5, "Auto-clustering")
// find each other over node TLS and form one cluster; each node checks
// that its peers' certificates are valid for one shared name
// (-node-verify-server-name), whichever side dials.
func TestNodeTLSBootstrapExpect(t *testing.T) {
	ca := newNodePKI(t)
	c := &cluster{t: t}
	var addrs []string
	for i := 1; i <= 3; i++ {
		m := c.add(fmt.Sprintf("n%d", i))
		addrs = append(addrs, m.raftAddr)
	}
	for _, m := range c.ms {
		m.setFlags("-bootstrap-expect", "3", "-join", strings.Join(addrs, ","))
		withNodeTLS(ca, "-node-verify-client", "-node-verify-server-name", "localhost")(m)
		m.start()
	}
	t.Cleanup(c.stopAll)
	checkFormed(t, c)
	// A client-only certificate has no names: the probe needs localhost.
	cert, key := ca.Issue(t, t.TempDir(), "probe", testcert.Leaf{})
	probe := raftTLSClientWith(t, ca, cert, key)
	for _, m := range c.ms {
		wantTLSOnly(t, m, probe)
	}
}

// refusal is a fourth node that must not get into a TLS cluster.
type refusal struct {
	name string
	// args are the fourth node's node TLS flags.
	args func(t *testing.T, dir string) []string
	// joiner must match the fourth node's log (its failed join), member
	// the new lines of a member's log (the refused handshake or join),
	// both with the reason.
	joiner, member *regexp.Regexp
}

// TestNodeTLSRefusals: a cluster with mutual TLS (-node-verify-client,
// -node-verify-common-name, -node-verify-server-name) refuses a fourth node that presents a
// certificate for the wrong server name, with the wrong common name, an
// expired one, or a self-signed one from no trusted CA, and one that speaks
// no TLS. Each cannot join: it gives up with the reason in its log, a member
// logs the refusal with the reason, the newcomer never learns a leader (no
// Raft message reached it), and no member's /nodes ever lists it. A join
// request without a client certificate is refused in the handshake.
func TestNodeTLSRefusals(t *testing.T) {
	ca := newNodePKI(t)
	// Every good certificate is valid for localhost: with
	// -node-verify-server-name, each node checks that name in the
	// certificates of peers that dial it as well as of those it dials.
	verify := []string{"-node-verify-client", "-node-verify-common-name", testcert.NodeCN, "-node-verify-server-name", "localhost"}
	// A cluster for each case: a member logs one refusal per remote
	// address every few seconds (a flood must not flood the log), and every
	// case comes from 127.0.0.1.
	newTLSCluster := func(t *testing.T) *cluster { return newClusterWith(t, 3, withNodeTLS(ca, verify...)) }
	pair := func(cert, key string) []string {
		return append([]string{"-node-cert", cert, "-node-key", key, "-node-ca-cert", ca.caFile}, verify...)
	}
	cases := []refusal{
		{
			name: "wrong server name",
			args: func(t *testing.T, dir string) []string {
				return pair(ca.WrongName(t, dir, "node"))
			},
			joiner: regexp.MustCompile(`valid for|server name|IP SANs|bad certificate`),
			member: regexp.MustCompile(`valid for|server name|IP SANs|` + regexp.QuoteMeta(testcert.WrongHost)),
		},
		{
			name: "wrong common name",
			args: func(t *testing.T, dir string) []string {
				return pair(ca.Issue(t, dir, "node", testcert.Leaf{CommonName: testcert.WrongCN}))
			},
			joiner: regexp.MustCompile(`(?i)common name|bad certificate|` + testcert.WrongCN),
			member: regexp.MustCompile(`(?i)common name.*` + testcert.WrongCN + `|` + testcert.WrongCN + `.*common name`),
		},
		{
			name: "expired",
			args: func(t *testing.T, dir string) []string {
				nb, na := testcert.Expired()
				return pair(ca.Issue(t, dir, "node", testcert.Leaf{NotBefore: nb, NotAfter: na}))
			},
			joiner: regexp.MustCompile(`expired`),
			member: regexp.MustCompile(`expired`),
		},
		{
			name: "self-signed, untrusted",
			args: func(t *testing.T, dir string) []string {
				return pair(testcert.SelfSigned(t, dir, "node", testcert.Leaf{}))
			},
			joiner: regexp.MustCompile(`unknown (certificate )?authority|bad certificate`),
			member: regexp.MustCompile(`unknown authority`),
		},
		{
			// No node TLS flags at all: a plaintext request to a port
			// where every connection is TLS.
			name:   "plaintext",
			args:   func(*testing.T, string) []string { return nil },
			joiner: regexp.MustCompile(`requires node-to-node TLS|EOF|connection reset|malformed HTTP`),
			member: regexp.MustCompile(`does not look like a TLS handshake`),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTLSCluster(t)
			checkRefused(t, c, tc)
			// The cluster is unharmed.
			wantOK(t, "CREATE TABLE after the refusal", c.leader.execute(createT), `{"results":[{}]}`)
			c.waitMembers(c.ms, c.ids(), nil)
		})
	}
	t.Run("no client certificate", func(t *testing.T) { checkNoClientCert(t, newTLSCluster(t), ca) })
}

// logOffsets are the sizes of the members' current logs: what they log
// from then on is after them.
func logOffsets(c *cluster) map[*member]int64 {
	offsets := map[*member]int64{}
	for _, m := range c.ms {
		if fi, err := os.Stat(m.proc.logPath); err == nil {
			offsets[m] = fi.Size()
		}
	}
	return offsets
}

// membersLogged waits a little for a member to log a line matching re
// after offsets (the refusal may be logged just after the refused side
// gave up).
func membersLogged(t *testing.T, c *cluster, offsets map[*member]int64, re *regexp.Regexp) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, m := range c.ms {
			b, err := os.ReadFile(m.proc.logPath)
			if err != nil {
				t.Fatal(err)
			}
			if off := offsets[m]; off <= int64(len(b)) {
				b = b[off:]
			}
			if re.Match(b) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogged waits for m's current log to match re after offset.
func waitLogged(t *testing.T, m *member, offset int64, re *regexp.Regexp) bool {
	t.Helper()
	deadline := time.Now().Add(tlsWaitTimeout)
	for {
		b, err := os.ReadFile(m.proc.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if offset <= int64(len(b)) && re.Match(b[offset:]) {
			return true
		}
		if time.Now().After(deadline) {
			m.dumpLogs()
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRefused starts the fourth node of tc, joining through a follower,
// and checks the refusal while it tries and after it gave up.
func checkRefused(t *testing.T, c *cluster, tc refusal) {
	n4 := &member{node: newNode(t), id: "n4"}
	via := others(c.ms, c.leader)[0]
	n4.setFlags("-join", via.raftAddr, "-join-attempts", "3", "-join-interval", "1s")
	n4.args = append(n4.args, tc.args(t, n4.dir)...)
	offsets := logOffsets(c)
	p := n4.launch()
	deadline := time.Now().Add(tlsWaitTimeout)
	statusSeen := false
	for !p.exited() {
		if time.Now().After(deadline) {
			n4.dumpLogs()
			t.Fatalf("the refused node still runs after %s", tlsWaitTimeout)
		}
		if st, err := fetchStatus(n4.client, n4.baseURL()); err == nil && st.pid == p.cmd.Process.Pid {
			statusSeen = true
			if st.leaderID != "" {
				t.Errorf("the refused node knows leader %q: a Raft message reached it", st.leaderID)
			}
		}
		wantNotListed(t, c, n4)
		time.Sleep(100 * time.Millisecond)
	}
	if !statusSeen {
		t.Error("the refused node never answered /status while it tried to join")
	}
	log, _ := os.ReadFile(p.logPath)
	if p.exitCode() == 0 {
		t.Errorf("the refused node exited with status 0")
	}
	if !bytes.Contains(log, []byte("join")) || !tc.joiner.Match(log) {
		t.Errorf("the refused node's log does not give its failed join's reason (want %q):\n%s", tc.joiner, log)
	}
	if !membersLogged(t, c, offsets, tc.member) {
		c.dumpLogs()
		t.Errorf("no member logged the refusal with its reason (want %q)", tc.member)
	}
	wantNotListed(t, c, n4)
}

// checkNoClientCert: a node always presents its certificate, so the test
// itself plays a peer without one. It speaks TLS to a member's Raft port,
// trusting the CA, and asks to join: the handshake is refused (TLS 1.3
// reports it on the first read), the member logs why, and the node it
// asked for never appears.
func checkNoClientCert(t *testing.T, c *cluster, ca *nodePKI) {
	ghost := &member{node: newNode(t), id: "n4"}
	offsets := logOffsets(c)
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	body := fmt.Sprintf(`{"id":%q,"addr":%q,"voter":true,"replica_id":7,"api_addr":%q}`, ghost.id, ghost.raftAddr, "http://"+ghost.httpAddr)
	for _, m := range c.ms {
		resp, err := client.Post("https://"+m.raftAddr+"/skiff/join", "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("join without a client certificate through %s: %d; want a refused handshake", m.id, resp.StatusCode)
		}
		if !regexp.MustCompile(`certificate required|bad certificate`).MatchString(err.Error()) {
			t.Errorf("join without a client certificate through %s: %v; want the handshake refused for want of a certificate", m.id, err)
		}
	}
	if re := regexp.MustCompile(`didn't provide a certificate|certificate required|no certificate`); !membersLogged(t, c, offsets, re) {
		c.dumpLogs()
		t.Errorf("no member logged the refusal with its reason (want %q)", re)
	}
	wantNotListed(t, c, ghost)
}

// wantNotListed fails if any member's /nodes (voters and non-voters) lists
// n4, by ID or by Raft address.
func wantNotListed(t *testing.T, c *cluster, n4 *member) {
	t.Helper()
	for _, m := range c.ms {
		r, err := m.do(m.client, http.MethodGet, "/nodes?ver=2&nonvoters", "", nil)
		if err != nil || r.status != http.StatusOK {
			continue // a member busy elsewhere; the next round asks again
		}
		var doc struct {
			Nodes []nodeDoc `json:"nodes"`
		}
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("/nodes on %s: %v: %s", m.id, err, r.body)
		}
		for _, d := range doc.Nodes {
			if d.ID == n4.id || d.Addr == n4.raftAddr {
				t.Fatalf("%s's /nodes lists the refused node: %s", m.id, r.body)
			}
		}
	}
}

// TestNodeTLSRotation: every node's certificate and key are replaced on
// disk while a writer runs against the cluster (after a bad pair on one
// node, which it refuses and keeps its own): no write fails, and each
// Raft port presents the new certificate to new connections without a
// restart (API.md 1.13: "Cert and key files are watched and hot-reloaded").
// A follower restarted afterwards (all its Raft connections new, made with
// the new certificates on both ends) catches up.
func TestNodeTLSRotation(t *testing.T) {
	ca := newNodePKI(t)
	c := newClusterWith(t, 3, withNodeTLS(ca, "-node-verify-client"))
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	probe := raftTLSClient(t, ca)

	w := startWriter(c.leader)
	defer w.halt()
	w.waitWrites(t, 20)

	// First a bad pair on n1 (a key that is not the certificate's): the
	// node says so and keeps presenting its certificate.
	n1 := c.ms[0]
	offsets := logOffsets(c)
	_, otherKey := ca.Issue(t, t.TempDir(), "other", testcert.Leaf{})
	b, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nodeKeyFile(n1)+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(nodeKeyFile(n1)+".tmp", nodeKeyFile(n1)); err != nil {
		t.Fatal(err)
	}
	if !waitLogged(t, n1, offsets[n1], regexp.MustCompile(`TLS certificate reload failed; keeping the previous certificate`)) {
		t.Fatal("n1 did not report the mismatched key")
	}
	if got, err := raftPeerSerial(n1.raftAddr, probe); err != nil || got.Cmp(testcert.Serial(t, nodeCertFile(n1))) != 0 {
		t.Fatalf("n1 after a bad pair: serial %v, %v; want its certificate's", got, err)
	}
	w.waitWrites(t, w.ok.Load()+10)

	for _, m := range c.ms {
		old := testcert.Serial(t, nodeCertFile(m))
		ca.Reissue(t, nodeCertFile(m), nodeKeyFile(m), testcert.Leaf{})
		fresh := testcert.Serial(t, nodeCertFile(m))
		if old.Cmp(fresh) == 0 {
			t.Fatal("testcert issued the same serial twice")
		}
		deadline := time.Now().Add(tlsWaitTimeout)
		for {
			got, err := raftPeerSerial(m.raftAddr, probe)
			if err == nil && got.Cmp(fresh) == 0 {
				break
			}
			if time.Now().After(deadline) {
				m.dumpLogs()
				t.Fatalf("%s still presents serial %v (%v) %s after its certificate was replaced by serial %v", m.id, got, err, tlsWaitTimeout, fresh)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s presents the rotated certificate, %d writes so far", m.id, w.ok.Load())
		w.waitWrites(t, w.ok.Load()+10)
	}

	// A follower restarted now makes every Raft connection afresh.
	var follower *member
	for _, m := range c.ms {
		if st, err := fetchStatus(m.client, m.baseURL()); err == nil && st.raftState == "Follower" {
			follower = m
			break
		}
	}
	if follower == nil {
		t.Fatal("no follower found")
	}
	follower.sigterm()
	w.waitWrites(t, w.ok.Load()+10)
	follower.start()
	follower.waitReady(clusterTimeout)
	w.waitWrites(t, w.ok.Load()+10)
	n := w.halt()
	if fails := w.failures(); len(fails) > 0 {
		t.Fatalf("%d of %d writes failed during the rotation, first: %s", len(fails), n+int64(len(fails)), fails[0])
	}
	want := fmt.Sprintf(`{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[%d]]}]}`, n)
	for _, m := range c.ms {
		waitBody(t, m, "/db/query?level=none&q=SELECT+COUNT(*)+FROM+t", want)
	}
	c.waitMembers(c.ms, c.ids(), nil)
}

// writer inserts rows through one node, one at a time, until halted.
type writer struct {
	ok   atomic.Int64
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	errs []string
}

func startWriter(m *member) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	// A client of its own: the test goroutine restarts other nodes and
	// closes their clients' idle connections meanwhile.
	client := m.useTLS(newClient(requestTimeout, false))
	go func() {
		defer close(w.done)
		defer client.CloseIdleConnections()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			r, err := m.do(client, http.MethodPost, "/db/execute", "application/json",
				strings.NewReader(fmt.Sprintf(`[["INSERT INTO t(v) VALUES(?)", "w-%d"]]`, i)))
			switch {
			case err != nil:
				w.fail(fmt.Sprintf("write %d: %v", i, err))
			case r.status != http.StatusOK || !strings.Contains(string(r.body), `"rows_affected":1`):
				w.fail(fmt.Sprintf("write %d: %s", i, r))
			default:
				w.ok.Add(1)
			}
		}
	}()
	return w
}

func (w *writer) fail(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, s)
}

func (w *writer) failures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.errs)
}

// halt stops the writer (idempotent) and returns its acknowledged writes.
func (w *writer) halt() int64 {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.ok.Load()
}

// waitWrites waits until n writes were acknowledged, so that each phase of
// a test runs under load; a failed write ends the wait at once.
func (w *writer) waitWrites(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	for w.ok.Load() < n {
		if fails := w.failures(); len(fails) > 0 {
			t.Fatalf("a write failed: %s", fails[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes acknowledged within %s", w.ok.Load(), n, catchUpTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBody polls GET path on m until it answers 200 with exactly want.
func waitBody(t *testing.T, m *member, path, want string) {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	var last string
	for {
		r, err := m.do(m.client, http.MethodGet, path, "", nil)
		if err == nil && r.status == http.StatusOK && string(r.body) == want {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = r.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s: last %s, want %s", m.id, path, last, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeTLSWithHTTPS: a cluster with both node TLS and HTTPS on the API
// (each node's one certificate serves both ports, as in the README), n3
// joining through n1's https:// API URL: /nodes gives https:// api_addr
// (API.md 2.2), and gorqlite (API.md 4.1) opened on a follower finds the
// leader and all peers through them and writes through the cluster.
func TestNodeTLSWithHTTPS(t *testing.T) {
	ca := newNodePKI(t)
	c := newClusterWith(t, 3, func(m *member) {
		if slices.Contains(m.args, "-node-cert") {
			return
		}
		withNodeTLS(ca, "-node-verify-client")(m)
		m.args = append(m.args, "-http-cert", nodeCertFile(m), "-http-key", nodeKeyFile(m))
		m.tlsClient = &tls.Config{RootCAs: ca.Pool()}
		m.useTLS(m.client)
	})
	follower := others(c.ms, c.leader)[0]
	client := follower.useTLS(newClient(requestTimeout, false))
	defer client.CloseIdleConnections()
	conn, err := gorqlite.OpenWithClient("https://"+follower.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("Open on %s: %v", follower.id, err)
	}
	defer conn.Close()
	if leader, err := conn.Leader(); err != nil || leader != c.leader.httpAddr {
		t.Errorf("Leader() = %q, %v; want %q", leader, err, c.leader.httpAddr)
	}
	peers, err := conn.Peers()
	var want []string
	for _, m := range c.ms {
		want = append(want, m.httpAddr)
	}
	slices.Sort(peers)
	slices.Sort(want)
	if err != nil || !slices.Equal(peers, want) {
		t.Errorf("Peers() = %q, %v; want %q", peers, err, want)
	}
	if wr, err := conn.WriteOne("CREATE TABLE t (id INTEGER NOT NULL PRIMARY KEY, v TEXT)"); err != nil || wr.Err != nil {
		t.Fatalf("CREATE TABLE: %+v, %v", wr, err)
	}
	var rs rows
	for i := range 5 {
		wr, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
			Query: "INSERT INTO t(v) VALUES(?)", Arguments: []any{fmt.Sprintf("g-%d", i)},
		})
		if err != nil || wr.RowsAffected != 1 {
			t.Fatalf("INSERT: %+v, %v", wr, err)
		}
		rs = append(rs, fmt.Sprintf("g-%d", i))
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}

// TestNodeTLSNoVerify: rqlite's encryption-only setup, each node with a
// self-signed certificate of its own, no CA, -node-no-verify: the cluster
// forms and replicates over TLS, and the Raft ports still speak nothing
// else.
func TestNodeTLSNoVerify(t *testing.T) {
	c := newClusterWith(t, 3, func(m *member) {
		if slices.Contains(m.args, "-node-cert") {
			return
		}
		cert, key := testcert.SelfSigned(m.t, m.dir, "node", testcert.Leaf{})
		m.args = append(m.args, "-node-cert", cert, "-node-key", key, "-node-no-verify")
	})
	// A client that checks nothing, as the nodes do: the mode under test.
	probe := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	for _, m := range c.ms {
		wantTLSOnly(t, m, probe)
	}
	wantOK(t, "CREATE TABLE", c.leader.execute(createT), `{"results":[{}]}`)
	var rs rows
	for _, m := range c.ms {
		rs.insert(t, m, "via-"+m.id)
	}
	for _, m := range c.ms {
		waitRows(t, m, rs, "level=none")
	}
}
