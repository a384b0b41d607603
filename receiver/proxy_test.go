package receiver

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
)

// proxyConfig is testConfig with receiver.proxy_protocol=on and the given
// balancers trusted.
func proxyConfig(t testing.TB, trusted ...string) conf.Receiver {
	c := testConfig(t)
	c.ProxyProtocol = true
	for _, p := range trusted {
		c.ProxyTrusted = append(c.ProxyTrusted, netip.MustParsePrefix(p))
	}
	return c
}

// startLogged starts a server whose log (debug and up) is also kept in
// the returned Log, to count lines.
func startLogged(t *testing.T, cfg conf.Receiver) (*testServer, *e2e.Log) {
	t.Helper()
	log := &e2e.Log{}
	h := slog.NewTextHandler(io.MultiWriter(log, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})
	return startServer(t, Options{Config: cfg, Logger: slog.New(h)}), log
}

// v1 and v2 return PROXY headers naming src as the peer.
func v1(src string) []byte {
	ap := netip.MustParseAddrPort(src)
	return []byte("PROXY TCP4 " + ap.Addr().String() + " 127.0.0.1 " + strconv.Itoa(int(ap.Port())) + " 9010\r\n")
}

func v2(t testing.TB, src string) []byte {
	t.Helper()
	h := &proxyproto.Header{
		Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)),
		DestinationAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9010},
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func v2Local(t testing.TB) []byte {
	t.Helper()
	b, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// closedWithoutReply fails unless the server closes c without writing a
// byte (an EOF or a reset, not a timeout).
func closedWithoutReply(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		t.Fatalf("got %q, want a close without a reply", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

// TestProxyPeer: the address in a v1 or v2 header from a trusted balancer
// is the peer for receiver.allow and the logs; the connection stays open
// for more messages after the header.
func TestProxyPeer(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}
	ts, log := startLogged(t, cfg)
	for _, tc := range []struct {
		name       string
		header     []byte
		pno1, pno2 string
	}{
		{"v1", v1("10.1.2.3:40001"), "000000001", "000000002"},
		{"v2", v2(t, "10.1.2.3:40002"), "000000011", "000000012"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			br := bufio.NewReader(c)
			first := append(append([]byte{}, tc.header...), req(t, tc.pno1, tc.name+" first")...)
			if code := roundTrip(t, c, br, first).Code; code != 200 {
				t.Fatalf("first message: %d", code)
			}
			if code := roundTrip(t, c, br, req(t, tc.pno2, tc.name+" second")).Code; code != 200 {
				t.Fatalf("second message on the kept-alive connection: %d", code)
			}
			c.Close()
		})
	}
	t.Run("outside allow", func(t *testing.T) {
		c := dial(t, ts.addr)
		c.Write(append(v2(t, "10.9.9.9:40003"), req(t, "000000003", "denied")...))
		closedWithoutReply(t, c)
	})
	ts.stop(t)
	if got := len(storedLines(t, cfg.DataDir)); got != 4 {
		t.Fatalf("stored %d lines, want 4", got)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_denied_connections_total"); n != 1 {
		t.Fatalf("denied %v, want 1", n)
	}
	s := log.String()
	for _, want := range []string{"remote=10.1.2.3:40001", "remote=10.1.2.3:40002", "address not in receiver.allow\" remote=10.9.9.9:40003"} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(s, "remote=127.0.0.1") {
		t.Error("log names the balancer as the remote")
	}
}

// TestProxyHealthChecks: a v2 LOCAL header, a v1 UNKNOWN header, and a
// connection that closes (or resets) before any byte, from a trusted
// balancer, are health checks: closed, counted, never logged at info or
// warn.
func TestProxyHealthChecks(t *testing.T) {
	ts, log := startLogged(t, proxyConfig(t, "127.0.0.1/32"))
	checks := map[string]func(c *net.TCPConn){
		"v2 LOCAL":       func(c *net.TCPConn) { c.Write(v2Local(t)); closedWithoutReply(t, c) },
		"v1 UNKNOWN":     func(c *net.TCPConn) { c.Write([]byte("PROXY UNKNOWN\r\n")); closedWithoutReply(t, c) },
		"connect, close": func(c *net.TCPConn) { c.Close() },
		"connect, reset": func(c *net.TCPConn) { c.SetLinger(0); c.Close() },
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) { check(dial(t, ts.addr)) })
	}
	e2e.WaitFor(t, 10*time.Second, "4 health checks counted", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_proxy_health_checks_total") == 4
	})
	if code := send(t, ts.addr, append(v2(t, "10.1.2.3:40001"), req(t, "000000001", "after checks")...)); code != 200 {
		t.Fatalf("after the checks: %d", code)
	}
	ts.stop(t)
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=INFO") && strings.Contains(l, "127.0.0.1") {
			t.Errorf("health checks logged: %s", l)
		}
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_proxy_refused_total"); n != 0 {
		t.Errorf("refused %v, want 0", n)
	}
}

