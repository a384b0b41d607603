package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs with opts (mount(8)'s data, e.g. "size=128k")
// on dir, which it creates, and unmounts it when the test ends; a test
// that cannot mount one (it needs root) is skipped, saying so. A tmpfs is
// another file system than the test's temporary directory, and one small
// enough fills at once.
func MountTmpfs(t testing.TB, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a tmpfs on %s (needs root): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// FillFS writes a dotfile in dir until its file system is full (ENOSPC)
// and returns a function that removes it.
func FillFS(t testing.TB, dir string) (free func()) {
	t.Helper()
	p := filepath.Join(dir, ".filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); errors.Is(err, syscall.ENOSPC) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	return func() {
		t.Helper()
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}
