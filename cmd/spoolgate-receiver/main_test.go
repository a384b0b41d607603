package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// bin is the receiver binary under test, built once by TestMain (with the
// race detector when the tests run with it).
var bin string

func TestMain(m *testing.M) {
	e2e.Main(m, func(dir string) error {
		bin = filepath.Join(dir, "spoolgate-receiver")
		return e2e.Build("", bin, e2e.Race, ".")
	})
}

// proc is a running receiver and the addresses it logged.
type proc struct {
	*e2e.Proc
	addr  string
	admin string
}

// config writes a config file for a receiver on 127.0.0.1:0 with its data
// dir under dir, with extra keys (later ones win).
func config(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	lines := []string{
		"receiver.listen = 127.0.0.1:0",
		"receiver.admin_listen = 127.0.0.1:0",
		"receiver.data_dir = " + filepath.Join(dir, "data"),
		"log.dir =",
		"shutdown_timeout = 10s",
	}
	for _, e := range extra {
		key, _, _ := strings.Cut(e, "=")
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, key) })
		lines = append(lines, e)
	}
	path := filepath.Join(dir, "conf.properties")
	writeConfig(t, path, lines...)
	return path
}

// writeConfig writes the config file as config management does: no
// half-written file.
func writeConfig(t *testing.T, path string, lines ...string) {
	t.Helper()
	e2e.WriteFile(t, path, strings.Join(lines, "\n")+"\n")
}

// start runs the binary with -config path and waits until it listens (or
// exits). setup may adjust the command (socket activation). The log is
// written to the test's log once the receiver has ended.
func start(t *testing.T, path string, setup func(*exec.Cmd)) *proc {
	t.Helper()
	cmd := exec.Command(bin, "-config", path)
	if setup != nil {
		setup(cmd)
	}
	p := &proc{Proc: e2e.Start(t, "receiver", cmd, nil)}
	t.Cleanup(func() {
		p.Kill()
		t.Logf("receiver log (pid %d):\n%s", p.Cmd.Process.Pid, p.Log.String())
	})
	listen := regexp.MustCompile(`listening on (\S+)`)
	admin := regexp.MustCompile(`admin listening addr=(\S+)`)
	e2e.WaitFor(t, 20*time.Second, "the receiver to listen", func() bool {
		return p.Exited() || listen.MatchString(p.Log.String())
	})
	if m := listen.FindStringSubmatch(p.Log.String()); m != nil {
		p.addr = m[1]
	}
	if m := admin.FindStringSubmatch(p.Log.String()); m != nil {
		p.admin = m[1]
	}
	return p
}

var spec = protocol.DefaultRequestSpec()

func msg(t testing.TB, pno, payload string) []byte {
	b, err := spec.Encode("REQ", pno, "20261121093000", "ORG01", "SV01", "CUST-000123", payload, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// client is one keep-alive connection.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string) (*client, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{c: c, br: bufio.NewReader(c)}, nil
}

// send sends m and returns the reply's code.
func (c *client) send(m []byte) (int, error) {
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.c.Write(m); err != nil {
		return 0, err
	}
	line, err := c.br.ReadBytes('\n')
	if err != nil {
		return 0, err
	}
	r, err := protocol.DefaultDialect().ParseReply(line)
	if err != nil {
		return 0, err
	}
	return r.Code, nil
}

func sendOne(t *testing.T, addr string, m []byte) int {
	t.Helper()
	c, err := dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	code, err := c.send(m)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// requestLines reads every request file (final and .part) in dir and
// fails on a file that ends in a partial line when strict is set.
func requestLines(t *testing.T, dir string, strict bool) map[string]int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		if !strings.Contains(e.Name(), "_request.txt") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strict && len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in a partial line", e.Name())
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.HasSuffix(l, "\n") {
				out[l]++
			}
		}
	}
	return out
}

