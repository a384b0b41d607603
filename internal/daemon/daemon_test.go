package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"spoolgate/internal/fsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "spoolgate_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var notReady error = errors.New("data dir not writable")
	a, err := Admin("127.0.0.1:0", reg, func() error { return notReady }, true, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	base := "http://" + a.Addr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not writable") {
		t.Fatalf("readyz %d %q", code, body)
	}
	notReady = nil
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "spoolgate_test_total 3") {
		t.Fatalf("metrics: %s", body)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 200 {
		t.Fatalf("pprof %d", code)
	}
	b, err := Admin("127.0.0.1:0", reg, func() error { return nil }, false, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if code, _ := get(t, "http://"+b.Addr()+"/debug/pprof/"); code != 404 {
		t.Fatalf("pprof off: %d", code)
	}
	if a, err := Admin("", reg, nil, false, nil, testLog(t)); a != nil || err != nil || a.Addr() != "" || a.Close(context.Background()) != nil {
		t.Fatal("disabled admin is not nil")
	}
}

// TestAdminHost: the admin server answers only requests whose Host names
// it: an IP address, localhost, this host's name, the host of its own
// address, or a name of admin.hosts. A page whose DNS name was rebound to
// 127.0.0.1 (DNS rebinding) gets 421 on every path, /api/status included.
func TestAdminHost(t *testing.T) {
	reg := prometheus.NewRegistry()
	api := Route{Pattern: "GET /api/status", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"secret":"samples"}`))
	})}
	a, err := Admin("localhost:0", reg, func() error { return nil }, false, []string{"Gw-Alias.example."}, testLog(t), api)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	_, port, _ := net.SplitHostPort(a.Addr())
	hostname, _ := os.Hostname()
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"127.0.0.1", 200},
		{"[::1]:" + port, 200},
		{"10.1.2.3:" + port, 200}, // an address of this host behind NAT: no name to rebind
		{"localhost:" + port, 200},
		{"LOCALHOST.", 200},
		{hostname + ":" + port, 200},
		{"gw-alias.example:" + port, 200},
		{"GW-ALIAS.EXAMPLE", 200},
		{"rebind.attacker.example:" + port, 421},
		{"localhost.attacker.example", 421},
		{"gw-alias.example.attacker.example:" + port, 421},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/status", "/metrics", "/healthz"} {
			req, err := http.NewRequest("GET", "http://"+a.Addr()+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("Host %s %s: %d %q, want %d", tt.host, path, resp.StatusCode, body, tt.want)
			}
			if tt.want == 421 && (strings.Contains(string(body), "samples") || !strings.Contains(string(body), "admin.hosts")) {
				t.Errorf("Host %s %s: body %q", tt.host, path, body)
			}
		}
	}
}

// TestWatchConfig: from the moment NewConfigWatch returns, a write, a
// replace by rename and a SIGHUP each reload once (a daemon makes the
// watch before READY=1, so an edit or `systemctl reload` right after the
// start is neither missed nor, for SIGHUP, fatal).
func TestWatchConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf.properties")
	if err := os.WriteFile(path, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cw, err := NewConfigWatch(path)
	if err != nil {
		t.Fatal(err)
	}
	// Right away, before Run: the change is queued, not missed.
	if err := os.WriteFile(path, []byte("a=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cw.Run(ctx, testLog(t), func() { reloads <- struct{}{} }); close(done) }()

	wait := func(what string) {
		t.Helper()
		select {
		case <-reloads:
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload on %s", what)
		}
	}
	wait("write")
	// Editors replace by rename.
	tmp := filepath.Join(dir, "x.tmp")
	if err := os.WriteFile(tmp, []byte("a=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	wait("rename")
	// Let late file events settle so that the next reload is the signal's.
	for quiet := false; !quiet; {
		select {
		case <-reloads:
		case <-time.After(debounce * 5):
			quiet = true
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("SIGHUP")
	cancel()
	<-done
}

func TestChanges(t *testing.T) {
	abs := "/etc/spoolgate/conf.properties"
	for _, tt := range []struct {
		ev   fsnotify.Event
		want bool
	}{
		{fsnotify.Event{Name: abs, Op: fsnotify.Write}, true},
		{fsnotify.Event{Name: abs, Op: fsnotify.Create}, true},
		{fsnotify.Event{Name: "/etc/spoolgate/./conf.properties", Op: fsnotify.Rename}, true},
		{fsnotify.Event{Name: abs, Op: fsnotify.Chmod}, false},
		{fsnotify.Event{Name: "/etc/spoolgate/other", Op: fsnotify.Write}, false},
		{fsnotify.Event{Name: "/etc/spoolgate/conf.properties.swp", Op: fsnotify.Create}, false},
	} {
		if got := changes(tt.ev, abs); got != tt.want {
			t.Errorf("changes(%v) = %v, want %v", tt.ev, got, tt.want)
		}
	}
}

func TestSignals(t *testing.T) {
	drain, stop := Signals(context.Background(), testLog(t))
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-drain.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the drain context")
	}
}

func TestExit(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{context.Canceled, 0},
		{fmt.Errorf("serve: %w", context.Canceled), 0},
		{badConfig(true), 2}, // conf's errors
		{fmt.Errorf("open sink: %w", badConfig(true)), 2},
		{errors.Join(errors.New("other"), badConfig(true)), 2},
		{badConfig(false), 1},
		{fmt.Errorf("lock: %w", fsutil.ErrLocked), 2},
		{errors.New("boom"), 1},
	} {
		if got := Exit(tt.err); got != tt.want {
			t.Errorf("Exit(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// badConfig is an error that says whether it is the configuration's, as
// conf's errors do (conf's tests hold that each of Load's errors is one).
type badConfig bool

func (b badConfig) Error() string   { return "bad config " + strconv.FormatBool(bool(b)) }
func (b badConfig) BadConfig() bool { return bool(b) }

func TestReadyGauge(t *testing.T) {
	notReady := errors.New("circuit open")
	reg := prometheus.NewRegistry()
	reg.MustRegister(ReadyGauge(func() error { return notReady }))
	for _, tt := range []struct {
		err  error
		want string
	}{{notReady, "spoolgate_ready 0"}, {nil, "spoolgate_ready 1"}} {
		notReady = tt.err
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 {
			t.Fatalf("gather: %v %v", mfs, err)
		}
		if got := fmt.Sprintf("%s %g", mfs[0].GetName(), mfs[0].GetMetric()[0].GetGauge().GetValue()); got != tt.want {
			t.Errorf("ready() = %v: %s, want %s", tt.err, got, tt.want)
		}
	}
}
