package sender

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// framed returns a spool line that carries its length field: correct, or
// off by one.
func framed(n int, correct bool) string {
	f := string(must(protocol.DefaultDialect().AppendResult(nil, []byte(body(n)))))
	f = f[:len(f)-1]
	if !correct {
		f = "0" + f[1:3] + string(f[3]+1) + f[4:]
	}
	return f
}

// TestLineWithLengthField: a spool line that already carries a correct
// length field (as request files and `spoolgate send` hold messages) is
// sent as it is; one whose length field is wrong fails with a reason that
// says what the spool format is (issue 10: both went to failed as "more
// than 9 fields").
func TestLineWithLengthField(t *testing.T) {
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	runSender(t, c, nil)
	drop(t, c.SpoolDir, "multi.txt", body(1)+"\n"+framed(2, true)+"\n"+framed(3, false)+"\n"+body(4)+"\n", time.Time{})
	drop(t, c.SpoolDir, "one.txt", framed(5, true)+"\n", time.Now().Add(time.Second))
	e2e.WaitFor(t, 10*time.Second, "both files done", func() bool {
		return len(r.messages()) == 4 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0 && len(visible(t, c.SpoolDir)) == 0
	})
	want := []string{framed(1, true), framed(2, true), framed(4, true), framed(5, true)}
	got := r.messages()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("remote got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := visible(t, c.FailedDir), []string{"multi.txt.line-3", "multi.txt.line-3.reason"}; !slices.Equal(got, want) {
		t.Fatalf("failed_dir = %v, want %v", got, want)
	}
	reason := string(must(os.ReadFile(filepath.Join(c.FailedDir, "multi.txt.line-3.reason"))))
	for _, want := range []string{"invalid, not sent", "does not match", "one message per line without the length field", "remote: -"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, reason)
		}
	}
}

// TestWrittenFilesKeepMode: the files the sender writes from a spool file
// (a rejected line, the unsent lines after retries, the remainder put back
// at a drain) have the spool file's mode, whatever the umask; a .reason file
// has the failed file's read and write bits (issue 10: they were 0600 and
// 0640). The .reason lines: field says what it counts (issue 15).
func TestWrittenFilesKeepMode(t *testing.T) {
	const mode fs.FileMode = 0o664
	hold := make(chan struct{})
	defer close(hold)
	r := startRemote(t, func(r *remote) {
		r.answer = func(line []byte) int {
			switch processNo(string(line)) {
			case "000000002":
				return protocol.CodeInvalid
			case "000000003":
				return protocol.CodeUnavailable
			case "000000006":
				<-hold
				return 0
			}
			return protocol.CodeOK
		}
	})
	c := testConf(t, r.addr())
	c.Retries = 0
	c.Workers = 1
	_, stop := runSender(t, c, func(o *Options) { o.ShutdownTimeout = 200 * time.Millisecond })
	dropMode := func(name, content string, mtime time.Time) {
		tmp := filepath.Join(c.SpoolDir, "."+name)
		writeFile(t, tmp, content, mtime)
		if err := os.Chmod(tmp, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(c.SpoolDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	dropMode("a.txt", body(1)+"\n"+body(2)+"\n"+body(3)+"\n"+body(4)+"\n", old)
	dropMode("b.txt", body(5)+"\n"+body(6)+"\n"+body(7)+"\n", old.Add(time.Second))
	e2e.WaitFor(t, 10*time.Second, "line 6 in flight", func() bool { return len(r.messages()) == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := visible(t, c.FailedDir), []string{"a.txt.line-2", "a.txt.line-2.reason", "a.txt.lines-3-4", "a.txt.lines-3-4.reason"}; !slices.Equal(got, want) {
		t.Fatalf("failed_dir = %v, want %v", got, want)
	}
	for path, want := range map[string]fs.FileMode{
		filepath.Join(c.FailedDir, "a.txt.line-2"):           mode,
		filepath.Join(c.FailedDir, "a.txt.lines-3-4"):        mode,
		filepath.Join(c.FailedDir, "a.txt.line-2.reason"):    mode &^ 0o111,
		filepath.Join(c.FailedDir, "a.txt.lines-3-4.reason"): mode &^ 0o111,
		filepath.Join(c.SpoolDir, "b.txt"):                   mode, // lines 6 and 7, put back
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if b := string(must(os.ReadFile(filepath.Join(c.SpoolDir, "b.txt")))); b != body(6)+"\n"+body(7)+"\n" {
		t.Fatalf("put back %q", b)
	}
	for name, want := range map[string]string{
		"a.txt.line-2.reason":    "\nlines: 2 (line number in file, counted from 1)\n",
		"a.txt.lines-3-4.reason": "\nlines: 3-4 (line numbers in file, counted from 1)\n",
	} {
		if reason := string(must(os.ReadFile(filepath.Join(c.FailedDir, name)))); !strings.Contains(reason, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, reason)
		}
	}
}

// TestLastLineWithoutLF: a complete file (renamed in) whose last line lacks
// its LF is sent whole, that line included, and disposed of.
func TestLastLineWithoutLF(t *testing.T) {
	r := startRemote(t, nil)
	c := testConf(t, r.addr())
	runSender(t, c, nil)
	drop(t, c.SpoolDir, "one.txt", body(1), time.Time{})
	drop(t, c.SpoolDir, "two.txt", body(2)+"\n"+body(3), time.Time{})
	e2e.WaitFor(t, 10*time.Second, "both files done", func() bool {
		return len(r.messages()) >= 3 && len(listDir(t, filepath.Join(c.SpoolDir, InflightDir))) == 0 && len(visible(t, c.SpoolDir)) == 0
	})
	got := r.messages()
	slices.Sort(got)
	if want := []string{framed(1, true), framed(2, true), framed(3, true)}; !slices.Equal(got, want) {
		t.Fatalf("remote got\n%s", strings.Join(got, "\n"))
	}
}
