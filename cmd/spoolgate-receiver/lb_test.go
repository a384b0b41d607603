package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"spoolgate/internal/e2e"
)

// The tests in this file run the receiver behind real load balancers
// (HAProxy, nginx stream) started from the configurations shipped in
// scripts/lb, with only addresses, ports and paths filled in. Clients bind
// to 127.0.0.2 and 127.0.0.3 so the receivers can tell them from the
// balancer (127.0.0.1).

const (
	partner  = "127.0.0.2" // in receiver.allow
	stranger = "127.0.0.3" // not in receiver.allow
	another  = "127.0.0.4" // not in receiver.allow either
)

// lbFile returns scripts/lb/name with each old string of repl (old, new
// pairs) replaced. Every old string must occur: a shipped file that no
// longer has it fails the test instead of running something else.
func lbFile(t *testing.T, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "lb", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("scripts/lb/%s has no %q to fill in", name, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

// balancer is a running HAProxy or nginx.
type balancer struct {
	*e2e.Proc
	addr string // where clients connect
	sock string // HAProxy's runtime API socket
}

// startHAProxy runs scripts/lb/haproxy.cfg in front of r1 and r2 and waits
// until its health checks see both up.
func startHAProxy(t *testing.T, r1, r2 string) *balancer {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed: apt-get install haproxy (scripts/test.sh does, as root)")
	}
	dir := t.TempDir()
	b := &balancer{addr: e2e.FreeAddr(t), sock: filepath.Join(dir, "admin.sock")}
	cfg := lbFile(t, "haproxy.cfg",
		"bind :9010", "bind "+b.addr,
		"10.0.0.11:9010", r1,
		"10.0.0.12:9010", r2,
		"/run/haproxy/admin.sock", b.sock,
		"log /dev/log local0", "log stderr format short local0")
	if os.Geteuid() != 0 { // chroot and the change of user need root
		cfg = regexp.MustCompile(`(?m)^\s*(chroot|user|group) .*$`).ReplaceAllString(cfg, "")
	}
	path := filepath.Join(dir, "haproxy.cfg")
	e2e.WriteFile(t, path, cfg)
	// -db: stay in the foreground, so the pid is HAProxy's own.
	b.Proc = e2e.Start(t, "haproxy", exec.Command(bin, "-db", "-f", path), nil)
	t.Cleanup(func() {
		b.Kill()
		t.Logf("haproxy log:\n%s", b.Log.String())
	})
	e2e.WaitFor(t, 30*time.Second, "HAProxy to see both receivers up", func() bool {
		if b.Exited() {
			t.Fatalf("haproxy exited: %v\n%s", b.Err(), b.Log.String())
		}
		up, _ := b.serversUp()
		return up == 2
	})
	return b
}

// serversUp asks HAProxy's runtime API how many receivers are up.
func (b *balancer) serversUp() (int, error) {
	c, err := net.DialTimeout("unix", b.sock, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return 0, err
	}
	r := csv.NewReader(c)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return 0, fmt.Errorf("show stat: %v", err)
	}
	status := -1
	for i, h := range rows[0] {
		if h == "status" {
			status = i
		}
	}
	n := 0
	for _, row := range rows[1:] {
		if len(row) > status && status > 1 && row[0] == "spoolgate_receivers" && strings.HasPrefix(row[1], "r") && row[status] == "UP" {
			n++
		}
	}
	return n, nil
}

