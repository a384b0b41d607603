package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// hostDir returns a new directory that every user can enter (t.TempDir's
// parent is 0700), removed when the test ends.
func hostDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spoolgate-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeConf writes a config of lines into dir and returns its path.
func writeConf(t *testing.T, dir string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, "conf.properties")
	e2e.WriteFile(t, p, strings.Join(lines, "\n")+"\n")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostConf returns the lines of a config whose directories are under dir
// (created) and whose addresses are free: nothing for check to report.
func hostConf(t *testing.T, dir string) []string {
	t.Helper()
	for _, d := range []string{"data", "spool", "failed", "log", "log/journal"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"receiver.listen = 127.0.0.1:0", "receiver.admin_listen = 127.0.0.1:0", "sender.admin_listen = 127.0.0.1:0",
		"receiver.data_dir = " + filepath.Join(dir, "data"), "sender.spool_dir = " + filepath.Join(dir, "spool"),
		"sender.failed_dir = " + filepath.Join(dir, "failed"), "log.dir = " + filepath.Join(dir, "log"),
		"sender.remote = 127.0.0.1:9",
	}
}

// with returns lines with the keys of extra replaced.
func with(lines []string, extra ...string) []string {
	var out []string
	for _, l := range lines {
		k, _, _ := strings.Cut(l, " =")
		keep := true
		for _, e := range extra {
			if strings.HasPrefix(e, k+" =") {
				keep = false
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	return append(out, extra...)
}

// listen holds a listener on 127.0.0.1 until the test ends.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// defaultDialectLine is check's first line on stdout for a config that
// leaves protocol.* at the defaults.
var defaultDialectLine = "dialect: " + protocol.DefaultDialect().String()

// TestCheckDialect: check prints the dialect a config sets in one line,
// and refuses every combination that cannot work with exit 2 and the one
// line conf.Load gives (the daemons print the same at start).
func TestCheckDialect(t *testing.T) {
	good := map[string]string{
		"good_dialect_euckr_fixed": "dialect: euc-kr, fixed width (request 97 bytes, reply 31), framing length (4 ascii bytes counting the rest); " +
			"request 6 fields, result the request's; reply kind,process_no,replied_at,code; codes ok 0000, invalid 9999, unavailable 9998; echo kind=0800\n",
		"good_dialect_binary": `dialect: utf-8, delimited by "|", framing length (2 binary bytes counting the rest); request 8 fields, result the request's; ` +
			"reply type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo\n",
	}
	for name, want := range good {
		p := filepath.Join("..", "..", "conf", "testdata", name+".properties")
		code, out, errs := spoolgate(t, "", "check", "-syntax", "-config", p)
		if code != 0 || !strings.HasPrefix(out, want) || errs != "" {
			t.Errorf("%s: exit %d\nstdout:\n%sstderr:\n%swant first line\n%s", name, code, out, errs, want)
		}
	}
	bad, err := filepath.Glob(filepath.Join("..", "..", "conf", "testdata", "bad_*.properties"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range bad {
		if !strings.Contains(p, "bad_protocol_") && !strings.Contains(p, "bad_heartbeat_") {
			continue
		}
		n++
		_, lerr := conf.Load(p)
		if lerr == nil {
			t.Fatalf("%s loads", p)
		}
		code, out, errs := spoolgate(t, "", "check", "-syntax", "-config", p)
		if code != 2 || errs != lerr.Error()+"\n" || out != p+": 1 problem\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", filepath.Base(p), code, out, errs, lerr)
		}
	}
	if n < 20 {
		t.Errorf("%d bad dialect files", n)
	}
}

// rootNote is the note check adds when run as root.
const rootNote = "note: checked as root, who may write where the daemons' user may not: run it as that user too (sudo -u spoolgate spoolgate check)\n"

// TestCheckHost: beyond the syntax, check tests this host with real
// directories and listeners, one line per finding: problems on stderr and
// exit 2, warnings on stderr and notes on stdout with exit 0.
func TestCheckHost(t *testing.T) {
	self := fmt.Sprintf("%s (pid %d)", filepath.Base(os.Args[0]), os.Getpid())
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string, base []string) (lines []string, args []string, env []string)
		code  int
		err   []string // stderr lines, in order
		out   []string // stdout lines other than the root note and the last (ok / N problems)
	}{
		{"all well", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return base, nil, nil
		}, 0, nil, nil},
		{"directory missing: created by the daemon", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.sent_dir = "+filepath.Join(dir, "archive", "sent")), nil, nil
		}, 0, nil, []string{"note: sender.sent_dir DIR/archive/sent: does not exist; the daemon creates it in DIR"}},
		{"not a directory", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			e2e.WriteFile(t, filepath.Join(dir, "file"), "x")
			return with(base, "receiver.data_dir = "+filepath.Join(dir, "file"), "sender.failed_dir = "+filepath.Join(dir, "file", "failed")), nil, nil
		}, 2, []string{
			"receiver.data_dir DIR/file: not a directory",
			"sender.failed_dir DIR/file/failed: does not exist and cannot be created: DIR/file is not a directory",
		}, nil},
		{"listen address held by another program", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "receiver.admin_listen = "+listen(t)), nil, nil
		}, 2, []string{"receiver.admin_listen ADDR: in use by " + self + ": the receiver cannot listen there"}, nil},
		{"address of another host", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.admin_listen = 192.0.2.1:9012"), nil, nil
		}, 2, []string{"sender.admin_listen 192.0.2.1:9012: cannot listen there (cannot assign requested address)"}, nil},
		{"sender.remote unset", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.remote ="), nil, nil
		}, 2, []string{`conf.properties: sender.remote = "": required: host:port of the remote receiver (or -daemons receiver when no sender runs here)`}, nil},
		{"sender.remote unset, no sender here", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			// Nor are the sender's addresses and directories looked at.
			return with(base, "sender.remote =", "sender.admin_listen = "+listen(t), "sender.spool_dir = /proc/nope"), []string{"-daemons", "receiver"}, nil
		}, 0, nil, nil},
		{"only the sender here", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "receiver.admin_listen = "+listen(t), "receiver.data_dir = /proc/nope"), []string{"-daemons", "sender"}, nil
		}, 0, nil, nil},
		{"receiver.sink=amqp: no data dir; broker down is a warning", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			// The URL in the environment, as the README says (no warning about the file).
			return with(base, "receiver.sink = amqp", "receiver.data_dir = /proc/nope"), nil, []string{"SPOOLGATE_RECEIVER_AMQP_URL=amqp://gw:s3cret@127.0.0.1:1/"}
		}, 0, []string{"warning: receiver.amqp.url: no RabbitMQ node reachable: amqp://gw:xxxxx@127.0.0.1:1/: dial tcp 127.0.0.1:1: connect: connection refused: " +
			"the receiver starts, answers 500 and reconnects until a node answers"}, nil},
		{"sender.source=amqp: no spool; the broker answers, queues not declared yet", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			n := e2e.RabbitShared(t)
			return with(base, "sender.source = amqp", "sender.amqp.queue = check.results",
					"sender.amqp.failed_queue = check.failed", "sender.spool_dir = /proc/nope", "sender.failed_dir = /proc/nope/failed"), nil,
				[]string{"SPOOLGATE_SENDER_AMQP_URL=" + n.URL}
		}, 0, nil, []string{"note: queue check.results does not exist yet: the daemon declares it at start",
			"note: queue check.failed does not exist yet: the daemon declares it at start"}},
		{"-syntax: the config only, not this host", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.remote =", "receiver.data_dir = /proc/nope", "receiver.admin_listen = "+listen(t)), []string{"-syntax"}, nil
		}, 0, nil, []string{`note: the sender will not start until it is set: conf.properties: sender.remote = "": required: host:port of the remote receiver`}},
		{"env typo is a warning", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return base, nil, []string{"SPOOLGATE_SENDER_RETRISE=1"}
		}, 0, []string{"warning: $SPOOLGATE_SENDER_RETRISE is set but is no configuration key: ignored (did you mean SPOOLGATE_SENDER_RETRIES?)"}, nil},
		// Issue 21: an admin address on every address of the host without
		// admin.token is a problem (also with -syntax); with it, a note.
		{"admin on every address without a token", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.admin_listen = 0.0.0.0:0"), nil, nil
		}, 2, []string{"sender.admin_listen 0.0.0.0:0: listens on every address of this host and admin.token is not set: " +
			"any host that reaches the port reads the console and /api/status (the receiver's reject samples too); " +
			"listen on 127.0.0.1 (reach it with ssh -L) or on one address of a management network, or set admin.token and firewall the port"}, nil},
		{"admin on every address without a token, -syntax", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "receiver.admin_listen = [::]:0"), []string{"-syntax"}, nil
		}, 2, []string{"receiver.admin_listen [::]:0: listens on every address of this host and admin.token is not set: " +
			"any host that reaches the port reads the console and /api/status (the receiver's reject samples too); " +
			"listen on 127.0.0.1 (reach it with ssh -L) or on one address of a management network, or set admin.token and firewall the port"}, nil},
		{"admin on every address with a token", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.admin_listen = :0"), []string{"-daemons", "sender"}, []string{"SPOOLGATE_ADMIN_TOKEN=0123456789abcdef0123"}
		}, 0, nil, []string{"note: sender.admin_listen :0: listens on every address of this host: /metrics, /api/status and the console " +
			"are read without admin.token by any host that reaches the port; firewall it"}},
		{"admin on every address, not run here", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.admin_listen = 0.0.0.0:0"), []string{"-daemons", "receiver"}, nil
		}, 0, nil, nil},
		// Issue 21: a file that holds a secret and that every user can read
		// is a warning: the config file (a token in it), the environment
		// file (SPOOLGATE_DEFAULTS here; /etc/default/spoolgate on a host).
		{"token in a config file every user reads", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "admin.token = s3cret-0123456789abcdef"), nil, nil
		}, 0, []string{"warning: DIR/conf.properties holds admin.token and every user of this host can read it (mode 0644): " +
			"chmod 0640 DIR/conf.properties and chgrp spoolgate, or move the secret to the environment file"}, nil},
		{"secrets in an environment file every user reads", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			env := filepath.Join(dir, "spoolgate.env")
			e2e.WriteFile(t, env, "# the daemons' environment\nSPOOLGATE_ADMIN_TOKEN=s3cret-0123456789abcdef\n"+
				"SPOOLGATE_RECEIVER_AMQP_URL='amqp://gw:s3cret@127.0.0.1:1/'\n")
			if err := os.Chmod(env, 0o644); err != nil {
				t.Fatal(err)
			}
			return base, []string{"-daemons", "sender"}, []string{"SPOOLGATE_DEFAULTS=" + env}
		}, 0, []string{"warning: DIR/spoolgate.env holds SPOOLGATE_ADMIN_TOKEN, SPOOLGATE_RECEIVER_AMQP_URL (a password) and every user " +
			"of this host can read it (mode 0644): chmod 0640 DIR/spoolgate.env and chgrp spoolgate (0600 when only systemd or root's startup.sh reads it)"}, nil},
		{"secrets in an environment file kept from others", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			env := filepath.Join(dir, "spoolgate.env")
			e2e.WriteFile(t, env, "SPOOLGATE_ADMIN_TOKEN=s3cret-0123456789abcdef\n")
			if err := os.Chmod(env, 0o640); err != nil {
				t.Fatal(err)
			}
			return with(base, "admin.token = s3cret-0123456789abcdef"), []string{"-daemons", "sender"}, []string{"SPOOLGATE_DEFAULTS=" + env}
		}, 0, nil, nil},
		{"problems, warnings and notes together", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "sender.remote =", "log.dir = "+filepath.Join(dir, "newlog")), nil, []string{"SPOOLGATE_X=1"}
		}, 2, []string{
			`conf.properties: sender.remote = "": required: host:port of the remote receiver (or -daemons receiver when no sender runs here)`,
			"warning: $SPOOLGATE_X is set but is no configuration key: ignored",
		}, []string{"note: log.dir DIR/newlog: does not exist; the daemon creates it in DIR",
			"note: journal.dir DIR/newlog/journal: does not exist; the daemon creates it in DIR"}},
		{"journal off", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			return with(base, "log.dir ="), nil, nil
		}, 0, nil, []string{"note: journal off: log.dir is empty (logs go to stderr) and journal.dir is ${log.dir}/… or empty; set journal.dir to a directory to keep one (spoolgate trace finds nothing)"}},
		{"journal dir not a directory", func(t *testing.T, dir string, base []string) ([]string, []string, []string) {
			e2e.WriteFile(t, filepath.Join(dir, "file"), "x")
			return with(base, "journal.dir = "+filepath.Join(dir, "file")), nil, nil
		}, 2, []string{"journal.dir DIR/file: not a directory"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := hostDir(t)
			lines, args, env := tt.setup(t, dir, hostConf(t, dir))
			path := writeConf(t, dir, lines...)
			cmd := exec.Command(binary, append([]string{"check", "-config", path}, args...)...)
			cmd.Env = append(os.Environ(), env...)
			code, out, errs := runTool(t, cmd, "")
			checkOutput(t, code, out, errs, tt.code, tt.err, tt.out, path, dir)
		})
	}
}

