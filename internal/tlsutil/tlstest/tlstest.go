// Package tlstest makes real certificates for tests (crypto/x509): a CA,
// and server and client certificates it signs, written as PEM files. Only
// tests import it.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

var serials atomic.Int64

func init() { serials.Store(time.Now().UnixNano() % 1e9) }

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // its certificate, PEM
	Pool *x509.CertPool
	dir  string
}

// NewCA makes a CA valid from an hour ago for two years, with its certificate
// in a file of t.TempDir().
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(2 * 365 * 24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, key: key, Pool: x509.NewCertPool(), dir: t.TempDir()}
	ca.Pool.AddCert(cert)
	ca.File = filepath.Join(ca.dir, name+"-ca.pem")
	WriteFile(t, ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

// Opts shape a leaf certificate; the zero value is valid from an hour ago
// for a year, for 127.0.0.1.
type Opts struct {
	CN        string
	DNS       []string
	NotBefore time.Time // zero: an hour ago
	NotAfter  time.Time // zero: in a year
	Client    bool      // client auth (else server auth)
}

// Leaf is a certificate and its key, as PEM bytes and files.
type Leaf struct {
	Serial            *big.Int
	CertPEM, KeyPEM   []byte
	CertFile, KeyFile string
	Pair              tls.Certificate
	NotAfter          time.Time
}

// Issue makes a certificate signed by ca and writes it and its key (mode
// 0600) as <name>.pem and <name>.key in a new t.TempDir().
func (ca *CA) Issue(t testing.TB, name string, o Opts) *Leaf {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	if o.CN == "" {
		o.CN = name
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	serial := big.NewInt(serials.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CN},
		DNSNames:     o.DNS,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{
		Serial:   serial,
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		NotAfter: o.NotAfter,
	}
	l.Pair, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l.CertFile, l.KeyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	WriteFile(t, l.CertFile, l.CertPEM)
	WriteFile(t, l.KeyFile, l.KeyPEM)
	return l
}

// Install writes l's certificate and key over the files certFile and
// keyFile, each replaced by rename (as deployment tools do), key first.
func (l *Leaf) Install(t testing.TB, certFile, keyFile string) {
	t.Helper()
	WriteFile(t, keyFile, l.KeyPEM)
	WriteFile(t, certFile, l.CertPEM)
}

// WriteFile writes data to path (mode 0600) through a temporary file and a
// rename, so a reader never sees half of it.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
