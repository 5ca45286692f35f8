package clientcfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// ErrInvalidConfig wraps every failure to validate or load a Config.
var ErrInvalidConfig = errors.New("invalid client TLS configuration")

// Config is how the CLI verifies the nodes and proves itself to them. The
// zero value is Go's defaults: the system's roots, no client certificate.
type Config struct {
	// Insecure skips the verification of the nodes' certificates.
	Insecure bool
	// CACert is a PEM file of trusted roots, in place of the system's.
	CACert string
	// ClientCert and ClientKey are a PEM pair for mutual TLS; both or
	// neither.
	ClientCert, ClientKey string
}

// Validate checks what can be checked without reading the files.
func (c Config) Validate() error {
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return fmt.Errorf("%w: a client certificate needs its key and the key its certificate", ErrInvalidConfig)
	}
	return nil
}

// IsZero reports whether nothing is set.
func (c Config) IsZero() bool { return c == Config{} }

// TLS loads the files into a client TLS configuration; nil when nothing
// is set, so that callers keep Go's defaults.
func (c Config) TLS() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.IsZero() {
		return nil, nil
	}
	tc := &tls.Config{InsecureSkipVerify: c.Insecure} //nolint:gosec // the user asked for it, as with rqlite's -i
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("%w: CA certificate: %w", ErrInvalidConfig, err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA certificate: no PEM certificate in %s", ErrInvalidConfig, c.CACert)
		}
	}
	if c.ClientCert != "" {
		pair, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate and key: %w", ErrInvalidConfig, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Transport is an HTTP transport with c's TLS that honours the
// environment's proxy settings (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
func (c Config) Transport() (*http.Transport, error) {
	tc, err := c.TLS()
	if err != nil {
		return nil, err
	}
	return &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}, nil
}