// load runs n keep-alive clients sending unique messages until stop is
// closed or their connection fails; it returns every message answered 200.
func load(addr string, n int, stop <-chan struct{}, acked chan<- []byte) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			c, err := dial(addr)
			if err != nil {
				return
			}
			defer c.c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, _ := spec.Encode("REQ", fmt.Sprintf("%03d%06d", w, i), "20261121093000", "ORG01", "SV01", "LOAD", "payload", "")
				code, err := c.send(m)
				if err != nil {
					return
				}
				if code == 200 {
					acked <- m
				}
			}
		})
	}
	return &wg
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    []string
		wantCode int
		wantLog  string
	}{
		{"duration without unit", []string{"receiver.read_timeout = 5"}, 2, "receiver.read_timeout"},
		{"unknown key", []string{"receiver.nope = 1"}, 2, "receiver.nope"},
		{"listen address taken", []string{"receiver.listen = " + takenAddr(t)}, 1, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, config(t, t.TempDir(), tc.extra...), nil)
			if code := p.ExitCode(t, 10*time.Second); code != tc.wantCode {
				t.Fatalf("exit %d, want %d", code, tc.wantCode)
			}
			if !strings.Contains(p.Log.String(), tc.wantLog) {
				t.Fatalf("log lacks %q", tc.wantLog)
			}
		})
	}
}

// TestBadConfigExits2: what start-up refuses it refuses at once with exit
// 2 (not restarted under RestartPreventExitStatus=2) and one line naming
// the path or the key: a missing file, a FIFO, /dev/zero, a file over
// 1 MiB, a TLS key of another certificate, listen equal to admin_listen.
func TestBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	base := []string{"receiver.listen = 127.0.0.1:0", "receiver.admin_listen = 127.0.0.1:0",
		"receiver.data_dir = " + filepath.Join(dir, "data"), "log.dir ="}
	for _, bc := range e2e.BadConfigs(t, base...) {
		t.Run(bc.Name, func(t *testing.T) {
			cmd := exec.Command(bin, "-config", bc.Path)
			p := e2e.Start(t, "receiver", cmd, nil)
			if code := p.ExitCode(t, 20*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2; output:\n%s", code, p.Log)
			}
			if out := p.Log.String(); !strings.Contains(out, bc.Want) || strings.Count(out, "\n") != 1 {
				t.Fatalf("output %q, want one line with %q", out, bc.Want)
			}
		})
	}
}

// TestHelp: -h exits 0 with the usage on stdout (the daemon takes no
// arguments, only -config); a bad flag or an argument exits 2.
func TestHelp(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		out, err := exec.Command(bin, h).Output()
		if err != nil || !strings.HasPrefix(string(out), "usage: spoolgate-receiver [-config PATH]\n") || !strings.Contains(string(out), "\n  -config") {
			t.Fatalf("%s: %v, stdout %q", h, err, out)
		}
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=/nonexistent")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("%s: %v, want exit 2; output %q", args, err, out)
		}
	}
}

// TestEnvTypoWarning: a SPOOLGATE_* variable that sets no key is logged as
// a warning at start, and the receiver runs.
func TestEnvTypoWarning(t *testing.T) {
	path := config(t, t.TempDir())
	p := start(t, path, func(cmd *exec.Cmd) {
		cmd.Env = append(os.Environ(), "SPOOLGATE_RECEIVER_READ_TIMEOUTT=1s")
	})
	if p.addr == "" {
		t.Fatalf("receiver did not start:\n%s", p.Log)
	}
	want := "WARNING - [main.go:"
	line := "$SPOOLGATE_RECEIVER_READ_TIMEOUTT is set but is no configuration key: ignored (did you mean SPOOLGATE_RECEIVER_READ_TIMEOUT?)"
	if s := p.Log.String(); !strings.Contains(s, want) || !strings.Contains(s, line) {
		t.Fatalf("log lacks the warning %q", line)
	}
}

// takenAddr returns an address a listener holds until the test ends.
func takenAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestSecondReceiverExits2: only one receiver owns a data dir, even when
// a cleanup removed every dotfile (a lock file) from it: the lock is on the
// directory itself. The second exits 2 naming the first's pid.
func TestSecondReceiverExits2(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir)
	first := start(t, path, nil)
	if first.addr == "" {
		t.Fatal("first receiver did not start")
	}
	data := filepath.Join(dir, "data")
	ents, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			if err := os.Remove(filepath.Join(data, e.Name())); err != nil {
				t.Fatal(err)
			}
			t.Logf("removed %s", e.Name())
		}
	}
	second := start(t, path, nil)
	if code := second.ExitCode(t, 10*time.Second); code != 2 {
		t.Fatalf("second receiver: exit %d, want 2", code)
	}
	want := "data dir " + filepath.Join(dir, "data") + " is in use by another receiver"
	if s := second.Log.String(); !strings.Contains(s, want) || !strings.Contains(s, fmt.Sprintf("pid %d", first.Cmd.Process.Pid)) {
		t.Fatalf("log lacks %q and the pid", want)
	}
	first.Signal(t, syscall.SIGTERM)
	if code := first.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("first: exit %d", code)
	}
}

