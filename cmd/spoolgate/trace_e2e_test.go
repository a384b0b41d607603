package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/journal"
	"spoolgate/protocol"
)

// gateway is a receiver and a sender of one config file on this host,
// their journal in the default journal.dir (log.dir/journal).
type gateway struct {
	dir, conf, data, spool, failed, sent, journal string
	listen, rAdmin, sAdmin                        string
}

// newGateway writes the config of a receiver and a sender sending to
// remote, with extra keys.
func newGateway(t *testing.T, remote string, extra ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	d := &gateway{dir: dir, conf: filepath.Join(dir, "conf.properties"), data: filepath.Join(dir, "request"),
		spool: filepath.Join(dir, "outbox"), failed: filepath.Join(dir, "failed"), sent: filepath.Join(dir, "sent"),
		journal: filepath.Join(dir, "log", "journal"), listen: e2e.FreeAddr(t), rAdmin: e2e.FreeAddr(t), sAdmin: e2e.FreeAddr(t)}
	for _, p := range []string{d.data, d.spool} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lines := []string{
		"receiver.listen = " + d.listen, "receiver.admin_listen = " + d.rAdmin, "receiver.data_dir = " + d.data,
		"sender.remote = " + remote, "sender.admin_listen = " + d.sAdmin, "sender.spool_dir = " + d.spool,
		"sender.failed_dir = " + d.failed, "sender.sent_dir = " + d.sent, "sender.settle = 100ms", "sender.scan_interval = 1s",
		"sender.retries = 0", "sender.timeout = 10s", "log.dir = " + filepath.Join(dir, "log"), "shutdown_timeout = 10s",
	}
	e2eWrite(t, d.conf, strings.Join(append(lines, extra...), "\n")+"\n")
	return d
}

// start runs one of the daemons with the config and waits until it
// answers /readyz.
func (d *gateway) start(t *testing.T, bin, admin string) *e2e.Proc {
	t.Helper()
	cmd := exec.Command(bin, "-config", d.conf)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=", "SPOOLGATE_DEFAULTS=/dev/null")
	p := e2e.Start(t, filepath.Base(bin), cmd, nil)
	t.Cleanup(func() {
		p.Kill()
		t.Logf("%s log:\n%s", filepath.Base(bin), p.Log.String())
	})
	e2e.WaitFor(t, 20*time.Second, filepath.Base(bin)+" ready", func() bool {
		if p.Exited() {
			t.Fatalf("%s exited: %v\n%s", bin, p.Err(), p.Log.String())
		}
		code, _, _ := e2e.HTTPGet("http://" + admin + "/readyz")
		return code == 200
	})
	return p
}

// stop stops p with SIGTERM and checks it exits 0.
func stop(t *testing.T, p *e2e.Proc) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// request builds a request (a result line too: the default result spec is
// the request's) with process_no pno and payload.
func request(t *testing.T, pno, payload string) []byte {
	t.Helper()
	b, err := protocol.DefaultRequestSpec().Encode("REQ", pno, "20261206093000", "ORG01", "SV01", "CUST-000123", payload, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendOne sends m on a new connection to addr and returns the reply's
// code.
func sendOne(t *testing.T, addr string, m []byte) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	r, err := protocol.DefaultDialect().ParseReply(line[:len(line)-1])
	if err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	return r.Code
}

// dropSpool writes a result file into the spool as the downstream does:
// a dotfile renamed into place.
func dropSpool(t *testing.T, spool, name string, lines ...[]byte) {
	t.Helper()
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
	}
	tmp := filepath.Join(spool, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spool, name)); err != nil {
		t.Fatal(err)
	}
}

// trace runs spoolgate trace with args and returns its exit code and
// output (stderr must be empty).
func trace(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, errs := spoolgate(t, "", append([]string{"trace"}, args...)...)
	if errs != "" {
		t.Errorf("trace %v: stderr %q", args, errs)
	}
	return code, out
}

