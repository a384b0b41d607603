package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"spoolgate/internal/e2e"
)

// chromium is Debian's browser; scripts/test.sh installs it when apt can.
const chromium = "/usr/bin/chromium"

// browser starts one headless chromium for the test and returns a context
// for its first tab and a counter of JavaScript dialogs that opened
// (there must be none: a dialog means a page ran script from a file name).
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	if senderBin == "" {
		t.Skip("chromium not found at " + chromium + ": install Debian's chromium package (apt-get install chromium) to run the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1024),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no timeout on this context
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	var dialogs atomic.Int32
	events := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			t.Logf("a JavaScript dialog opened: %q", ev.Message)
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); <-done })
	return ctx, &dialogs
}

// do runs steps within a minute and fails the test on error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs one action within a minute and returns its value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// startDaemon writes props as a config file in dir and starts bin with it.
func startDaemon(t *testing.T, bin, dir string, props map[string]string) *e2e.Proc {
	t.Helper()
	var b strings.Builder
	for k, v := range props {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	path := filepath.Join(dir, filepath.Base(bin)+".properties")
	e2e.WriteFile(t, path, b.String())
	cmd := exec.Command(bin, "-config", path)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
	return e2e.Start(t, filepath.Base(bin), cmd, t.Output())
}

// startSenderBin runs the real sender binary on a spool with 3 pending
// files and the failed xssName, against a remote that is down, and waits
// until its circuit is open.
func startSenderBin(t *testing.T, token string) (admin, spool string) {
	t.Helper()
	dir := t.TempDir()
	spool, failed, admin := filepath.Join(dir, "spool"), filepath.Join(dir, "failed"), e2e.FreeAddr(t)
	spoolSetup(t, spool, failed, 3)
	props := map[string]string{
		"sender.remote": deadRemote(t), "sender.spool_dir": spool, "sender.failed_dir": failed,
		"sender.admin_listen": admin, "sender.workers": "1", "sender.settle": "10ms",
		"sender.connect_timeout": "1s", "sender.retry_backoff": "100ms", "sender.retry_backoff_max": "500ms",
		"log.dir": "", "log.level": "info", "shutdown_timeout": "5s",
	}
	if token != "" {
		props["admin.token"] = token
	}
	p := startDaemon(t, senderBin, dir, props)
	e2e.WaitFor(t, 30*time.Second, "the sender's circuit to open", func() bool {
		if p.Exited() {
			t.Fatalf("sender exited: %v", p.Err())
		}
		code, body, _ := e2e.HTTPGet("http://" + admin + "/api/status")
		return code == 200 && strings.Contains(body, `"open": true`)
	})
	return admin, spool
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the %s: %s", strings.TrimSuffix(name, ".png"), path)
	if keep := os.Getenv("SPOOLGATE_SCREENSHOT_DIR"); keep != "" { // to look at them after the test
		_ = os.WriteFile(filepath.Join(keep, name), png, 0o644)
	}
}

// TestBrowser drives a real chromium against the consoles of real running
// daemons: what an operator sees, what a click does, what escaping stops.
func TestBrowser(t *testing.T) {
	ctx, dialogs := browser(t)
	withToken, spool := startSenderBin(t, testToken)
	readOnly, _ := startSenderBin(t, "")

	t.Run("sender", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate("http://"+withToken+"/?lang=en"))
		var p, f int
		fmt.Sscan(text(t, ctx, "#pending"), &p)
		fmt.Sscan(text(t, ctx, "#inflight"), &f)
		if p+f != 3 || p < 2 {
			t.Errorf("pending %d, in flight %d: want 3 in all", p, f)
		}
		if a := get(t, ctx, chromedp.AttributeValue(chromedp.CSS("#circuit"), "data-state")); a.Value != "open" {
			t.Errorf("circuit data-state = %q", a.Value)
		}
		name, reason := text(t, ctx, "tr.failed td.name"), text(t, ctx, "tr.failed td.reason")
		made := eval[int](t, ctx, `document.querySelectorAll("#s-failed img, #s-failed b").length`)
		if name != xssName || reason != "rejected by the remote (400) <b>bold</b>" || made != 0 {
			t.Errorf("failed row: name %q reason %q, %d elements made from them", name, reason, made)
		}
		screenshot(t, ctx, "sender-console.png")

		// Requeue the file by its button: it leaves the failed list and is
		// in the spool.
		do(t, ctx,
			chromedp.SendKeys(chromedp.CSS("#token"), testToken),
			chromedp.Click(chromedp.CSS(`button.requeue[value='`+xssName+`']`)),
			chromedp.WaitVisible(chromedp.CSS("#flash")),
		)
		flash := text(t, ctx, "#flash")
		rows := eval[int](t, ctx, `document.querySelectorAll("tr.failed").length`)
		if rows != 0 || !strings.Contains(flash, "Requeued 1") {
			t.Errorf("after requeue: %d failed rows, flash %q", rows, flash)
		}
		_, err1 := os.Stat(filepath.Join(spool, xssName))
		_, err2 := os.Stat(filepath.Join(spool, ".inflight", xssName))
		if err1 != nil && err2 != nil {
			t.Errorf("requeued file not in the spool: %v", err1)
		}

		// The page refreshes itself in place (under its CSP): a file that
		// fails now shows up without a reload.
		eval[int](t, ctx, `window.spoolgateMarker = 7`)
		failed := filepath.Join(filepath.Dir(spool), "failed")
		e2e.WriteFile(t, filepath.Join(failed, "late.txt"), message(9)+"\n")
		e2e.WaitFor(t, 30*time.Second, "the page to show late.txt by itself", func() bool {
			return eval[int](t, ctx, `document.querySelectorAll("tr.failed[data-name='late.txt']").length`) == 1
		})
		if eval[int](t, ctx, `window.spoolgateMarker || 0`) != 7 {
			t.Errorf("the page reloaded instead of refreshing in place")
		}

		// With the circuit open, its cause is on the page once (it was on
		// it four times: state, circuit, last error, remote; issue 21).
		cause := text(t, ctx, "#circuit .why")
		if n := eval[int](t, ctx, `document.body.innerText.split(`+"`"+cause+"`"+`).length - 1`); cause == "" || n != 1 {
			t.Errorf("the circuit's cause %q is on the page %d times, want 1", cause, n)
		}

		// A failed file named in EUC-KR: shown readable, requeued by its
		// button (the page carried the name as text: ENOENT, issue 21).
		e2e.WriteFile(t, filepath.Join(failed, eucName), message(10)+"\n")
		do(t, ctx, chromedp.Navigate("http://"+withToken+"/?lang=en"))
		e2e.WaitFor(t, 30*time.Second, "the EUC-KR file listed", func() bool {
			return eval[int](t, ctx, `document.querySelectorAll("tr.failed").length`) == 2
		})
		row := `[...document.querySelectorAll("tr.failed")].find(r => r.dataset.name != "late.txt")`
		if shown := eval[string](t, ctx, row+`.querySelector("td.name").textContent`); !strings.Contains(shown, "보고서.txt") || strings.ContainsRune(shown, '\uFFFD') {
			t.Errorf("the EUC-KR name is shown as %q", shown)
		}
		eval[int](t, ctx, row+`.querySelector("button.requeue").click(), 0`)
		do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#flash")))
		if flash := text(t, ctx, "#flash"); !strings.Contains(flash, "Requeued 1") || strings.Contains(flash, "could not") {
			t.Errorf("requeue of the EUC-KR file: flash %q", flash)
		}
		_, err1 = os.Stat(filepath.Join(spool, eucName))
		_, err2 = os.Stat(filepath.Join(spool, ".inflight", eucName))
		if err1 != nil && err2 != nil {
			t.Errorf("the EUC-KR file is not in the spool: %v", err1)
		}

		do(t, ctx, chromedp.Navigate("http://"+withToken+"/?lang=ko"))
		if label, circuit := text(t, ctx, "#s-failed-wrap h2"), text(t, ctx, "#circuit .big"); label != "실패 파일 (최신순)" || circuit != "열림: 전송 중지" {
			t.Errorf("Korean labels: %q, %q", label, circuit)
		}
		if reason := text(t, ctx, "tr.failed td.reason"); reason != "(.reason 파일 없음)" {
			t.Errorf("the Korean page's reason: %q", reason)
		}
	})

	t.Run("sender read-only", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate("http://"+readOnly+"/"), chromedp.WaitVisible(chromedp.CSS("tr.failed")))
		controls := eval[int](t, ctx, `document.querySelectorAll("button.requeue, #requeue-all, #token").length`)
		hint := text(t, ctx, "#actions-off")
		// A forged POST from the page itself (same origin), with a token.
		status := eval[int](t, ctx, `fetch("/api/requeue", {method: "POST", body: new URLSearchParams({file: `+"`"+xssName+"`"+`, token: "guessed-token-0123456789"})}).then(r => r.status)`)
		if controls != 0 || status != 403 || !strings.Contains(hint, "admin.token") {
			t.Errorf("read-only: %d action controls, forged POST %d, hint %q", controls, status, hint)
		}
	})

	t.Run("receiver", func(t *testing.T) {
		dir := t.TempDir()
		listen, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
		p := startDaemon(t, receiverBin, dir, map[string]string{
			"receiver.listen": listen, "receiver.admin_listen": admin, "receiver.data_dir": filepath.Join(dir, "request"),
			"log.dir": "", "log.level": "info",
		})
		e2e.WaitFor(t, 30*time.Second, "the receiver ready", func() bool {
			if p.Exited() {
				t.Fatalf("receiver exited: %v", p.Err())
			}
			code, _, _ := e2e.HTTPGet("http://" + admin + "/readyz")
			return code == 200
		})
		exchange(t, listen, frame(message(1)), frame(message(2)), "0999|REQ|<img src=x onerror=alert(1)>\n")
		do(t, ctx, chromedp.Navigate("http://"+admin+"/"))
		sample, files := text(t, ctx, "tr.reject td.sample"), text(t, ctx, "#s-files")
		if sample != "0999|REQ|<img src=x onerror=alert(1)>" || !strings.Contains(files, "_request.txt") {
			t.Errorf("receiver page: sample %q, files %q", sample, files)
		}
		screenshot(t, ctx, "receiver-console.png")
	})
	if n := dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}
}
