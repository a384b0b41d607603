package sender

import (
	"bytes"
	"context"
	"strconv"
	"sync"

	"spoolgate/conf"
	"spoolgate/internal/journal"
)

// Lanes (docs/PROTOCOL.md §5): at sender.window 1 with sender.line_order
// parallel (the defaults), the lines of one claim go out over up to
// sender.workers connections at once, one line in flight on each, so
// that one big file keeps every worker busy over a link of 30 ms and any
// partner that answers one message at a time still works. Each line in
// flight holds a worker slot: the claim's own, and one per extra lane,
// which the claim asks the limiter for the way a claim resuming after its
// writer does (before the picker claims another file, oldest claim
// first), and gives back as soon as it has no line to hand out. So at
// most sender.workers lines are in flight in all, and a file with lines
// left takes the free slots before a newer file starts.
//
// Lines are handed out in order and complete in any order; the claim
// takes their outcomes back in line order (settle), so the lines done
// still form a prefix of the file and the progress record holds that
// prefix:
//
//   - no line is handed out more than laneBound (ackEveryLines + 2 ×
//     sender.workers) lines past the last progress record: what a crash
//     (kill -9) resends of the file, the lines acknowledged since the
//     record (at most 99), those in flight (at most sender.workers) and
//     those done beyond the first line not done. The progress is recorded
//     every ackEveryLines lines or ackEvery as at window 1 (the slack of
//     2 × sender.workers lines keeps the bound from holding a line back
//     in between: when it does, the lanes wait for the lines in flight),
//     and synced once the next lines are handed out;
//   - an outcome that may wait or end the claim (a 400, whose line is
//     saved to failed_dir; retries used up; a line not sent because of a
//     drain) stops the hand-outs, and is taken back once no line is in
//     flight any more, with the extra lanes given back: a 400 then saves
//     its line and the hand-outs go on; a line whose retries ran out
//     fails with every line after it that is not done, the lines
//     delivered after it excepted (claim.exhaustedAround); a drain puts
//     the file back from its first line not done, so the lines done
//     beyond it are sent again.

// laneBound is how far past the recorded progress the lanes hand out
// lines: what a crash may resend of a file.
func laneBound(workers int) int { return ackEveryLines + 2*workers }

// laneDone is the outcome of a line sent on a lane.
type laneDone struct {
	ln fileLine
	r  lineResult
	wb *workBuf // its frame buffer, for the next line
}

// lanes sends the lines of one claim over lanes; it is used by the
// claim's worker alone (the lines in flight report on done).
type lanes struct {
	c     *claim
	done  chan laneDone
	sends sync.WaitGroup
	free  []*workBuf

	held  int      // worker slots: the claim's own and the extra lanes'
	busy  int      // lines in flight
	heavy int      // outcomes taken and not yet settled that are not deliveries
	hand  fileLine // the next line to hand out is the first at or after hand.off, numbered hand.no

	key    resumeKey          // the claim's file, for the limiter's order
	grant  chan struct{}      // a slot for one more lane
	cancel context.CancelFunc // of the request for a slot in progress; nil: none
	asking sync.WaitGroup     // the request's goroutine
}

// useLanes reports whether the claim's next lines go over lanes: at
// window 1 (sender.window 1, or auto at 1 for the remote) with line_order
// parallel and more than one worker, unless a send window took the claim
// already.
func (c *claim) useLanes(t *tunables) bool {
	return t.lineOrder != conf.LineOrderStrict && t.workers > 1 && c.win == nil && c.s.windowOf(t) == 1
}

func (c *claim) newLanes() *lanes {
	l := &lanes{c: c, done: make(chan laneDone, 64), held: 1, grant: make(chan struct{}, 1),
		hand: fileLine{off: c.off, no: c.no}, key: resumeKey{mtime: c.mtime.UnixNano(), name: c.name}}
	if c.sl != nil {
		l.key = c.sl.key
	}
	if c.ahead == nil {
		c.ahead = make(map[int]lineResult)
	}
	return l
}

