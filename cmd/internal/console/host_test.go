package console

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/internal/e2e"
)

// TestConsoleLink: a daemon of the overview is linked by its admin
// address, on the host the browser named when that address is the
// loopback or every address (this console's host, or ssh -L's end).
func TestConsoleLink(t *testing.T) {
	for _, tt := range []struct{ admin, reqHost, lang, want string }{
		{"127.0.0.1:9021", "gw1.example:9011", "ko", "http://gw1.example:9021/?lang=ko"},
		{"127.0.0.1:9021", "localhost:19011", "en", "http://localhost:9021/?lang=en"},
		{"0.0.0.0:9022", "10.9.8.7:9012", "en", "http://10.9.8.7:9022/?lang=en"},
		{"[::1]:9021", "[::1]:9011", "en", "http://[::1]:9021/?lang=en"},
		{":9021", "gw1", "en", "http://gw1:9021/?lang=en"},
		{"10.1.2.3:9021", "gw1.example:9011", "en", "http://10.1.2.3:9021/?lang=en"},
		{"", "gw1.example:9011", "en", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = tt.reqHost
		if got := consoleLink(tt.admin, r, tt.lang); got != tt.want {
			t.Errorf("consoleLink(%q) asked as %s = %q, want %q", tt.admin, tt.reqHost, got, tt.want)
		}
	}
}

// TestOverview: the overview of a host.View lists the config directory's
// instances, this one marked, in the page's words; a host of one instance
// has none.
func TestOverview(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(conf.EnvConfigDir, dir)
	write := func(name string) string {
		p := filepath.Join(dir, name+".properties")
		text := "receiver.admin_listen = " + e2e.FreeAddr(t) + "\nsender.admin_listen =\nsender.remote = 127.0.0.1:9\n" +
			"sender.spool_dir = " + filepath.Join(dir, name, "outbox") + "\nsender.failed_dir = " + filepath.Join(dir, name, "failed") + "\n"
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := conf.Load(write("bank-a"))
	if err != nil {
		t.Fatal(err)
	}
	v := host.NewView(cfg, time.Minute)
	r := httptest.NewRequest("GET", "/", nil)
	if rows := overview(v, r, time.Now(), "ko", labels["ko"]); rows != nil {
		t.Errorf("one instance: %+v, want no overview", rows)
	}
	write("bank-b")
	rows := overview(v, r, time.Now().Add(2*time.Minute), "ko", labels["ko"])
	if len(rows) != 2 || rows[0].Name != "bank-a" || !rows[0].Self || rows[1].Self || rows[1].Receiver.State != "down" ||
		rows[1].Receiver.Label != "중지" || rows[1].Sender.State != "not_asked" || rows[1].Sender.Link != "" || rows[1].Backlog != "?" {
		t.Errorf("two instances: %+v", rows)
	}
	if rows := overview(nil, r, time.Now(), "en", labels["en"]); rows != nil {
		t.Errorf("no host: %+v", rows)
	}
}
