package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"spoolgate/internal/e2e"
)

// binary is spoolgate, receiverBin the receiver that check finds holding
// its addresses, senderBin the sender of the instances tests; all built
// by TestMain.
var binary, receiverBin, senderBin string

func TestMain(m *testing.M) {
	e2e.Main(m, func(dir string) error {
		binary = filepath.Join(dir, "spoolgate")
		receiverBin = filepath.Join(dir, "spoolgate-receiver")
		senderBin = filepath.Join(dir, "spoolgate-sender")
		return e2e.Build("", dir+string(filepath.Separator), false, ".", "../spoolgate-receiver", "../spoolgate-sender")
	})
}

// spoolgate runs the binary and returns its exit code, stdout and stderr.
func spoolgate(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runTool(t, exec.Command(binary, args...), stdin)
}

// runTool runs cmd (the binary, with its environment and credentials set
// or not) without SPOOLGATE_CONFIG, and without this host's environment
// file unless cmd's environment names one in SPOOLGATE_DEFAULTS, and
// returns its exit code, stdout and stderr.
func runTool(t *testing.T, cmd *exec.Cmd, stdin string) (int, string, string) {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append([]string{"SPOOLGATE_DEFAULTS=/dev/null"}, cmd.Env...) // a later entry wins
	cmd.Env = append(cmd.Env, "SPOOLGATE_CONFIG=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	// The shipped files pass once sender.remote is set; their fixed ports
	// and system directories are moved so that neither another test's
	// listener nor running as a user other than root fails this test.
	tmp := t.TempDir()
	for _, f := range []string{"../../conf/conf.properties", "../../conf/local.properties"} {
		cmd := exec.Command(binary, "check", "-config", f)
		cmd.Env = append(os.Environ(), "SPOOLGATE_SENDER_REMOTE=127.0.0.1:9010", "SPOOLGATE_RECEIVER_LISTEN=127.0.0.1:0",
			"SPOOLGATE_RECEIVER_ADMIN_LISTEN=127.0.0.1:0", "SPOOLGATE_SENDER_ADMIN_LISTEN=127.0.0.1:0",
			"SPOOLGATE_RECEIVER_DATA_DIR="+filepath.Join(tmp, "data"), "SPOOLGATE_SENDER_SPOOL_DIR="+filepath.Join(tmp, "spool"),
			"SPOOLGATE_SENDER_FAILED_DIR="+filepath.Join(tmp, "failed"), "SPOOLGATE_SENDER_SENT_DIR=", "SPOOLGATE_LOG_DIR=")
		if code, out, errs := runTool(t, cmd, ""); code != 0 || errs != "" || !strings.HasSuffix(out, f+": ok\n") {
			t.Fatalf("check %s: exit %d\n%s%s", f, code, out, errs)
		}
	}
	tests := []struct{ name, body, want string }{
		{"bare duration", "receiver.read_timeout = 5\n", `receiver.read_timeout = "5": a duration needs a unit`},
		{"unknown key", "receiver.lsiten = 0.0.0.0:1\n", "receiver.lsiten"},
		{"bad cidr", "receiver.allow = 10.0.0.0/33\n", "receiver.allow"},
		{"workers 0", "sender.workers = 0\n", "sender.workers"},
		{"publish", "receiver.publish = sometimes\n", "receiver.publish"},
		{"log level", "log.level = loud\n", "log.level"},
		{"proxy on without trusted", "receiver.proxy_protocol = on\n", `receiver.proxy_trusted = "": required with receiver.proxy_protocol=on`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "conf.properties")
			if err := os.WriteFile(p, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := spoolgate(t, "", "check", "-config", p)
			if code != 2 || !strings.Contains(errs, tt.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and one line naming %q", code, out, errs, tt.want)
			}
		})
	}
	if code, _, errs := spoolgate(t, "", "check", "-config", filepath.Join(t.TempDir(), "missing")); code != 2 || errs == "" {
		t.Fatalf("missing file: exit %d %q", code, errs)
	}
	want := `spoolgate check: -daemons "receiver,proxy": want receiver, sender or receiver,sender` + "\n"
	if code, _, errs := spoolgate(t, "", "check", "-config", "../../conf/local.properties", "-daemons", "receiver,proxy"); code != 2 || errs != want {
		t.Fatalf("bad -daemons: exit %d %q", code, errs)
	}
}

