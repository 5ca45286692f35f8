package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrNoCA: a CA file holds no PEM certificate.
var ErrNoCA = errors.New("no CA certificate")

// LoadCAPool reads the PEM CA certificates of path into a pool.
func LoadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w in %s", ErrNoCA, path)
	}
	return pool, nil
}

// ServerConfig is the one server-side TLS configuration of the HTTPS API
// (gateway) and the Raft port (nodetls): TLS 1.2 or later, the current
// certificate of r, client certificates verified against clientCAs when
// verifyClient, and verify (nil: none) run after chain verification.
func ServerConfig(r *Reloader, clientCAs *x509.CertPool, verifyClient bool, verify func([][]byte, [][]*x509.Certificate) error) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, ClientCAs: clientCAs, VerifyPeerCertificate: verify}
	if verifyClient {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}