// checkOutput compares check's exit code and output with the wanted lines,
// in which DIR stands for dir and ADDR for any address.
func checkOutput(t *testing.T, code int, out, errs string, wantCode int, wantErr, wantOut []string, path, dir string) {
	t.Helper()
	last := path + ": ok"
	if n := len(wantErr) - warnings(wantErr); n == 1 {
		last = path + ": 1 problem"
	} else if n > 1 {
		last = fmt.Sprintf("%s: %d problems", path, n)
	}
	out = strings.Replace(out, rootNote, "", 1)
	match := func(got string, want []string) bool {
		if len(want) == 0 {
			return got == ""
		}
		re := regexp.QuoteMeta(strings.Join(want, "\n") + "\n")
		re = strings.ReplaceAll(re, "DIR", regexp.QuoteMeta(dir))
		re = strings.ReplaceAll(re, "ADDR", `127\.0\.0\.1:\d+`)
		return regexp.MustCompile(`^` + re + `$`).MatchString(got)
	}
	wantOut = append(append([]string{defaultDialectLine}, wantOut...), last)
	if code != wantCode || !match(errs, wantErr) || !match(out, wantOut) {
		t.Fatalf("exit %d, stderr:\n%sstdout:\n%s\nwant exit %d, stderr:\n%s\nstdout:\n%s", code, errs, out,
			wantCode, strings.Join(wantErr, "\n"), strings.Join(wantOut, "\n"))
	}
}