// peer serves TCP on 127.0.0.1:0 and answers every line with reply(line).
func peer(t *testing.T, reply func(string) string) string {
	t.Helper()
	return e2e.StartLineRemote(t, func(m e2e.Msg) e2e.Action {
		return e2e.Action{Garbage: []byte(reply(string(m.Line)) + "\n")}
	}).Addr()
}

func TestSend(t *testing.T) {
	var mu sync.Mutex
	var got []string
	addr := peer(t, func(line string) string {
		mu.Lock()
		got = append(got, line)
		mu.Unlock()
		if strings.Contains(line, "bad") {
			return "0038|RES|000000000|20261121093001|400"
		}
		return "0038|RES|000000123|20261121093001|200"
	})
	example := "0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|"
	code, out, errs := spoolgate(t, "", "send", "-addr", addr, example, "REQ|000000124|20261121093000|ORG01|SV01|K|body|")
	if code != 0 || strings.Count(out, "|200\n") != 2 {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	mu.Lock()
	if got[0] != example || got[1] != "0053|REQ|000000124|20261121093000|ORG01|SV01|K|body|" {
		t.Fatalf("peer got %q", got)
	}
	mu.Unlock()
	// stdin, and a 400 makes the exit 1.
	code, out, _ = spoolgate(t, "x|bad\n\n"+example+"\n", "send", "-addr", addr)
	if code != 1 || !strings.Contains(out, "|400\n") || !strings.Contains(out, "|200\n") {
		t.Fatalf("stdin: exit %d out %q", code, out)
	}
	// Any peer that answers a line: its reply is printed even if it is not a spoolgate reply.
	odd := peer(t, func(string) string { return "hello" })
	if code, out, _ := spoolgate(t, "", "send", "-addr", odd, example); code != 1 || out != "hello\n" {
		t.Fatalf("odd peer: exit %d out %q", code, out)
	}
	// A closed port: a clear error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if code, _, errs := spoolgate(t, "", "send", "-addr", closed, example); code != 1 || !strings.Contains(errs, "cannot connect to "+closed) {
		t.Fatalf("closed: exit %d err %q", code, errs)
	}
	if code, _, _ := spoolgate(t, "", "send", example); code != 2 {
		t.Fatalf("no -addr: exit %d", code)
	}
}

