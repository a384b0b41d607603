// Package journaltest writes journals as the daemons would, for tests and
// for the benchmark of spoolgate trace: a day's traffic of a receiver and
// a sender with the default keys, in the journal's own format (its
// Encoder), the past days gzipped. Only tests import it.
package journaltest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"spoolgate/internal/journal"
)

// Options says what to write.
type Options struct {
	Dir string
	// Lines is about how many lines to write in all (both daemons).
	Lines int
	// Days spreads them evenly over this many days, the last one End's
	// day (End: the time of the last message). All days but the last are
	// gzipped, as the daemons leave them.
	Days int
	End  time.Time
	// Instance names the files' instance ("" the unnamed one).
	Instance string
	// Masked are the log.mask fields among org_code and process_no.
	Masked []string
}

// Keys are the key fields of the generated lines (the default
// receiver.dedup_key, which has process_no).
var Keys = []string{"org_code", "process_no"}

// ProcessNo and OrgCode are the key values of message i (from 0).
func ProcessNo(i int) string { return fmt.Sprintf("%09d", i+1) }

// OrgCode is the org_code of message i.
func OrgCode(i int) string { return fmt.Sprintf("ORG%02d", i%5+1) }

// Events returns what the journal holds of message i, 50 ms apart in
// this order: the receiver's accepted (every 50th: rejected 400 instead,
// and nothing else), every 100th also a duplicate; then the sender's
// delivered, or failed 400 (every 40th), or put_back and delivered (every
// 60th).
func Events(i int) []journal.Event {
	if i%50 == 49 {
		return []journal.Event{journal.Rejected}
	}
	ev := []journal.Event{journal.Accepted}
	if i%100 == 10 {
		ev = append(ev, journal.Duplicate)
	}
	switch {
	case i%40 == 7:
		ev = append(ev, journal.Failed)
	case i%60 == 3:
		ev = append(ev, journal.PutBack, journal.Delivered)
	default:
		ev = append(ev, journal.Delivered)
	}
	return ev
}

// Summary is what Generate wrote.
type Summary struct {
	Messages int
	Lines    int
	Files    int
	First    time.Time // the first message's time
	Interval time.Duration
}

// Time returns when message i was received.
func (s Summary) Time(i int) time.Time { return s.First.Add(time.Duration(i) * s.Interval) }

// Generate writes the journal files of o into o.Dir (created, with the
// key of the hashes) and returns what it wrote. Message i is received at
// Summary.Time(i); the receiver writes it to the minute's request file
// <yyyyMMddHHmm>_request.txt.part, published under its name a second after
// the minute, and the sender sends it from res-<i>.txt.
func Generate(o Options) (Summary, error) {
	if o.Days < 1 {
		o.Days = 1
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return Summary{}, err
	}
	key, err := journal.OpenKey(o.Dir)
	if err != nil {
		return Summary{}, err
	}
	g := &generator{dir: o.Dir, instance: o.Instance, enc: map[string]*journal.Encoder{}, files: map[string]*genFile{}}
	for _, d := range []string{"receiver", "sender"} {
		g.enc[d] = journal.NewEncoder(journal.Options{Daemon: d, Instance: o.Instance, Keys: Keys, Masked: o.Masked, MaskRRN: true}, key)
	}
	// About 2 lines a message (see Events) and one a minute.
	start := midnight(o.End).AddDate(0, 0, -(o.Days - 1))
	msgs := max(1, int((float64(o.Lines)-o.End.Sub(start).Minutes())/2.006))
	g.sum = Summary{Messages: msgs, First: start, Interval: o.End.Sub(start) / time.Duration(msgs)}

	minute := time.Time{}
	line := 0
	for i := 0; i < msgs; i++ {
		t := g.sum.Time(i)
		if d := midnight(t); !d.Equal(g.day) {
			if err := g.closeDay(); err != nil {
				return g.sum, err
			}
			g.day = d
		}
		if m := t.Truncate(time.Minute); !m.Equal(minute) {
			if !minute.IsZero() {
				name := minute.Format("200601021504") + "_request.txt"
				if err := g.write("receiver", &journal.Record{Time: m.Add(time.Second), Event: journal.Published, File: name + ".part", To: name}); err != nil {
					return g.sum, err
				}
			}
			minute, line = m, 0
		}
		if line, err = g.message(i, t, minute.Format("200601021504")+"_request.txt.part", line); err != nil {
			return g.sum, err
		}
	}
	if err := g.closeDay(); err != nil {
		return g.sum, err
	}
	// The last day stays a plain .log (it is being written); the others
	// are gzipped.
	return g.sum, compressPast(g.past, midnight(o.End).Format("2006-01-02"))
}

