package sender

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// A claim is stuck while what it must keep cannot be written: a rejected
// or unsent line, or the whole file, to failed_dir with its reason, or a
// delivered file to sent_dir; most often because a file system is full
// (ENOSPC). The worker then retries the disposal (untilDone) instead of
// leaving the claim in .inflight until the next start, and the claim is
// counted: Ready fails, the snapshot (console, spoolgate status) lists it,
// and spoolgate_sender_claims_stuck counts it.

// StuckClaim is a claim whose disposal failed and is being retried.
type StuckClaim struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"` // the first failure
	What  string    `json:"what"`  // what could not be done: "save rejected line", …
	Error string    `json:"error"` // the latest failure
	Tries int       `json:"tries"`
}

// stuckClaims are the claims being retried by untilDone. It is safe for
// concurrent use.
type stuckClaims struct {
	mu sync.Mutex
	m  map[string]StuckClaim
}

// note records a failed try of the disposal what of the claim name.
func (st *stuckClaims) note(name, what string, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil {
		st.m = make(map[string]StuckClaim)
	}
	c, ok := st.m[name]
	if !ok || c.What != what {
		c = StuckClaim{Name: name, Since: time.Now(), What: what}
	}
	c.Error, c.Tries = err.Error(), c.Tries+1
	st.m[name] = c
}

// clear forgets the claim name.
func (st *stuckClaims) clear(name string) {
	st.mu.Lock()
	delete(st.m, name)
	st.mu.Unlock()
}

// list returns the stuck claims, longest stuck first (never nil).
func (st *stuckClaims) list() []StuckClaim {
	st.mu.Lock()
	out := make([]StuckClaim, 0, len(st.m))
	for _, c := range st.m {
		out = append(out, c)
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b StuckClaim) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// count returns the number of stuck claims.
func (st *stuckClaims) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}

// untilDone runs the steps of the disposal what of the claim name in
// order, each until it returns nil. After a failure the claim is stuck: it
// gives its worker slot back (sl.parkIn; other files go on), is counted
// (stuckClaims), and the step runs again after a backoff from
// sender.retry_backoff doubling to sender.retry_backoff_max; the first
// failure is logged at error, the recovery at info. It returns false when
// ctx (a drain) ends the wait, or when the claim vanished from .inflight
// meanwhile: the caller then leaves the claim where it is (in .inflight,
// resumed at the next start). Once the steps are done it takes a slot again
// before it returns true, unless ctx is done (the claim then goes on
// without one, to its drain).
func (s *Sender) untilDone(ctx context.Context, sl *slot, name, what string, steps ...func() error) bool {
	tries := 0
	var since time.Time
	for _, step := range steps {
		for {
			err := step()
			if err == nil {
				break
			}
			if ctx.Err() != nil { // draining: no retry
				s.stuck.clear(name)
				s.log.Error(what+" failed while stopping: the claim stays in .inflight and is resumed at the next start", "name", name, "err", err)
				return false
			}
			tries++
			s.stuck.note(name, what, err)
			if tries == 1 {
				since = time.Now()
				s.log.Error(what+" failed: the claim is stuck, retried until it works", "name", name, "err", err)
				sl.parkIn(nil)
			} else {
				s.log.Debug(what+" failed again", "name", name, "tries", tries, "err", err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				if _, lerr := os.Lstat(filepath.Join(s.dirs.inflight, name)); errors.Is(lerr, fs.ErrNotExist) {
					s.stuck.clear(name)
					s.log.Warn("claimed file vanished while it was stuck", "name", name)
					return false
				}
			}
			if !backoff(ctx, tries, s.live.Load()) {
				s.stuck.clear(name)
				s.log.Warn("stopping while a claim is stuck: it stays in .inflight and is resumed at the next start", "name", name, "what", what)
				return false
			}
		}
	}
	if tries > 0 {
		s.stuck.clear(name)
		s.log.Info(what+" worked: the claim is no longer stuck", "name", name, "tries", tries+1, "stuck_for", time.Since(since).Round(time.Millisecond))
		sl.unpark(ctx)
	}
	return true
}
