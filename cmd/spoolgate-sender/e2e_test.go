package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// TestOldestFirstExactlyOnce drains 2,000 files with staggered mtimes into
// the receiver: each delivered once, none failed, and oldest first. With
// K workers a file is claimed only after every older one was claimed and
// all but K-1 of them acknowledged (stored), so the file with rank r is
// stored at a position of at least r-(K-1).
func TestOldestFirstExactlyOnce(t *testing.T) {
	const n, workers = 2000, 4
	r := startSink(t, "")
	e := newEnv(t, r.addr(), map[string]string{"sender.workers": fmt.Sprint(workers)})
	makeSpool(t, e.spool, n)
	p := e.startSender(t)
	e2e.WaitFor(t, 60*time.Second, "spool drained", func() bool {
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	got := r.messages(t)
	if len(got) != n {
		t.Fatalf("%d messages stored, want %d", len(got), n)
	}
	seen := make(map[string]bool, n)
	for i, m := range got {
		pno := processNo(m)
		if seen[pno] {
			t.Fatalf("process_no %s stored twice", pno)
		}
		seen[pno] = true
		var rank int
		fmt.Sscan(pno, &rank)
		if i < rank-(workers-1) {
			t.Fatalf("process_no %s (rank %d) stored at position %d: not oldest first", pno, rank, i)
		}
	}
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed", f)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// TestKillAndRestart SIGKILLs the sender halfway through 5,000 files and
// restarts it: every message is stored at least once, at most workers
// twice, and nothing fails.
func TestKillAndRestart(t *testing.T) {
	const n, workers = 5000, 8
	r := startSink(t, "")
	e := newEnv(t, r.addr(), map[string]string{"sender.workers": fmt.Sprint(workers)})
	makeSpool(t, e.spool, n)
	p := e.startSender(t)
	e2e.WaitFor(t, 60*time.Second, "half delivered", func() bool { return len(r.messages(t)) >= n/2 })
	p.Signal(t, syscall.SIGKILL)
	p.ExitCode(t, 10*time.Second)
	inflight := count(t, filepath.Join(e.spool, ".inflight"))
	t.Logf("killed with %d stored, %d claims in .inflight", len(r.messages(t)), inflight)
	if inflight > workers {
		t.Fatalf("%d claims in .inflight, workers=%d", inflight, workers)
	}
	e.startSender(t)
	e2e.WaitFor(t, 60*time.Second, "spool drained", func() bool {
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	dups := e2e.StoredOnce(t, r.messages(t), n)
	t.Logf("%d duplicates", dups)
	if dups > workers {
		t.Fatalf("%d duplicates, want at most workers=%d", dups, workers)
	}
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed", f)
	}
}

// TestRemoteDownThenUp: with the remote down for longer than
// timeout × (retries+1) nothing fails; once it is up everything is
// delivered, and /readyz follows the circuit.
func TestRemoteDownThenUp(t *testing.T) {
	addr := e2e.FreeAddr(t)
	e := newEnv(t, addr, map[string]string{
		"sender.timeout": "200ms", "sender.retries": "1",
		"sender.retry_backoff": "50ms", "sender.retry_backoff_max": "100ms",
	})
	p := e.startSender(t)
	makeSpool(t, e.spool, 20)
	e2e.WaitFor(t, 10*time.Second, "circuit open", func() bool { return e.ready() == 503 })
	_, body, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
	if !strings.Contains(body, "spoolgate_sender_circuit_open 1") {
		t.Fatalf("metrics while down:\n%s", grep(body, "spoolgate_sender_"))
	}
	down := time.Now()
	e2e.WaitFor(t, 10*time.Second, "down for 5 × timeout × (retries+1)", func() bool { return time.Since(down) > 2*time.Second })
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed while the remote was down", f)
	}
	r := startSink(t, addr)
	e2e.WaitFor(t, 30*time.Second, "all delivered", func() bool {
		return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
	})
	// At least once: a reply slower than the 200 ms timeout on a loaded
	// machine makes a retry, and this sink keeps duplicates. Every file
	// must be there; extra copies are only logged.
	msgs := r.messages(t)
	uniq := map[string]bool{}
	for _, m := range msgs {
		uniq[processNo(m)] = true
	}
	if len(uniq) != 20 {
		t.Fatalf("%d distinct messages stored (%d in all), want 20", len(uniq), len(msgs))
	}
	t.Logf("%d stored for 20 files (duplicates from retries after a timeout)", len(msgs))
	e2e.WaitFor(t, 5*time.Second, "ready", func() bool { return e.ready() == 200 })
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed", f)
	}
	if !p.Log.Contains("circuit open") || !p.Log.Contains("circuit closed") {
		t.Fatal("circuit changes not logged")
	}
}

// TestRemoteBackWithinProbeMax (issue 24): the circuit probes on a
// schedule of its own (at most 4 s apart), so a remote that comes back is
// noticed, and delivery resumes, within 5 s whatever the retry backoff.
// With sender.retry_backoff and retry_backoff_max at 10 s (probes at the
// backoff came 5-10 s apart; the issue saw 28.5 s at the default 60 s) and
// the remote down for longer than that, the files waiting are delivered
// within 5 s of the receiver's start; meanwhile /readyz and spoolgate
// status say when the next probe is due.
func TestRemoteBackWithinProbeMax(t *testing.T) {
	addr := e2e.FreeAddr(t)
	e := newEnv(t, addr, map[string]string{"sender.retry_backoff": "10s", "sender.retry_backoff_max": "10s"})
	e.startSender(t)
	makeSpool(t, e.spool, 3)
	e2e.WaitFor(t, 20*time.Second, "circuit open", func() bool { return e.ready() == 503 })
	down := time.Now()
	_, why, _ := e2e.HTTPGet("http://" + e.admin + "/readyz")
	if !strings.Contains(why, "next probe in ") {
		t.Errorf("/readyz while the circuit is open: %q, want when it probes next", why)
	}
	out, err := exec.Command(toolBin, "status", "-config", e.conf, "-daemons", "sender", "-json").Output()
	var st struct {
		Circuit struct {
			NextProbe time.Time `json:"next_probe"`
		}
	}
	if err != nil || json.Unmarshal(out, &st) != nil || st.Circuit.NextProbe.IsZero() || time.Until(st.Circuit.NextProbe) > 4*time.Second {
		t.Errorf("spoolgate status -json: next_probe %v (%v), want within 4 s:\n%s", st.Circuit.NextProbe, err, out)
	}
	e2e.WaitFor(t, 30*time.Second, "down for longer than retry_backoff_max", func() bool { return time.Since(down) > 11*time.Second })
	r := startSink(t, addr)
	up := time.Now()
	e2e.WaitFor(t, 30*time.Second, "the files delivered", func() bool { return len(r.messages(t)) >= 3 })
	took := time.Since(up)
	t.Logf("remote down %s; the files delivered %s after it listened", up.Sub(down).Round(time.Millisecond), took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("delivery resumed %s after the remote came back, want within 5 s", took)
	}
	if f := count(t, e.failed); f != 0 {
		t.Fatalf("%d files failed", f)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDrainOnSIGTERM: a remote that never answers; SIGTERM puts every
// claim back into the spool within shutdown_timeout and exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, func(f *fakeRemote) { f.answer = func([]byte) int { return 0 } })
	e := newEnv(t, f.addr(), map[string]string{"sender.timeout": "30s", "shutdown_timeout": "1s"})
	makeSpool(t, e.spool, 10)
	p := e.startSender(t)
	e2e.WaitFor(t, 10*time.Second, "4 in flight", func() bool { return count(t, filepath.Join(e.spool, ".inflight")) == 4 })
	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("drain took %s with shutdown_timeout=1s", d)
	}
	if n := count(t, e.spool); n != 10 {
		t.Fatalf("%d files back in the spool, want 10", n)
	}
	if des, _ := os.ReadDir(filepath.Join(e.spool, ".inflight")); len(des) != 0 {
		t.Fatalf(".inflight not empty: %v", des)
	}
	if !p.Log.Contains("put_back=4") {
		t.Fatal("drain summary missing")
	}
}

// TestReload: lowering workers in the config file takes effect without a
// restart (seen as messages in progress at the remote); a bad file is
// rejected and the running config stays.
func TestReload(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, func(f *fakeRemote) { f.delay = 20 * time.Millisecond })
	e := newEnv(t, f.addr(), map[string]string{"sender.workers": "4"})
	makeSpool(t, e.spool, 600)
	p := e.startSender(t)
	e2e.WaitFor(t, 10*time.Second, "4 at once", func() bool { return f.maxBusy() == 4 })

	e.props["sender.workers"] = "1"
	e.write(t) // the file watch reloads; SIGHUP is tested below
	e2e.WaitFor(t, 10*time.Second, "reload logged", func() bool { return p.Log.Contains("config reloaded") })
	e2e.WaitFor(t, 10*time.Second, "1 at once", func() bool { return f.maxBusy() == 1 && f.maxBusy() == 1 })
	n := len(f.messages(t))
	e2e.WaitFor(t, 10*time.Second, "20 more delivered", func() bool { return len(f.messages(t)) >= n+20 })
	if m := f.maxBusy(); m != 1 {
		t.Fatalf("%d messages at once after workers=1", m)
	}

	writeProps(t, e.conf, map[string]string{"sender.workers": "zero"})
	p.Signal(t, syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "bad reload rejected", func() bool { return p.Log.Contains("reload rejected") })
	if code, _, _ := e2e.HTTPGet("http://" + e.admin + "/healthz"); code != 200 {
		t.Fatal("sender died on a bad reload")
	}
	e.props["sender.workers"] = "3"
	e.write(t)
	p.Signal(t, syscall.SIGHUP)
	e2e.WaitFor(t, 10*time.Second, "3 at once", func() bool { return f.maxBusy() == 3 })
}

// TestStatusAndRequeue: the operator's tool reads the spool state without
// the daemon, and requeue sends failed files again.
func TestStatusAndRequeue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accept atomic.Bool
	f := serveFake(t, ln, func(f *fakeRemote) {
		f.answer = func([]byte) int {
			if accept.Load() {
				return protocol.CodeOK
			}
			return protocol.CodeInvalid
		}
	})
	e := newEnv(t, f.addr(), nil)
	makeSpool(t, e.spool, 5)
	// status runs spoolgate status -json, which exits 1 while the sender
	// does not run (the only daemon expected here).
	status := func(running bool) map[string]float64 {
		t.Helper()
		out, err := exec.Command(toolBin, "status", "-daemons", "sender", "-config", e.conf, "-json").Output()
		if code := exitCode(t, err); code != map[bool]int{true: 0, false: 1}[running] {
			t.Fatalf("spoolgate status: exit %d (sender running: %v)", code, running)
		}
		var st map[string]any
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for k, v := range st {
			if x, ok := v.(float64); ok {
				m[k] = x
			}
		}
		return m
	}
	if st := status(false); st["pending"] != 5 || st["failed"] != 0 || st["oldest_pending_seconds"] < 3500 {
		t.Fatalf("status before: %v", st)
	}
	p := e.startSender(t)
	e2e.WaitFor(t, 10*time.Second, "5 rejected", func() bool { return count(t, e.failed) == 10 })
	if st := status(true); st["pending"] != 0 || st["failed"] != 5 || st["in_flight"] != 0 {
		t.Fatalf("status with the daemon running: %v", st)
	}
	accept.Store(true)
	out, err := exec.Command(toolBin, "requeue", "-config", e.conf, "-all").CombinedOutput()
	if err != nil {
		t.Fatalf("spoolgate requeue: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "requeued "); got != 5 {
		t.Fatalf("requeue output:\n%s", out)
	}
	e2e.WaitFor(t, 10*time.Second, "requeued files delivered", func() bool { return len(f.messages(t)) == 5 })
	e2e.WaitFor(t, 5*time.Second, "spool empty", func() bool { return count(t, e.spool) == 0 })
	if des, _ := os.ReadDir(e.failed); len(des) != 0 {
		t.Fatalf("failed_dir after requeue: %v", des)
	}
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 10*time.Second)
}

