package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/internal/e2e"
)

// journalText returns what the journal files in dir hold (the day's
// .log files; nothing is compressed within a test).
func journalText(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "receiver-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestJournalFullDisk: the journal on a file system that fills up (a
// tmpfs of its own) never holds up a reply: every message is answered
// 200 while its writes fail, the failures are counted and logged, and
// once there is room again the journal writes what it kept, by itself.
func TestJournalFullDisk(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	e2e.MountTmpfs(t, jdir, "size=256k")
	p := start(t, config(t, dir, "journal.dir = "+jdir), nil)
	if p.addr == "" {
		t.Fatal("receiver did not start")
	}
	c, err := dial(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	sent := 0
	sendN := func(n int) {
		t.Helper()
		for range n {
			sent++
			if code, err := c.send(msg(t, fmt.Sprintf("%09d", sent), "journal")); err != nil || code != 200 {
				t.Fatalf("message %d: code %d, %v", sent, code, err)
			}
		}
	}
	has := func(n int) bool {
		text := journalText(t, jdir)
		for i := 1; i <= n; i++ {
			if !strings.Contains(text, fmt.Sprintf("\tprocess_no=%09d\t", i)) {
				return false
			}
		}
		return true
	}
	sendN(3)
	e2e.WaitFor(t, 10*time.Second, "the first messages journaled", func() bool { return has(3) })

	free := e2e.FillFS(t, jdir)
	start := time.Now()
	sendN(200) // 30 kB of journal: more than what is left of the file's page
	t.Logf("200 messages answered 200 in %v with the journal's file system full", time.Since(start))
	e2e.WaitFor(t, 10*time.Second, "journal write errors counted and logged", func() bool {
		return scrape(t, p, `spoolgate_journal_write_errors_total{daemon="receiver"}`) > 0 && p.Log.Contains("journal cannot be written")
	})
	if has(sent) {
		t.Fatal("every line in the journal while its file system is full")
	}
	free()
	e2e.WaitFor(t, 10*time.Second, "the journal writing again", func() bool { return p.Log.Contains("journal writes work again") })
	sendN(3)
	e2e.WaitFor(t, 10*time.Second, "every message journaled, those kept while full too", func() bool { return has(sent) })
	if d := scrape(t, p, `spoolgate_journal_dropped_total{daemon="receiver"}`); d != 0 {
		t.Errorf("%v records dropped", d)
	}
	if n := scrape(t, p, `spoolgate_journal_records_total{daemon="receiver"}`); n < float64(sent) {
		t.Errorf("records_total %v, want at least %d", n, sent)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := p.Log.Count("journal cannot be written"); n != 1 {
		t.Errorf("the failure logged %d times within a minute, want once", n)
	}
}
