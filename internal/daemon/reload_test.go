package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/logging"
)

// testConfig is a config of three keys, one a line as key=value: level
// (the log level), live (applied on reload) and restart (read at start
// only); a file without level= does not load.
type testConfig struct{ level, live, restart string }

func loadTest(path string) (*testConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &testConfig{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "level":
			c.level = v
		case "live":
			c.live = v
		case "restart":
			c.restart = v
		}
	}
	if c.level == "" {
		return nil, errors.New("level: required")
	}
	return c, nil
}

func (c *testConfig) LogOptions() logging.Options {
	return logging.Options{Level: c.level, Format: "text"}
}
func (c *testConfig) Warnings() []string { return nil }

func (c *testConfig) ReloadDiff(old *testConfig, daemon string) (live, restart []string) {
	if daemon != "test" {
		panic("ReloadDiff of " + daemon)
	}
	if c.live != old.live {
		live = append(live, "live")
	}
	if c.restart != old.restart {
		restart = append(restart, "restart")
	}
	return live, restart
}

// TestReload: each reload hands the new config to apply and logs the live
// keys changed since the last good one and the keys that differ from the
// start (a restart's); a file that does not load, or whose log level does
// not parse, changes nothing and is logged as rejected.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.properties")
	e2e.WriteFile(t, path, "level=info\nlive=1\nrestart=1\n")
	start, err := loadTest(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	lg, err := logging.New(start.LogOptions(), "test", &buf)
	if err != nil {
		t.Fatal(err)
	}
	p := &Process[*testConfig]{Path: path, Config: start, Logging: lg, Logger: lg.Logger,
		prog: &Program[*testConfig]{Name: "test", Load: loadTest}}
	prev := start
	for _, tt := range []struct {
		name, file string
		applied    bool
		log        []string // each in the log of this reload
	}{
		{"live key", "level=info\nlive=2\nrestart=1\n", true, []string{"config reloaded", "changed=live"}},
		{"restart key", "level=info\nlive=2\nrestart=2\n", true, []string{"changed=\"\"", "needs a restart", "keys=restart"}},
		{"both since the last", "level=debug\nlive=3\nrestart=2\n", true, []string{"changed=live", "log_level=debug", "keys=restart"}},
		{"does not load", "live=4\n", false, []string{"reload rejected", "level: required"}},
		{"bad level", "level=loud\nlive=4\n", false, []string{"reload rejected", "want debug, info, warn or error"}},
		{"back to the start", "level=info\nlive=1\nrestart=1\n", true, []string{"changed=live"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			e2e.WriteFile(t, path, tt.file)
			var got *testConfig
			next, ok := p.reload(prev, func(c *testConfig) { got = c })
			if ok != tt.applied || (got != nil) != tt.applied || (ok && got != next) {
				t.Fatalf("reload: ok %v, applied %+v, want applied %v", ok, got, tt.applied)
			}
			if ok {
				prev = next
			}
			for _, w := range tt.log {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log has no %q:\n%s", w, buf.String())
				}
			}
			if strings.Contains(buf.String(), "needs a restart") != strings.Contains(tt.file, "restart=2") {
				t.Errorf("restart warning: log\n%s", buf.String())
			}
		})
	}
	if got := lg.Level.Level(); got != slog.LevelInfo {
		t.Errorf("log level %s, want INFO (the last good file's)", got)
	}
}

// TestWatchConfigOff: when the config file's directory cannot be watched,
// WatchConfig says reload is off and its function returns at once.
func TestWatchConfigOff(t *testing.T) {
	var buf bytes.Buffer
	lg, err := logging.New(logging.Options{Level: "info", Format: "text"}, "test", &buf)
	if err != nil {
		t.Fatal(err)
	}
	p := &Process[*testConfig]{Path: filepath.Join(t.TempDir(), "nodir", "test.properties"), Logging: lg, Logger: lg.Logger,
		prog: &Program[*testConfig]{Name: "test", Load: loadTest}}
	run := p.WatchConfig(func(*testConfig) { t.Error("applied") })
	done := make(chan struct{})
	go func() { run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch runs without a directory")
	}
	if !strings.Contains(buf.String(), "reload on change is off") {
		t.Errorf("log:\n%s", buf.String())
	}
}