// startNginx runs scripts/lb/nginx-stream.conf in front of r1 and r2, in
// one foreground process.
func startNginx(t *testing.T, r1, r2 string) *balancer {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx is not installed: apt-get install nginx-light libnginx-mod-stream (scripts/test.sh does, as root)")
	}
	out, _ := exec.Command(bin, "-V").CombinedOutput()
	load := ""
	switch v := string(out); {
	case strings.Contains(v, "--with-stream=dynamic"):
		modules := "/usr/lib/nginx/modules"
		if m := regexp.MustCompile(`--modules-path=(\S+)`).FindStringSubmatch(v); m != nil {
			modules = m[1]
		}
		so := filepath.Join(modules, "ngx_stream_module.so")
		if _, err := os.Stat(so); err != nil {
			t.Skip("the nginx stream module is not installed: apt-get install libnginx-mod-stream")
		}
		load = "load_module " + so + ";\n"
	case !strings.Contains(v, "--with-stream"):
		t.Skip("this nginx has no stream module: apt-get install nginx-light libnginx-mod-stream")
	}
	dir := t.TempDir()
	b := &balancer{addr: e2e.FreeAddr(t)}
	stream := filepath.Join(dir, "spoolgate-stream.conf")
	e2e.WriteFile(t, stream, lbFile(t, "nginx-stream.conf",
		"listen 9010;", "listen "+b.addr+";",
		"10.0.0.11:9010", r1,
		"10.0.0.12:9010", r2))
	main := filepath.Join(dir, "nginx.conf")
	e2e.WriteFile(t, main, load+"pid "+filepath.Join(dir, "nginx.pid")+";\nerror_log stderr notice;\nevents {}\ninclude "+stream+";\n")
	cmd := exec.Command(bin, "-p", dir, "-c", main, "-e", "stderr", "-g", "daemon off; master_process off;")
	b.Proc = e2e.Start(t, "nginx", cmd, nil)
	t.Cleanup(func() {
		b.Kill()
		t.Logf("nginx log:\n%s", b.Log.String())
	})
	e2e.WaitFor(t, 30*time.Second, "nginx to listen", func() bool {
		if b.Exited() {
			t.Fatalf("nginx exited: %v\n%s", b.Err(), b.Log.String())
		}
		c, err := dialFrom(partner, b.addr) // from the balancer's address it would be denied
		if err == nil {
			c.c.Close()
		}
		return err == nil
	})
	return b
}

// startBehind starts a receiver that trusts PROXY headers from 127.0.0.1
// and allows only the partner, with its log at debug (every connection
// logged with its peer).
func startBehind(t *testing.T, extra ...string) (*proc, string) {
	t.Helper()
	dir := t.TempDir()
	p := start(t, config(t, dir, append([]string{
		"receiver.proxy_protocol = on",
		"receiver.proxy_trusted = 127.0.0.1/32",
		"receiver.allow = " + partner + "/32",
		"log.level = debug",
	}, extra...)...), nil)
	if p.addr == "" {
		t.Fatalf("receiver did not start:\n%s", p.Log.String())
	}
	return p, filepath.Join(dir, "data")
}

// dialFrom connects to addr from the local address from.
func dialFrom(from, addr string) (*client, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &client{c: c, br: bufio.NewReader(c)}, nil
}

// refused sends m from from to addr and reports whether the connection
// was closed without a reply.
func refused(t *testing.T, from, addr string, m []byte) bool {
	t.Helper()
	c, err := dialFrom(from, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	c.c.Write(m)
	b, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("no close within 20s")
	}
	return len(b) == 0
}