// generator writes Generate's records into a file per daemon and day.
type generator struct {
	dir, instance string
	enc           map[string]*journal.Encoder // by daemon
	files         map[string]*genFile         // the day's, by daemon
	day           time.Time
	past          []string // the files of the days closed
	buf           []byte
	sum           Summary
}

type genFile struct {
	f *os.File
	w *bufio.Writer
}

// closeDay flushes and closes the day's files.
func (g *generator) closeDay() error {
	for d, f := range g.files {
		if err := f.w.Flush(); err != nil {
			return err
		}
		if err := f.f.Close(); err != nil {
			return err
		}
		g.past = append(g.past, f.f.Name())
		delete(g.files, d)
	}
	return nil
}

// write appends r to the day's file of daemon, creating it.
func (g *generator) write(daemon string, r *journal.Record) error {
	if g.files[daemon] == nil {
		name := filepath.Join(g.dir, journal.FileName(journal.Prefix(daemon, g.instance), g.day))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		g.files[daemon] = &genFile{f, bufio.NewWriterSize(f, 1<<20)}
		g.sum.Files++
	}
	g.buf = g.enc[daemon].Append(g.buf[:0], r)
	g.sum.Lines++
	_, err := g.files[daemon].w.Write(g.buf)
	return err
}

// message writes the events of message i (Events), received at t into the
// request file file after its line line; it returns the file's lines
// then.
func (g *generator) message(i int, t time.Time, file string, line int) (int, error) {
	res := fmt.Sprintf("res-%d.txt", i)
	for k, ev := range Events(i) {
		r := journal.Record{Event: ev, Time: t.Add(time.Duration(k) * 50 * time.Millisecond)}
		r.AddKeyString(OrgCode(i))
		r.AddKeyString(ProcessNo(i))
		d := "sender"
		switch ev {
		case journal.Accepted:
			line++
			d, r.Code, r.Peer, r.File, r.Line = "receiver", 200, "10.1.2.3:51234", file, line
		case journal.Duplicate:
			d, r.Code, r.Peer = "receiver", 200, "10.1.2.3:51235"
		case journal.Rejected:
			d, r.Code, r.Peer, r.Reason = "receiver", 400, "10.1.2.3:51234", "payload: text 0..8000"
		case journal.Delivered:
			r.Code, r.Peer, r.File, r.Line, r.Attempts, r.Latency = 200, "10.9.9.9:9010", res, 1, 1, 12*time.Millisecond
		case journal.Failed:
			r.Code, r.Peer, r.File, r.Line, r.Attempts, r.To, r.Reason = 400, "10.9.9.9:9010", res, 1, 1, res+".line-1", "rejected by the remote (400)"
		case journal.PutBack:
			r.Peer, r.File, r.Line, r.Reason = "10.9.9.9:9010", res, 1, "stopping: sent again at the next start"
		}
		if err := g.write(d, &r); err != nil {
			return line, err
		}
	}
	return line, nil
}

// compressPast gzips the .log files of past but today's, two at a time.
func compressPast(past []string, today string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(past))
	sem := make(chan struct{}, 2)
	for _, p := range past {
		if filepath.Ext(p) == ".log" && !containsDay(p, today) {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				errs <- journal.Compress(p)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func containsDay(path, day string) bool {
	b := filepath.Base(path)
	return len(b) >= len(day)+4 && b[len(b)-len(day)-4:len(b)-4] == day
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}
