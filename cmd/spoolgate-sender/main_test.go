package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// The binaries under test, built once by TestMain.
var senderBin, toolBin, receiverBin string

func TestMain(m *testing.M) {
	e2e.Main(m, func(dir string) error {
		build := func(pkg, name string) (string, error) {
			out := filepath.Join(dir, name)
			return out, e2e.Build("", out, false, pkg)
		}
		var err error
		if senderBin, err = build(".", "spoolgate-sender"); err != nil {
			return err
		}
		if toolBin, err = build("../spoolgate", "spoolgate"); err != nil {
			return err
		}
		receiverBin, err = build("../spoolgate-receiver", "spoolgate-receiver")
		return err
	})
}

// start runs bin with args and no SPOOLGATE_CONFIG, its log copied to the
// test's output.
func start(t *testing.T, bin string, args ...string) *e2e.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
	return e2e.Start(t, filepath.Base(bin), cmd, t.Output())
}

// env is a sender under test with its directories and config file.
type env struct {
	dir, spool, failed, conf, admin string
	props                           map[string]string
}

func newEnv(t *testing.T, remote string, props map[string]string) *env {
	dir := t.TempDir()
	e := &env{dir: dir, spool: filepath.Join(dir, "spool"), failed: filepath.Join(dir, "failed"),
		conf: filepath.Join(dir, "sender.properties"), admin: e2e.FreeAddr(t)}
	e.props = map[string]string{
		"sender.remote":            remote,
		"sender.spool_dir":         e.spool,
		"sender.failed_dir":        e.failed,
		"sender.admin_listen":      e.admin,
		"sender.workers":           "4",
		"sender.timeout":           "10s", // a loaded machine's fsync can stall for seconds
		"sender.retries":           "2",
		"sender.connect_timeout":   "1s",
		"sender.retry_backoff":     "50ms",
		"sender.retry_backoff_max": "200ms",
		"sender.settle":            "100ms",
		"sender.scan_interval":     "1s",
		"shutdown_timeout":         "5s",
		"log.dir":                  "",
		"log.level":                "info",
	}
	for k, v := range props {
		e.props[k] = v
	}
	e.write(t)
	if err := os.MkdirAll(e.spool, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// write (re)writes the config file atomically.
func (e *env) write(t *testing.T) {
	t.Helper()
	writeProps(t, e.conf, e.props)
}

func writeProps(t *testing.T, path string, props map[string]string) {
	t.Helper()
	var b strings.Builder
	for k, v := range props {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	e2e.WriteFile(t, path, b.String())
}

// startSender starts spoolgate-sender and waits until it is started.
func (e *env) startSender(t *testing.T) *e2e.Proc {
	t.Helper()
	p := start(t, senderBin, "-config", e.conf)
	e2e.WaitFor(t, 20*time.Second, "sender started", func() bool {
		if p.Exited() {
			t.Fatalf("sender exited: %v", p.Err())
		}
		code, body, _ := e2e.HTTPGet("http://" + e.admin + "/readyz")
		return code == 200 || (code == 503 && !strings.Contains(body, "starting"))
	})
	return p
}

// TestBadConfigExits2: the sender, and spoolgate check, refuse what
// start-up refuses with exit 2 and one line naming the path or the key:
// a missing file, a FIFO, /dev/zero, a file over 1 MiB, a TLS key of
// another certificate, receiver.listen equal to receiver.admin_listen (one
// file serves both daemons).
func TestBadConfigExits2(t *testing.T) {
	dir := t.TempDir()
	base := []string{"sender.remote = 127.0.0.1:1", "sender.spool_dir = " + filepath.Join(dir, "spool"),
		"sender.failed_dir = " + filepath.Join(dir, "failed"), "sender.admin_listen = 127.0.0.1:0", "log.dir ="}
	for _, bc := range e2e.BadConfigs(t, base...) {
		t.Run(bc.Name, func(t *testing.T) {
			for _, args := range [][]string{{senderBin, "-config", bc.Path}, {toolBin, "check", "-config", bc.Path}} {
				p := e2e.Start(t, filepath.Base(args[0]), exec.Command(args[0], args[1:]...), nil)
				if code := p.ExitCode(t, 20*time.Second); code != 2 {
					t.Fatalf("%s: exit %d, want 2; output:\n%s", args[:2], code, p.Log)
				}
				out := p.Log.String()
				if args[0] == toolBin { // check counts the problems on a line of its own
					out = strings.Replace(out, bc.Path+": 1 problem\n", "", 1)
				}
				if !strings.Contains(out, bc.Want) || strings.Count(out, "\n") != 1 {
					t.Fatalf("%s: output %q, want one line with %q", args[:2], out, bc.Want)
				}
			}
		})
	}
}

// TestHelp: -h exits 0 with the usage on stdout (the daemon takes no
// arguments, only -config); a bad flag or an argument exits 2.
func TestHelp(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		out, err := exec.Command(senderBin, h).Output()
		if err != nil || !strings.HasPrefix(string(out), "usage: spoolgate-sender [-config PATH]\n") || !strings.Contains(string(out), "\n  -config") {
			t.Fatalf("%s: %v, stdout %q", h, err, out)
		}
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}} {
		cmd := exec.Command(senderBin, args...)
		cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=/nonexistent")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("%s: %v, want exit 2; output %q", args, err, out)
		}
	}
}

