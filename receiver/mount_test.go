package receiver

import (
	"strings"
	"syscall"
	"testing"
)

// mount mounts a tmpfs on dir; opts is "ro,..." or the tmpfs data.
func mount(t *testing.T, dir, opts string) error {
	t.Helper()
	var flags uintptr
	if rest, ok := strings.CutPrefix(opts, "ro,"); ok {
		flags, opts = syscall.MS_RDONLY, rest
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", flags, opts)
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Errorf("unmount %s: %v", dir, err)
	}
}
