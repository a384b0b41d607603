package journal

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"spoolgate/internal/fsutil"
)

// KeyFile is the name of the key of the journal's hashes in its
// directory: 32 random bytes in hex and a LF, mode 0600, created by the
// first daemon that opens the journal and read by the other and by
// spoolgate trace. Whoever can read it can test a guess of a masked value
// against the journal: keep it as private as the request files. Losing it
// loses nothing but the lookup of masked values written with it; a new
// key is made when it is missing.
const KeyFile = "journal.key"

const keyBytes = 32

// ReadKey returns the key in dir. The error wraps fs.ErrNotExist when
// there is none (nothing masked was ever journaled there).
func ReadKey(dir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("journal key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("journal key %s: not a key of hex digits (remove it to make a new one; masked values journaled with it are then no longer found)", filepath.Join(dir, KeyFile))
	}
	return k, nil
}

// OpenKey returns the key in dir, creating it when missing: written to a
// temporary file, synced, and renamed into place only if no other process
// (the other daemon) did it first, in which case that one is read. New
// calls it; tools that write journals (tests) may too.
func OpenKey(dir string) ([]byte, error) {
	k, err := ReadKey(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k = make([]byte, keyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("journal key: %w", err)
	}
	if err := writeKey(dir, k); errors.Is(err, fs.ErrExist) {
		return ReadKey(dir)
	} else if err != nil {
		return nil, err
	}
	return k, nil
}

// writeKey puts k in dir's key file unless one is there (then the error
// wraps fs.ErrExist).
func writeKey(dir string, k []byte) error {
	tmp, err := fsutil.WriteTemp(dir, "."+KeyFile+".*.tmp", 0o600, time.Time{}, func(w io.Writer) error {
		_, err := io.WriteString(w, hex.EncodeToString(k)+"\n")
		return err
	})
	if err != nil {
		return fmt.Errorf("journal key: %w", err)
	}
	if err := fsutil.RenameNoReplace(tmp, filepath.Join(dir, KeyFile)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("journal key: %w", err)
	}
	return fsutil.SyncDir(dir)
}