// TestEnvTypoWarning: a SPOOLGATE_* variable that sets no key is logged as
// a warning when the sender starts, and it runs.
func TestEnvTypoWarning(t *testing.T) {
	e := newEnv(t, "127.0.0.1:1", nil)
	cmd := exec.Command(senderBin, "-config", e.conf)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=", "SPOOLGATE_SENDER_WORKER=2")
	p := e2e.Start(t, "sender", cmd, t.Output())
	line := "WARNING - [main.go:"
	warn := "$SPOOLGATE_SENDER_WORKER is set but is no configuration key: ignored (did you mean SPOOLGATE_SENDER_WORKERS?)"
	e2e.WaitFor(t, 20*time.Second, "the warning", func() bool {
		if p.Exited() {
			t.Fatalf("sender exited: %v", p.Err())
		}
		return p.Log.Contains(line) && p.Log.Contains(warn)
	})
	e2e.WaitFor(t, 20*time.Second, "the sender to serve /healthz", func() bool {
		code, _, _ := e2e.HTTPGet("http://" + e.admin + "/healthz")
		return code == 200
	})
}

// ready returns the /readyz status code.
func (e *env) ready() int {
	code, _, _ := e2e.HTTPGet("http://" + e.admin + "/readyz")
	return code
}

// count returns the number of non-dot regular files in dir.
func count(t *testing.T, dir string) int {
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, de := range des {
		if de.Name()[0] != '.' && de.Type().IsRegular() {
			n++
		}
	}
	return n
}

// body is a valid spool line with process_no n.
func body(n int) string {
	return fmt.Sprintf("REQ|%09d|20261121093000|ORG01|SV01|KEY-%d|payload %d|", n, n, n)
}

// makeSpool drops n single-line files, process_no 0..n-1, with mtimes a
// millisecond apart in process_no order and names in the reverse order.
func makeSpool(t *testing.T, dir string, n int) {
	t.Helper()
	base := time.Now().Add(-time.Hour)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("result_%06d.txt", n-i)
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body(i)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Millisecond)
		if err := os.Chtimes(tmp, mt, mt); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// sink is the remote: the real receiver.
type sink interface {
	addr() string
	messages(t *testing.T) []string // stored messages, in arrival order
	stop(t *testing.T)
}

// receiverSink runs spoolgate-receiver (publish=append, dedup off, so that
// duplicates show).
type receiverSink struct {
	p     *e2e.Proc
	laddr string
	data  string
}

func startSink(t *testing.T, addr string) sink {
	t.Helper()
	if addr == "" {
		addr = e2e.FreeAddr(t)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "receiver.properties")
	writeProps(t, conf, map[string]string{
		"receiver.listen":       addr,
		"receiver.admin_listen": "",
		"receiver.data_dir":     filepath.Join(dir, "request"),
		"receiver.publish":      "append",
		"receiver.fsync":        "always",
		"receiver.dedup_window": "0s",
		"log.dir":               "",
	})
	r := &receiverSink{p: start(t, receiverBin, "-config", conf), laddr: addr, data: filepath.Join(dir, "request")}
	e2e.WaitFor(t, 20*time.Second, "receiver listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

func (r *receiverSink) addr() string { return r.laddr }

func (r *receiverSink) messages(t *testing.T) []string {
	des, err := os.ReadDir(r.data)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), "_request.txt") || strings.HasSuffix(de.Name(), "_request.txt.part") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(r.data, n))
		if err != nil {
			continue // published meanwhile
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.HasSuffix(l, "\n") {
				out = append(out, strings.TrimSuffix(l, "\n"))
			}
		}
	}
	return out
}

func (r *receiverSink) stop(t *testing.T) {
	r.p.Signal(t, syscall.SIGTERM)
	if code := r.p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("receiver exit code %d", code)
	}
}

// fakeRemote is the shared fake receiver (e2e.Remote): it answers each
// message with answer(line) (0: never), after delay, and records the
// messages it answers 200.
type fakeRemote struct {
	*e2e.Remote
	answer func(line []byte) int
	delay  time.Duration
}

func serveFake(t *testing.T, ln net.Listener, setup func(*fakeRemote)) *fakeRemote {
	f := &fakeRemote{answer: func([]byte) int { return protocol.CodeOK }}
	if setup != nil {
		setup(f)
	}
	f.Remote = e2e.ServeRemote(t, ln, func(m e2e.Msg) e2e.Action {
		return e2e.Action{Code: f.answer(m.Line), Delay: f.delay}
	})
	return f
}

func (f *fakeRemote) addr() string { return f.Addr() }

func (f *fakeRemote) messages(*testing.T) []string { return f.Delivered() }

// maxBusy returns the most messages in progress at once since the last
// call, and restarts the count from now.
func (f *fakeRemote) maxBusy() int {
	_, busy := f.Max()
	f.ResetMax()
	return busy
}

func (f *fakeRemote) stop(*testing.T) { f.Stop() }

// processNo returns the process_no of a stored message.
func processNo(line string) string {
	return string(protocol.DefaultDialect().ProcessNo([]byte(line)))
}