func warnings(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "warning: ") {
			n++
		}
	}
	return n
}

// TestCheckBesideRunningReceiver: the addresses held by the running
// receiver that reads the same config are notes, not problems: check is
// run on a live host before a restart.
func TestCheckBesideRunningReceiver(t *testing.T) {
	dir := hostDir(t)
	base := hostConf(t, dir)
	lines := with(base, "receiver.listen = "+e2e.FreeAddr(t), "receiver.admin_listen = "+e2e.FreeAddr(t), "log.dir =",
		"journal.dir = "+filepath.Join(dir, "log", "journal"))
	path := writeConf(t, dir, lines...)
	rcv := e2e.Start(t, "receiver", exec.Command(receiverBin, "-config", path), nil)
	e2e.WaitFor(t, 30*time.Second, "the receiver to listen", func() bool {
		if rcv.Exited() {
			t.Fatalf("receiver exited:\n%s", rcv.Log)
		}
		return rcv.Log.Contains("listening on ") && rcv.Log.Contains("admin listening")
	})
	code, out, errs := runTool(t, exec.Command(binary, "check", "-config", path), "")
	who := fmt.Sprintf("spoolgate-receiver (pid %d)", rcv.Cmd.Process.Pid)
	checkOutput(t, code, out, errs, 0, nil, []string{
		"note: receiver.listen ADDR: in use by the running receiver, " + who + " (restart it to apply this config)",
		"note: receiver.admin_listen ADDR: in use by the running receiver, " + who + " (restart it to apply this config)",
	}, path, dir)
	rcv.Signal(t, syscall.SIGTERM)
	if c := rcv.ExitCode(t, 20*time.Second); c != 0 {
		t.Fatalf("receiver exit %d", c)
	}
}

