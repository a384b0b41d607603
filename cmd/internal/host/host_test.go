package host

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestList: conf.properties is the unnamed instance, first; NAME.properties
// the others by name; other files and directories are none.
func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"conf.properties", "zeta.properties", "bank-b.properties", "Bad.properties", "x.conf",
		".bank-c.properties.123.tmp", "conf.properties.rpmsave"} {
		write(t, filepath.Join(dir, f), "")
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.properties"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range got {
		names = append(names, i.Shown()+"="+filepath.Base(i.Path))
	}
	if want := "-=conf.properties bank-b=bank-b.properties zeta=zeta.properties"; strings.Join(names, " ") != want {
		t.Errorf("List = %q, want %q", names, want)
	}
	if s, r, d := got[1].Units(); s != "spoolgate-receiver@bank-b.socket" || r != "spoolgate-receiver@bank-b.service" || d != "spoolgate-sender@bank-b.service" {
		t.Errorf("Units = %s %s %s", s, r, d)
	}
	if _, err := List(t.TempDir()); !errors.Is(err, ErrNoInstances) {
		t.Errorf("an empty directory: %v, want ErrNoInstances", err)
	}
	if _, err := List(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing directory: %v, want ErrNotExist", err)
	}
}

// TestSurveyDown: an instance whose daemons do not run is surveyed from
// its spool (one file pending, one failed), both daemons down with why;
// with the amqp source and no broker its backlog is not known; a daemon
// without an admin address is not asked and not down.
func TestSurveyDown(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "outbox")
	write(t, filepath.Join(spool, "r1.txt"), "REQ|1\n")
	write(t, filepath.Join(dir, "failed", "r0.txt"), "REQ|0\n")
	base := "sender.admin_listen = " + e2e.FreeAddr(t) + "\nsender.remote = 127.0.0.1:9\nsender.spool_dir = " + spool + "\nsender.failed_dir = " + filepath.Join(dir, "failed") + "\n"
	load := func(name, text string) *conf.Config {
		t.Helper()
		p := filepath.Join(dir, name+".properties")
		write(t, p, text)
		cfg, err := conf.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	s := Survey(Instance{"spool", filepath.Join(dir, "spool.properties")}, load("spool", base+"receiver.admin_listen = "+e2e.FreeAddr(t)+"\n"), time.Now())
	if s.From != "directories" || s.Backlog != 1 || s.Failed != 1 || s.OldestPendingSeconds <= 0 ||
		s.Receiver.State() != "down" || s.Sender.State() != "down" || strings.Join(s.Down(), ",") != "receiver,sender" ||
		!strings.Contains(s.LastError, "receiver: no answer at ") || !strings.Contains(s.LastError, "; sender: no answer at ") {
		t.Errorf("spool source, nothing running: %+v", s)
	}
	s = Survey(Instance{"amqp", ""}, load("amqp", base+"sender.source = amqp\nsender.amqp.url = amqp://127.0.0.1:1/\nreceiver.admin_listen =\n"), time.Now())
	if s.From != "" || s.Receiver.State() != "not asked" || s.Receiver.Down() || s.Sender.State() != "down" ||
		!strings.Contains(s.LastError, "the sender's queues") {
		t.Errorf("amqp source, no broker, no receiver admin: %+v", s)
	}
}

// TestView: the overview lists the config directory's instances, knows the
// daemon's own, and surveys again only once its interval has passed.
func TestView(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(conf.EnvConfigDir, dir)
	for _, name := range []string{"conf", "bank-b"} {
		write(t, filepath.Join(dir, name+".properties"), "receiver.admin_listen = "+e2e.FreeAddr(t)+"\nsender.admin_listen = "+e2e.FreeAddr(t)+
			"\nsender.spool_dir = "+filepath.Join(dir, name, "outbox")+"\nsender.failed_dir = "+filepath.Join(dir, name, "failed")+"\n")
	}
	cfg, err := conf.Load(filepath.Join(dir, "bank-b.properties"))
	if err != nil {
		t.Fatal(err)
	}
	v := NewView(cfg, time.Minute)
	now := time.Now()
	sums := v.Summaries(now)
	if len(sums) != 2 || sums[0].Name != "" || sums[1].Name != "bank-b" || v.Self(sums[0]) || !v.Self(sums[1]) ||
		sums[1].Receiver.Admin != cfg.Receiver.AdminListen || sums[0].Receiver.State() != "down" {
		t.Fatalf("Summaries: %+v", sums)
	}
	write(t, filepath.Join(dir, "zeta.properties"), "")
	if got := v.Summaries(now.Add(time.Second)); len(got) != 2 {
		t.Errorf("within the interval: %d instances, want the 2 surveyed before", len(got))
	}
	if got := v.Summaries(now.Add(2 * time.Minute)); len(got) != 3 {
		t.Errorf("after the interval: %d instances, want 3", len(got))
	}
}