// TestTraceDaemons: the real receiver and sender journal what they do,
// and spoolgate trace shows it: a message accepted (the request file by
// its published name and the line it is on), the same message again (a
// duplicate), one invalid (400, its rule), one when the data dir is full
// (500, the store's error); a result file delivered to the partner and
// one it rejects (400, the line's file in failed_dir). -json parses. The
// session is logged: the README's "Tracing a message" is one.
func TestTraceDaemons(t *testing.T) {
	remote := e2e.StartRemote(t, func(m e2e.Msg) e2e.Action {
		if m.ProcessNo() == "000000126" {
			return e2e.Answer(400)
		}
		return e2e.Answer(200)
	})
	d := newGateway(t, remote.Addr())
	e2e.MountTmpfs(t, d.data, "size=256k")
	r := d.start(t, receiverBin, d.rAdmin)

	m123 := request(t, "000000123", "transfer 1,000,000 KRW")
	for i, want := range []int{200, 200} {
		if code := sendOne(t, d.listen, m123); code != want {
			t.Fatalf("000000123, send %d: code %d, want %d", i+1, code, want)
		}
	}
	bad := []byte(strings.Replace(string(request(t, "000000124", "bad month")), "20261206093000", "20261306093000", 1))
	if code := sendOne(t, d.listen, bad); code != 400 {
		t.Fatalf("000000124: code %d, want 400", code)
	}
	free := e2e.FillFS(t, d.data)
	if code := sendOne(t, d.listen, request(t, "000000125", strings.Repeat("x", 4000))); code != 500 {
		t.Fatalf("000000125 on a full data dir: code %d, want 500", code)
	}
	free()
	stop(t, r) // publishes the open request file

	s := d.start(t, senderBin, d.sAdmin)
	dropSpool(t, d.spool, "res-123.txt", request(t, "000000123", "done"))
	dropSpool(t, d.spool, "res-126.txt", request(t, "000000126", "refused"))
	e2e.WaitFor(t, 20*time.Second, "both result files handled", func() bool {
		sent, _ := os.ReadDir(d.sent)
		failed, _ := filepath.Glob(filepath.Join(d.failed, "res-126.txt*"))
		return len(sent) == 1 && len(failed) == 2 // the file and its .reason
	})
	stop(t, s)

	published, _ := filepath.Glob(filepath.Join(d.data, "*_request.txt"))
	if len(published) != 1 {
		t.Fatalf("request files %v", published)
	}
	file := filepath.Base(published[0])
	session := ""
	run := func(args ...string) string {
		t.Helper()
		code, out := trace(t, append([]string{"-config", d.conf}, args...)...)
		if code != 0 {
			t.Fatalf("trace %v: exit %d\n%s", args, code, out)
		}
		session += "$ spoolgate trace " + strings.Join(args, " ") + "\n" + out
		return out
	}
	out := run("org_code=ORG01", "process_no=000000123")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, want := range []*regexp.Regexp{
		regexp.MustCompile(`^\S+ \S+  receiver  accepted     200  ` + regexp.QuoteMeta(file) + `:1  peer 127\.0\.0\.1:\d+  org_code=ORG01 process_no=000000123$`),
		regexp.MustCompile(`^\S+ \S+  receiver  duplicate    200  -  peer 127\.0\.0\.1:\d+  org_code=ORG01 process_no=000000123$`),
		regexp.MustCompile(`^\S+ \S+  sender    delivered    200  res-123\.txt:1  remote ` + regexp.QuoteMeta(remote.Addr()) + `  org_code=ORG01 process_no=000000123  attempts=1 latency=\d+\.\dms$`),
		regexp.MustCompile(`^-- 3 events; 2 journal files, \d+ lines, since .* in ` + regexp.QuoteMeta(d.journal) + `$`),
	} {
		if i >= len(lines) || !want.MatchString(lines[i]) {
			t.Errorf("line %d of\n%s\ndoes not match %s", i, out, want)
		}
	}
	for _, c := range []struct {
		pno, event, want string
		also             []string
	}{
		{"000000124", "rejected", `  rejected     400  -  peer 127.0.0.1:`, []string{`reason: "sent_at: time yyyyMMddHHmmss"`}},
		{"000000125", "unavailable", `  unavailable  500  -  peer 127.0.0.1:`, []string{"no space left on device"}},
		{"000000126", "failed", `  sender    failed       400  res-126.txt:1  remote ` + remote.Addr(),
			[]string{"attempts=1", "to res-126.txt", `reason: "rejected by the remote (400)"`}},
	} {
		out := run("process_no=" + c.pno)
		if !strings.Contains(out, c.want) || !strings.Contains(out, "-- 1 event;") {
			t.Errorf("process_no=%s: want one %s event like %q:\n%s", c.pno, c.event, c.want, out)
		}
		for _, a := range c.also {
			if !strings.Contains(out, a) {
				t.Errorf("process_no=%s: no %q in\n%s", c.pno, a, out)
			}
		}
	}
	t.Logf("a trace session on the real daemons:\n%s", session)

	code, js := trace(t, "-config", d.conf, "-json", "process_no=000000123")
	var got []journal.Entry
	if err := json.Unmarshal([]byte(js), &got); code != 0 || err != nil || len(got) != 3 {
		t.Fatalf("-json: exit %d, %v\n%s", code, err, js)
	}
	if got[0].Event != "accepted" || got[0].File != file || got[0].Written != file+".part" || got[0].Line != 1 ||
		got[1].Event != "duplicate" || got[2].Event != "delivered" || got[2].Remote != remote.Addr() || got[2].Attempts != 1 || got[2].LatencyMS <= 0 {
		t.Errorf("-json: %+v", got)
	}
}

