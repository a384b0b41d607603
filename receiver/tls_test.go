package receiver

import (
	"bufio"
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
	"testing"
	"time"
)

// testPKI is a CA with a server and a client certificate, as PEM files.
type testPKI struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	pool                  *x509.CertPool
	client                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "spoolgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	p.client, err = tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLS: TLS, and mutual TLS that refuses a client without a
// certificate before reading a message.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name       string
		mutual     bool
		clientCert bool
		wantOK     bool
	}{
		{"tls", false, false, true},
		{"mutual tls with client cert", true, true, true},
		{"mutual tls without client cert", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLS.Cert, cfg.TLS.Key = pki.serverCert, pki.serverKey
			if tc.mutual {
				cfg.TLS.ClientCA = pki.caFile
			}
			ts := startServer(t, Options{Config: cfg})
			cc := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
			if tc.clientCert {
				cc.Certificates = []tls.Certificate{pki.client}
			}
			raw := dial(t, ts.addr)
			c := tls.Client(raw, cc)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			m := req(t, "000000001", "over tls")
			_, err := c.Write(m) // runs the handshake
			var line []byte
			if err == nil {
				line, err = bufio.NewReader(c).ReadBytes('\n')
			}
			if !tc.wantOK {
				if err == nil {
					t.Fatalf("got %q without a client certificate", line)
				}
				t.Logf("refused: %v", err)
				ts.stop(t)
				if got := storedLines(t, cfg.DataDir); len(got) != 0 {
					t.Fatalf("stored %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(line[len(line)-4:]) != "200\n" {
				t.Fatalf("reply %q", line)
			}
			c.Close()
			ts.stop(t)
			if got := storedLines(t, cfg.DataDir); len(got) != 1 || got[0] != string(m) {
				t.Fatalf("stored %q", got)
			}
		})
	}
}
