package bootstrap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/lifecycle"
	"github.com/skiffdb/skiff/gateway"
	"github.com/skiffdb/skiff/test/testcert"
)

func TestHTTPSConfig(t *testing.T) {
	good := Config{DataDir: "d"}.WithDefaults()
	if got := good.apiAddr(); got != good.HTTPAdvAddr {
		t.Fatalf("plain HTTP api addr %q", got)
	}
	for _, tc := range []gateway.TLS{{CertFile: "c"}, {KeyFile: "k"}, {CertFile: "c", KeyFile: "k", VerifyCommonName: "x"}} {
		c := good
		c.HTTPTLS = &tc
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	good.HTTPTLS = &gateway.TLS{CertFile: "c", KeyFile: "k"}
	if got := good.apiAddr(); got != "https://"+good.HTTPAdvAddr {
		t.Fatalf("HTTPS api addr %q", got)
	}
	for _, a := range []string{good.HTTPAdvAddr, "http://" + good.HTTPAdvAddr, "https://" + good.HTTPAdvAddr} {
		if !good.isOwnAPIAddr(a) {
			t.Errorf("%q not recognised as this node's API", a)
		}
	}
}

// A node started with a certificate serves HTTPS on the bound listener and
// advertises https:// in /status and /nodes.
func TestNodeServesHTTPS(t *testing.T) {
	cert, key := testcert.Write(t, t.TempDir())
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	httpAddr := freeAddr(t)
	n, err := Start(Config{DataDir: t.TempDir(), HTTPAddr: httpAddr, RaftAddr: freeAddr(t), NodeID: "n1", Logger: zap.NewNop(),
		HTTPTLS: &gateway.TLS{CertFile: cert, KeyFile: key}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Shutdown(); err != nil {
			t.Error(err)
		}
	}()
	waitPhase(t, n, lifecycle.Ready)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer c.CloseIdleConnections()
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get("https://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	want := `"api_addr":"https://` + httpAddr + `"`
	if b := get("/status"); !strings.Contains(b, want) || !strings.Contains(b, `"https":"true"`) {
		t.Fatalf("/status lacks %s or https true: %.2000s", want, b)
	}
	if b := get("/nodes"); !strings.Contains(b, want) {
		t.Fatalf("/nodes lacks %s: %s", want, b)
	}
}
