package conf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"spoolgate/internal/fsutil"
)

// MaxFileBytes is the largest config file Load reads (1 MiB); the shipped
// conf.properties is a few KiB. A bigger file is refused rather than read,
// so a wrong path (a log, a device) cannot exhaust memory.
const MaxFileBytes = 1 << 20

// readFile reads the config file at path. A path that cannot be opened, is
// not a regular file (a FIFO would block the read forever, /dev/zero never
// ends), or holds more than MaxFileBytes is an *Error naming the whole path,
// so the daemons exit 2 on it as on any other bad configuration.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path) // follows symlinks: a link to a regular file is fine
	if err != nil {
		return nil, fileError(path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should a FIFO replace the file between Stat and Open, the
	// open does not wait for a writer; the Stat of the open file catches it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileError(path, err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fileError(path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fileError(path, err)
	}
	if len(data) > MaxFileBytes || fi.Size() > MaxFileBytes {
		size := ""
		if fi.Size() > MaxFileBytes {
			size = fmt.Sprintf(" (%d bytes)", fi.Size())
		}
		return nil, &Error{File: path, Want: "the config file is larger than 1 MiB" + size + ": is this the right file?"}
	}
	return data, nil
}

// regular returns an *Error unless fi is a regular file.
func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return &Error{File: path, Want: "the config file must be a regular file, not " + fsutil.Kind(fi.Mode())}
}

// fileError is the *Error of a config file that cannot be read; it
// unwraps to err, so errors.Is(err, fs.ErrNotExist) holds for a missing file.
func fileError(path string, err error) error {
	msg := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err
	}
	return &Error{File: path, Want: "cannot read the config file: " + msg.Error(), Err: err}
}
