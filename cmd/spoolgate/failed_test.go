package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"spoolgate/internal/e2e"
)

// reasonText is a .reason file as the sender writes it.
func reasonText(file, lines, remote, code string, attempts int, reason string) string {
	return fmt.Sprintf("time: 2026-11-21T09:30:05+09:00\nfile: %s\nlines: %s (line number in file, counted from 1)\nremote: %s\ncode: %s\nattempts: %d\nreason: %s\n",
		file, lines, remote, code, attempts, reason)
}

// TestFailedAdvice: spoolgate failed suggests 'requeue -all' only when
// every failed file ran out of retries (it may be delivered as it is);
// files the remote rejected (400), files never sent (invalid) and
// non-regular ones get their own advice, and -json gives each file's
// class. Issue 21: it suggested 'requeue -all' for files that fail again
// as they are ('invalid, not sent: …').
func TestFailedAdvice(t *testing.T) {
	retry := map[string]string{
		"t.txt": reasonText("t.txt", "1", "10.0.0.1:9010", "-", 3, "timeout: no reply within 5s (after 3 attempts)"),
		"u.txt": reasonText("u.txt", "1", "10.0.0.1:9010", "500", 3, "remote unavailable (500) (after 3 attempts)"),
	}
	others := map[string]string{
		"r.txt":        reasonText("r.txt", "1", "10.0.0.1:9010", "400", 1, "rejected by the remote (400)"),
		"i.txt.line-2": reasonText("i.txt", "2", "-", "-", 0, "invalid, not sent: message: no CR: CR at byte 77"),
	}
	for _, tc := range []struct {
		name   string
		files  map[string]string
		link   bool // and a symlink that failed
		want   []string
		unwant []string
		class  map[string]string
	}{
		{"all retryable", retry, false,
			[]string{"2 failed in ", "  2 ran out of retries (timeout, reset, 500, unreadable reply): once the remote answers again, 'spoolgate requeue -all' sends them again"},
			[]string{"rejected", "never sent"}, map[string]string{"t.txt": "retry", "u.txt": "retry"}},
		{"mixed", merge(retry, others), true,
			[]string{"5 failed in ", "  2 ran out of retries", "requeue them by name (spoolgate requeue NAME...); not with -all",
				"  1 rejected by the remote (400): as they are they are rejected again; fix the file or its producer, then requeue it by name",
				"  1 never sent (invalid against protocol.result.*, or too large: the reason says which): as they are they fail again",
				"  1 not a regular file (a symlink, pipe, socket or device): never sent nor requeued; fix the producer and remove it from failed_dir"},
			[]string{"sends them again"},
			map[string]string{"t.txt": "retry", "r.txt": "rejected", "i.txt.line-2": "not_sent", "link.txt": "not_regular"}},
		{"none retryable", others, false,
			[]string{"2 failed in ", "  1 rejected by the remote (400)", "  1 never sent"},
			[]string{"-all", "ran out of retries"}, map[string]string{"r.txt": "rejected", "i.txt.line-2": "not_sent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			failed := filepath.Join(dir, "failed")
			if err := os.Mkdir(failed, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, reason := range tc.files {
				e2e.WriteFile(t, filepath.Join(failed, name), "REQ|000000001|x\n")
				e2e.WriteFile(t, filepath.Join(failed, name+".reason"), reason)
			}
			if tc.link {
				if err := os.Symlink("/etc/passwd", filepath.Join(failed, "link.txt")); err != nil {
					t.Fatal(err)
				}
				e2e.WriteFile(t, filepath.Join(failed, "link.txt.reason"), strings.Replace(
					reasonText("link.txt", "-", "-", "-", 0, "not a regular file: a symbolic link; never opened"), "(line number in file, counted from 1)", "(never opened)", 1))
			}
			cfg := filepath.Join(dir, "conf.properties")
			e2e.WriteFile(t, cfg, "sender.remote = 127.0.0.1:1\nsender.spool_dir = "+filepath.Join(dir, "spool")+"\nsender.failed_dir = "+failed+"\nlog.dir =\n")
			code, out, errOut := spoolgate(t, "", "failed", "-config", cfg)
			if code != 0 {
				t.Fatalf("exit %d: %s%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.unwant {
				if strings.Contains(out[strings.Index(out, " failed in "):], w) {
					t.Errorf("advice holds %q:\n%s", w, out)
				}
			}
			code, out, errOut = spoolgate(t, "", "failed", "-json", "-config", cfg)
			var list []struct{ Name, Class string }
			if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
				t.Fatalf("-json: exit %d %v: %s%s", code, err, out, errOut)
			}
			got := map[string]string{}
			for _, f := range list {
				got[f.Name] = f.Class
			}
			for name, class := range tc.class {
				if got[name] != class {
					t.Errorf("%s: class %q, want %q", name, got[name], class)
				}
			}
		})
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
