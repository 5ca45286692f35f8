package test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqlite/gorqlite"
	"github.com/rqlite/gorqlite/stdlib"
	"github.com/skiffdb/skiff/test/testcert"
)

// secureNode starts a node serving HTTPS with a certificate from a test CA
// (-http-cert, -http-key; API.md 1.13) and authenticating with API.md
// 1.12's credentials file (-auth; authFile). It returns the node and an
// HTTP client that trusts the CA (and sends no credentials).
func secureNode(t *testing.T) (n *node, caFile string, c *http.Client) {
	t.Helper()
	n = newNode(t)
	ca := testcert.NewCA(t, "skiff-https-ca")
	caFile = ca.WriteCA(t, n.dir, "ca")
	cert, key := ca.Issue(t, n.dir, "http", testcert.Leaf{CommonName: "skiff-http"})
	auth := filepath.Join(n.dir, "auth.json")
	if err := os.WriteFile(auth, []byte(authFile), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{"-http-cert", cert, "-http-key", key, "-auth", auth}
	n.tlsClient = &tls.Config{RootCAs: ca.Pool()}
	n.useTLS(n.client)
	n.start()
	n.waitReady(readyTimeout)
	c = &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	t.Cleanup(c.CloseIdleConnections)
	return n, caFile, c
}

// TestGorqliteHTTPSAuth: gorqlite (API.md 4.1) with an https:// URL holding
// user:pass@ against a node with HTTPS and -auth: discovery through /status
// and /nodes (api_addr is https://, credentials sent), writes, reads,
// unified requests; a user without the execute permission gets its write
// refused, a wrong password everything but what `*` grants.
func TestGorqliteHTTPSAuth(t *testing.T) {
	n, _, client := secureNode(t)
	conn, err := gorqlite.OpenWithClient("https://bob:secret1@"+n.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("Open as bob: %v", err)
	}
	defer conn.Close()
	if leader, err := conn.Leader(); err != nil || leader != n.httpAddr {
		t.Errorf("Leader() = %q, %v; want %q", leader, err, n.httpAddr)
	}
	if peers, err := conn.Peers(); err != nil || len(peers) != 1 || peers[0] != n.httpAddr {
		t.Errorf("Peers() = %q, %v; want [%q]", peers, err, n.httpAddr)
	}
	if err := conn.SetConsistencyLevel(gorqlite.ConsistencyLevelStrong); err != nil {
		t.Fatal(err)
	}
	if wr, err := conn.WriteOne("CREATE TABLE sec (id INTEGER PRIMARY KEY, name TEXT)"); err != nil || wr.Err != nil {
		t.Fatalf("CREATE TABLE as bob: %+v, %v", wr, err)
	}
	wr, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
		Query: "INSERT INTO sec(name) VALUES(?)", Arguments: []any{"fiona"},
	})
	if err != nil || wr.LastInsertID != 1 || wr.RowsAffected != 1 {
		t.Fatalf("INSERT as bob: %+v, %v", wr, err)
	}
	res, err := conn.Request([]string{"INSERT INTO sec(name) VALUES('declan')", "SELECT COUNT(*) FROM sec"})
	if err != nil || len(res) != 2 || res[0].Write == nil || res[1].Query == nil || !res[1].Query.Next() {
		t.Fatalf("Request as bob: %+v, %v", res, err)
	}

	// mary holds query, not execute (API.md 1.12).
	mary, err := gorqlite.OpenWithClient("https://mary:secret2@"+n.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("Open as mary: %v", err)
	}
	defer mary.Close()
	qr, err := mary.QueryOneParameterized(gorqlite.ParameterizedStatement{
		Query: "SELECT name FROM sec WHERE id = ?", Arguments: []any{1},
	})
	var name string
	if err != nil || !qr.Next() || qr.Scan(&name) != nil || name != "fiona" {
		t.Errorf("QueryOne as mary: %q, %v", name, err)
	}
	if _, err := mary.WriteOne("INSERT INTO sec(name) VALUES('mallory')"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("WriteOne as mary: %v; want a refusal (401)", err)
	}

	// A wrong password: `*` grants status, so discovery works, the rest
	// is refused.
	bad, err := gorqlite.OpenWithClient("https://bob:wrong@"+n.httpAddr+"/", client)
	if err != nil {
		t.Fatalf("Open with a wrong password: %v (discovery needs only status, which * grants)", err)
	}
	defer bad.Close()
	if _, err := bad.QueryOne("SELECT COUNT(*) FROM sec"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("QueryOne with a wrong password: %v; want a refusal (401)", err)
	}
	// Without the CA, the certificate is not trusted.
	if _, err := gorqlite.OpenWithClient("https://bob:secret1@"+n.httpAddr+"/", &http.Client{Timeout: requestTimeout}); err == nil {
		t.Error("Open without trusting the CA succeeded")
	}
	if r := authDo(t, n, "GET", "/db/query?q=SELECT+COUNT(*)+FROM+sec", "", "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous query: %s; want 401", r)
	}
}