func scrape(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	_, body, err := e2e.HTTPGet("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	var v float64
	fmt.Sscan(m[1], &v)
	return v
}

// checkBehind runs the partner and stranger clients through b and checks
// what the receivers did and logged. wantChecks says whether the balancer
// health-checks the receivers (HAProxy does, nginx does not).
func checkBehind(t *testing.T, b *balancer, rs []*proc, dirs []string, watch time.Duration, wantChecks bool) {
	t.Helper()
	started := time.Now()
	sent := map[string]bool{}
	for i := range 6 {
		m := msg(t, fmt.Sprintf("%09d", 100+i), "through the balancer")
		sent[string(m)] = true
		c, err := dialFrom(partner, b.addr)
		if err != nil {
			t.Fatal(err)
		}
		code, err := c.send(m)
		if err == nil && i%2 == 0 { // and a second one on the same connection
			m2 := msg(t, fmt.Sprintf("%09d", 200+i), "kept alive")
			sent[string(m2)] = true
			code, err = c.send(m2)
		}
		c.c.Close()
		if err != nil || code != 200 {
			t.Fatalf("partner %s: code %d, %v", partner, code, err)
		}
	}
	// A TCP check of the balancer's own (keepalived's TCP_CHECK, nc -z):
	// connect, close, no header. A quiet health check, not a refusal.
	for _, r := range rs {
		c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i := range 3 {
		if !refused(t, stranger, b.addr, msg(t, fmt.Sprintf("%09d", 300+i), "not allowed")) {
			t.Fatalf("stranger %s got a reply", stranger)
		}
	}
	// Refused right after, from another address: named too (a line per
	// cause and address a minute, not per cause).
	for i := range 2 {
		if !refused(t, another, b.addr, msg(t, fmt.Sprintf("%09d", 310+i), "not allowed either")) {
			t.Fatalf("%s got a reply", another)
		}
	}
	// The health checks go on meanwhile; none may log at info or warn.
	if d := time.Until(started.Add(watch)); d > 0 {
		time.Sleep(d) // the observation window itself, not a synchronisation
	}

	stored := map[string]int{}
	for _, dir := range dirs {
		for l, n := range requestLines(t, dir, false) {
			stored[l] += n
		}
	}
	if len(stored) != len(sent) {
		t.Errorf("stored %d messages, want the partner's %d", len(stored), len(sent))
	}
	for m := range sent {
		if stored[m] != 1 {
			t.Errorf("partner's message stored %d times: %q", stored[m], m)
		}
	}
	var all strings.Builder
	for i, r := range rs {
		s := r.Log.String()
		all.WriteString(s)
		for _, l := range strings.Split(s, "\n") {
			bad := strings.Contains(l, " - WARNING - ") || strings.Contains(l, " - ERROR - ")
			if strings.Contains(l, "address not in receiver.allow") && (strings.Contains(l, "remote="+stranger+":") || strings.Contains(l, "remote="+another+":")) {
				bad = false
			}
			if bad {
				t.Errorf("receiver %d logged: %s", i+1, l)
			}
			if strings.Contains(l, "remote=127.0.0.1:") {
				t.Errorf("receiver %d names the balancer as the peer: %s", i+1, l)
			}
		}
		if wantChecks {
			if n := scrape(t, r, "spoolgate_receiver_proxy_health_checks_total"); n < 2 {
				t.Errorf("receiver %d counted %v health checks in %v, want some", i+1, n, watch)
			}
		}
	}
	for _, want := range []string{"connection accepted remote=" + partner + ":", "address not in receiver.allow remote=" + stranger + ":",
		"address not in receiver.allow remote=" + another + ":"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("the receivers' logs lack %q", want)
		}
	}
}

// TestHAProxy: HAProxy with send-proxy-v2 and health checks in front of
// two receivers: the partner is served and the stranger is closed without
// a reply, the logs name them and not the balancer, and the health checks
// log nothing at info or warn for 10 s. A header sent straight to a
// receiver from an address that is not a balancer is refused, and cannot
// get a stranger past receiver.allow.
func TestHAProxy(t *testing.T) {
	r1, d1 := startBehind(t)
	r2, d2 := startBehind(t)
	b := startHAProxy(t, r1.addr, r2.addr)
	checkBehind(t, b, []*proc{r1, r2}, []string{d1, d2}, 10*time.Second, true)

	forged, err := (&proxyproto.Header{
		Version: 2, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(partner), Port: 40000},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9010},
	}).Format()
	if err != nil {
		t.Fatal(err)
	}
	if !refused(t, stranger, r1.addr, append(forged, msg(t, "000000400", "forged")...)) {
		t.Fatal("a forged header got the stranger a reply")
	}
	if !refused(t, partner, r1.addr, append(forged, msg(t, "000000401", "header from a partner")...)) {
		t.Fatal("a header from an address not in proxy_trusted got a reply")
	}
	e2e.WaitFor(t, 10*time.Second, "the untrusted header logged", func() bool {
		return r1.Log.Contains("not in receiver.proxy_trusted")
	})
}

// TestNginxStream: the same through nginx stream with PROXY protocol v1.
func TestNginxStream(t *testing.T) {
	r1, d1 := startBehind(t)
	r2, d2 := startBehind(t)
	b := startNginx(t, r1.addr, r2.addr)
	checkBehind(t, b, []*proc{r1, r2}, []string{d1, d2}, 0, false)
}

// ack is a message answered 200 to client w on its conn-th connection.
type ack struct {
	m    string
	w    int
	conn int
}

// lbLoad runs len(conns) keep-alive clients from the partner's address
// through addr until stop is closed; a client whose connection fails
// connects again, and conns[w] is the number of client w's connection.
// Each client sends at most 20,000 messages.
func lbLoad(addr string, conns []atomic.Int32, stop <-chan struct{}, acked chan<- ack) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			seq := 0
			for conn := 0; seq < 20000; conn++ {
				conns[w].Store(int32(conn))
				c, err := dialFrom(partner, addr)
				for err == nil && seq < 20000 {
					select {
					case <-stop:
						c.c.Close()
						return
					default:
					}
					m, _ := spec.Encode("REQ", fmt.Sprintf("%02d%07d", w, seq), "20261121093000", "ORG01", "SV01", "LB", "payload", "")
					seq++
					var code int
					if code, err = c.send(m); err == nil && code == 200 {
						acked <- ack{string(m), w, conn}
					}
				}
				if c != nil {
					c.c.Close()
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond): // reconnect backoff
				}
			}
		})
	}
	return &wg
}