// TestSIGKILLUnderLoad: with fsync=always every message answered 200
// before a SIGKILL is in a request file; the restart repairs and serves.
func TestSIGKILLUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir, "receiver.fsync = always")
	p := start(t, path, nil)
	stop := make(chan struct{})
	acked := make(chan []byte, 1<<16)
	wg := load(p.addr, 16, stop, acked)
	e2e.WaitFor(t, 30*time.Second, "500 acknowledged messages", func() bool { return len(acked) >= 500 })
	p.Signal(t, syscall.SIGKILL)
	p.ExitCode(t, 10*time.Second)
	close(stop)
	wg.Wait()
	close(acked)
	lines := requestLines(t, filepath.Join(dir, "data"), false)
	n := 0
	for m := range acked {
		n++
		if lines[string(m)] != 1 {
			t.Fatalf("acknowledged message stored %d times: %q", lines[string(m)], m)
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL, %d lines stored", n, len(lines))

	p2 := start(t, path, nil)
	if p2.addr == "" {
		t.Fatal("restart failed")
	}
	after := requestLines(t, filepath.Join(dir, "data"), true)
	for l := range lines {
		if after[l] != 1 {
			t.Fatalf("line lost by repair: %q", l)
		}
	}
	if code := sendOne(t, p2.addr, msg(t, "999999999", "after restart")); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
}

// TestSIGTERMUnderLoad: a drain under load exits 0 and loses no
// acknowledged message; the request files are complete and published.
func TestSIGTERMUnderLoad(t *testing.T) {
	dir := t.TempDir()
	p := start(t, config(t, dir), nil)
	stop := make(chan struct{})
	acked := make(chan []byte, 1<<16)
	wg := load(p.addr, 16, stop, acked)
	e2e.WaitFor(t, 30*time.Second, "500 acknowledged messages", func() bool { return len(acked) >= 500 })
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	close(stop)
	wg.Wait()
	close(acked)
	lines := requestLines(t, filepath.Join(dir, "data"), true)
	n := 0
	for m := range acked {
		n++
		if lines[string(m)] != 1 {
			t.Fatalf("acknowledged message stored %d times: %q", lines[string(m)], m)
		}
	}
	t.Logf("%d acknowledged, %d stored", n, len(lines))
	if !strings.Contains(p.Log.String(), "spoolgate-receiver stopped") {
		t.Fatal("no stop line in the log")
	}
	// The drain published the open minute: the downstream sees every
	// acknowledged line now, not at the next start.
	ents, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("%s left unpublished after the drain", e.Name())
		}
	}
}

