package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// TestStuckClaimOnFullSpool: with the spool's file system full (a small
// tmpfs), a rejected line of a three-line file cannot be saved to
// failed_dir. The claim is stuck: /readyz fails saying so, /api/status
// and spoolgate status list it, spoolgate_sender_claims_stuck is 1, and
// the line after it waits (unless it went out on another lane already). Once space is freed, the sender (still
// running) saves the line, sends the rest and is ready again. Issue 21:
// the claim stayed in .inflight until the next start, unsent, while the
// sender said ready, pending 0, in flight 0, failed 0. Skips without root
// (mount).
func TestStuckClaimOnFullSpool(t *testing.T) {
	f := serveFake(t, listen(t), func(f *fakeRemote) {
		f.answer = func(line []byte) int {
			if processNo(string(line)) == "000000002" {
				return protocol.CodeInvalid
			}
			return protocol.CodeOK
		}
	})
	e := newEnv(t, f.addr(), map[string]string{"sender.retry_backoff_max": "100ms", "sender.settle": "50ms"})
	e2e.MountTmpfs(t, e.spool, "size=128k")
	if err := os.Mkdir(filepath.Join(e.spool, ".inflight"), 0o755); err != nil {
		t.Fatal(err)
	}
	e2e.WriteFile(t, filepath.Join(e.spool, "a.txt"), body(1)+"\n"+body(2)+"\n"+body(3)+"\n")
	free := e2e.FillFS(t, e.spool)

	p := e.startSender(t)
	var body string
	e2e.WaitFor(t, 20*time.Second, "/readyz to say the claim is stuck", func() bool {
		var code int
		code, body, _ = e2e.HTTPGet("http://" + e.admin + "/readyz")
		return code == 503 && strings.Contains(body, "stuck")
	})
	if !strings.Contains(body, "1 claim(s) stuck: save rejected line of a.txt") || !strings.Contains(body, "no space left on device") {
		t.Errorf("/readyz: %s", body)
	}
	// Line 3 may have gone out on another lane (sender.line_order
	// parallel) before line 2 was answered: it is not sent again.
	if got := sortedProcessNos(f.messages(t)); !slices.Equal(got, []string{"000000001"}) && !slices.Equal(got, []string{"000000001", "000000003"}) {
		t.Fatalf("delivered %q, want line 1 (and maybe line 3) only", got)
	}
	_, js, err := e2e.HTTPGet("http://" + e.admin + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Ready    bool
		InFlight int `json:"in_flight"`
		Stuck    []struct {
			Name, What, Error string
			Tries             int
		}
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Ready || st.InFlight != 1 || len(st.Stuck) != 1 ||
		st.Stuck[0].Name != "a.txt" || st.Stuck[0].What != "save rejected line" || !strings.Contains(st.Stuck[0].Error, "no space left") {
		t.Errorf("/api/status: %+v %v\n%s", st, err, js)
	}
	_, metrics, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
	if !strings.Contains(metrics, "\nspoolgate_sender_claims_stuck 1\n") {
		t.Errorf("metrics lack spoolgate_sender_claims_stuck 1")
	}
	out, err := exec.Command(toolBin, "status", "-daemons", "sender", "-config", e.conf).CombinedOutput()
	if err != nil {
		t.Errorf("spoolgate status: %v", err)
	}
	for _, want := range []string{"NOT READY: 1 claim(s) stuck", "in flight:      1", "stuck:          1 claim(s)", `"a.txt"  since `, "save rejected line: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("spoolgate status lacks %q:\n%s", want, out)
		}
	}

	free()
	e2e.WaitFor(t, 20*time.Second, "the rest of the file sent, ready again", func() bool {
		return len(f.messages(t)) == 2 && e.ready() == 200
	})
	if got := sortedProcessNos(f.messages(t)); !slices.Equal(got, []string{"000000001", "000000003"}) {
		t.Fatalf("delivered %q", got)
	}
	e2e.WaitFor(t, 10*time.Second, "the claim disposed of", func() bool { return count(t, filepath.Join(e.spool, ".inflight")) == 0 })
	for _, name := range []string{"a.txt.line-2", "a.txt.line-2.reason"} {
		if _, err := os.Stat(filepath.Join(e.failed, name)); err != nil {
			t.Errorf("failed_dir: %v", err)
		}
	}
	if n := count(t, e.failed); n != 2 {
		t.Errorf("failed_dir holds %d files, want 2", n)
	}
	_, metrics, _ = e2e.HTTPGet("http://" + e.admin + "/metrics")
	if !strings.Contains(metrics, "\nspoolgate_sender_claims_stuck 0\n") {
		t.Errorf("metrics lack spoolgate_sender_claims_stuck 0")
	}
	for _, want := range []string{"save rejected line failed: the claim is stuck", "save rejected line worked: the claim is no longer stuck"} {
		if n := p.Log.Count(want); n != 1 {
			t.Errorf("log has %q %d times", want, n)
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("sender exit %d", code)
	}
}

// sortedProcessNos returns the process_nos of msgs, sorted.
func sortedProcessNos(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, processNo(m))
	}
	slices.Sort(out)
	return out
}
