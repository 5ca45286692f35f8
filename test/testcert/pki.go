package testcert

import (
	"crypto"
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

// Names in the certificates a test cluster's nodes get, and in the ones
// made to be refused.
const (
	// NodeCN is the common name of every good node certificate, what a
	// cluster checks with -node-verify-common-name.
	NodeCN = "skiff-node"
	// WrongCN is the common name of a certificate that the CA signed for
	// someone else.
	WrongCN = "skiff-intruder"
	// WrongHost is the only DNS name of the wrong-server-name certificate.
	WrongHost = "wrong.example"
)

// WrongIP is the only IP address of the wrong-server-name certificate: not
// a loopback address, so that nothing that dials 127.0.0.1 or localhost
// accepts it.
var WrongIP = net.ParseIP("192.0.2.7")

// CA is a certificate authority for tests. Each CA has its own key, so a
// certificate from one is "unknown authority" to a node trusting another.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	// File is the CA certificate's PEM file, for -node-ca-cert and the
	// like.
	File string
}

// Spec describes a certificate to issue. Zero values mean: a server and
// client certificate for 127.0.0.1 and localhost, valid from an hour ago
// for a day.
type Spec struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	// Usage is the extended key usage (default: server and client auth).
	Usage []x509.ExtKeyUsage
}

// NewCA makes a CA named cn and writes its certificate (never its key) to
// dir/<cn>-ca.pem.
func NewCA(t testing.TB, dir, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn, Organization: []string{"Skiff tests"}},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, key: key, File: filepath.Join(dir, cn+"-ca.pem")}
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// Pool is a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a certificate to spec and writes it and its key as
// dir/<name>.pem and dir/<name>-key.pem. Writing over existing files is a
// rotation: each file is replaced by a rename, so that a reader never sees
// half a file.
func (ca *CA) Issue(t testing.TB, dir, name string, spec Spec) (certFile, keyFile string) {
	t.Helper()
	return issue(t, dir, name, spec, ca.Cert, ca.key)
}

// Node issues a good node certificate (127.0.0.1 and localhost, both
// usages) with common name cn.
func (ca *CA) Node(t testing.TB, dir, name, cn string) (certFile, keyFile string) {
	t.Helper()
	return ca.Issue(t, dir, name, Spec{CommonName: cn})
}

// WrongName issues a certificate valid for WrongHost and WrongIP only:
// whoever dials the node by 127.0.0.1 or localhost must refuse it.
func (ca *CA) WrongName(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return ca.Issue(t, dir, name, Spec{CommonName: NodeCN, DNSNames: []string{WrongHost}, IPs: []net.IP{WrongIP}})
}

// Expired issues an otherwise good node certificate that expired an hour
// ago.
func (ca *CA) Expired(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return ca.Issue(t, dir, name, Spec{CommonName: NodeCN,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
}

// ClientOnly issues a certificate for client authentication only, with
// common name cn: what a test presents to a node's port that requires
// client certificates.
func (ca *CA) ClientOnly(t testing.TB, dir, name, cn string) (certFile, keyFile string) {
	t.Helper()
	return ca.Issue(t, dir, name, Spec{CommonName: cn, DNSNames: []string{}, IPs: []net.IP{},
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// SelfSigned writes a self-signed node certificate (127.0.0.1, localhost,
// common name NodeCN, both usages) that no test CA signed.
func SelfSigned(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	return issue(t, dir, name, Spec{CommonName: NodeCN}, nil, nil)
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

// issue creates the certificate; a nil parent makes it self-signed.
func issue(t testing.TB, dir, name string, spec Spec, parent *x509.Certificate, parentKey crypto.Signer) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now().Add(-time.Hour)
	}
	if spec.NotAfter.IsZero() {
		spec.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if spec.DNSNames == nil {
		spec.DNSNames = []string{"localhost"}
	}
	if spec.IPs == nil {
		spec.IPs = []net.IP{net.ParseIP("127.0.0.1")}
	}
	if spec.Usage == nil {
		spec.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: spec.CommonName, Organization: []string{"Skiff tests"}},
		NotBefore: spec.NotBefore, NotAfter: spec.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: spec.Usage, DNSNames: spec.DNSNames, IPAddresses: spec.IPs,
		BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
		// A self-signed leaf must be able to vouch for itself when a
		// careless client trusts it directly.
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	// The key first: a reloader that sees the new certificate next to the
	// old key refuses the pair and tries again, while the reverse order
	// never happens.
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	writePEM(t, certFile, "CERTIFICATE", der)
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// serial is a random 127-bit serial number, so that a rotated certificate
// is told from the old one by its serial.
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
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
