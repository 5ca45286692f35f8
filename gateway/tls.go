package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"

	"github.com/skiffdb/skiff/gateway/tlsreload"
)

// ErrCommonName refuses a client certificate whose common name is not the
// one -http-verify-common-name requires.
var ErrCommonName = errors.New("client certificate common name does not match")

// TLS configures HTTPS on the API listener (rqlited's -http-* TLS flags,
// API.md 1.13). The certificate and key are reloaded when the files change;
// the CA is read once (rqlite: CA changes need a restart).
type TLS struct {
	CertFile, KeyFile string
	// CACertFile is the CA client certificates must chain to; empty uses
	// the system roots.
	CACertFile string
	// VerifyClient requires and verifies a client certificate (mTLS).
	VerifyClient bool
	// VerifyCommonName, if set, also requires the client certificate's
	// subject common name to equal it; it needs VerifyClient.
	VerifyCommonName string
}

// Validate reports whether t is usable.
func (t TLS) Validate() error {
	if err := tlsreload.CheckPair(t.CertFile, t.KeyFile); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if t.CertFile == "" {
		return fmt.Errorf("%w: TLS needs a certificate and key", ErrInvalidConfig)
	}
	if t.VerifyCommonName != "" && !t.VerifyClient {
		return fmt.Errorf("%w: verifying the client common name needs client verification", ErrInvalidConfig)
	}
	return nil
}

// serverTLS builds the listener's configuration around the reloader.
func (t TLS) serverTLS(r *tlsreload.Reloader) (*tls.Config, error) {
	var pool *x509.CertPool
	if t.CACertFile != "" {
		var err error
		if pool, err = tlsreload.LoadCAPool(t.CACertFile); err != nil {
			return nil, fmt.Errorf("%w: CA certificate: %w", ErrInvalidConfig, err)
		}
	}
	var verify func([][]byte, [][]*x509.Certificate) error
	if cn := t.VerifyCommonName; cn != "" {
		// Called after chain verification: the leaf is the verified client.
		verify = func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 || chains[0][0].Subject.CommonName != cn {
				return fmt.Errorf("%w: want %q", ErrCommonName, cn)
			}
			return nil
		}
	}
	c := tlsreload.ServerConfig(r, pool, t.VerifyClient, verify)
	c.NextProtos = []string{"h2", "http/1.1"}
	return c, nil
}

// tlsSection is /status http.tls, with rqlite's keys.
func (g *Gateway) tlsSection() obj {
	t := g.cfg.TLS
	if t == nil {
		return obj{"enabled": "false"}
	}
	return obj{"enabled": "true", "cert_file": t.CertFile, "key_file": t.KeyFile, "ca_file": t.CACertFile,
		"client_auth": strconv.FormatBool(t.VerifyClient), "verify_client": t.VerifyClient,
		"verify_common_name": t.VerifyCommonName, "next_protos": []string{"h2", "http/1.1"}}
}

// scheme is the scheme of this node's API URLs.
func (g *Gateway) scheme() string {
	if g.cfg.TLS != nil {
		return "https"
	}
	return "http"
}
