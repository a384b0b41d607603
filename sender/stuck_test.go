package sender

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// TestStuckArchive: a delivered file that cannot be archived to a full
// sent_dir (another file system) is a stuck claim (Ready fails, the
// snapshot lists it, it counts in flight) and is archived once space is
// freed, sent once; one still stuck at a drain stays in .inflight for the
// next start. Issue 21: it stayed in .inflight, counted nowhere, until the
// next start sent it again. Skips without root (mount).
func TestStuckArchive(t *testing.T) {
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	c.SentDir = filepath.Join(t.TempDir(), "sent")
	e2e.MountTmpfs(t, c.SentDir, "size=64k")
	unfill := e2e.FillFS(t, c.SentDir)
	s, stop := runSender(t, c, nil)
	inflight := filepath.Join(c.SpoolDir, InflightDir)

	drop(t, c.SpoolDir, "a.txt", body(1)+"\n", time.Time{})
	e2e.WaitFor(t, 10*time.Second, "a.txt stuck", func() bool { return len(s.Snapshot(time.Now(), 0).Stuck) == 1 })
	sn := s.Snapshot(time.Now(), 0)
	if st := sn.Stuck[0]; st.Name != "a.txt" || st.What != "dispose of delivered file" || !strings.Contains(st.Error, "no space left") || sn.InFlight != 1 || sn.Ready {
		t.Fatalf("snapshot: %+v", sn)
	}
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "1 claim(s) stuck: dispose of delivered file of a.txt") {
		t.Fatalf("Ready: %v", err)
	}
	unfill()
	e2e.WaitFor(t, 10*time.Second, "a.txt archived", func() bool { return len(visible(t, c.SentDir)) == 1 && len(visible(t, inflight)) == 0 })
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready after space came back: %v", err)
	}
	if len(r.messages()) != 1 {
		t.Fatalf("sent %d times", len(r.messages()))
	}

	unfill = e2e.FillFS(t, c.SentDir)
	defer unfill()
	drop(t, c.SpoolDir, "b.txt", body(2)+"\n", time.Time{})
	e2e.WaitFor(t, 10*time.Second, "b.txt stuck", func() bool { return len(s.Snapshot(time.Now(), 0).Stuck) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := visible(t, inflight); !slices.Equal(got, []string{"b.txt"}) {
		t.Fatalf(".inflight after the drain: %v", got)
	}
	if got := visible(t, c.SentDir); !slices.Equal(got, []string{"a.txt"}) {
		t.Fatalf("sent_dir: %v", got)
	}
}