// sendLanes sends the claim's complete lines over lanes until every one
// is done, the claim ends (over: end), or lanes no longer apply (more: a
// reload set a window or strict order; every line handed out is done).
func (c *claim) sendLanes() (end claimEnd, over, more bool) {
	l := c.newLanes()
	c.lazySync = true
	defer func() {
		c.lazySync = false
		l.close()
	}()
	for {
		if end, over := l.settle(); over {
			return end, true, false
		}
		t := c.s.live.Load()
		l.handOut(t)
		c.p.sync()
		if l.busy > 0 {
			l.wait()
			continue
		}
		// Nothing in flight, every line handed out done.
		ln, ok := c.next()
		switch {
		case !ok:
			return 0, false, false
		case c.ctx.Err() != nil:
			end, _ := c.settle(ln, lineResult{kind: lineAborted})
			return end, true, false
		}
		return 0, false, true
	}
}

// settle takes back the outcomes of the lines from the first not done, in
// line order: a delivery at once, any other outcome only once no line is
// in flight (with the extra lanes given back first). over: the claim
// ended (end).
func (l *lanes) settle() (end claimEnd, over bool) {
	c := l.c
	for {
		ln, ok := nextLine(c.data, c.off, c.no, c.final)
		if !ok {
			return 0, false
		}
		r, done := c.ahead[ln.off]
		if !done || (r.kind != lineDelivered && l.busy > 0) {
			return 0, false
		}
		delete(c.ahead, ln.off)
		if r.kind != lineDelivered {
			l.heavy--
			l.shrink(false)
		}
		c.off, c.no = ln.off, ln.no
		if end, over := c.settle(ln, r); over {
			return end, true
		}
	}
}

// handOut hands out lines while a lane is free, asks for a slot for one
// more lane when every lane is busy and lines wait, and gives back what
// it cannot use.
func (l *lanes) handOut(t *tunables) {
	c := l.c
	want := false
	for l.heavy == 0 && c.ctx.Err() == nil && c.useLanes(t) {
		ln, ok := nextLine(c.data, l.hand.off, l.hand.no, c.final)
		if !ok || !l.within(ln, t) {
			break
		}
		if l.busy >= min(l.held, t.workers) {
			want = l.held < t.workers
			break
		}
		l.start(ln)
		l.hand = fileLine{off: ln.next, no: ln.no + 1}
	}
	if want {
		l.request()
		return
	}
	l.shrink(true)
}

// within reports whether ln may be handed out: no more than laneBound
// lines past the recorded progress. While lines are in flight the claim
// waits for them (the progress is recorded every ackEveryLines lines done);
// with none in flight the progress is recorded now, and one line always
// may go (the progress could not be recorded: logged).
func (l *lanes) within(ln fileLine, t *tunables) bool {
	c := l.c
	bound := laneBound(t.workers)
	if ln.no-1-c.p.recorded < bound {
		return true
	}
	if l.busy > 0 {
		return false
	}
	c.noteProgress()
	return true
}

// start sends ln on a lane of its own.
func (l *lanes) start(ln fileLine) {
	c := l.c
	wb := &workBuf{}
	if n := len(l.free); n > 0 {
		wb, l.free = l.free[n-1], l.free[:n-1]
	}
	body := c.data[ln.off:ln.end]
	l.busy++
	l.sends.Go(func() {
		start := c.s.tr.now()
		r := c.s.sendLine(c.ctx, c.hard, body, wb)
		r.start = start
		l.done <- laneDone{ln: ln, r: r, wb: wb}
	})
}

// wait takes the next outcome of a line in flight, or a slot granted.
func (l *lanes) wait() {
	select {
	case d := <-l.done:
		l.busy--
		l.free = append(l.free, d.wb)
		if d.r.kind != lineDelivered {
			l.heavy++
		}
		l.c.ahead[d.ln.off] = d.r
	case <-l.grant:
		l.settled()
		l.held++
		l.c.s.m.inflight.Inc()
	}
}