// TestProxyMalformed: malformed headers from a trusted balancer (or none)
// close the connection without a reply, each cause is counted and logged
// once (rate-limited), and the server goes on serving.
func TestProxyMalformed(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.ReadTimeout = 500 * time.Millisecond
	ts, log := startLogged(t, cfg)
	good := v2(t, "10.1.2.3:40001")
	v2bad := func(at int, b byte) []byte {
		h := append([]byte{}, good...)
		h[at] = b
		return h
	}
	oversizedV2 := append([]byte{}, good[:14]...)
	oversizedV2 = append(oversizedV2, 0x10, 0x01) // length 4097 > 4096
	oversizedV2 = append(oversizedV2, make([]byte, 4097)...)
	tests := []struct {
		name, cause string
		data        []byte
		closeWrite  bool // the balancer half-closes after data
	}{
		{"v1 truncated", proxyMalformed, []byte("PROXY TCP4 10.1.2.3 127.0.0.1"), true},
		{"v1 without CR", proxyMalformed, []byte("PROXY TCP4 10.1.2.3 127.0.0.1 40001 9010\n"), false},
		{"v1 oversized", proxyMalformed, []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), false},
		{"v1 unknown family", proxyMalformed, []byte("PROXY UDP4 10.1.2.3 127.0.0.1 40001 9010\r\n"), false},
		{"v1 bad address", proxyMalformed, []byte("PROXY TCP4 10.1.2.300 127.0.0.1 40001 9010\r\n"), false},
		{"v1 wrong signature", proxyMissing, []byte("PROXI TCP4 10.1.2.3 127.0.0.1 40001 9010\r\n"), false},
		{"v2 truncated", proxyMalformed, good[:20], true},
		{"v2 wrong signature", proxyMissing, v2bad(7, 'X'), false},
		{"v2 bad version", proxyMalformed, v2bad(12, 0x31), false},
		{"v2 unknown command", proxyMalformed, v2bad(12, 0x2F), false},
		{"v2 unknown family", proxyMalformed, v2bad(13, 0x41), false},
		{"v2 UDP", proxyMalformed, v2bad(13, 0x12), false},
		{"v2 oversized", proxyMalformed, oversizedV2, false},
		{"v2 length too short", proxyMalformed, append(v2bad(15, 4)[:16], good[16:20]...), true},
		{"message without a header", proxyMissing, req(t, "000000009", "no header"), false},
		{"nothing within read_timeout", proxyTimeout, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := metric(t, ts.reg, "spoolgate_receiver_proxy_refused_total", "reason="+tc.cause)
			c := dial(t, ts.addr)
			if len(tc.data) > 0 {
				if _, err := c.Write(tc.data); err != nil {
					t.Fatal(err)
				}
			}
			if tc.closeWrite {
				c.CloseWrite()
			}
			closedWithoutReply(t, c)
			e2e.WaitFor(t, 5*time.Second, "the refusal counted as "+tc.cause, func() bool {
				return metric(t, ts.reg, "spoolgate_receiver_proxy_refused_total", "reason="+tc.cause) == before+1
			})
			if code := send(t, ts.addr, append(append([]byte{}, good...), req(t, "000000001", "still up")...)); code != 200 {
				t.Fatalf("server after %s: %d", tc.name, code)
			}
		})
	}
	ts.stop(t)
	s := log.String()
	for _, cause := range []string{proxyMalformed, proxyMissing, proxyTimeout} {
		var n int
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "connection refused") && strings.Contains(l, causeText[cause]) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("cause %s logged %d times at warn, want once", cause, n)
		}
	}
	if metric(t, ts.reg, "spoolgate_receiver_proxy_health_checks_total") != 0 {
		t.Error("a malformed header counted as a health check")
	}
}

// causeText is a part of each cause's log message.
var causeText = map[string]string{
	proxyUntrusted: "not in receiver.proxy_trusted",
	proxyMalformed: "malformed PROXY header",
	proxyMissing:   "sent no PROXY header",
	proxyTimeout:   "within receiver.read_timeout",
}

