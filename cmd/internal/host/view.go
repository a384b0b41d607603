package host

import (
	"path/filepath"
	"sync"
	"time"

	"spoolgate/conf"
)

// View is the overview of a host's instances that a daemon's console
// shows: the instances of the config directory, surveyed at most once per
// interval however many pages ask. Create it with NewView; it is safe for
// concurrent use.
type View struct {
	self  Instance     // the daemon's own instance
	cfg   *conf.Config // its config, as the daemon loaded it
	dir   string
	every time.Duration

	mu   sync.Mutex
	at   time.Time
	sums []Summary
}

// NewView returns the overview for the daemon whose config is cfg: the
// instances of conf.ConfigDir(), surveyed at most every interval. Its own
// instance is read with cfg; the others with conf.LoadFile, the file alone
// (this daemon's environment overrides are not theirs).
func NewView(cfg *conf.Config, every time.Duration) *View {
	return &View{self: Instance{Name: cfg.Instance, Path: cfg.Path}, cfg: cfg, dir: conf.ConfigDir(), every: every}
}

// Self reports whether s is the daemon's own instance.
func (v *View) Self(s Summary) bool { return samePath(s.Config, v.self.Path) }

// Summaries returns the instances of the host as surveyed at most one
// interval before now, the daemon's own among them when its config is in
// the config directory. A config directory that cannot be listed gives
// the daemon's own instance alone.
func (v *View) Summaries(now time.Time) []Summary {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sums != nil && now.Sub(v.at) < v.every && now.After(v.at) {
		return v.sums
	}
	insts, err := List(v.dir)
	if err != nil {
		insts = []Instance{v.self}
	}
	v.sums = SurveyAll(insts, func(i Instance) (*conf.Config, error) {
		if samePath(i.Path, v.self.Path) {
			return v.cfg, nil
		}
		return conf.LoadFile(i.Path)
	}, now)
	v.at = now
	return v.sums
}

// samePath reports whether a and b name one file (by their absolute paths).
func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}
