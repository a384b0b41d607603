package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// exitCode returns the exit code err (from exec) stands for.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestStatusExitCodes: spoolgate status exits 1 and names each daemon the
// config expects on this host (the receiver, and the sender when
// sender.remote is set; or -daemons) that does not answer, and 0 once
// they do, with the receiver's line and -json's daemons and down. Issue
// 21: it exited 0 with the sender not running.
func TestStatusExitCodes(t *testing.T) {
	f := serveFake(t, listen(t), nil)
	e := newEnv(t, f.addr(), nil)
	radmin := e2e.FreeAddr(t)
	e.props["receiver.listen"] = e2e.FreeAddr(t)
	e.props["receiver.admin_listen"] = radmin
	e.props["receiver.data_dir"] = filepath.Join(e.dir, "request")
	e.write(t)
	status := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(toolBin, append([]string{"status", "-config", e.conf}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		return exitCode(t, cmd.Run()), out.String(), errb.String()
	}
	check := func(name string, wantCode int, args []string, want, wantErr []string, unwantErr ...string) {
		t.Helper()
		code, out, errOut := status(args...)
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, code, wantCode, out, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", name, w, out)
			}
		}
		for _, w := range wantErr {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", name, w, errOut)
			}
		}
		for _, w := range unwantErr {
			if strings.Contains(errOut, w) {
				t.Errorf("%s: stderr holds %q:\n%s", name, w, errOut)
			}
		}
	}
	down := func(args ...string) []string {
		t.Helper()
		_, out, _ := status(append(args, "-json")...)
		var st struct {
			Down    []string
			Daemons []struct {
				Name              string
				Expected, Running bool
			}
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Daemons) == 0 {
			t.Fatalf("status -json: %v\n%s", err, out)
		}
		return st.Down
	}

	check("nothing runs", 1, nil,
		[]string{"receiver:       not running (no answer at " + radmin, "sender:         not running (no answer at " + e.admin + ": connect: connection refused); read from the directories"},
		[]string{"spoolgate status: spoolgate-receiver is not running: no answer at " + radmin, "spoolgate status: spoolgate-sender is not running: no answer at " + e.admin})
	if got := down(); strings.Join(got, ",") != "receiver,sender" {
		t.Errorf("-json down %v", got)
	}

	snd := e.startSender(t)
	check("the sender runs", 1, nil,
		[]string{"receiver:       not running (", "sender:         running (admin " + e.admin + "); ready"},
		[]string{"spoolgate-receiver is not running"}, "spoolgate-sender")
	check("the sender runs, only it expected", 0, []string{"-daemons", "sender"},
		[]string{"sender:         running (admin " + e.admin + "); ready"}, nil, "not running")

	rcv := start(t, receiverBin, "-config", e.conf)
	e2e.WaitFor(t, 20*time.Second, "receiver ready", func() bool {
		code, _, _ := e2e.HTTPGet("http://" + radmin + "/readyz")
		return code == 200
	})
	check("both run", 0, nil,
		[]string{"receiver:       running (admin " + radmin + "); ready", "sender:         running (admin " + e.admin + "); ready"}, nil, "not running")
	if got := down(); len(got) != 0 {
		t.Errorf("-json down %v", got)
	}

	snd.Signal(t, syscall.SIGTERM)
	if code := snd.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("sender exit %d", code)
	}
	check("the sender stopped", 1, nil,
		[]string{"receiver:       running (admin " + radmin + "); ready", "sender:         not running (no answer at "},
		[]string{"spoolgate status: spoolgate-sender is not running: no answer at " + e.admin}, "spoolgate-receiver")
	if got := down(); strings.Join(got, ",") != "sender" {
		t.Errorf("-json down %v", got)
	}
	check("no sender here", 0, []string{"-daemons", "receiver"},
		[]string{"not expected on this host"}, nil, "not running")
	e.props["sender.remote"] = ""
	e.write(t)
	check("no sender.remote", 0, nil, []string{"not expected on this host"}, nil, "not running")

	rcv.Signal(t, syscall.SIGTERM)
	if code := rcv.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("receiver exit %d", code)
	}
	check("nothing runs, a receiver expected", 1, nil, nil, []string{"spoolgate-receiver is not running"}, "spoolgate-sender")
}