// TestCheckAsOtherUser: directories are tested for the user who runs the
// check. Run as nobody when the test runs as root (root may write
// anywhere), else with directories this user cannot write.
func TestCheckAsOtherUser(t *testing.T) {
	dir := hostDir(t)
	base := hostConf(t, dir)
	mkdir := func(name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	open, logs := mkdir("open", 0o777), mkdir("logs", 0o777)
	mkdir("logs/journal", 0o777)
	locked := mkdir("locked", 0o555) // no directory can be made in it
	hidden := mkdir("hidden", 0o600) // cannot be entered
	if err := os.Chmod(filepath.Join(dir, "data"), 0o555); err != nil {
		t.Fatal(err)
	}
	e2e.WriteFile(t, filepath.Join(logs, "receiver.log"), "")
	if err := os.Chmod(filepath.Join(logs, "receiver.log"), 0o444); err != nil {
		t.Fatal(err)
	}
	held := listen(t)
	lines := with(base, "sender.spool_dir = "+open, "sender.failed_dir = "+filepath.Join(locked, "failed"),
		"sender.sent_dir = "+filepath.Join(hidden, "sent"), "log.dir = "+logs, "receiver.listen = "+held)
	wantErr := []string{
		"receiver.data_dir DIR/data: not readable and writable by user WHO (permission denied)",
		"sender.failed_dir DIR/locked/failed: does not exist and cannot be created by user WHO: DIR/locked is not writable (permission denied)",
		"sender.sent_dir DIR/hidden/sent: cannot be reached by user WHO (permission denied)",
		"log.dir DIR/logs: receiver.log is not writable by user WHO (permission denied)",
	}
	cmd := exec.Command(binary, "check", "-config", "CONF")
	who := currentUser()
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		who = "uid 65534"
		if u, err := user.LookupId("65534"); err == nil {
			who = u.Username
		}
		// The binary's directory is 0700 (e2e.Main).
		if err := os.Chmod(filepath.Dir(binary), 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		wantErr = append(wantErr, "receiver.listen ADDR: in use by "+fmt.Sprintf("%s (pid %d)", filepath.Base(os.Args[0]), os.Getpid())+": the receiver cannot listen there")
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil && strings.TrimSpace(string(b)) == "1024" {
		lines = with(lines, "receiver.admin_listen = 127.0.0.1:1")
		wantErr = append(wantErr, "receiver.admin_listen 127.0.0.1:1: cannot listen there (permission denied): a port below 1024 needs CAP_NET_BIND_SERVICE")
	}
	if os.Geteuid() == 0 {
		// The listener is this root process's: its owner is hidden from nobody.
		wantErr = append(wantErr, "warning: receiver.listen ADDR: in use, by a process user WHO cannot see (the running receiver?)")
	}
	for i := range wantErr {
		wantErr[i] = strings.ReplaceAll(wantErr[i], "WHO", who)
	}
	path := writeConf(t, dir, lines...)
	cmd.Args[3] = path
	code, out, errs := runTool(t, cmd, "")
	checkOutput(t, code, out, errs, 2, wantErr, nil, path, dir)
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// TestCheckEveryProblem: check lists every problem of the config, one line
// each naming its key, then the count (exit 2), and never prints a secret:
// a token or an AMQP password set twice or under a misspelt key (issue 21).
func TestCheckEveryProblem(t *testing.T) {
	dir := hostDir(t)
	path := writeConf(t, dir, append(hostConf(t, dir),
		"receiver.read_timeout = 5",
		"sender.workers = 0",
		"admin.token = s3cret-first-0123456789",
		"admin.token = s3cret-second-0123456789",
		"sender.amqp.uri = amqp://gw:s3cret@10.0.0.5/",
		"log.level = loud")...)
	code, out, errs := runTool(t, exec.Command(binary, "check", "-config", path), "")
	want := []string{
		"conf.properties: line 12: admin.token: set twice (first on line 11)",
		"conf.properties: line 13: sender.amqp.uri: unknown key (did you mean sender.amqp.url?)",
		`conf.properties: receiver.read_timeout = "5": a duration needs a unit, e.g. 5s`,
		`conf.properties: sender.workers = "0": an integer >= 1`,
		`conf.properties: log.level = "loud": one of debug, info, warn, error`,
	}
	// The config does not load: no dialect line, the problems, the count.
	if code != 2 || errs != strings.Join(want, "\n")+"\n" || out != path+": 5 problems\n" {
		t.Errorf("exit %d, stderr:\n%sstdout:\n%s\nwant exit 2, stderr:\n%s\nstdout:\n%s: 5 problems", code, errs, out, strings.Join(want, "\n"), path)
	}
	if strings.Contains(out+errs, "s3cret") {
		t.Errorf("check printed a secret:\n%s%s", out, errs)
	}
}

// TestConfigFromEnvironmentFile: without -config and SPOOLGATE_CONFIG, the
// tool reads the config the daemons run with: SPOOLGATE_CONFIG and the
// SPOOLGATE_<KEY> overrides of the environment file systemd gives them
// (SPOOLGATE_DEFAULTS names it here, as in startup.sh; on a host it is
// /etc/default/spoolgate or /etc/sysconfig/spoolgate). What the
// environment sets wins over the file.
func TestConfigFromEnvironmentFile(t *testing.T) {
	dir := hostDir(t)
	path := writeConf(t, dir, hostConf(t, dir)...)
	other := filepath.Join(dir, "other-failed")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "spoolgate.env")
	e2e.WriteFile(t, env, "# as /etc/default/spoolgate\nSPOOLGATE_CONFIG="+path+"\nSPOOLGATE_SENDER_FAILED_DIR=\""+other+"\"\n")
	cmd := exec.Command(binary, "failed")
	cmd.Env = append(os.Environ(), "SPOOLGATE_DEFAULTS="+env)
	if code, out, errs := runTool(t, cmd, ""); code != 0 || out != "no failed files in "+other+"\n" {
		t.Errorf("failed: exit %d\n%s%s\nwant the failed_dir of the environment file, %s", code, out, errs, other)
	}
	cmd = exec.Command(binary, "failed")
	cmd.Env = append(os.Environ(), "SPOOLGATE_DEFAULTS="+env, "SPOOLGATE_SENDER_FAILED_DIR="+filepath.Join(dir, "failed"))
	if code, out, errs := runTool(t, cmd, ""); code != 0 || out != "no failed files in "+filepath.Join(dir, "failed")+"\n" {
		t.Errorf("failed with the key set in the environment: exit %d\n%s%s", code, out, errs)
	}
	cmd = exec.Command(binary, "check", "-daemons", "sender")
	cmd.Env = append(os.Environ(), "SPOOLGATE_DEFAULTS="+env)
	code, out, errs := runTool(t, cmd, "")
	checkOutput(t, code, out, errs, 0, nil, nil, path, dir)
	// trace too; the file's empty log.dir turns the journal off, and trace
	// names the config it read.
	offEnv := filepath.Join(dir, "off.env")
	e2e.WriteFile(t, offEnv, "SPOOLGATE_CONFIG="+path+"\nSPOOLGATE_LOG_DIR=\n")
	cmd = exec.Command(binary, "trace", "process_no=000000001")
	cmd.Env = append(os.Environ(), "SPOOLGATE_DEFAULTS="+offEnv)
	if _, _, errs := runTool(t, cmd, ""); !strings.Contains(errs, "spoolgate trace: "+path+": journal off") {
		t.Errorf("trace: stderr %q, want it to name %s and the journal off", errs, path)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(env, 0); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(binary, "failed", "-config", path)
		cmd.Env = append(os.Environ(), "SPOOLGATE_DEFAULTS="+env)
		if _, _, errs := runTool(t, cmd, ""); !strings.Contains(errs, "warning: cannot read the environment file "+env+" (permission denied)") {
			t.Errorf("unreadable environment file: stderr %q", errs)
		}
	}
}
