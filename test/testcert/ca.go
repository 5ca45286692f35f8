package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test: it signs the leaf
// certificates of a TLS cluster (node-to-node TLS, mutual TLS).
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is the CA certificate, PEM-encoded.
	PEM []byte
}

// Leaf describes a certificate to issue. Zero fields get defaults: the
// common name "skiff-node", the SANs 127.0.0.1 and localhost, and a
// validity from an hour ago to an hour from now.
type Leaf struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// NotBefore and NotAfter bound the validity; set NotAfter in the past
	// for an expired certificate.
	NotBefore, NotAfter time.Time
}

func (l Leaf) withDefaults() Leaf {
	if l.CommonName == "" {
		l.CommonName = "skiff-node"
	}
	if len(l.DNSNames) == 0 && len(l.IPs) == 0 {
		l.DNSNames = []string{"localhost"}
		l.IPs = []net.IP{net.ParseIP("127.0.0.1")}
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(time.Hour)
	}
	return l
}

// Expired is a validity window that ended a minute ago.
func Expired() (notBefore, notAfter time.Time) {
	return time.Now().Add(-2 * time.Hour), time.Now().Add(-time.Minute)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

// NewCA makes a CA with the given common name.
func NewCA(t testing.TB, commonName string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: commonName},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// WriteCA writes the CA certificate as dir/<name>.pem and returns its path.
func (ca *CA) WriteCA(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(p, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue signs a leaf certificate (for servers and clients alike) and
// writes it and its key as dir/<name>.crt and dir/<name>.key.
func (ca *CA) Issue(t testing.TB, dir, name string, l Leaf) (certFile, keyFile string) {
	t.Helper()
	return writeLeaf(t, dir, name, l, ca.Cert, ca.Key)
}

// SelfSigned writes a leaf certificate signed by its own key, trusted by
// nobody, as dir/<name>.crt and dir/<name>.key.
func SelfSigned(t testing.TB, dir, name string, l Leaf) (certFile, keyFile string) {
	t.Helper()
	return writeLeaf(t, dir, name, l, nil, nil)
}

func writeLeaf(t testing.TB, dir, name string, l Leaf, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	l = l.withDefaults()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: l.CommonName},
		NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    l.DNSNames, IPAddresses: l.IPs,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