// gorqliteConnector opens gorqlite's database/sql connections (package
// stdlib, driver "rqlite") with an HTTP client of the test's: the driver's
// own Open uses gorqlite's default client, which trusts only the system
// roots.
type gorqliteConnector struct {
	url    string
	client *http.Client
}

func (c gorqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := gorqlite.OpenWithClient(c.url, c.client)
	if err != nil {
		return nil, err
	}
	return &stdlib.Conn{Connection: conn}, nil
}

func (gorqliteConnector) Driver() driver.Driver { return &stdlib.Driver{} }

// TestDatabaseSQLHTTPSAuth: gorqlite's database/sql driver through an
// https://user:pass@ URL: Exec with arguments, Query and Scan; the driver's
// plain sql.Open refuses the test CA's certificate.
func TestDatabaseSQLHTTPSAuth(t *testing.T) {
	n, _, client := secureNode(t)
	db := sql.OpenDB(gorqliteConnector{url: "https://bob:secret1@" + n.httpAddr + "/", client: client})
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE std (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)"); err != nil {
		t.Fatalf("CREATE TABLE: %v", err)
	}
	res, err := db.ExecContext(ctx, "INSERT INTO std(name, n) VALUES(?, ?)", "fiona", 20)
	if err != nil {
		t.Fatalf("INSERT: %v", err)
	}
	if id, err := res.LastInsertId(); err != nil || id != 1 {
		t.Errorf("LastInsertId() = %d, %v; want 1", id, err)
	}
	var name string
	var num int64
	if err := db.QueryRowContext(ctx, "SELECT name, n FROM std WHERE id = ?", 1).Scan(&name, &num); err != nil || name != "fiona" || num != 20 {
		t.Errorf("QueryRow: %q %d, %v; want fiona 20", name, num, err)
	}

	// mary cannot write through it either.
	maryDB := sql.OpenDB(gorqliteConnector{url: "https://mary:secret2@" + n.httpAddr + "/", client: client})
	defer maryDB.Close()
	if _, err := maryDB.ExecContext(ctx, "INSERT INTO std(name) VALUES('mallory')"); err == nil {
		t.Error("INSERT as mary succeeded; mary lacks execute")
	}
	if err := maryDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM std").Scan(&num); err != nil || num != 1 {
		t.Errorf("COUNT(*) as mary: %d, %v; want 1", num, err)
	}

	plain, err := sql.Open("rqlite", "https://bob:secret1@"+n.httpAddr+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var tlsErr *tls.CertificateVerificationError
	if err := plain.PingContext(ctx); err == nil || !(errors.As(err, &tlsErr) || strings.Contains(err.Error(), "certificate")) {
		t.Errorf("sql.Open(\"rqlite\") without the CA: ping %v; want a certificate error", err)
	}
}

// TestCurlHTTPSAuth: curl, the command-line client of the README's
// examples, with --cacert and -u, and with user:pass@ in the URL (API.md
// 1.12, 1.13).
func TestCurlHTTPSAuth(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is needed for this test: %v", err)
	}
	n, caFile, _ := secureNode(t)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
		return string(out), err
	}
	base := "https://" + n.httpAddr
	if out, err := run("--cacert", caFile, "-u", "bob:secret1", "-XPOST", base+"/db/execute",
		"-H", "Content-Type: application/json",
		"-d", `["CREATE TABLE c (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO c(name) VALUES('fiona')"]`); err != nil ||
		!strings.Contains(out, `"rows_affected":1`) {
		t.Fatalf("curl -u bob execute: %v: %s", err, out)
	}
	want := `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`
	for _, args := range [][]string{
		{"--cacert", caFile, "-u", "mary:secret2", "-G", base + "/db/query", "--data-urlencode", "q=SELECT name FROM c"},
		{"--cacert", caFile, "-G", "https://mary:secret2@" + n.httpAddr + "/db/query", "--data-urlencode", "q=SELECT name FROM c"},
	} {
		if out, err := run(args...); err != nil || strings.TrimSpace(out) != want {
			t.Errorf("curl %v: %v: %s; want %s", args, err, out, want)
		}
	}
	if out, err := run("--cacert", caFile, "-o", "/dev/null", "-w", "%{http_code}", base+"/db/query?q=SELECT+1"); err != nil || out != "401" {
		t.Errorf("anonymous curl query: %v: %s; want 401", err, out)
	}
	if out, err := run("-u", "bob:secret1", base+"/status"); err == nil {
		t.Errorf("curl without --cacert succeeded: %s", out)
	}
}
