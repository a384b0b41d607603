package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/daemon"
	"spoolgate/internal/e2e"
	"spoolgate/receiver"
	"spoolgate/sender"
)

// The daemon binaries for the browser test, built by TestMain only when
// chromium is there to drive them.
var senderBin, receiverBin string

func TestMain(m *testing.M) {
	e2e.Main(m, func(dir string) error {
		if _, err := os.Stat(chromium); err != nil {
			return nil
		}
		senderBin, receiverBin = filepath.Join(dir, "spoolgate-sender"), filepath.Join(dir, "spoolgate-receiver")
		if err := e2e.Build("", senderBin, e2e.Race, "../../spoolgate-sender"); err != nil {
			return err
		}
		return e2e.Build("", receiverBin, e2e.Race, "../../spoolgate-receiver")
	})
}

// xssName is a file name that would run script if a page did not escape it.
const xssName = "<img src=x onerror=alert(1)>.txt"

const testToken = "console-test-token-0123456789"

// message is a valid result line (without its length field) with
// process_no n.
func message(n int) string {
	return fmt.Sprintf("REQ|%09d|%s|ORG01|SV01|K-%d|payload|", n, time.Now().Format("20060102150405"), n)
}

// reasonText is a .reason file as the sender writes it.
func reasonText(name, reason string, code, attempts int, at time.Time) string {
	return fmt.Sprintf("time: %s\nfile: %s\nlines: 1\nremote: 127.0.0.1:9\ncode: %d\nattempts: %d\nreason: %s\n",
		at.Format(time.RFC3339), name, code, attempts, reason)
}