// TestProxyUntrusted: a header from an address outside proxy_trusted is
// refused (a forged address), and a forged header cannot get past allow;
// a direct connection without a header is served under allow. A reload
// of proxy_trusted applies to the next connection.
func TestProxyUntrusted(t *testing.T) {
	cfg := proxyConfig(t, "10.0.0.0/8")
	ts, log := startLogged(t, cfg)
	c := dial(t, ts.addr)
	c.Write(append(v2(t, "10.1.2.3:40001"), req(t, "000000001", "forged")...))
	closedWithoutReply(t, c)
	if code := send(t, ts.addr, req(t, "000000002", "direct")); code != 200 {
		t.Fatalf("direct connection: %d", code)
	}

	// allow names only the forged address: the header does not get the
	// real peer past it, and the real peer is denied.
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}
	ts.srv.Reload(cfg)
	c = dial(t, ts.addr)
	c.Write(append(v1("10.1.2.3:40002"), req(t, "000000003", "forged past allow")...))
	closedWithoutReply(t, c)

	// Trusting 127.0.0.1 by a reload: its header is used now, and a
	// connection without one is refused.
	cfg.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts.srv.Reload(cfg)
	if code := send(t, ts.addr, append(v1("10.1.2.3:40003"), req(t, "000000004", "trusted now")...)); code != 200 {
		t.Fatalf("after trusting the balancer: %d", code)
	}
	c = dial(t, ts.addr)
	c.Write(req(t, "000000005", "no header from a balancer"))
	closedWithoutReply(t, c)
	ts.stop(t)

	got := storedLines(t, cfg.DataDir)
	if len(got) != 2 || !strings.Contains(got[0]+got[1], "direct") || !strings.Contains(got[0]+got[1], "trusted now") {
		t.Fatalf("stored %q", got)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_proxy_refused_total", "reason="+proxyUntrusted); n != 1 {
		t.Errorf("refused as untrusted %v, want 1", n)
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_denied_connections_total"); n != 1 {
		t.Errorf("denied %v, want 1 (the forged header past allow)", n)
	}
	if !strings.Contains(log.String(), "not in receiver.proxy_trusted (a forged address?)\" count=1 remote=127.0.0.1:") ||
		!strings.Contains(log.String(), "claimed=10.1.2.3:40001") {
		t.Error("the forged header is not logged with the real and the claimed address")
	}
}

// TestProxyTLS: the PROXY header comes before the TLS handshake, and the
// header's address is the peer for allow.
func TestProxyTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	srvLeaf := ca.Issue(t, "server", tlstest.Opts{})
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.TLS.Cert, cfg.TLS.Key = srvLeaf.CertFile, srvLeaf.KeyFile
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}
	ts := startServer(t, Options{Config: cfg})
	try := func(src string) error {
		raw := dial(t, ts.addr)
		defer raw.Close()
		if _, err := raw.Write(v2(t, src)); err != nil {
			return err
		}
		c := tls.Client(raw, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req(t, "000000001", "tls behind a balancer")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.HasSuffix(line, "|200\n") {
			err = errors.New("reply " + line)
		}
		return err
	}
	if err := try("10.1.2.3:40001"); err != nil {
		t.Fatalf("allowed peer over TLS: %v", err)
	}
	if err := try("10.9.9.9:40001"); err == nil {
		t.Fatal("a peer outside allow was served over TLS")
	}
}

// TestProxyDrain: a balancer connection still waiting for its header does
// not hold up a drain for read_timeout.
func TestProxyDrain(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.ReadTimeout = 30 * time.Second
	ts := startServer(t, Options{Config: cfg})
	c := dial(t, ts.addr)
	e2e.WaitFor(t, 5*time.Second, "the connection served", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_connections") == 1
	})
	start := time.Now()
	ts.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("drain took %v", d)
	}
	if ts.shutErr != nil {
		t.Fatalf("shutdown: %v", ts.shutErr)
	}
	closedWithoutReply(t, c)
}

// TestProxyDirectPerIP: with receiver.proxy_protocol=on, a direct peer (not
// a balancer) counts against max_conns_per_ip from its accept, not from
// its first byte: one address cannot hold more silent connections than
// the limit (it held 200, issue 21).
func TestProxyDirectPerIP(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.MaxConnsPerIP = 5
	cfg.ReadTimeout, cfg.IdleTimeout = 60*time.Second, 60*time.Second
	ts := startServer(t, Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	floodFrom(t, "127.0.0.8", ts.addr, 5+20)
	e2e.WaitFor(t, 10*time.Second, "20 refused over max_conns_per_ip", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=per_ip") == 20
	})
	// A peer of another address, and a balancer's, are served.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code := roundTrip(t, c, bufio.NewReader(c), req(t, "000000001", "direct")).Code; code != 200 {
		t.Fatalf("direct peer of another address: %d", code)
	}
	if code := send(t, ts.addr, append(v2(t, "10.1.2.3:40001"), req(t, "000000002", "through the balancer")...)); code != 200 {
		t.Fatalf("through the balancer: %d", code)
	}
}

