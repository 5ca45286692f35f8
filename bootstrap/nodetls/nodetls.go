package nodetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/tlsreload"
)

var (
	// ErrInvalidConfig is returned by Config.Validate and New.
	ErrInvalidConfig = errors.New("invalid node TLS config")
	// ErrCommonName refuses a peer certificate whose subject common name
	// is not the one -node-verify-common-name requires.
	ErrCommonName = errors.New("peer certificate common name does not match")
	// ErrServerName refuses a connecting peer's certificate that does not
	// carry the -node-verify-server-name every node's certificate carries.
	ErrServerName = errors.New("peer certificate is not for the cluster's server name")
	// ErrRedirect refuses a peer's redirect to another host or scheme: a
	// peer call may carry -join-as credentials, which must not follow it
	// elsewhere or onto plaintext.
	ErrRedirect = errors.New("peer redirect to another host or scheme refused")
)

// HandshakeTimeout bounds a node-to-node TLS handshake, on both sides:
// peer HTTP clients (here, gateway, cdc), the Raft port's mux and the
// Raft transport. The one value for all of them.
const HandshakeTimeout = 10 * time.Second

// Config is the node TLS flags.
type Config struct {
	// CertFile and KeyFile are this node's certificate and key, presented
	// to peers on both sides of a connection (-node-cert, -node-key).
	CertFile, KeyFile string
	// CACertFile is the CA peers' certificates must chain to
	// (-node-ca-cert); empty uses the system roots.
	CACertFile string
	// NoVerify skips checking the certificate of the peer this node dials
	// (-node-no-verify). It does not turn off VerifyClient, as in rqlite.
	NoVerify bool
	// VerifyClient requires and verifies the certificate of a peer that
	// connects to this node (-node-verify-client: mutual TLS).
	VerifyClient bool
	// VerifyServerName is the name a dialed peer's certificate must carry,
	// instead of the dialed host (-node-verify-server-name): one
	// certificate with one name can then serve every node. With
	// VerifyClient, a connecting peer's certificate must carry it too.
	VerifyServerName string
	// VerifyCommonName, if set, requires a peer's certificate to have this
	// subject common name (-node-verify-common-name), the peer connecting
	// and the peer dialed; it needs VerifyClient.
	VerifyCommonName string
	// ReloadInterval is how often the certificate and key files are
	// checked for a change (default tlsreload.DefaultInterval).
	ReloadInterval time.Duration
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := tlsreload.CheckPair(c.CertFile, c.KeyFile); err != nil {
		return fmt.Errorf("%w: -node-cert and -node-key: %w", ErrInvalidConfig, err)
	}
	if c.CertFile == "" {
		// rqlite serves its Raft port in plaintext without -node-cert, yet
		// dials with TLS given only a CA: such a node cannot talk to
		// either kind of cluster, so it is refused here.
		return fmt.Errorf("%w: node-to-node TLS needs -node-cert and -node-key "+
			"(-node-ca-cert, -node-no-verify, -node-verify-client, -node-verify-server-name and -node-verify-common-name need them)", ErrInvalidConfig)
	}
	if c.VerifyCommonName != "" && !c.VerifyClient {
		return fmt.Errorf("%w: -node-verify-common-name needs -node-verify-client", ErrInvalidConfig)
	}
	if c.ReloadInterval < 0 {
		return fmt.Errorf("%w: negative reload interval", ErrInvalidConfig)
	}
	return nil
}

