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
	enc := map[string]*journal.Encoder{}
	for _, d := range []string{"receiver", "sender"} {
		enc[d] = journal.NewEncoder(journal.Options{Daemon: d, Instance: o.Instance, Keys: Keys, Masked: o.Masked, MaskRRN: true}, key)
	}
	// About 2 lines a message (see Events) and one a minute.
	start := midnight(o.End).AddDate(0, 0, -(o.Days - 1))
	msgs := max(1, int((float64(o.Lines)-o.End.Sub(start).Minutes())/2.006))
	sum := Summary{Messages: msgs, First: start, Interval: o.End.Sub(start) / time.Duration(msgs)}

	type out struct {
		f *os.File
		w *bufio.Writer
	}
	files := map[string]*out{}
	var day time.Time
	var past []string
	var buf []byte
	closeDay := func() error {
		for d, f := range files {
			if err := f.w.Flush(); err != nil {
				return err
			}
			if err := f.f.Close(); err != nil {
				return err
			}
			past = append(past, f.f.Name())
			delete(files, d)
		}
		return nil
	}
	write := func(daemon string, r *journal.Record) error {
		if files[daemon] == nil {
			name := filepath.Join(o.Dir, journal.FileName(journal.Prefix(daemon, o.Instance), day))
			f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
			if err != nil {
				return err
			}
			files[daemon] = &out{f, bufio.NewWriterSize(f, 1<<20)}
			sum.Files++
		}
		buf = enc[daemon].Append(buf[:0], r)
		sum.Lines++
		_, err := files[daemon].w.Write(buf)
		return err
	}
	minute := time.Time{}
	line := 0
	for i := 0; i < msgs; i++ {
		t := sum.Time(i)
		if d := midnight(t); !d.Equal(day) {
			if err := closeDay(); err != nil {
				return sum, err
			}
			day = d
		}
		if m := t.Truncate(time.Minute); !m.Equal(minute) {
			if !minute.IsZero() {
				name := minute.Format("200601021504") + "_request.txt"
				if err := write("receiver", &journal.Record{Time: m.Add(time.Second), Event: journal.Published, File: name + ".part", To: name}); err != nil {
					return sum, err
				}
			}
			minute, line = m, 0
		}
		file := minute.Format("200601021504") + "_request.txt.part"
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
			if err := write(d, &r); err != nil {
				return sum, err
			}
		}
	}
	if err := closeDay(); err != nil {
		return sum, err
	}
	// The last day stays a plain .log (it is being written); the others
	// are gzipped, two at a time.
	today := midnight(o.End).Format("2006-01-02")
	var wg sync.WaitGroup
	errs := make(chan error, len(past))
	sem := make(chan struct{}, 2)
	for _, p := range past {
		if filepath.Ext(p) == ".log" && !containsDay(p, today) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				errs <- journal.Compress(p)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func containsDay(path, day string) bool {
	b := filepath.Base(path)
	return len(b) >= len(day)+4 && b[len(b)-len(day)-4:len(b)-4] == day
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}
