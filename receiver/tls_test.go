package receiver

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
)

// logCapture is a logger whose lines a test can search, copied to t.Output.
func logCapture(t *testing.T) (*slog.Logger, *e2e.Log) {
	lg := &e2e.Log{}
	return slog.New(slog.NewTextHandler(io.MultiWriter(lg, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})), lg
}

// tlsRoundTrip dials addr over TLS with cc, sends one message and returns
// the reply line, or the error of the handshake, write or read.
func tlsRoundTrip(t *testing.T, addr string, cc *tls.Config, pno string) (string, *big.Int, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := tls.Client(raw, cc)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return "", nil, err
	}
	serial := c.ConnectionState().PeerCertificates[0].SerialNumber
	if _, err := c.Write(req(t, pno, "over tls")); err != nil {
		return "", serial, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, serial, err
}

// TestTLS: TLS, and mutual TLS that refuses a client without a
// certificate, with one from another CA and with an expired one, before
// reading a message.
func TestTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "partner"), tlstest.NewCA(t, "other")
	srvLeaf := ca.Issue(t, "server", tlstest.Opts{})
	good := ca.Issue(t, "client", tlstest.Opts{Client: true})
	foreign := other.Issue(t, "client", tlstest.Opts{Client: true})
	expired := ca.Issue(t, "client", tlstest.Opts{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	for _, tc := range []struct {
		name   string
		mutual bool
		cert   *tlstest.Leaf
		wantOK bool
	}{
		{"tls", false, nil, true},
		{"mutual tls with client cert", true, good, true},
		{"mutual tls without client cert", true, nil, false},
		{"mutual tls with a cert of another CA", true, foreign, false},
		{"mutual tls with an expired cert", true, expired, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLS.Cert, cfg.TLS.Key = srvLeaf.CertFile, srvLeaf.KeyFile
			if tc.mutual {
				cfg.TLS.ClientCA = ca.File
			}
			ts := startServer(t, Options{Config: cfg})
			cc := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
			if tc.cert != nil {
				cc.Certificates = []tls.Certificate{tc.cert.Pair}
			}
			line, _, err := tlsRoundTrip(t, ts.addr, cc, "000000001")
			if !tc.wantOK {
				if err == nil {
					t.Fatalf("got %q", line)
				}
				t.Logf("refused: %v", err)
				e2e.WaitFor(t, 5*time.Second, "refusal counted", func() bool {
					return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=handshake") == 1
				})
				ts.stop(t)
				if got := storedLines(t, cfg.DataDir); len(got) != 0 {
					t.Fatalf("stored %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(line, "|200\n") {
				t.Fatalf("reply %q", line)
			}
			ts.stop(t)
			if got := storedLines(t, cfg.DataDir); len(got) != 1 {
				t.Fatalf("stored %q", got)
			}
		})
	}
}

// TestClientNames: with receiver.tls.client_names only those identities
// are served (a DNS SAN, or the CN of a certificate without DNS SANs); a
// valid certificate of the CA with another name is refused and logged
// with its name; a reload changes the list for the next connection.
func TestClientNames(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	srvLeaf := ca.Issue(t, "server", tlstest.Opts{})
	log, lg := logCapture(t)
	cfg := testConfig(t)
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.ClientCA = srvLeaf.CertFile, srvLeaf.KeyFile, ca.File
	cfg.TLS.ClientNames = []string{"gw1.partner.example", "batch-client"}
	ts := startServer(t, Options{Config: cfg, Logger: log, RefusedLogEvery: time.Nanosecond}) // every refusal logged
	for i, tc := range []struct {
		name string
		opts tlstest.Opts
		ok   bool
	}{
		{"DNS SAN listed", tlstest.Opts{CN: "whatever", DNS: []string{"gw1.partner.example"}}, true},
		{"DNS SAN listed, other case", tlstest.Opts{DNS: []string{"GW1.Partner.Example"}}, true},
		{"CN listed, no SAN", tlstest.Opts{CN: "batch-client"}, true},
		{"other CN", tlstest.Opts{CN: "intruder"}, false},
		{"other DNS SAN, listed CN", tlstest.Opts{CN: "batch-client", DNS: []string{"gw9.partner.example"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Client = true
			leaf := ca.Issue(t, "client", tc.opts)
			cc := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{leaf.Pair}}
			line, _, err := tlsRoundTrip(t, ts.addr, cc, fmt.Sprintf("%09d", i+1))
			if tc.ok {
				if err != nil || !strings.HasSuffix(line, "|200\n") {
					t.Fatalf("reply %q, err %v", line, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("served %q", line)
			}
			name := tc.opts.CN
			if len(tc.opts.DNS) > 0 {
				name = tc.opts.DNS[0]
			}
			e2e.WaitFor(t, 5*time.Second, "refusal logged with the name", func() bool {
				return lg.Contains("name=" + name)
			})
		})
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=client_names"); n != 2 {
		t.Fatalf("client_names refusals %v", n)
	}
	// Empty: any certificate of the CA, as before.
	cfg.TLS.ClientNames = nil
	ts.srv.Reload(cfg)
	leaf := ca.Issue(t, "client", tlstest.Opts{Client: true, CN: "intruder"})
	cc := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{leaf.Pair}}
	if line, _, err := tlsRoundTrip(t, ts.addr, cc, "000000009"); err != nil || !strings.HasSuffix(line, "|200\n") {
		t.Fatalf("after emptying client_names: %q, %v", line, err)
	}
	if !lg.Contains("client_names [gw1.partner.example,batch-client] -> []") {
		t.Fatal("reload did not log the applied client_names")
	}
}

// TestTLSReload: Reload serves a new certificate (same paths, new
// contents) to the next connection while a connection opened before keeps
// working; a key that does not match is rejected with an error and the
// certificate in use stays.
func TestTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	first := ca.Issue(t, "server", tlstest.Opts{})
	log, lg := logCapture(t)
	cfg := testConfig(t)
	cfg.TLS.Cert, cfg.TLS.Key = first.CertFile, first.KeyFile
	ts := startServer(t, Options{Config: cfg, Logger: log})
	cc := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}

	// A connection opened before the reload.
	raw := dial(t, ts.addr)
	live := tls.Client(raw, cc)
	live.SetDeadline(time.Now().Add(20 * time.Second))
	liveR := bufio.NewReader(live)
	exchange := func(pno string) {
		t.Helper()
		if _, err := live.Write(req(t, pno, "live")); err != nil {
			t.Fatal(err)
		}
		if line, err := liveR.ReadString('\n'); err != nil || !strings.HasSuffix(line, "|200\n") {
			t.Fatalf("live connection: %q, %v", line, err)
		}
	}
	exchange("000000001")

	second := ca.Issue(t, "server", tlstest.Opts{})
	second.Install(t, cfg.TLS.Cert, cfg.TLS.Key)
	ts.srv.Reload(cfg)
	if _, serial, err := tlsRoundTrip(t, ts.addr, cc, "000000002"); err != nil || serial.Cmp(second.Serial) != 0 {
		t.Fatalf("after reload: serial %v (want %v), err %v", serial, second.Serial, err)
	}
	if !lg.Contains("serial " + second.Serial.String()) {
		t.Fatal("reload did not log the new serial")
	}
	exchange("000000003")

	// A mismatched pair: the new certificate with the old key.
	third := ca.Issue(t, "server", tlstest.Opts{})
	tlstest.WriteFile(t, cfg.TLS.Cert, third.CertPEM)
	ts.srv.Reload(cfg)
	if !lg.Contains("tls reload rejected") {
		t.Fatal("a bad pair was not reported")
	}
	if _, serial, err := tlsRoundTrip(t, ts.addr, cc, "000000004"); err != nil || serial.Cmp(second.Serial) != 0 {
		t.Fatalf("after a bad pair: serial %v (want %v, still), err %v", serial, second.Serial, err)
	}
	exchange("000000005")
}

// TestHandshakeTimeout: a TLS client that never sends its hello is closed
// after receiver.tls.handshake_timeout, not read_timeout.
func TestHandshakeTimeout(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	leaf := ca.Issue(t, "server", tlstest.Opts{})
	cfg := testConfig(t)
	cfg.ReadTimeout = 30 * time.Second
	cfg.TLS.Cert, cfg.TLS.Key = leaf.CertFile, leaf.KeyFile
	cfg.TLS.HandshakeTimeout = 300 * time.Millisecond
	ts := startServer(t, Options{Config: cfg})
	c := dial(t, ts.addr)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes", n)
	}
	took := time.Since(start)
	t.Logf("closed after %v", took)
	if took < 250*time.Millisecond || took > 10*time.Second {
		t.Fatalf("closed after %v, handshake_timeout 300ms", took)
	}
}