// TestHAProxyKill9: SIGKILL of one receiver under 16 clients' load through
// HAProxy: every message that got a 200 is in one of the two data dirs
// exactly once, and the clients that connect again are served by the
// other receiver.
func TestHAProxyKill9(t *testing.T) {
	r1, d1 := startBehind(t, "log.level = info", "receiver.fsync = always")
	r2, d2 := startBehind(t, "log.level = info", "receiver.fsync = always")
	b := startHAProxy(t, r1.addr, r2.addr)
	stop := make(chan struct{})
	acked := make(chan ack, 1<<16)
	conns := make([]atomic.Int32, 16)
	wg := lbLoad(b.addr, conns, stop, acked)
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	var got []ack
	collect := func() {
		for {
			select {
			case a := <-acked:
				got = append(got, a)
			default:
				return
			}
		}
	}
	e2e.WaitFor(t, 60*time.Second, "both receivers storing", func() bool {
		collect()
		return len(got) >= 200 && len(requestLines(t, d1, false)) > 0 && len(requestLines(t, d2, false)) > 0
	})
	r1.Signal(t, syscall.SIGKILL)
	r1.ExitCode(t, 10*time.Second)
	killedAt := len(got)
	// reconnected counts the clients that connected again and those of
	// them served on a new connection.
	reconnected := func() (again, served int) {
		ok := map[int]bool{}
		for _, a := range got {
			if a.conn > 0 {
				ok[a.w] = true
			}
		}
		for w := range conns {
			if conns[w].Load() > 0 {
				again++
				if ok[w] {
					served++
				}
			}
		}
		return again, served
	}
	e2e.WaitFor(t, 60*time.Second, "the clients of the killed receiver served again", func() bool {
		collect()
		again, served := reconnected()
		return again > 0 && served == again && len(got) >= killedAt+500
	})
	stopLoad()
	collect()

	lines1, lines2 := requestLines(t, d1, false), requestLines(t, d2, false)
	after := 0
	for _, a := range got {
		if n := lines1[a.m] + lines2[a.m]; n != 1 {
			t.Fatalf("acknowledged message stored %d times: %q", n, a.m)
		}
		if a.conn > 0 {
			after++
			if lines2[a.m] != 1 {
				t.Fatalf("a message on a new connection after the kill is not on the surviving receiver: %q", a.m)
			}
		}
	}
	again, served := reconnected()
	t.Logf("%d acknowledged (%d before the kill), %d on new connections; %d of 16 clients connected again, %d of them served; receiver 1 stored %d lines, receiver 2 %d",
		len(got), killedAt, after, again, served, len(lines1), len(lines2))
}

// TestProxyTrustedReload: receiver.proxy_trusted changes live when the
// config file changes: a header from an address that was not trusted is
// refused, and used once the address is trusted.
func TestProxyTrustedReload(t *testing.T) {
	dir := t.TempDir()
	keys := func(trusted string) []string {
		return []string{
			"receiver.listen = 127.0.0.1:0",
			"receiver.admin_listen = 127.0.0.1:0",
			"receiver.data_dir = " + filepath.Join(dir, "data"),
			"log.dir =",
			"receiver.proxy_protocol = on",
			"receiver.proxy_trusted = " + trusted,
			"receiver.allow = " + partner + "/32",
		}
	}
	path := filepath.Join(dir, "conf.properties")
	writeConfig(t, path, keys("10.0.0.0/8")...)
	p := start(t, path, nil)
	header := []byte("PROXY TCP4 " + partner + " 127.0.0.1 40000 9010\r\n")
	if !refused(t, "127.0.0.1", p.addr, append(header, msg(t, "000000001", "not trusted yet")...)) {
		t.Fatal("a header from an untrusted address got a reply")
	}
	writeConfig(t, path, keys("127.0.0.1/32")...)
	e2e.WaitFor(t, 10*time.Second, "the reload", func() bool {
		return p.Log.Contains("config reloaded") && p.Log.Contains("changed=receiver.proxy_trusted")
	})
	c, err := dialFrom("127.0.0.1", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	if code, err := c.send(append(header, msg(t, "000000002", "trusted now")...)); err != nil || code != 200 {
		t.Fatalf("after the reload: %d %v", code, err)
	}
}