// TestProxyEvictionByAddress: with receiver.proxy_protocol=on, the waiting
// connections of each address are their own bucket for eviction: a
// connect flood from one address evicts its own oldest, not the slow
// honest clients of another that connected first (2 or 3 of 10 were
// closed, issue 21), and every eviction is counted.
func TestProxyEvictionByAddress(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	cfg.MaxConns, cfg.MaxConnsPerIP = 64, 0
	cfg.ReadTimeout, cfg.IdleTimeout = 60*time.Second, 60*time.Second
	ts := startServer(t, Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.10")}, Timeout: 5 * time.Second}
	var honest []net.Conn
	for range 10 {
		c, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		honest = append(honest, c)
	}
	floodFrom(t, "127.0.0.11", ts.addr, 200)
	e2e.WaitFor(t, 20*time.Second, "the flood's oldest evicted, and counted", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=evicted") == 10+200-64
	})
	for i, c := range honest {
		if r := roundTrip(t, c, bufio.NewReader(c), req(t, fmt.Sprintf("%09d", i+1), "slow but honest")); r.Code != 200 {
			t.Fatalf("honest client %d: %d", i, r.Code)
		}
	}
}

// TestRefusalsNamedPerAddress: refusals are logged once a minute per cause
// and address, so each refused address is named (one line a cause a
// minute named only the first, issue 21); a trusted balancer's
// connect-then-close without a header is a quiet health check, not a
// refused client, even when its address is not in receiver.allow.
func TestRefusalsNamedPerAddress(t *testing.T) {
	cfg := proxyConfig(t, "127.0.0.1/32")
	// 127.0.0.15 and .16 may connect directly, not send a header.
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("127.0.0.15/32"), netip.MustParsePrefix("127.0.0.16/32")}
	ts, log := startLogged(t, cfg)
	check := dial(t, ts.addr) // the balancer's TCP check (nc -z)
	check.Close()
	e2e.WaitFor(t, 10*time.Second, "the health check counted", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_proxy_health_checks_total") == 1
	})
	for _, ip := range []string{"127.0.0.12", "127.0.0.13", "127.0.0.14"} { // direct strangers
		for range 2 {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(req(t, "000000001", "not allowed"))
			closedWithoutReply(t, c)
			c.Close()
		}
	}
	for _, src := range []string{"10.9.9.1:40001", "10.9.9.2:40002"} { // strangers through the balancer
		c := dial(t, ts.addr)
		c.Write(append(v2(t, src), req(t, "000000002", "not allowed")...))
		closedWithoutReply(t, c)
	}
	for _, ip := range []string{"127.0.0.15", "127.0.0.16"} { // headers from addresses not trusted
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(append(v2(t, "10.1.2.3:40003"), req(t, "000000003", "forged")...))
		closedWithoutReply(t, c)
		c.Close()
	}
	e2e.WaitFor(t, 10*time.Second, "every refusal counted", func() bool {
		return metric(t, ts.reg, "spoolgate_receiver_refused_connections_total", "cause=allow") == 8 &&
			metric(t, ts.reg, "spoolgate_receiver_proxy_refused_total", "reason=untrusted") == 2
	})
	s := log.String()
	for _, ip := range []string{"127.0.0.12", "127.0.0.13", "127.0.0.14", "10.9.9.1", "10.9.9.2"} {
		if n := len(regexp.MustCompile(`address not in receiver.allow" remote=`+regexp.QuoteMeta(ip)+`:`).FindAllString(s, -1)); n != 1 {
			t.Errorf("%d lines name %s refused by receiver.allow, want 1", n, ip)
		}
	}
	for _, ip := range []string{"127.0.0.15", "127.0.0.16"} {
		if !strings.Contains(s, "not in receiver.proxy_trusted (a forged address?)\" count=1 remote="+ip+":") {
			t.Errorf("the untrusted header from %s is not named", ip)
		}
	}
	if strings.Contains(s, "remote=127.0.0.1:") {
		t.Errorf("the balancer's health check was logged as a refusal:\n%s", grepLines(s, "remote=127.0.0.1:"))
	}
}
