package tlsutil_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/internal/tlsutil"
	"spoolgate/internal/tlsutil/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServerReload: Reload reports what changed, keeps the files in use on
// a bad pair, and the handed-out config serves the current certificate.
func TestServerReload(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	a, b := ca.Issue(t, "server", tlstest.Opts{}), ca.Issue(t, "server", tlstest.Opts{})
	f := tlsutil.ServerFiles{Cert: a.CertFile, Key: a.KeyFile}
	s, err := tlsutil.NewServer(f)
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := s.Reload(f); err != nil || len(ch) != 0 {
		t.Fatalf("unchanged: %v, %v", ch, err)
	}
	served := func() string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := served(); got != a.Serial.String() {
		t.Fatalf("serial %s", got)
	}
	b.Install(t, a.CertFile, a.KeyFile)
	ch, err := s.Reload(f)
	if err != nil || len(ch) != 1 || !strings.Contains(ch[0], "serial "+b.Serial.String()) {
		t.Fatalf("changed: %v, %v", ch, err)
	}
	if got := served(); got != b.Serial.String() {
		t.Fatalf("serial %s after reload", got)
	}
	if _, err := s.Reload(tlsutil.ServerFiles{Cert: a.CertFile, Key: ca.Issue(t, "x", tlstest.Opts{}).KeyFile}); err == nil {
		t.Fatal("a mismatched pair loaded")
	}
	if got := served(); got != b.Serial.String() {
		t.Fatalf("serial %s after a bad pair", got)
	}
	if e := s.Expiry(); len(e) != 1 || e[0].Role != "server" || !e[0].NotAfter.Equal(b.NotAfter.Truncate(time.Second)) {
		t.Fatalf("expiry %+v (want %v)", e, b.NotAfter)
	}
}

// TestWarnings: expiry within 30 days, expired, and a world-readable key.
func TestWarnings(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	for _, tc := range []struct {
		name     string
		notAfter time.Duration
		mode     os.FileMode
		want     []string
	}{
		{"sound", 90 * 24 * time.Hour, 0o600, nil},
		{"group-readable key is fine", 90 * 24 * time.Hour, 0o640, nil},
		{"expires soon", 10*24*time.Hour + time.Hour, 0o600, []string{"expires in 10 days"}},
		{"expired", -time.Hour, 0o600, []string{"expired on"}},
		{"key readable by others", 90 * 24 * time.Hour, 0o644, []string{"readable by others (mode 0644)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ca.Issue(t, "client", tlstest.Opts{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(tc.notAfter)})
			if err := os.Chmod(l.KeyFile, tc.mode); err != nil {
				t.Fatal(err)
			}
			c, err := tlsutil.NewClient(tlsutil.ClientFiles{Cert: l.CertFile, Key: l.KeyFile})
			if err != nil {
				t.Fatal(err)
			}
			got := c.Warnings(time.Now())
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %q", got, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q lacks %q", got[i], w)
				}
			}
		})
	}
}