// spoolSetup fills a spool with pending files and failed_dir with a
// rejected file named xssName whose reason holds HTML too.
func spoolSetup(t testing.TB, spool, failed string, pending int) {
	t.Helper()
	for _, d := range []string{spool, failed} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-10 * time.Minute)
	for i := range pending {
		p := filepath.Join(spool, fmt.Sprintf("result_%03d.txt", i))
		e2e.WriteFile(t, p, message(100+i)+"\n")
		if err := os.Chtimes(p, old, old.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	e2e.WriteFile(t, filepath.Join(failed, xssName), message(7)+"\n")
	e2e.WriteFile(t, filepath.Join(failed, xssName+sender.ReasonSuffix),
		reasonText(xssName, "rejected by the remote (400) <b>bold</b>", 400, 1, time.Now().Add(-time.Minute)))
}

// runSender runs a real sender on dirs under t.TempDir() against remote,
// with its console on a real admin server; it returns the admin address.
func runSender(t *testing.T, remote, token string, pending int) (string, conf.Sender) {
	t.Helper()
	dir := t.TempDir()
	c := conf.Default().Sender
	c.Remote = []string{remote}
	c.SpoolDir, c.FailedDir = filepath.Join(dir, "spool"), filepath.Join(dir, "failed")
	c.Settle, c.ScanInterval = 10*time.Millisecond, 200*time.Millisecond
	c.RetryBackoff, c.RetryBackoffMax, c.ConnectTimeout = 50*time.Millisecond, 200*time.Millisecond, time.Second
	spoolSetup(t, c.SpoolDir, c.FailedDir, pending)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	s, err := sender.New(sender.Options{Config: c, Logger: log, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	con := NewSender(s, s, token, log)
	admin, err := daemon.Admin("127.0.0.1:0", prometheus.NewRegistry(), s.Ready, false, nil, log, con.Routes()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() { con.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = admin.Close(context.Background())
	})
	return admin.Addr(), c
}

// deadRemote is an address where nothing listens: dials are refused.
func deadRemote(t testing.TB) string { return e2e.FreeAddr(t) }

func getStatus[T any](t *testing.T, addr string) T {
	t.Helper()
	code, body, err := e2e.HTTPGet("http://" + addr + "/api/status")
	if err != nil || code != 200 {
		t.Fatalf("GET /api/status: %d %v %s", code, err, body)
	}
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode /api/status: %v\n%s", err, body)
	}
	return v
}

func post(t *testing.T, addr string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+addr+"/api/requeue", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The sender's /api/status against a real sender whose remote is down:
// the circuit is open (the page says when it probes next), every pending
// file is counted, the failed file is listed with its reason; the page
// escapes what came from the disk.
func TestSenderStatusAPI(t *testing.T) {
	addr, _ := runSender(t, deadRemote(t), "", 3)
	var st SenderStatus
	e2e.WaitFor(t, 20*time.Second, "the circuit to open, its next probe scheduled", func() bool {
		st = getStatus[SenderStatus](t, addr)
		return st.Circuit.Open && !st.Circuit.NextProbe.IsZero()
	})
	if st.Daemon != "sender" || st.Ready || !strings.Contains(st.NotReady, "circuit open") {
		t.Errorf("ready = %v %q", st.Ready, st.NotReady)
	}
	if st.Circuit.Since.IsZero() || st.Circuit.Cause == "" || st.LastError == nil {
		t.Errorf("circuit = %+v, last error %+v", st.Circuit, st.LastError)
	}
	if len(st.Remotes) != 1 || st.Remotes[0].State != sender.RemoteDown || st.Remotes[0].LastError == "" {
		t.Errorf("remotes = %+v", st.Remotes)
	}
	if st.Pending+st.InFlight != 3 || st.OldestPendingSeconds < 500 || st.FailedCount != 1 || st.Actions {
		t.Errorf("pending %d in flight %d oldest %v failed %d actions %v", st.Pending, st.InFlight, st.OldestPendingSeconds, st.FailedCount, st.Actions)
	}
	if len(st.FailedFiles) != 1 || st.FailedFiles[0].Name != xssName || st.FailedFiles[0].Code != 400 ||
		st.FailedFiles[0].Reason != "rejected by the remote (400) <b>bold</b>" {
		t.Errorf("failed files = %+v", st.FailedFiles)
	}
	if len(st.History.Values) != 3 || len(st.History.Values[0]) != historyMinutes {
		t.Errorf("history = %+v", st.History)
	}

	code, page, err := e2e.HTTPGet("http://" + addr + "/")
	if err != nil || code != 200 {
		t.Fatalf("GET /: %d %v", code, err)
	}
	for _, want := range []string{`id="circuit" data-state="open"`, `<p id="next-probe">next probe in `, "&lt;img src=x onerror=alert(1)&gt;.txt", "&lt;b&gt;bold&lt;/b&gt;", `id="actions-off"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, bad := range []string{"<img src=x", "<b>bold", `class="requeue"`, "https://", "http://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %s", bad)
		}
	}
	// Read-only: a forged POST is refused, with or without a token.
	if code, body := post(t, addr, url.Values{"file": {xssName}, "token": {"anything-at-all-1234"}}, nil); code != 403 || !strings.Contains(body, "admin.token") {
		t.Errorf("POST without admin.token: %d %s", code, body)
	}
}

// Requeue needs the token and the same origin; with both, the file leaves
// failed_dir for the spool, by form (redirect) or by header (JSON).
func TestSenderRequeueAction(t *testing.T) {
	addr, c := runSender(t, deadRemote(t), testToken, 0)
	second := "second.txt"
	e2e.WriteFile(t, filepath.Join(c.FailedDir, second), message(8)+"\n")
	origin := "http://" + addr
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", url.Values{"file": {xssName}}, nil},
		{"wrong token", url.Values{"file": {xssName}, "token": {"wrong-token-0123456789"}}, nil},
		{"cross origin", url.Values{"file": {xssName}, "token": {testToken}}, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
	} {
		if code, body := post(t, addr, tc.form, tc.hdr); code != 403 {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if _, err := os.Stat(filepath.Join(c.FailedDir, xssName)); err != nil {
		t.Fatalf("a refused POST moved the file: %v", err)
	}
	code, body := post(t, addr, url.Values{"file": {xssName}, "token": {testToken}}, map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther {
		t.Fatalf("form POST: %d %s", code, body)
	}
	// Back in the spool, or already claimed from it (settle is 10 ms and
	// the circuit opens only once a send to the dead remote failed).
	if _, err := os.Stat(filepath.Join(c.SpoolDir, xssName)); err != nil {
		if _, err2 := os.Stat(filepath.Join(c.SpoolDir, ".inflight", xssName)); err2 != nil {
			t.Fatalf("not in the spool after requeue: %v; nor claimed: %v", err, err2)
		}
	}
	if _, err := os.Stat(filepath.Join(c.FailedDir, xssName+sender.ReasonSuffix)); err == nil {
		t.Errorf(".reason left behind")
	}
	code, body = post(t, addr, url.Values{"all": {"1"}}, map[string]string{"X-Spoolgate-Token": testToken})
	if code != 200 || !strings.Contains(body, `"file": "second.txt"`) {
		t.Fatalf("header POST all: %d %s", code, body)
	}
	st := getStatus[SenderStatus](t, addr)
	if st.FailedCount != 0 || !st.Actions {
		t.Errorf("after requeue: failed %d, actions %v", st.FailedCount, st.Actions)
	}
}

// The receiver's /api/status against a real receiver that stored one
// message and rejected one that carries HTML.
func TestReceiverStatusAPI(t *testing.T) {
	dir := t.TempDir()
	rc := conf.Default().Receiver
	rc.DataDir = filepath.Join(dir, "request")
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	srv, err := receiver.New(receiver.Options{Config: rc, Logger: log, SummaryEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(context.Background(), ln) })
	con := NewReceiver(srv, log)
	admin, err := daemon.Admin("127.0.0.1:0", prometheus.NewRegistry(), srv.Ready, false, nil, log, con.Routes()...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = admin.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		wg.Wait()
	}()
	replies := exchange(t, ln.Addr().String(), frame(message(1)), "0999|REQ|<script>alert(1)</script>\n")
	if !strings.HasSuffix(replies[0], "|200") || !strings.HasSuffix(replies[1], "|400") {
		t.Fatalf("replies %q", replies)
	}
	st := getStatus[ReceiverStatus](t, admin.Addr())
	if st.Daemon != "receiver" || !st.Ready || len(st.Listening) != 1 || st.Messages["200"] != 1 || st.Messages["400"] != 1 {
		t.Errorf("status = %+v", st)
	}
	if len(st.Rejects) != 1 || !strings.Contains(st.Rejects[0].Sample, "<script>") || st.Rejects[0].Count != 1 {
		t.Errorf("rejects = %+v", st.Rejects)
	}
	if len(st.RequestFiles) != 1 || st.RequestFiles[0].Lines != 1 || st.StoreP99Seconds <= 0 || st.LinesPerFsync != 1 || st.FreeBytes == 0 {
		t.Errorf("files %+v p99 %v lines/fsync %v free %d", st.RequestFiles, st.StoreP99Seconds, st.LinesPerFsync, st.FreeBytes)
	}
	_, page, _ := e2e.HTTPGet("http://" + admin.Addr() + "/?lang=ko")
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(page, "주요 거부 사유") {
		t.Errorf("receiver page: escaping or Korean labels wrong")
	}
}

// frame prepends the length field to a message.
func frame(msg string) string { return fmt.Sprintf("%04d|%s\n", len(msg)+6, msg) }

// exchange sends lines on one connection and returns the replies.
func exchange(t *testing.T, addr string, lines ...string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var out []string
	buf := make([]byte, 0, 256)
	for _, l := range lines {
		if _, err := io.WriteString(c, l); err != nil {
			t.Fatal(err)
		}
		buf = buf[:0]
		one := make([]byte, 1)
		for {
			if _, err := c.Read(one); err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if one[0] == '\n' {
				break
			}
			buf = append(buf, one[0])
		}
		out = append(out, string(buf))
	}
	return out
}

func TestLabels(t *testing.T) {
	for k := range labels["en"] {
		if labels["ko"][k] == "" {
			t.Errorf("ko lacks %s", k)
		}
	}
	for k := range labels["ko"] {
		if labels["en"][k] == "" {
			t.Errorf("en lacks %s", k)
		}
	}
}

func TestPickLang(t *testing.T) {
	for _, tc := range []struct{ query, accept, want string }{
		{"", "", "en"},
		{"", "ko-KR,ko;q=0.9,en-US;q=0.8", "ko"},
		{"", "en-US,en;q=0.9,ko;q=0.8", "en"},
		{"", "fr-FR,ko;q=0.5", "ko"},
		{"lang=en", "ko", "en"},
		{"lang=ko", "en", "ko"},
		{"lang=de", "ko", "ko"},
	} {
		r, _ := http.NewRequest("GET", "/?"+tc.query, nil)
		r.Header.Set("Accept-Language", tc.accept)
		if got := pickLang(r); got != tc.want {
			t.Errorf("pickLang(%q, %q) = %s, want %s", tc.query, tc.accept, got, tc.want)
		}
	}
}

func TestHistory(t *testing.T) {
	var h History
	base := time.Date(2026, 11, 21, 9, 0, 30, 0, time.UTC)
	h.Observe(base.Add(-70*time.Minute), [3]uint64{1, 0, 0}) // outside the hour
	h.Observe(base.Add(-3*time.Minute), [3]uint64{5, 1, 0})
	h.Observe(base.Add(-2*time.Minute), [3]uint64{15, 1, 2})
	h.Observe(base, [3]uint64{18, 1, 2})
	s := h.PerMinute(base, []string{"a", "b", "c"})
	got := s.Values[0][historyMinutes-4:]
	if want := []uint64{0, 10, 0, 3}; !slices.Equal(got, want) {
		t.Errorf("a = %v, want %v", got, want)
	}
	if s.Values[2][historyMinutes-3] != 2 || s.Max != 10 || len(s.Lines) != 3 {
		t.Errorf("series = %+v", s)
	}
	for i := range 200 { // bounded: a day of minutes fills the same ring
		h.Observe(base.Add(time.Duration(i)*time.Minute), [3]uint64{uint64(i), 0, 0})
	}
	if len(h.slots) != historyMinutes+1 {
		t.Fatal("ring grew")
	}
}

// BenchmarkSenderPage renders the sender's page from a running sender with
// 100,000 pending files and a page of failed files: under 1 ms.
func BenchmarkSenderPage(b *testing.B) {
	dir := b.TempDir()
	c := conf.Default().Sender
	c.Remote = []string{deadRemote(b)}
	c.SpoolDir, c.FailedDir = filepath.Join(dir, "spool"), filepath.Join(dir, "failed")
	c.Settle = 0
	spoolSetup(b, c.SpoolDir, c.FailedDir, 0)
	line := []byte(message(1) + "\n")
	for i := range 100_000 {
		if err := os.WriteFile(filepath.Join(c.SpoolDir, fmt.Sprintf("r%06d.txt", i)), line, 0o640); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 49 {
		name := fmt.Sprintf("f%02d.txt", i)
		if err := os.WriteFile(filepath.Join(c.FailedDir, name), []byte(message(i)+"\n"), 0o640); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.FailedDir, name+sender.ReasonSuffix), []byte(reasonText(name, "conn_error: reset (after 4 attempts)", 0, 4, time.Now())), 0o640); err != nil {
			b.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Minute) // failed_dir settled: its listing is cached
	if err := os.Chtimes(c.FailedDir, old, old); err != nil {
		b.Fatal(err)
	}
	s, err := sender.New(sender.Options{Config: c})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(2 * time.Minute)
	for s.Snapshot(time.Now(), 0).Pending+s.Snapshot(time.Now(), 0).InFlight < 100_000 {
		if time.Now().After(deadline) {
			b.Fatal("the sender did not see 100,000 files")
		}
		time.Sleep(50 * time.Millisecond)
	}
	con := NewSender(s, s, testToken, nil)
	h := http.NewServeMux()
	for _, r := range con.Routes() {
		h.Handle(r.Pattern, r.Handler)
	}
	req, _ := http.NewRequest("GET", "/", nil)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req) // warm the failed-reason cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.n = 0
		h.ServeHTTP(w, req)
		if w.code != 0 && w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(w.n), "page_bytes")
}

type discardWriter struct {
	h    http.Header
	n    int
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }

// eucName is "보고서.txt" in EUC-KR: a failed file's name that is not
// UTF-8, as a producer on an EUC-KR system drops it.
const eucName = "\xba\xb8\xb0\xed\xbc\xad.txt"

// TestSenderNonUTF8Name: a failed file whose name is not UTF-8 (EUC-KR)
// keeps the page valid UTF-8 (it was written byte for byte), is named in
// /api/status by its bytes (base64) and a readable text, not U+FFFD only,
// and is requeued by those bytes (the button failed with ENOENT, issue
// 21).
func TestSenderNonUTF8Name(t *testing.T) {
	addr, c := runSender(t, deadRemote(t), testToken, 0)
	e2e.WriteFile(t, filepath.Join(c.FailedDir, eucName), message(9)+"\n")
	e2e.WriteFile(t, filepath.Join(c.FailedDir, eucName+sender.ReasonSuffix), reasonText(eucName, "rejected by the remote (400)", 400, 1, time.Now()))
	_, page, err := e2e.HTTPGet("http://" + addr + "/?lang=ko")
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(page) {
		t.Error("the page is not valid UTF-8")
	}
	for _, want := range []string{`\xBA\xB8\xB0\xED\xBC\xAD.txt`, "(EUC-KR: 보고서.txt)", `name="file_base64" value="uriw7bytLnR4dA=="`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	st := getStatus[SenderStatus](t, addr)
	var f *FailedFile
	for i := range st.FailedFiles {
		if st.FailedFiles[i].NameBase64 != "" {
			f = &st.FailedFiles[i]
		}
	}
	if f == nil || f.Name != `\xBA\xB8\xB0\xED\xBC\xAD.txt` || f.NameBase64 != base64.StdEncoding.EncodeToString([]byte(eucName)) || strings.ContainsRune(f.Name, utf8.RuneError) {
		t.Fatalf("/api/status failed files: %+v", st.FailedFiles)
	}
	code, body := post(t, addr, url.Values{"file_base64": {f.NameBase64}}, map[string]string{"X-Spoolgate-Token": testToken})
	if code != 200 || !strings.Contains(body, `"file_base64": "`+f.NameBase64+`"`) || strings.Contains(body, `"error"`) {
		t.Fatalf("requeue by file_base64: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(c.SpoolDir, eucName)); err != nil {
		if _, err2 := os.Stat(filepath.Join(c.SpoolDir, ".inflight", eucName)); err2 != nil {
			t.Fatalf("not in the spool: %v", err)
		}
	}
	if code, body := post(t, addr, url.Values{"file_base64": {"not base64!"}}, map[string]string{"X-Spoolgate-Token": testToken}); code != 400 {
		t.Errorf("bad base64: %d %s", code, body)
	}
}

// TestSenderErrorsOnce: with the circuit open the dial error is shown
// once (it was four times: state, circuit, last error, remote), in the
// page's one time format; after the remote recovers, the last error is
// past, with its age, and not red; a series of zeros draws no line; the
// sender's own words of a reason are Korean on the Korean page (issue 21).
func TestSenderErrorsOnce(t *testing.T) {
	remote := deadRemote(t)
	addr, _ := runSender(t, remote, "", 1)
	e2e.WaitFor(t, 20*time.Second, "the circuit to open", func() bool { return getStatus[SenderStatus](t, addr).Circuit.Open })
	st := getStatus[SenderStatus](t, addr)
	_, page, _ := e2e.HTTPGet("http://" + addr + "/?lang=en")
	if n := strings.Count(page, st.Circuit.Cause); n != 1 {
		t.Errorf("the circuit's cause %q is on the page %d times, want 1", st.Circuit.Cause, n)
	}
	if m := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d`).FindString(page); m != "" {
		t.Errorf("the page has a time in another format: %s", m)
	}
	if !strings.Contains(page, `<p class="ref">see Circuit</p>`) {
		t.Error("the state card does not point at the circuit")
	}

	// The remote comes back: the circuit closes, the file is delivered.
	e2e.ListenRemote(t, remote, func(e2e.Msg) e2e.Action { return e2e.Answer(200) })
	e2e.WaitFor(t, 20*time.Second, "the file delivered", func() bool {
		st = getStatus[SenderStatus](t, addr)
		return st.Ready && st.Delivered == 1
	})
	_, page, _ = e2e.HTTPGet("http://" + addr + "/?lang=en")
	lastErr := regexp.MustCompile(`(?s)<p id="last-error">.*?</p>`).FindString(page)
	if !strings.Contains(lastErr, `<span class="past"><small>past, `) || !strings.Contains(lastErr, " ago (") || strings.Contains(lastErr, `class="why`) {
		t.Errorf("the last error after recovery: %s", lastErr)
	}
	if strings.Contains(page, `<p class="why">`) {
		t.Error("a red line on a ready page")
	}
	chart := regexp.MustCompile(`(?s)<svg class="chart".*?</svg>`).FindString(page)
	if strings.Count(chart, "<polyline") != 1 || !strings.Contains(chart, `class="s0"`) {
		t.Errorf("the chart draws the zero series (or not the delivered one): %s", chart)
	}
	_, page, _ = e2e.HTTPGet("http://" + addr + "/?lang=ko")
	if !strings.Contains(page, "상대 기관이 거부함 (400) &lt;b&gt;bold&lt;/b&gt;") || !strings.Contains(page, "지난 오류, ") {
		t.Errorf("the Korean page: reason or past error not in Korean:\n%s", regexp.MustCompile(`(?s)<main>.*</main>`).FindString(page))
	}
}

func TestTranslateReason(t *testing.T) {
	for _, tc := range []struct{ en, ko string }{
		{"rejected by the remote (400)", "상대 기관이 거부함 (400)"},
		{"timeout: no reply within 5s (after 4 attempts)", "시간 초과: 응답 없음, 대기 5s (4회 시도 후)"},
		{"conn_error: read tcp 1.2.3.4:5: connection reset by peer (after 4 attempts)", "연결 오류: read tcp 1.2.3.4:5: connection reset by peer (4회 시도 후)"},
		{"invalid, not sent: field 3: want 9 digits", "규격 위반, 보내지 않음: field 3: want 9 digits"},
		{"not a regular file: a symlink; never opened", "일반 파일이 아님: a symlink; 열지 않음"},
		{"something of another's", "something of another's"},
	} {
		if got := translateReason(tc.en, "ko"); got != tc.ko {
			t.Errorf("%q: %q, want %q", tc.en, got, tc.ko)
		}
		if got := translateReason(tc.en, "en"); got != tc.en {
			t.Errorf("%q in English: %q", tc.en, got)
		}
	}
}
