package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
)

// TestCertRotation: the receiver serves a replaced certificate to the next
// connection after the files change and after SIGHUP (the serial is
// checked), takes a new client CA bundle, rejects a pair that does not
// match while the one in use stays, and never drops a connection opened
// before; the expiry gauge follows; a key others can read is warned about.
func TestCertRotation(t *testing.T) {
	ca, ca2 := tlstest.NewCA(t, "partner"), tlstest.NewCA(t, "partner-2027")
	// The files are in root/current, a symlink to a release directory,
	// apart from the config file's directory.
	root := t.TempDir()
	for _, d := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("v1", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(root, "current")
	certFile, keyFile, caFile := filepath.Join(tlsDir, "server.pem"), filepath.Join(tlsDir, "server.key"), filepath.Join(tlsDir, "client-ca.pem")
	first := ca.Issue(t, "server", tlstest.Opts{})
	first.Install(t, certFile, keyFile)
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	tlstest.WriteFile(t, caFile, mustRead(t, ca.File))
	path := config(t, t.TempDir(), "receiver.tls.cert = "+certFile, "receiver.tls.key = "+keyFile, "receiver.tls.client_ca = "+caFile)
	p := start(t, path, nil)
	if p.addr == "" {
		t.Fatal("receiver did not start")
	}
	if !p.Log.Contains("readable by others") {
		t.Fatal("no warning for a key others can read")
	}
	client := ca.Issue(t, "client", tlstest.Opts{Client: true})
	cc := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{client.Pair}}

	live := tlsDial(t, p.addr, cc)
	live.exchange(t, "000000001")
	servedSerial := func(cc *tls.Config) *big.Int {
		c := tlsDial(t, p.addr, cc)
		defer c.Close()
		c.exchange(t, "000000002")
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if s := servedSerial(cc); s.Cmp(first.Serial) != 0 {
		t.Fatalf("serial %v, want %v", s, first.Serial)
	}

	// The files change, no signal: the file watch reloads.
	third := ca.Issue(t, "server", tlstest.Opts{NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	third.Install(t, certFile, keyFile)
	e2e.WaitFor(t, 10*time.Second, "the third certificate served", func() bool { return servedSerial(cc).Cmp(third.Serial) == 0 })
	e2e.WaitFor(t, 5*time.Second, "expiry warning", func() bool { return p.Log.Contains("expires in 9 days") })
	_, metrics, err := e2e.HTTPGet("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`spoolgate_tls_cert_expiry_seconds{role="server"} %g`, float64(third.NotAfter.Unix())); !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %s:\n%s", want, grep(metrics, "spoolgate_tls_"))
	}
	live.exchange(t, "000000004")

	// A new client CA bundle (old and new CA): a client of the new CA is
	// served.
	tlstest.WriteFile(t, caFile, append(mustRead(t, ca.File), mustRead(t, ca2.File)...))
	e2e.WaitFor(t, 10*time.Second, "client CA reloaded", func() bool { return p.Log.Contains("client_ca 1 -> 2 certificates") })
	client2 := ca2.Issue(t, "client", tlstest.Opts{Client: true})
	cc2 := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{client2.Pair}}
	if s := servedSerial(cc2); s.Cmp(third.Serial) != 0 {
		t.Fatalf("serial %v", s)
	}

	// A certificate without its key: rejected, the third stays.
	fourth := ca.Issue(t, "server", tlstest.Opts{})
	tlstest.WriteFile(t, certFile, fourth.CertPEM)
	e2e.WaitFor(t, 10*time.Second, "bad pair rejected", func() bool { return p.Log.Contains("tls reload rejected") })
	if s := servedSerial(cc); s.Cmp(third.Serial) != 0 {
		t.Fatalf("after a bad pair: serial %v, want %v", s, third.Serial)
	}
	live.exchange(t, "000000005")

	// A new release directory behind the symlink: no watched file changes
	// (the watch follows the old directory), SIGHUP applies it.
	second := ca.Issue(t, "server", tlstest.Opts{})
	second.Install(t, filepath.Join(root, "v2", "server.pem"), filepath.Join(root, "v2", "server.key"))
	tlstest.WriteFile(t, filepath.Join(root, "v2", "client-ca.pem"), mustRead(t, ca.File))
	if err := os.Symlink("v2", filepath.Join(root, "next")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "next"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	if s := servedSerial(cc); s.Cmp(third.Serial) != 0 {
		t.Fatalf("before SIGHUP: serial %v, want %v", s, third.Serial)
	}
	p.Signal(t, syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "the second certificate served", func() bool { return servedSerial(cc).Cmp(second.Serial) == 0 })
	// The log line follows the switch the next handshake already sees.
	e2e.WaitFor(t, 10*time.Second, "the reload to log the applied certificate", func() bool {
		return p.Log.Contains("serial " + second.Serial.String())
	})
	live.exchange(t, "000000006")
	live.Close()

	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestTLSReloadLogInCertDir: with the log file in the certificates'
// directory, a bad certificate is rejected and logged once per change of
// the files: the ERROR line written into the directory is no change of a
// watched file (it started a reload storm, 24 lines in 5 s, issue 21). A
// good pair written after is applied.
func TestTLSReloadLogInCertDir(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	ca.Issue(t, "server", tlstest.Opts{}).Install(t, certFile, keyFile)
	path := config(t, t.TempDir(), "receiver.tls.cert = "+certFile, "receiver.tls.key = "+keyFile, "log.dir = "+dir)
	p := e2e.Start(t, "receiver", exec.Command(bin, "-config", path), nil)
	logFile := filepath.Join(dir, "receiver.log")
	log := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	t.Cleanup(func() {
		p.Kill()
		t.Logf("receiver.log:\n%s\nstderr:\n%s", log(), p.Log.String())
	})
	e2e.WaitFor(t, 20*time.Second, "the receiver to listen", func() bool {
		if p.Exited() {
			t.Fatal("the receiver exited")
		}
		return strings.Contains(log(), "listening on ")
	})

	tlstest.WriteFile(t, certFile, ca.Issue(t, "server", tlstest.Opts{}).CertPEM) // without its key
	e2e.WaitFor(t, 10*time.Second, "the bad pair rejected", func() bool { return strings.Count(log(), "tls reload rejected") > 0 })
	// Nothing to wait for: no second rejection may come in ten debounce
	// periods, while the log file (in the directory) has been written.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if n := strings.Count(log(), "tls reload rejected"); n > 1 {
			t.Fatalf("%d rejections of one change", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	good := ca.Issue(t, "server", tlstest.Opts{})
	good.Install(t, certFile, keyFile)
	e2e.WaitFor(t, 10*time.Second, "the good pair applied", func() bool { return strings.Contains(log(), "serial "+good.Serial.String()) })
	if n := strings.Count(log(), "tls reload rejected"); n != 1 {
		t.Errorf("%d rejections, want 1", n)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

type tlsConn struct {
	*tls.Conn
	br *bufio.Reader
}

func tlsDial(t *testing.T, addr string, cc *tls.Config) *tlsConn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, cc)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	return &tlsConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *tlsConn) exchange(t *testing.T, pno string) {
	t.Helper()
	if _, err := c.Write(msg(t, pno, "tls")); err != nil {
		t.Fatal(err)
	}
	line, err := c.br.ReadString('\n')
	if err != nil || !strings.HasSuffix(line, "|200\n") {
		t.Fatalf("reply %q, err %v", line, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func grep(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
