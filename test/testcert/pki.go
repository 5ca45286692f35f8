package testcert

import (
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

// Names in the certificates of the node TLS end-to-end tests.
const (
	// NodeCN is the common name of a good node certificate (Leaf's
	// default), what a cluster checks with -node-verify-common-name.
	NodeCN = "skiff-node"
	// WrongCN is the common name of a certificate the CA signed for
	// someone else.
	WrongCN = "skiff-intruder"
	// WrongHost is the only DNS name of WrongName's certificate.
	WrongHost = "wrong.example"
)

// WrongIP is the only IP address of WrongName's certificate: not a loopback
// address, so nothing that dials 127.0.0.1 or localhost accepts it.
var WrongIP = net.ParseIP("192.0.2.7")

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WrongName issues a certificate from the CA, good but for its names: valid
// for WrongHost and WrongIP only.
func (ca *CA) WrongName(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return ca.Issue(t, dir, name, Leaf{DNSNames: []string{WrongHost}, IPs: []net.IP{WrongIP}})
}

// ClientOnly issues a certificate for client authentication only (no
// names, extended key usage clientAuth) with common name cn: what a test
// presents to a port that requires client certificates. Its files are
// dir/<name>.crt and dir/<name>.key.
func (ca *CA) ClientOnly(t testing.TB, dir, name, cn string) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	writePEM(t, certFile, "CERTIFICATE", der)
	return certFile, keyFile
}

// Reissue rotates a pair in place: a new certificate (new key, new serial)
// is issued to l and each file is replaced by a rename, the key first, so
// that a reader never sees half a file; a reloader that sees the new key
// next to the old certificate refuses the pair and loads it on the next
// change.
func (ca *CA) Reissue(t testing.TB, certFile, keyFile string, l Leaf) {
	t.Helper()
	dir := t.TempDir()
	newCert, newKey := ca.Issue(t, dir, "reissued", l)
	for _, mv := range [][2]string{{newKey, keyFile}, {newCert, certFile}} {
		b, err := os.ReadFile(mv[0])
		if err != nil {
			t.Fatal(err)
		}
		// Written next to the target first: a rename across file
		// systems is not atomic.
		tmp := mv[1] + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, mv[1]); err != nil {
			t.Fatal(err)
		}
	}
}

// Serial is the serial number of the certificate in a PEM file.
func Serial(t testing.TB, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM block in %s", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// writePEM replaces path with one PEM block, through a rename.
func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