// TLS holds a node's TLS state: the reloaded certificate and the CA.
type TLS struct {
	cfg    Config
	certs  *tlsreload.Reloader
	server *tls.Config
	client *tls.Config
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// New loads the certificate, key and CA and starts watching the pair.
func New(cfg Config, log *zap.Logger) (*TLS, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	certs, err := tlsreload.New(tlsreload.Config{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, Interval: cfg.ReloadInterval, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var pool *x509.CertPool
	if cfg.CACertFile != "" {
		if pool, err = tlsreload.LoadCAPool(cfg.CACertFile); err != nil {
			return nil, fmt.Errorf("%w: -node-ca-cert: %w", ErrInvalidConfig, err)
		}
	}
	t := &TLS{cfg: cfg, certs: certs, done: make(chan struct{})}
	var verify func([][]byte, [][]*x509.Certificate) error
	if cfg.VerifyClient && (cfg.VerifyCommonName != "" || cfg.VerifyServerName != "") {
		verify = cfg.checkPeer(true)
	}
	t.server = tlsreload.ServerConfig(certs, pool, cfg.VerifyClient, verify)
	t.client = &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: pool,
		ServerName: cfg.VerifyServerName, InsecureSkipVerify: cfg.NoVerify,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return certs.Current(), nil },
	}
	if cfg.VerifyCommonName != "" && !cfg.NoVerify {
		t.client.VerifyPeerCertificate = cfg.checkPeer(false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go func() {
		defer close(t.done)
		_ = certs.Run(ctx)
	}()
	return t, nil
}

// checkPeer checks a verified peer certificate beyond its chain (it runs
// after chain verification: the leaf of the first verified chain is the
// peer's). rqlite checks -node-verify-common-name on the server side only
// and -node-verify-server-name on the client side only; Skiff checks both
// on both sides (the server name on a connecting peer when it verifies
// clients), so that a node with a wrong name or common name cannot send a
// single message either, only be refused.
func (c Config) checkPeer(server bool) func([][]byte, [][]*x509.Certificate) error {
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return fmt.Errorf("%w: no verified certificate", ErrCommonName)
		}
		leaf := chains[0][0]
		if cn := c.VerifyCommonName; cn != "" && leaf.Subject.CommonName != cn {
			return fmt.Errorf("%w: got %q, want %q", ErrCommonName, leaf.Subject.CommonName, cn)
		}
		if name := c.VerifyServerName; server && name != "" {
			if err := leaf.VerifyHostname(name); err != nil {
				return fmt.Errorf("%w: %w", ErrServerName, err)
			}
		}
		return nil
	}
}

// Server is the configuration the Raft port wraps accepted connections
// in; nil when t is nil (plaintext). It offers no ALPN protocol: the mux
// serves HTTP/1.1 on the decrypted stream.
func (t *TLS) Server() *tls.Config {
	if t == nil {
		return nil
	}
	return t.server.Clone()
}

// Client is the configuration for dialing a peer's Raft port; nil when t
// is nil (plaintext).
func (t *TLS) Client() *tls.Config {
	if t == nil {
		return nil
	}
	return t.client.Clone()
}

// Scheme is the scheme of URLs to a peer's Raft port.
func (t *TLS) Scheme() string {
	if t == nil {
		return "http"
	}
	return "https"
}

// PeerURL is the URL of path on a peer's Raft address: https:// with
// node-to-node TLS (overTLS), http:// without. An addr that is already a
// URL keeps its scheme (a -join entry naming an API). The one builder of
// peer URLs: bootstrap, gateway and cdc call it.
func PeerURL(overTLS bool, addr, path string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/") + path
	}
	if overTLS {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// HTTPClient is a client for HTTP calls to peers' Raft ports: no proxy
// (peers are reached directly), the node's TLS when t is set, and a
// bounded handshake. A zero timeout sets none on the whole call.
func (t *TLS) HTTPClient(timeout time.Duration) *http.Client {
	return NewPeerClient(t.Client(), timeout)
}

// peerDialTimeout bounds connecting to a peer; peerIdleTimeout closes an
// idle connection well before the peer's own idle timeout, since it counts
// against the peer's per-IP cap.
const (
	peerDialTimeout = 5 * time.Second
	peerIdleTimeout = time.Minute
)

// NewPeerClient is the one constructor of clients for HTTP calls to peers'
// Raft ports (bootstrap's, and the gateway's and cdc's defaults): no proxy
// (peers are reached directly), TLS with cfg (nil: plaintext), bounded
// dial and handshake, and redirects only to the same origin (SameOrigin).
// A zero timeout sets none on the whole call: a long body (a snapshot, a
// CDC backfill) is bounded by its request's context.
func NewPeerClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: peerDialTimeout}).DialContext,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: peerIdleTimeout, TLSClientConfig: cfg, TLSHandshakeTimeout: HandshakeTimeout}
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: SameOrigin}
}

// maxRedirects is net/http's default limit, kept by SameOrigin.
const maxRedirects = 10

// SameOrigin is the CheckRedirect of peer clients: it follows a redirect
// only to the same scheme and host as the first request (a leader's
// redirect stays on its port), refusing one elsewhere or an https to http
// downgrade.
func SameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: stopped after %d redirects", ErrRedirect, maxRedirects)
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("%w: %s://%s to %s://%s", ErrRedirect, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// Reload reloads the certificate and key if their files changed and
// reports whether it did (the watcher calls it every ReloadInterval).
func (t *TLS) Reload() (bool, error) { return t.certs.Check() }

// Certificate is the pair new handshakes present.
func (t *TLS) Certificate() *tls.Certificate { return t.certs.Current() }

// Config is the configuration t was made with.
func (t *TLS) Config() Config { return t.cfg }

// Status is the node TLS state for /status, with the keys of rqlite's mux
// stats (tcp/mux.go: "tls", and "encrypted", "certificate", "key",
// "ca_certificate", "skip_verify" of its earlier versions) and Skiff's
// verify flags and the certificate's expiry.
func (t *TLS) Status() map[string]any {
	if t == nil {
		return map[string]any{"tls": "disabled", "encrypted": "false"}
	}
	s := map[string]any{
		"tls": "enabled", "encrypted": "true", "certificate": t.cfg.CertFile, "key": t.cfg.KeyFile, "ca_certificate": t.cfg.CACertFile,
		"skip_verify": strconv.FormatBool(t.cfg.NoVerify), "verify_client": t.cfg.VerifyClient,
		"verify_server_name": t.cfg.VerifyServerName, "verify_common_name": t.cfg.VerifyCommonName,
	}
	if leaf := leafOf(t.certs.Current()); leaf != nil {
		s["cert_not_after"] = leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	return s
}

// leafOf is c's parsed leaf (tls.LoadX509KeyPair fills it in).
func leafOf(c *tls.Certificate) *x509.Certificate {
	if c == nil || len(c.Certificate) == 0 {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// Close stops watching the files. Connections keep their certificates.
func (t *TLS) Close() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.cancel()
		<-t.done
	})
}