// TestStartErrors: exit code 2 for a bad config and for a spool another
// sender owns.
func TestStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, nil)
	e := newEnv(t, f.addr(), nil)
	first := e.startSender(t)
	for _, tc := range []struct {
		name  string
		props map[string]string
		want  string
	}{
		{"no remote", map[string]string{"sender.remote": ""}, "sender.remote"},
		{"bare number", map[string]string{"sender.timeout": "5"}, "sender.timeout"},
		{"spool locked", map[string]string{"sender.admin_listen": ""}, "locked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := map[string]string{}
			for k, v := range e.props {
				props[k] = v
			}
			for k, v := range tc.props {
				props[k] = v
			}
			conf := filepath.Join(t.TempDir(), "c.properties")
			writeProps(t, conf, props)
			p := start(t, senderBin, "-config", conf)
			if code := p.ExitCode(t, 20*time.Second); code != 2 {
				t.Fatalf("exit code %d, want 2", code)
			}
			if !p.Log.Contains(tc.want) {
				t.Fatalf("error does not name %q", tc.want)
			}
		})
	}
	first.Signal(t, syscall.SIGTERM)
	if code := first.ExitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestDrainRate measures how fast the sender drains a backlog into the
// receiver (workers=16, keepalive) and its peak RSS. It is a measurement,
// not part of the default run:
//
//	SPOOLGATE_DRAIN_FILES=10000,100000 go test -run DrainRate -v ./cmd/spoolgate-sender
func TestDrainRate(t *testing.T) {
	spec := os.Getenv("SPOOLGATE_DRAIN_FILES")
	if spec == "" {
		t.Skip("set SPOOLGATE_DRAIN_FILES=10000,100000 to measure")
	}
	for _, f := range strings.Split(spec, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil {
			t.Fatalf("SPOOLGATE_DRAIN_FILES: %v", err)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := startSink(t, "")
			e := newEnv(t, r.addr(), map[string]string{"sender.workers": "16", "sender.keepalive": "true", "sender.timeout": "5s", "sender.scan_interval": "5s", "log.level": "warn"})
			makeSpool(t, e.spool, n)
			t0 := time.Now()
			p := e.startSender(t)
			// Poll the sender's gauges, not the directory: listing 100,000
			// entries every few milliseconds would load the machine and lock
			// the directory the sender works in.
			e2e.WaitFor(t, 30*time.Minute, "spool drained", func() bool {
				time.Sleep(100 * time.Millisecond) // polling interval
				_, m, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
				return strings.Contains(m, "\nspoolgate_sender_pending_files 0\n") && strings.Contains(m, "\nspoolgate_sender_inflight 0\n")
			})
			d := time.Since(t0)
			if n := count(t, e.spool) + count(t, filepath.Join(e.spool, ".inflight")); n != 0 {
				t.Fatalf("%d files left in the spool", n)
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
			hwm := strings.TrimSpace(strings.TrimPrefix(grep(string(status), "VmHWM"), "VmHWM:"))
			_, metrics, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
			t.Logf("sender metrics:\n%s", grep(metrics, "spoolgate_sender_attempts_total"))
			if got := len(r.messages(t)); got < n {
				t.Errorf("%d stored, want %d", got, n)
			}
			if f := count(t, e.failed); f != 0 {
				t.Errorf("%d failed", f)
			}
			t.Logf("drained %d files in %s: %.0f files/s, sender peak RSS %s, sender CPU %s (%.0f µs/file)", n, d.Round(time.Millisecond),
				float64(n)/d.Seconds(), hwm, cpuTime(t, p.Cmd.Process.Pid), float64(cpuTime(t, p.Cmd.Process.Pid).Microseconds())/float64(n))
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t, 30*time.Second)
		})
	}
}

// cpuTime returns the user+system CPU time of a process.
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)                           // utime, field 14 of stat
	fmt.Sscan(f[12], &st)                           // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
