package sender

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
)

// sender.sent_keep (docs/PROTOCOL.md §5, "Outcome per file"): delivered
// files archived in sent_dir are removed once their modification time is
// older than the keep. The time is the spool file's (the archive is a
// rename, which keeps it): when the producer wrote it. sent_dir is swept
// at start and then every sentSweepEvery, or every sent_keep when that is
// shorter; each sweep that removes anything or fails logs one line.

// sentSweepEvery is the longest time between two sweeps of sent_dir.
const sentSweepEvery = time.Hour

// sentReadBatch bounds the names read from sent_dir at once.
const sentReadBatch = 1024

func newSentRemoved() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spoolgate_sender_sent_removed_total",
		Help: "Delivered files removed from sender.sent_dir because they were older than sender.sent_keep.",
	})
}

// keepSent sweeps sent_dir until ctx is done; it returns at once when
// sent_dir is not set, sent_keep is 0 (keep forever) or the source is the
// results queue (nothing is archived).
func (s *Sender) keepSent(ctx context.Context) {
	keep := s.cfg.SentKeep
	if s.dirs.sent == "" || keep <= 0 || s.cfg.Source == conf.SourceAMQP {
		return
	}
	t := time.NewTicker(min(sentSweepEvery, keep))
	defer t.Stop()
	for {
		s.sweepSent(ctx, time.Now(), keep)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepSent removes the regular files of sent_dir (not dotfiles, nor
// what is in its subdirectories) whose modification time is more than
// keep before now, counts them and logs the sweep once when it removed
// any or failed. It returns how many it removed. It stops early when ctx
// is done.
func (s *Sender) sweepSent(ctx context.Context, now time.Time, keep time.Duration) int {
	cutoff := now.Add(-keep)
	removed, failed := 0, 0
	var firstErr error
	note := func(err error) {
		failed++
		if firstErr == nil {
			firstErr = err
		}
	}
	d, err := os.Open(s.dirs.sent)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) { // nothing delivered yet: made at the first archive
			s.log.Warn("sent_keep: cannot read sent_dir", "dir", s.dirs.sent, "err", err)
		}
		return 0
	}
	defer d.Close()
	for ctx.Err() == nil {
		es, err := d.ReadDir(sentReadBatch)
		for _, e := range es {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					note(err)
				}
				continue
			}
			if !fi.ModTime().Before(cutoff) {
				continue
			}
			if err := os.Remove(filepath.Join(s.dirs.sent, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				note(err)
				continue
			}
			removed++
			s.sentRemoved.Inc()
		}
		if err == io.EOF || len(es) == 0 {
			break
		}
		if err != nil {
			note(err)
			break
		}
	}
	switch {
	case failed > 0:
		s.log.Warn("sent_keep: sent_dir swept, some files could not be removed", "dir", s.dirs.sent, "keep", keep,
			"removed", removed, "failed", failed, "err", firstErr)
	case removed > 0:
		s.log.Info("sent_keep: sent_dir swept", "dir", s.dirs.sent, "keep", keep, "removed", removed)
	}
	return removed
}
