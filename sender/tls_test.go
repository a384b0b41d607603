package sender

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
)

func TestTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "partner"), tlstest.NewCA(t, "other")
	srv := ca.Issue(t, "server", tlstest.Opts{})
	cli := ca.Issue(t, "client", tlstest.Opts{Client: true})
	for _, tc := range []struct {
		name      string
		ca        string
		delivered bool
	}{
		{"mutual TLS", ca.File, true},
		{"unknown server CA opens the circuit", other.File, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mtlsRemote(t, ca, srv, 0, 0)
			c := testConf(t, r.addr())
			c.TLS.CA, c.TLS.Cert, c.TLS.Key = tc.ca, cli.CertFile, cli.KeyFile
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

// TestRejectedClientCertTLS12: with TLS 1.2 the remote's alert about our
// expired certificate ends the dial; that too opens the circuit, fails
// nothing, and Ready says why.
func TestRejectedClientCertTLS12(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	srv := ca.Issue(t, "server", tlstest.Opts{})
	expired := ca.Issue(t, "client", tlstest.Opts{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	r := mtlsRemote(t, ca, srv, 0, tls.VersionTLS12)
	c := testConf(t, r.addr())
	c.TLS.CA, c.TLS.Cert, c.TLS.Key = ca.File, expired.CertFile, expired.KeyFile
	s, _ := runSender(t, c, nil)
	drop(t, c.SpoolDir, "f0", body(0)+"\n", time.Time{})
	e2e.WaitFor(t, 10*time.Second, "circuit open, saying why", func() bool {
		err := s.Ready()
		return err != nil && strings.Contains(err.Error(), "the remote rejects our client certificate: expired")
	})
	if len(r.messages()) != 0 || len(visible(t, c.FailedDir)) != 0 {
		t.Fatalf("messages %v, failed %v", r.messages(), visible(t, c.FailedDir))
	}
}

// mtlsRemote is a remote that requires a client certificate signed by ca,
// serving srv; minVersion and maxVersion bound the TLS version (0: Go's
// defaults).
func mtlsRemote(t *testing.T, ca *tlstest.CA, srv *tlstest.Leaf, minVersion, maxVersion uint16) *remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRemote(t, tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{srv.Pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
		MinVersion:   minVersion,
		MaxVersion:   maxVersion,
	}), nil)
}
