package e2e

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProc(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		sig      os.Signal // sent once "ready" is logged; nil: none
		wantCode int
	}{
		{"exit code", "echo ready; exit 3", nil, 3},
		{"exit 0", "echo ready", nil, 0},
		{"signalled", "echo ready; exec sleep 60", syscall.SIGTERM, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Start(t, "sh", exec.Command("sh", "-c", tc.script), io.Discard)
			WaitFor(t, 10*time.Second, "ready in the log", func() bool { return p.Log.Contains("ready\n") })
			if tc.sig != nil {
				p.Signal(t, tc.sig)
			}
			if code := p.ExitCode(t, 10*time.Second); code != tc.wantCode {
				t.Fatalf("exit %d, want %d", code, tc.wantCode)
			}
			if !p.Exited() || p.Log.Count("ready") != 1 {
				t.Fatalf("exited %v, log %q", p.Exited(), p.Log.String())
			}
			if (p.Err() == nil) != (tc.wantCode == 0) {
				t.Fatalf("Err() = %v with exit %d", p.Err(), tc.wantCode)
			}
		})
	}
}

// TestKill: a process still running when the test ends is killed by the
// cleanup (goleak would see the waiting goroutine otherwise).
func TestKill(t *testing.T) {
	p := Start(t, "sleep", exec.Command("sleep", "60"), nil)
	if p.Exited() || p.Err() != nil {
		t.Fatal("sleep ended at once")
	}
	p.Kill()
	p.Kill()
	if !p.Exited() {
		t.Fatal("still running after Kill")
	}
}

func TestHTTPGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, r.URL.Path)
	}))
	defer srv.Close()
	if code, body, err := HTTPGet(srv.URL + "/x"); code != http.StatusTeapot || body != "/x" || err != nil {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	if code, _, err := HTTPGet("http://" + FreeAddr(t) + "/"); code != 0 || err == nil {
		t.Fatalf("nothing listening: got %d %v", code, err)
	}
}

func TestFreeAddr(t *testing.T) {
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf.properties")
	WriteFile(t, path, "a = 1\n")
	WriteFile(t, path, "a = 2\n")
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "a = 2\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}
