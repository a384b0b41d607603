package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.ack")
	for _, s := range []string{"1\n", "22\n"} {
		if err := WriteFileAtomic(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("content %q, want %q", b, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left temp files: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no", "x"), nil, 0o600); err == nil {
		t.Fatal("write into a missing dir succeeded")
	}
}

// TestLockDir: the lock is on the directory itself: a second open (in
// this process or another) conflicts, no file in the directory carries it,
// and another process's holder pid is named.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("lock left files in the dir: %v", ents)
	}
	// flock is per open file description: a second open in this process
	// conflicts just as another process would.
	_, err = LockDir(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second LockDir err = %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("(pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder %s", err, want)
	}
	// And another process too.
	if out, err := exec.Command("flock", "-n", dir, "true").CombinedOutput(); err == nil {
		t.Fatalf("flock(1) got the lock: %s", out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Close: %v", err)
	}
	l2.Close()
}

func TestMoveNoClobber(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	var got []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(src, "a.txt")
		if err := os.WriteFile(p, []byte{byte('0' + i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		final, err := MoveNoClobber(p, dst, "a.txt")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(final))
	}
	want := []string{"a.txt", "a.txt.1", "a.txt.2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("names %v, want %v", got, want)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, want[i])); string(b) != string(rune('0'+i)) {
			t.Fatalf("%s holds %q", want[i], b)
		}
	}
	if _, err := MoveNoClobber(filepath.Join(src, "gone"), dst, "gone"); err == nil {
		t.Fatal("moving a missing file succeeded")
	}
}

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RenameNoReplace(a, b); !errors.Is(err, os.ErrExist) {
		t.Fatalf("rename onto an existing file: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(b); string(got) != b {
		t.Fatalf("b was replaced: %q", got)
	}
	c := filepath.Join(dir, "c")
	if err := RenameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c); string(got) != a {
		t.Fatalf("c holds %q", got)
	}
	if err := RenameNoReplace(a, c); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rename of a missing file: %v, want ErrNotExist", err)
	}
}

func TestWriteTemp(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := WriteTemp(dir, ".x-*", 0o604, mtime, func(w io.Writer) error {
		_, err := io.WriteString(w, "data")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o604 || !fi.ModTime().Equal(mtime) || fi.Size() != 4 {
		t.Fatalf("mode %v mtime %v size %d", fi.Mode(), fi.ModTime(), fi.Size())
	}
	boom := errors.New("boom")
	if _, err := WriteTemp(dir, ".y-*", 0o600, time.Time{}, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Fatalf("a failed write left a file: %v", des)
	}
}
