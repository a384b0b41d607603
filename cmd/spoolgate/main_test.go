package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"spoolgate/internal/e2e"
)

var binary string

func TestMain(m *testing.M) {
	e2e.Main(m, func(dir string) error {
		binary = filepath.Join(dir, "spoolgate")
		return e2e.Build("", binary, false, ".")
	})
}

// spoolgate runs the binary and returns its exit code, stdout and stderr.
func spoolgate(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
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
	for _, f := range []string{"../../conf/conf.properties", "../../conf/local.properties"} {
		if code, out, errs := spoolgate(t, "", "check", "-config", f); code != 0 {
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
}

// peer serves TCP on 127.0.0.1:0 and answers every line with reply(line).
func peer(t *testing.T, reply func(string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte(reply(sc.Text()) + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
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

func TestUsage(t *testing.T) {
	if code, _, _ := spoolgate(t, ""); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if code, _, errs := spoolgate(t, "", "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown: exit %d %q", code, errs)
	}
}