// TestReload: a changed config file (fsnotify) and SIGHUP apply the live
// keys; an invalid file is rejected and the running config stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir)
	p := start(t, path, nil)
	base := []string{
		"receiver.listen = 127.0.0.1:0",
		"receiver.admin_listen = 127.0.0.1:0",
		"receiver.data_dir = " + filepath.Join(dir, "data"),
		"log.dir =",
	}
	denied := func() bool {
		c, err := dial(p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.c.Close()
		_, err = c.send(msg(t, "000000001", "x"))
		return err != nil
	}
	if denied() {
		t.Fatal("denied before any allow")
	}

	// The file changes: allow only 10/8, debug logging, and a key that
	// needs a restart.
	writeConfig(t, path, append(base, "receiver.allow = 10.0.0.0/8", "log.level = debug", "receiver.publish = append")...)
	e2e.WaitFor(t, 10*time.Second, "reload", func() bool { return p.Log.Count("config reloaded") == 1 })
	if !denied() {
		t.Fatal("allow not applied")
	}
	// Logged right after "config reloaded": wait for it too.
	e2e.WaitFor(t, 10*time.Second, "the restart-only key reported", func() bool { return strings.Contains(p.Log.String(), "receiver.publish") })

	// An invalid file: rejected, the running config (deny) stays.
	writeConfig(t, path, append(base, "receiver.read_timeout = 5")...)
	e2e.WaitFor(t, 10*time.Second, "rejected reload", func() bool { return p.Log.Count("reload rejected") == 1 })
	if !denied() {
		t.Fatal("a rejected reload changed the config")
	}

	// A good file again, then SIGHUP without a change reloads too.
	writeConfig(t, path, append(base, "receiver.allow = 127.0.0.0/8")...)
	e2e.WaitFor(t, 10*time.Second, "reload", func() bool { return p.Log.Count("config reloaded") == 2 })
	if denied() {
		t.Fatal("allow 127/8 not applied")
	}
	p.Signal(t, syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "SIGHUP reload", func() bool { return p.Log.Count("config reloaded") == 3 })

	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestReloadHidesSecrets: a reload rejected for a key set twice or
// misspelt logs the problems, one ERROR line, without the values: the
// token and the AMQP password stay out of the log (issue 21).
func TestReloadHidesSecrets(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir)
	p := start(t, path, nil)
	writeConfig(t, path,
		"receiver.listen = 127.0.0.1:0",
		"receiver.admin_listen = 127.0.0.1:0",
		"receiver.data_dir = "+filepath.Join(dir, "data"),
		"log.dir =",
		"admin.token = s3cret-first-0123456789",
		"admin.token = s3cret-second-0123456789",
		"receiver.amqp.uri = amqp://gw:s3cret@10.0.0.5/")
	p.Signal(t, syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "rejected reload", func() bool { return p.Log.Count("reload rejected") >= 1 })
	log := p.Log.String()
	if strings.Contains(log, "s3cret") {
		t.Errorf("the log shows a secret:\n%s", log)
	}
	for _, want := range []string{"line 6: admin.token: set twice (first on line 5)", "line 7: receiver.amqp.uri: unknown key (did you mean receiver.amqp.url?)"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestAdmin: /healthz, /readyz and /metrics with the names of
// docs/PROTOCOL.md §7; a Host header that does not name the admin address
// (DNS rebinding) is refused, a name of admin.hosts is not.
func TestAdmin(t *testing.T) {
	p := start(t, config(t, t.TempDir(), "admin.hosts = gw-alias.example"), nil)
	sendOne(t, p.addr, msg(t, "000000001", "ok"))
	sendOne(t, p.addr, []byte("bad\n"))
	for host, want := range map[string]int{"rebound.attacker.example": 421, "gw-alias.example": 200, "localhost": 200} {
		req, err := http.NewRequest("GET", "http://"+p.admin+"/api/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: /api/status %d, want %d", host, resp.StatusCode, want)
		}
	}
	get := func(path string) (int, string) {
		code, body, err := e2e.HTTPGet("http://" + p.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(path); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	_, body := get("/metrics")
	for _, want := range []string{
		`spoolgate_receiver_messages_total{code="200"} 1`,
		`spoolgate_receiver_messages_total{code="400"} 1`,
		`spoolgate_receiver_rejects_total{reason="message: field count"} 1`,
		`spoolgate_receiver_duplicates_total 0`,
		`spoolgate_receiver_connections `,
		`spoolgate_receiver_store_seconds_count 1`,
		`spoolgate_receiver_sync_batch_count 1`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestIdleFlood: 1,000 connections that send nothing do not stop a real
// client from being served once idle_timeout frees their slots, and the
// receiver's memory stays bounded.
func TestIdleFlood(t *testing.T) {
	p := start(t, config(t, t.TempDir(), "receiver.idle_timeout = 1s", "receiver.max_conns = 512", "receiver.max_conns_per_ip = 0"), nil)
	rss0 := rssKB(t, p.Cmd.Process.Pid, "VmRSS")
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range 1000 {
		c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle), err)
		}
		idle = append(idle, c)
	}
	start := time.Now()
	if code := sendOne(t, p.addr, msg(t, "000000001", "behind the flood")); code != 200 {
		t.Fatalf("code %d", code)
	}
	t.Logf("served after %v behind 1000 idle connections; receiver RSS %d kB before, peak %d kB",
		time.Since(start).Round(time.Millisecond), rss0, rssKB(t, p.Cmd.Process.Pid, "VmHWM"))
	if hwm := rssKB(t, p.Cmd.Process.Pid, "VmHWM"); hwm > 200<<10 {
		t.Fatalf("peak RSS %d kB", hwm)
	}
}

func rssKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	var kb int
	fmt.Sscan(string(m[1]), &kb)
	return kb
}

// TestSocketActivation: the receiver serves a socket passed as fd 3
// (LISTEN_FDS, LISTEN_PID), notifies READY=1 and STOPPING=1, and a client
// that connects while no receiver runs is served by the next one: the
// socket, held by the parent as systemd does, refuses no connection.
func TestSocketActivation(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir, "receiver.listen = 127.0.0.1:1") // must be ignored
	addr, f := e2e.ActivationSocket(t)
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := notify.ReadFromUnix(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case s := <-states:
			if !strings.Contains(s, want) {
				t.Fatalf("notify %q, want %q", s, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no %s notification", want)
		}
	}
	activate := func(c *exec.Cmd) {
		// LISTEN_PID must be the receiver's own pid: the shell sets it to
		// $$ and then execs the receiver, which keeps that pid.
		c.Args = append([]string{"/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, c.Path}, c.Args[1:]...)
		c.Path = "/bin/sh"
		c.ExtraFiles = []*os.File{f}
		c.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifyPath)
	}
	p := start(t, path, activate)
	expect("READY=1")
	if p.addr != addr {
		t.Fatalf("listening on %s, want the passed socket %s", p.addr, addr)
	}
	if code := sendOne(t, p.addr, msg(t, "000000001", "activated")); code != 200 {
		t.Fatalf("code %d", code)
	}
	p.Signal(t, syscall.SIGTERM)
	expect("STOPPING=1")
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// No receiver runs: the kernel queues the connection on the socket.
	waiting, err := dial(addr)
	if err != nil {
		t.Fatalf("connect while stopped refused: %v", err)
	}
	defer waiting.c.Close()
	result := make(chan int, 1)
	queued := msg(t, "000000002", "queued during restart")
	go func() {
		code, err := waiting.send(queued)
		if err != nil {
			code = -1
		}
		result <- code
	}()
	start(t, path, activate)
	expect("READY=1")
	if code := <-result; code != 200 {
		t.Fatalf("queued client: %d", code)
	}
	lines := requestLines(t, filepath.Join(dir, "data"), true)
	if len(lines) != 2 {
		t.Fatalf("stored %d lines", len(lines))
	}
}

// TestSpecFromConfig: the request spec is configuration. A receiver whose
// conf.properties lists other fields accepts and stores messages of that
// spec and answers 400 to the default one.
func TestSpecFromConfig(t *testing.T) {
	dir := t.TempDir()
	path := config(t, dir,
		"protocol.request.fields = length,type,process_no,org_code,note",
		"protocol.request.field.length = length 4",
		"protocol.request.field.type = const PING",
		"protocol.request.field.process_no = digits 9",
		"protocol.request.field.org_code = class A-Z 2..5",
		"protocol.request.field.note = text 0..20",
	)
	p := start(t, path, nil)
	ping := func(body string) []byte { return fmt.Appendf(nil, "%04d|%s\n", len(body)+6, body) }
	good := ping("PING|000000001|ABC|hello")
	if code := sendOne(t, p.addr, good); code != 200 {
		t.Fatalf("message of the configured spec: %d, want 200", code)
	}
	if code := sendOne(t, p.addr, ping("PING|000000002|ABC|far too long a note for the rule")); code != 400 {
		t.Fatalf("note over 20 bytes: %d, want 400", code)
	}
	if code := sendOne(t, p.addr, msg(t, "000000003", "default spec")); code != 400 {
		t.Fatalf("message of the default spec: %d, want 400", code)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := requestLines(t, filepath.Join(dir, "data"), true)
	if len(lines) != 1 || lines[string(good)] != 1 {
		t.Fatalf("stored %v, want only %q", lines, good)
	}
}

// TestReadyAfterDiskFull: on a full data dir (a small tmpfs) messages get
// 500 and /readyz 503; once space is freed /readyz is 200 again within
// seconds with no message sent, and the next message is stored. Skips
// without root (mount).
func TestReadyAfterDiskFull(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs on the data dir (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(data, 0); err != nil {
			t.Errorf("unmount %s: %v", data, err)
		}
	})
	p := start(t, config(t, dir), nil)
	if p.addr == "" {
		t.Fatal("receiver did not start")
	}
	filler := filepath.Join(data, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()
	readyz := func() int {
		code, _, err := e2e.HTTPGet("http://" + p.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if code := sendOne(t, p.addr, msg(t, "000000001", strings.Repeat("p", 2000))); code != 500 {
		t.Fatalf("full disk: code %d, want 500", code)
	}
	if code := readyz(); code != 503 {
		t.Fatalf("full disk: /readyz %d, want 503", code)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 10*time.Second, "/readyz 200 after freeing space, no message sent", func() bool { return readyz() == 200 })
	if code := sendOne(t, p.addr, msg(t, "000000002", "space again")); code != 200 {
		t.Fatalf("after freeing space: code %d", code)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !p.Log.Contains("store probe worked") {
		t.Error("no log line for the recovery by probe")
	}
}