// request asks the limiter for a slot for one more lane, unless a request
// is in progress: it arrives on grant.
func (l *lanes) request() {
	if l.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(l.c.ctx)
	l.cancel = cancel
	l.asking.Go(func() {
		if l.c.s.slots.resume(ctx, &l.key) == nil {
			l.grant <- struct{}{}
		}
	})
}

// settled ends the request for a slot, which has ended (granted).
func (l *lanes) settled() {
	l.cancel()
	l.asking.Wait()
	l.cancel = nil
}

// shrink withdraws the request for a slot in progress and gives back the
// slots of extra lanes: those without a line in flight (idle), or all of
// them (the claim is about to wait, with no line in flight).
func (l *lanes) shrink(idle bool) {
	if l.cancel != nil {
		l.settled()
		select {
		case <-l.grant: // granted meanwhile
			l.c.s.slots.release()
		default:
		}
	}
	keep := 1
	if idle {
		keep = max(1, l.busy)
	}
	for ; l.held > keep; l.held-- {
		l.c.s.m.inflight.Dec()
		l.c.s.slots.release()
	}
}

// close gives back the extra lanes; no line is in flight.
func (l *lanes) close() {
	l.sends.Wait()
	l.shrink(false)
}

// doneAhead reports whether a line after the first not done is done
// (lanes: delivered, or rejected and not yet saved).
func (c *claim) doneAhead() bool {
	for _, r := range c.ahead {
		if r.kind == lineDelivered || r.kind == lineRejected {
			return true
		}
	}
	return false
}

// lineRun is a run of lines of a claim not done: data[off:end], lines
// first to last (physical numbers), n of them not empty.
type lineRun struct{ off, end, first, last, n int }

// exhaustedAround ends a claim, complete, whose line ln used up its
// retries (r) while lines after it were done already (lanes): ln and
// every line after it not done go to failed_dir in runs of consecutive
// lines, <name>.line-<n> or <name>.lines-<n>-<m>, each with the reason of
// ln, so that no name in failed_dir takes in a delivered line; the last
// run goes to the end of the file. A line after ln that was rejected is
// saved on its own (<name>.line-<n>). Then the claim is disposed of like a
// delivered one; when a save fails (logged) it stays in .inflight.
func (c *claim) exhaustedAround(ln fileLine, r lineResult) claimEnd {
	var runs []lineRun
	cur := lineRun{off: -1}
	pos, no := ln.off, ln.no
	for {
		l, ok := nextLine(c.data, pos, no, true)
		if !ok {
			break
		}
		pos, no = l.next, l.no+1
		res, done := c.ahead[l.off]
		if !done || (res.kind != lineDelivered && res.kind != lineRejected) {
			if cur.off < 0 {
				cur = lineRun{off: l.off, first: l.no}
			}
			cur.end, cur.last, cur.n = l.next, l.no, cur.n+1
			continue
		}
		if cur.off >= 0 {
			cur.end, cur.last = l.off, l.no-1
			runs, cur = append(runs, cur), lineRun{off: -1}
		}
		if res.kind == lineDelivered {
			c.s.countDelivered(c.ctx, c.name, l.no, res)
			c.journal(journal.Delivered, l, &res)
		} else if c.s.countRejected(); !c.saveRejected(c.data[l.off:l.next], c.failure(l, res), l.no) {
			return c.stay()
		}
	}
	if cur.off >= 0 {
		cur.end = len(c.data)
		cur.last = cur.first + bytes.Count(bytes.TrimRight(c.data[cur.off:], "\n"), []byte{'\n'})
		runs = append(runs, cur)
	}
	for _, run := range runs {
		c.s.countFailed(int64(run.n))
		f := c.failure(ln, r)
		f.lines = strconv.Itoa(run.first)
		if run.last != run.first {
			f.lines += "-" + strconv.Itoa(run.last)
		}
		if !c.saveUnsent(c.data[run.off:run.end], f, run.first, ln.no, run.last != run.first) {
			return c.stay()
		}
	}
	clear(c.ahead)
	return c.finish()
}
