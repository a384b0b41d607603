package receiver

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// repair cuts trailing partial lines and publishes .part files of minutes
// other than the current one (all of them in append mode).
func (s *Store) repair() error {
	files, err := s.files(-1)
	if err != nil {
		return err
	}
	now := unixMinute(s.clock())
	var cut, published int
	for _, rf := range files {
		n, err := repairTail(rf.path, s.log)
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if n > 0 {
			cut++
		}
		if rf.part && (!s.rename || rf.minute != now) {
			if err := s.publish(rf.path); err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			published++
		}
	}
	s.log.Info("data dir repaired", "dir", s.dir, "files", len(files), "cut", cut, "published", published)
	return nil
}

// repairTail cuts path back to its last LF and syncs it when it had to.
// It returns the number of bytes cut.
func repairTail(path string, log *slog.Logger) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	keep := size
	buf := make([]byte, 4096)
	for keep > 0 {
		n := int64(len(buf))
		if n > keep {
			n = keep
		}
		if _, err := f.ReadAt(buf[:n], keep-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = keep - n + int64(i) + 1
			break
		}
		keep -= n
	}
	if keep == size {
		return 0, nil
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	log.Warn("cut a partial line (never acknowledged)", "file", path, "bytes", size-keep)
	return size - keep, nil
}
