package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"spoolgate/internal/e2e"
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

// TestMoveAcrossFileSystems: Move into a directory on another file system
// (a tmpfs) copies a regular file, makes a symlink again with the same
// target (never following it), makes a named pipe and a socket again as
// empty ones with their permission bits, and leaves an empty named pipe
// without permission bits in a device's place; the sources are gone
// (issue 21: a symlink or FIFO never left the spool). Skips without root
// (mount).
func TestMoveAcrossFileSystems(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "other")
	e2e.MountTmpfs(t, dst, "size=1m")
	src := t.TempDir()
	target := filepath.Join(src, "target")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(target, []byte("secret"), 0o600))
	must(os.WriteFile(filepath.Join(src, "file"), []byte("data"), 0o640))
	must(os.Symlink(target, filepath.Join(src, "link")))
	must(syscall.Mkfifo(filepath.Join(src, "pipe"), 0o620))
	must(os.Chmod(filepath.Join(src, "pipe"), 0o620))
	must(syscall.Mknod(filepath.Join(src, "sock"), syscall.S_IFSOCK|0o600, 0))
	device := os.Geteuid() == 0
	if device {
		must(syscall.Mknod(filepath.Join(src, "dev"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	}
	for _, tc := range []struct {
		name    string
		typ     os.FileMode
		perm    os.FileMode
		standIn bool
	}{
		{"file", 0, 0o640, false},
		{"link", os.ModeSymlink, 0o777, false},
		{"pipe", os.ModeNamedPipe, 0o620, false},
		{"sock", os.ModeSocket, 0o600, false},
		{"dev", os.ModeNamedPipe, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dev" && !device {
				t.Skip("making a device node needs root")
			}
			fi, err := os.Lstat(filepath.Join(src, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			final, err := Move(filepath.Join(src, tc.name), dst, tc.name)
			if err != nil {
				t.Fatalf("Move: %v", err)
			}
			if final != filepath.Join(dst, tc.name) {
				t.Fatalf("final %s", final)
			}
			got, err := os.Lstat(final)
			if err != nil {
				t.Fatal(err)
			}
			if got.Mode().Type() != tc.typ || got.Mode().Perm() != tc.perm {
				t.Fatalf("%s is %v, want type %v perm %v", final, got.Mode(), tc.typ, tc.perm)
			}
			if StandIn(fi, final) != tc.standIn {
				t.Fatalf("StandIn = %v", !tc.standIn)
			}
			if _, err := os.Lstat(filepath.Join(src, tc.name)); !os.IsNotExist(err) {
				t.Fatalf("source still there: %v", err)
			}
		})
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != target {
		t.Fatalf("link -> %q, %v", l, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "file")); err != nil || string(b) != "data" {
		t.Fatalf("file holds %q, %v", b, err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "secret" {
		t.Fatalf("the link's target changed: %q, %v", b, err)
	}
	if des, err := os.ReadDir(dst); err != nil || len(des) != 4+map[bool]int{true: 1}[device] {
		t.Fatalf("%s holds %v (%v): a temporary file left?", dst, des, err)
	}
}
