package sender

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"spoolgate/conf"
)

// sender.window = auto (docs/PROTOCOL.md §5): the sender sizes the send
// window of each remote address itself. It starts at autoStart lines and,
// as long as the remote answers the pipelined lines in order, follows
// twice the bandwidth-delay product it measures: the rate of replies
// (lines a second, the highest of the last autoRates periods of one round
// trip, at least autoPeriod) times the shortest round trip seen (a line's
// write to its reply), at most conf.MaxWindow. While the link is not full
// the replies come back as fast as the lines go, and the window doubles
// each round trip; once it is full the replies come at the link's rate
// and the window stays at twice what the link holds (the queue it builds
// shows as a longer round trip, not as more lines a second). A period in
// which the window was not full (the file had no more lines) does not
// lower the rate.
//
// A remote that answers one message per read (recv) and drops the rest of
// what it read answers the first line of each write and leaves the others
// unanswered: the sender sees a reply to a later line than the one it
// waits for, or a timeout of a line written together with one that was
// answered. Twice so, and the window of that remote is 1 for good (until
// a restart): its files go over lanes, one line in flight per connection.
// Once so, the window starts again from autoStart.

// windowAuto is tunables.window under sender.window = auto.
const windowAuto = int(conf.WindowAuto)

// autoStart is the window a remote starts with under sender.window = auto.
const autoStart = 2

// autoPeriod is the shortest period over which the rate of replies is
// measured (on a link of 30 ms it is a round trip).
const autoPeriod = 10 * time.Millisecond

// autoRates is how many periods the rate of replies is the highest of: a
// link delivers in bursts (a shaper's time slices), and one short period
// may see half a burst.
const autoRates = 8

// autoStrikes is how often a remote must leave pipelined lines unanswered
// before its window is 1 for good.
const autoStrikes = 2

// autoWindows are the windows of the remotes under sender.window = auto.
// It is safe for concurrent use.
type autoWindows struct {
	log *slog.Logger
	mu  sync.Mutex
	m   map[string]*autoWindow
}

// autoWindow is what the sender knows of one remote's window.
type autoWindow struct {
	size    int
	strikes int                // pipelined lines left unanswered (skip)
	rttMin  time.Duration      // the shortest round trip of a line
	epoch   time.Time          // the start of the period measured
	n       int                // replies in it
	rates   [autoRates]float64 // replies a second of the last periods
	period  int                // periods measured
}

func (a *autoWindows) get(addr string) *autoWindow {
	if a.m == nil {
		a.m = make(map[string]*autoWindow)
	}
	w := a.m[addr]
	if w == nil {
		w = &autoWindow{size: autoStart}
		a.m[addr] = w
	}
	return w
}

// size is the window of the remote addr.
func (a *autoWindows) size(addr string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.get(addr).size
}

// answered notes a reply in order from addr to a line written rtt ago;
// full says whether the window was full when it was read (else the file
// had no more lines to write).
func (a *autoWindows) answered(addr string, rtt time.Duration, full bool, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.get(addr)
	if w.strikes >= autoStrikes {
		return
	}
	if w.rttMin == 0 || rtt < w.rttMin {
		w.rttMin = max(rtt, 50*time.Microsecond)
	}
	if w.epoch.IsZero() {
		w.epoch = now
	}
	w.n++
	took := now.Sub(w.epoch)
	if took < max(w.rttMin, autoPeriod) {
		return
	}
	rate := float64(w.n) / took.Seconds()
	if !full && rate < w.rates[(w.period+autoRates-1)%autoRates] {
		rate = w.rates[(w.period+autoRates-1)%autoRates] // the file ran out of lines: not the link's rate
	}
	w.rates[w.period%autoRates] = rate
	w.period++
	best := 0.0
	for _, r := range w.rates {
		best = max(best, r)
	}
	w.size = min(conf.MaxWindow, max(autoStart, int(math.Ceil(2*best*w.rttMin.Seconds()))))
	w.epoch, w.n = now, 0
}

// skipped notes that addr left pipelined lines unanswered: the window
// starts again, and after autoStrikes of them it is 1 for good.
func (a *autoWindows) skipped(addr, what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.get(addr)
	if w.strikes >= autoStrikes {
		return
	}
	w.strikes++
	w.epoch, w.n, w.rates, w.period = time.Time{}, 0, [autoRates]float64{}, 0
	if w.strikes < autoStrikes {
		w.size = autoStart
		a.log.Info("sender.window auto: the remote left pipelined lines unanswered; its window starts again", "remote", addr, "seen", what)
		return
	}
	w.size = 1
	a.log.Warn("sender.window auto: the remote answers one pipelined message at a time; its window is 1 from now on (lines of a file go over parallel connections)",
		"remote", addr, "seen", what)
}

// windowOf is the window for a file's next lines: sender.window, or under
// auto the window of the remote new connections go to.
func (s *Sender) windowOf(t *tunables) int {
	if t.window != windowAuto {
		return t.window
	}
	return s.auto.size(s.client.current())
}
