package host

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/journal"
)

// OpenJournal opens the journal of daemon ("receiver" or "sender") of the
// instance cfg configures (journal.dir, journal.keep, log.mask,
// log.mask_rrn), keyed on keys (journal.KeyFields of receiver.dedup_key
// and the names of the spec the daemon reads: the request's or the
// result's), its counters registered with reg. It returns nil and no
// error when the journal is off, which is logged; an error when it
// cannot be opened (journal.New). The daemon closes it after its drain.
func OpenJournal(cfg *conf.Config, daemon string, keys []string, log *slog.Logger, reg prometheus.Registerer) (*journal.Journal, error) {
	d := cfg.Protocol.Dialect
	jr, err := journal.New(journal.Options{Dir: cfg.Journal.Dir, Daemon: daemon, Instance: cfg.Instance,
		Keys: keys, Masked: cfg.Log.Mask, MaskRRN: cfg.Log.MaskRRN, Keep: cfg.Journal.Keep,
		Decode:     func(dst, src []byte) []byte { return append(dst, d.Text(src)...) },
		Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	if jr == nil {
		log.Info(cfg.JournalOff())
	}
	return jr, nil
}