// floodFrom opens n connections from local address ip to addr that send
// nothing; they are closed when the test ends.
func floodFrom(t *testing.T, ip, addr string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
}

// TestSilentFlood: 600 connections from 127.0.0.5 that send nothing (no
// TLS hello, no message) do not keep a client from 127.0.0.6 waiting: it
// is answered within 1 s, whether the per-address limit stops the flood
// or, with it off, the bound on waiting connections evicts the flood's
// oldest.
func TestSilentFlood(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	leaf := ca.Issue(t, "server", tlstest.Opts{})
	for _, tc := range []struct {
		name            string
		tls             bool
		maxConns, perIP int
		cause           string
	}{
		{"tls, per-ip limit 64", true, 512, 64, "per_ip"},
		{"plain, per-ip limit 64", false, 512, 64, "per_ip"},
		{"tls, no per-ip limit, max_conns 64", true, 64, 0, "evicted"},
		{"plain, no per-ip limit, max_conns 64", false, 64, 0, "evicted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.ReadTimeout, cfg.IdleTimeout = 60*time.Second, 60*time.Second
			cfg.MaxConns, cfg.MaxConnsPerIP = tc.maxConns, tc.perIP
			if tc.tls {
				cfg.TLS.Cert, cfg.TLS.Key = leaf.CertFile, leaf.KeyFile
				cfg.TLS.HandshakeTimeout = 60 * time.Second // the flood outlasts the test
			}
			ts := startServer(t, Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
			floodFrom(t, "127.0.0.5", ts.addr, 600)
			e2e.WaitFor(t, 20*time.Second, "flood accepted", func() bool {
				return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause="+tc.cause) == 600-64
			})
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}, Timeout: 5 * time.Second}
			start := time.Now()
			raw, err := d.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var c net.Conn = raw
			if tc.tls {
				c = tls.Client(raw, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(req(t, "000000001", "behind the flood")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			took := time.Since(start)
			if err != nil || !strings.HasSuffix(line, "|200\n") {
				t.Fatalf("reply %q, err %v after %v", line, err, took)
			}
			t.Logf("answered after %v behind 600 silent connections", took.Round(time.Millisecond))
			if took > time.Second {
				t.Fatalf("answered after %v, want within 1s", took)
			}
		})
	}
}

// TestPerIPLimitLog: refusals over max_conns_per_ip are logged once per
// interval, with the count of refusals the line stands for and a sample
// address, not once per connection.
func TestPerIPLimitLog(t *testing.T) {
	log, lg := logCapture(t)
	cfg := testConfig(t)
	cfg.MaxConnsPerIP = 2
	const every = 2 * time.Second
	ts := startServer(t, Options{Config: cfg, Logger: log, RefusedLogEvery: every})
	refused := func() float64 {
		return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=per_ip")
	}
	start := time.Now()
	floodFrom(t, "127.0.0.7", ts.addr, 2+40)
	e2e.WaitFor(t, 10*time.Second, "40 refused", func() bool { return refused() == 40 })
	burst := time.Since(start)
	// One interval later, one more refusal reports the ones held back.
	e2e.WaitFor(t, 3*every, "an interval", func() bool { return time.Since(start) > every+100*time.Millisecond })
	floodFrom(t, "127.0.0.7", ts.addr, 1)
	e2e.WaitFor(t, 10*time.Second, "41 refused", func() bool { return refused() == 41 })
	line := regexp.MustCompile(`msg="connection refused: receiver.max_conns_per_ip reached" remote=127\.0\.0\.7:\d+ cause=per_ip count=(\d+)`)
	e2e.WaitFor(t, 5*time.Second, "all 41 refusals reported", func() bool {
		n := 0
		for _, m := range line.FindAllStringSubmatch(lg.String(), -1) {
			c, _ := strconv.Atoi(m[1])
			n += c
		}
		return n == 41
	})
	lines := len(line.FindAllString(lg.String(), -1))
	intervals := int(time.Since(start)/every) + 1
	t.Logf("%d log lines for 41 refusals in %d intervals (the burst of 40 took %v):\n%s", lines, intervals, burst, grepLines(lg.String(), "max_conns_per_ip reached"))
	if lines > intervals {
		t.Fatalf("%d lines for 41 refusals in %d intervals of %v", lines, intervals, every)
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