func TestBenchAgainstPeer(t *testing.T) {
	addr := peer(t, func(string) string { return "0038|RES|000000123|20261121093001|200" })
	code, out, errs := spoolgate(t, "", "bench", "-addr", addr, "-c", "2", "-n", "50", "-keepalive")
	if code != 0 || !strings.Contains(out, "200=50") || !strings.Contains(out, "msg/s") {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	code, out, _ = spoolgate(t, "", "bench", "-addr", addr, "-c", "2", "-n", "20", "-json")
	if code != 0 || !strings.Contains(out, `"messages": 20`) {
		t.Fatalf("json: exit %d out %q", code, out)
	}
}

// TestBenchPipeline: with -pipeline N the tool writes N messages before it
// reads a reply: the peer here answers nothing until it has read a whole
// window of N lines (a client sending one at a time would wait for ever),
// then answers them all, in order. Kept alive or a connection per window.
func TestBenchPipeline(t *testing.T) {
	const window = 25
	var mu sync.Mutex
	pending := map[int][]byte{} // replies not yet written, per connection
	read := map[int]int{}       // lines read, per connection
	addr := e2e.StartLineRemote(t, func(m e2e.Msg) e2e.Action {
		mu.Lock()
		defer mu.Unlock()
		pno := strings.Split(string(m.Line), "|")[2]
		out := append(pending[m.Conn], "0038|RES|"+pno+"|20261121093001|200\n"...)
		if read[m.Conn]++; read[m.Conn]%window != 0 {
			pending[m.Conn] = out
			return e2e.Action{} // nothing yet
		}
		delete(pending, m.Conn)
		return e2e.Action{Garbage: out} // the whole window's replies, in order
	}).Addr()
	for _, keep := range []string{"-keepalive", "-keepalive=false"} {
		code, out, errs := spoolgate(t, "", "bench", "-addr", addr, "-c", "2", "-n", "200", "-pipeline", fmt.Sprint(window), keep, "-timeout", "20s")
		if code != 0 || !strings.Contains(out, "200=200") || !strings.Contains(out, "errors 0") {
			t.Fatalf("%s: exit %d out %q err %q", keep, code, out, errs)
		}
	}
}

func TestBenchProbe(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := spoolgate(t, "", "bench", "-probe", dir, "-d", "50ms")
	if code != 0 || !strings.Contains(out, "fsync: ") || !strings.Contains(out, "pauses: ") {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	code, out, _ = spoolgate(t, "", "bench", "-probe", dir, "-d", "50ms", "-json")
	if code != 0 || !strings.Contains(out, `"syncs_per_second": `) || !strings.Contains(out, `"pause_share": `) {
		t.Fatalf("json: exit %d out %q", code, out)
	}
	if code, _, errs := spoolgate(t, "", "bench", "-probe", filepath.Join(dir, "missing"), "-d", "10ms"); code != 1 || !strings.Contains(errs, "probe") {
		t.Fatalf("missing dir: exit %d err %q", code, errs)
	}
}

// TestHelp: -h of every command exits 0 and prints on stdout the
// command's synopsis, with its arguments, and its flags.
func TestHelp(t *testing.T) {
	tests := []struct{ cmd, synopsis, flag string }{
		{"check", "usage: spoolgate check [-config PATH | -all] [-daemons receiver,sender] [-syntax]", "-daemons"},
		{"init", "usage: spoolgate init NAME [-listen ADDR] [-remote HOST:PORT] [-state DIR] [-logs DIR] [-ports FIRST] [-systemd DIR]", "-remote"},
		{"send", "usage: spoolgate send -addr HOST:PORT [-config PATH] [-timeout D] [MESSAGE...]", "-addr"},
		{"status", "usage: spoolgate status [-config PATH] [-daemons LIST] [-json] [-age] | -all [-json]", "-daemons"},
		{"failed", "usage: spoolgate failed [-config PATH] [-json]", "-json"},
		{"requeue", "usage: spoolgate requeue [-config PATH] [-json] (-all | FILE...)", "-all"},
		{"bench", "usage: spoolgate bench -addr HOST:PORT [-config PATH] [-c N] [-n COUNT | -d DURATION] [-keepalive] [-pipeline N] [-json] | -null ADDR | -make-spool DIR | -probe DIR | -time-claim SPOOL/NAME", "-keepalive"},
	}
	for _, tt := range tests {
		for _, h := range []string{"-h", "-help", "--help"} {
			t.Run(tt.cmd+h, func(t *testing.T) {
				code, out, errs := spoolgate(t, "", tt.cmd, h)
				if code != 0 || !strings.HasPrefix(out, tt.synopsis+"\n") || !strings.Contains(out, "\n  "+tt.flag) || errs != "" {
					t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", code, out, errs)
				}
			})
		}
		t.Run(tt.cmd+" bad flag", func(t *testing.T) {
			code, out, errs := spoolgate(t, "", tt.cmd, "-nope")
			if code != 2 || out != "" || !strings.Contains(errs, "flag provided but not defined: -nope") || !strings.Contains(errs, tt.synopsis) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and the error with the usage on stderr", code, out, errs)
			}
		})
	}
	for _, h := range []string{"-h", "help"} {
		if code, out, _ := spoolgate(t, "", h); code != 0 || !strings.Contains(out, "commands:") {
			t.Fatalf("spoolgate %s: exit %d %q", h, code, out)
		}
	}
}

// TestRequeueUsage: requeue with no arguments, or both -all and files, says
// what it needs and exits 2 without touching anything.
func TestRequeueUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "spoolgate requeue: name the failed files to requeue (names in sender.failed_dir, or paths), or give -all for every one"},
		{"both", []string{"-all", "x.txt"}, "spoolgate requeue: give -all or the failed files, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := spoolgate(t, "", append([]string{"requeue", "-config", "../../conf/local.properties"}, tt.args...)...)
			want := tt.want + "\nusage: spoolgate requeue [-config PATH] [-json] (-all | FILE...)\n"
			if code != 2 || out != "" || errs != want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := spoolgate(t, ""); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if code, _, errs := spoolgate(t, "", "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown: exit %d %q", code, errs)
	}
}