// TestMaskingDaemons: a resident registration number and a field of
// log.mask (org_code) are shown masked wherever the real daemons show a
// message: the receiver's log (a rejected message's sample), its
// /api/status and console page, a failed result line's .reason file, the
// sender's /api/status, its console page and its log, the journal and
// trace; the request file and the failed line keep every byte; and the
// masked org_code is still traced by its value.
func TestMaskingDaemons(t *testing.T) {
	const rrn, rrnDash = "8501012345678", "850101-2345678"
	remote := e2e.StartRemote(t, func(m e2e.Msg) e2e.Action { return e2e.Answer(200) })
	d := newGateway(t, remote.Addr(), "log.mask = org_code")
	r := d.start(t, receiverBin, d.rAdmin)
	good := request(t, "000000201", "customer "+rrn)
	bad := []byte(strings.Replace(string(request(t, "000000202", "customer "+rrn)), "20261206093000", "20261306093000", 1))
	if code := sendOne(t, d.listen, good); code != 200 {
		t.Fatalf("code %d", code)
	}
	if code := sendOne(t, d.listen, bad); code != 400 {
		t.Fatalf("code %d", code)
	}
	shown := map[string]string{}
	for _, p := range []string{"/api/status", "/"} {
		_, body, err := e2e.HTTPGet("http://" + d.rAdmin + p)
		if err != nil {
			t.Fatal(err)
		}
		shown["receiver "+p] = body
	}
	if !strings.Contains(shown["receiver /api/status"], "|*****|SV01|CUST-000123|customer *************|") {
		t.Errorf("the reject sample in /api/status is not masked as expected:\n%s", shown["receiver /api/status"])
	}
	stop(t, r)

	// A result line whose sent_at holds a resident number: the sender
	// refuses it before sending, its reason quoting the value.
	s := d.start(t, senderBin, d.sAdmin)
	refused := []byte(strings.Replace(string(request(t, "000000203", "customer "+rrn)), "20261206093000", rrnDash, 1))
	dropSpool(t, d.spool, "res-203.txt", refused)
	var reason string
	e2e.WaitFor(t, 20*time.Second, "the refused line in failed_dir", func() bool {
		b, err := os.ReadFile(filepath.Join(d.failed, "res-203.txt.reason"))
		reason = string(b)
		return err == nil
	})
	for _, p := range []string{"/api/status", "/"} {
		_, body, err := e2e.HTTPGet("http://" + d.sAdmin + p)
		if err != nil {
			t.Fatal(err)
		}
		shown["sender "+p] = body
	}
	stop(t, s)
	shown["reason file"] = reason
	for _, name := range []string{"receiver.log", "sender.log"} {
		b, err := os.ReadFile(filepath.Join(d.dir, "log", name))
		if err != nil {
			t.Fatal(err)
		}
		shown[name] = string(b)
	}
	journals, _ := filepath.Glob(filepath.Join(d.journal, "*.log"))
	for _, j := range journals {
		b, _ := os.ReadFile(j)
		shown["journal "+filepath.Base(j)] += string(b)
	}
	code, out := trace(t, "-config", d.conf, "org_code=ORG01")
	shown["trace"] = out
	if code != 0 || strings.Count(out, "org_code=******** ") != 3 ||
		!strings.Contains(out, "process_no=000000201") || !strings.Contains(out, "process_no=000000202") || !strings.Contains(out, "process_no=000000203") {
		t.Errorf("trace by the masked org_code: exit %d\n%s", code, out)
	}
	for what, text := range shown {
		for _, secret := range []string{rrn, rrnDash, "ORG01"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows %q:\n%s", what, secret, text)
			}
		}
	}
	if !strings.Contains(reason, "******-*******") {
		t.Errorf(".reason does not show the masked value:\n%s", reason)
	}
	// The data keep every byte.
	published, _ := filepath.Glob(filepath.Join(d.data, "*_request.txt"))
	if len(published) != 1 {
		t.Fatalf("request files %v", published)
	}
	if b, _ := os.ReadFile(published[0]); string(b) != string(good) {
		t.Errorf("request file %q, want %q", b, good)
	}
	if b, _ := os.ReadFile(filepath.Join(d.failed, "res-203.txt")); string(b) != string(refused) {
		t.Errorf("failed file %q, want %q", b, refused)
	}
}
