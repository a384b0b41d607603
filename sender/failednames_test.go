package sender

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// TestReasonNamesNeverCollide: a spool file named X.reason that fails is
// stored as X.reason.file, so that a later failure of X writes its reason
// beside X without replacing anything; a failed_dir written by an earlier
// version, where a failed old.reason kept its name (and has
// old.reason.reason), is read as before, and a new failure of old is
// stored as old.1 so that its reason does not replace old.reason. Every
// failed file is listed (console, spoolgate failed), counted (status, the
// gauge) and requeued by requeue -all (issue 21: X's reason replaced the
// stored X.reason, and X.reason was hidden as if it were a reason file).
func TestReasonNamesNeverCollide(t *testing.T) {
	r := startRemote(t, func(r *remote) { r.answer = func([]byte) int { return protocol.CodeInvalid } })
	c := testConf(t, r.addr())
	legacy := map[string]string{
		"old.reason":        body(9) + "\n",
		"old.reason.reason": "time: 2026-01-02T03:04:05Z\nfile: old.reason\nlines: 1 (line number in file, counted from 1)\nremote: -\ncode: 400\nattempts: 1\nreason: rejected by the remote (400)\n",
	}
	for name, content := range legacy {
		writeFile(t, filepath.Join(c.FailedDir, name), content, time.Time{})
	}
	s, stop := runSender(t, c, nil)
	for i, name := range []string{"X.reason", "X", "old"} {
		drop(t, c.SpoolDir, name, body(i+1)+"\n", time.Time{})
		e2e.WaitFor(t, 10*time.Second, name+" in failed_dir", func() bool {
			return len(visible(t, c.SpoolDir)) == 0 && len(visible(t, filepath.Join(c.SpoolDir, InflightDir))) == 0 &&
				len(visible(t, c.FailedDir)) == len(legacy)+2*(i+1)
		})
	}
	want := []string{"X", "X.reason", "X.reason.file", "X.reason.file.reason", "old.1", "old.1.reason", "old.reason", "old.reason.reason"}
	if got := visible(t, c.FailedDir); !slices.Equal(got, want) {
		t.Fatalf("failed_dir = %v, want %v", got, want)
	}
	read := func(name string) string { return string(must(os.ReadFile(filepath.Join(c.FailedDir, name)))) }
	for name, content := range map[string]string{"X.reason.file": body(1) + "\n", "X": body(2) + "\n", "old.1": body(3) + "\n", "old.reason": body(9) + "\n"} {
		if got := read(name); got != content {
			t.Errorf("%s holds %q, want %q", name, got, content)
		}
	}
	for name, file := range map[string]string{"X.reason": "X", "X.reason.file.reason": "X.reason", "old.1.reason": "old"} {
		if got := read(name); !strings.Contains(got, "\nfile: "+file+"\n") || !strings.Contains(got, "rejected by the remote") {
			t.Errorf("%s:\n%s", name, got)
		}
	}
	if got := read("old.reason.reason"); got != legacy["old.reason.reason"] {
		t.Errorf("old.reason.reason changed:\n%s", got)
	}

	listed := []string{"X", "X.reason.file", "old.1", "old.reason"}
	files, err := ReadFailed(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		if f.Code != protocol.CodeInvalid || f.Attempts != 1 {
			t.Errorf("ReadFailed: %+v", f)
		}
	}
	if slices.Sort(names); !slices.Equal(names, listed) {
		t.Errorf("ReadFailed lists %v, want %v", names, listed)
	}
	if page, total, err := s.Failed(0, 50); err != nil || total != len(listed) || len(page) != len(listed) {
		t.Errorf("console list: %d of %d, %v", len(page), total, err)
	}
	if n, _ := s.failedIdx.count(); n != len(listed) {
		t.Errorf("spoolgate_sender_failed_files %d", n)
	}
	if st, err := ReadStatus(c, time.Now()); err != nil || st.Failed != len(listed) {
		t.Errorf("status: %+v %v", st, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	res, err := RequeueAll(c)
	if err != nil || len(res) != len(listed) {
		t.Fatalf("requeue -all: %v %v", res, err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("requeue %s: %v", r.Name, r.Err)
		}
	}
	if got := visible(t, c.SpoolDir); !slices.Equal(got, listed) {
		t.Errorf("spool after requeue -all: %v, want %v", got, listed)
	}
	if got := visible(t, c.FailedDir); len(got) != 0 {
		t.Errorf("failed_dir after requeue -all: %v", got)
	}
}
