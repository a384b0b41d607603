package sender

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and the TLS certificate.
func selfSigned(t *testing.T, name string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestTLS(t *testing.T) {
	srvCert, _, srvPair := selfSigned(t, "server")
	cliCert, cliKey, _ := selfSigned(t, "client")
	otherCA, _, _ := selfSigned(t, "other")
	cliPool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cliCert)
	cliPool.AppendCertsFromPEM(pemBytes)
	for _, tc := range []struct {
		name      string
		ca        string
		delivered bool
	}{
		{"mutual TLS", srvCert, true},
		{"unknown server CA opens the circuit", otherCA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			tln := tls.NewListener(ln, &tls.Config{
				Certificates: []tls.Certificate{srvPair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    cliPool,
			})
			r := serveRemote(t, tln, nil)
			c := testConf(t, r.addr())
			c.TLS.CA, c.TLS.Cert, c.TLS.Key = tc.ca, cliCert, cliKey
			s, _ := runSender(t, c, nil)
			for i := 0; i < 3; i++ {
				drop(t, c.SpoolDir, fmt.Sprintf("f%d", i), body(i)+"\n", time.Time{})
			}
			if tc.delivered {
				e2e.WaitFor(t, 5*time.Second, "delivered over TLS", func() bool { return len(r.messages()) == 3 })
				return
			}
			e2e.WaitFor(t, 5*time.Second, "circuit open", func() bool { return s.Ready() != nil })
			if len(r.messages()) != 0 || len(visible(t, c.FailedDir)) != 0 {
				t.Fatalf("messages %v, failed %v", r.messages(), visible(t, c.FailedDir))
			}
		})
	}
}
