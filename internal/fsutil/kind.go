package fsutil

import "io/fs"

// Kind names the type of a file that is not a regular one, for a message
// ("the config file must be a regular file, not a named pipe (FIFO)", a
// failed spool file's reason): a symbolic link, a directory, a named pipe
// (FIFO), a socket, a character or block device, or a special file with
// its mode's type letters.
func Kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + m.Type().String() + ")"
}
