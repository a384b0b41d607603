package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// spoolgate status asks the running sender (circuit open, remote down, the
// last error) and falls back to the directories once it is stopped;
// spoolgate failed shows a rejected file's reason; status -age buckets the
// files; the failed-files gauge counts them.
func TestStatusLiveAndFailed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, func(f *fakeRemote) { f.answer = func([]byte) int { return protocol.CodeInvalid } })
	e := newEnv(t, f.addr(), nil)
	p := e.startSender(t)
	// tool runs spoolgate; status is told that only a sender runs here.
	tool := func(args ...string) string {
		t.Helper()
		if args[0] == "status" {
			args = append(args, "-daemons", "sender")
		}
		out, err := exec.Command(toolBin, append(args, "-config", e.conf)...).CombinedOutput()
		if err != nil && !(args[0] == "status" && p.Exited() && exitCode(t, err) == 1) {
			t.Fatalf("spoolgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	e2e.WriteFile(t, filepath.Join(e.spool, "bad one.txt"), body(1)+"\n")
	e2e.WaitFor(t, 20*time.Second, "the file rejected", func() bool { return count(t, e.failed) == 2 })
	out := tool("failed")
	if !strings.Contains(out, `code=400  attempts=1  "bad one.txt"  rejected by the remote (400)`) {
		t.Errorf("spoolgate failed:\n%s", out)
	}
	var list []struct {
		Name, Reason, Remote string
		Code, Attempts       int
	}
	if err := json.Unmarshal([]byte(tool("failed", "-json")), &list); err != nil || len(list) != 1 ||
		list[0].Name != "bad one.txt" || list[0].Code != 400 || list[0].Remote != f.addr() || !strings.Contains(list[0].Reason, "rejected") {
		t.Errorf("spoolgate failed -json: %+v %v", list, err)
	}
	_, metrics, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
	if !strings.Contains(metrics, "\nspoolgate_sender_failed_files 1\n") {
		t.Errorf("metrics lack spoolgate_sender_failed_files 1")
	}

	f.stop(t) // the remote goes down: the next file opens the circuit
	e2e.WriteFile(t, filepath.Join(e.spool, "waiting.txt"), body(2)+"\n")
	old := time.Now().Add(-30 * time.Minute)
	if err := os.Chtimes(filepath.Join(e.spool, "waiting.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	e2e.WaitFor(t, 20*time.Second, "the circuit to open", func() bool { return e.ready() == 503 })
	out = tool("status")
	for _, want := range []string{"sender:         running (admin " + e.admin + "); NOT READY: circuit open", "circuit:        OPEN since ",
		"next probe:     ", "remote:         " + f.addr() + "  down  (last error", "last error:     ", "failed:         1  ("} {
		if !strings.Contains(out, want) {
			t.Errorf("spoolgate status lacks %q:\n%s", want, out)
		}
	}
	var st struct {
		Source   string
		Circuit  struct{ Open bool }
		Pending  int
		InFlight int `json:"in_flight"`
	}
	if err := json.Unmarshal([]byte(tool("status", "-json")), &st); err != nil || st.Source != "sender" || !st.Circuit.Open || st.Pending+st.InFlight != 1 {
		t.Errorf("spoolgate status -json: %+v %v", st, err)
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("sender exit %d", code)
	}
	out = tool("status", "-age")
	for _, want := range []string{"sender:         not running (no answer at " + e.admin, "read from the directories", "pending:        1",
		"minutes       T      5     10     20     40     80    160    320    640   1280  1280+",
		"pending       1      0      0      0      1      0      0      0      0      0      0",
		"failed        1      1      0"} {
		if !strings.Contains(out, want) {
			t.Errorf("spoolgate status -age lacks %q:\n%s", want, out)
		}
	}
}
