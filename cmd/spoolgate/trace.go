package main

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/internal/journal"
)

// maskedShown is how trace shows a key value the journal holds masked.
const maskedShown = "********"

// runTrace prints every journal event of the messages that match, on
// this host, in time order: both daemons, the gzipped days too.
//
//	spoolgate trace [-config PATH] [-since 7d] [-json] [-all] FIELD=VALUE...
//
// FIELD is a key field (receiver.dedup_key's, process_no) or a journal
// attribute (file, line, code, peer, remote, event, …); terms of
// different fields must all match, a field given twice matches either
// value. A masked key field is found by its value (the journal's keyed
// hash). Exit codes: 0 when events were found, 1 when none (or a journal
// could not be read), 2 for bad usage or a bad config.
func runTrace(args []string, stdout, stderr io.Writer) int {
	const synopsis = "[-config PATH] [-since 7d] [-json] [-all] FIELD=VALUE..."
	fs := newFlags("trace", synopsis,
		"Prints every journal event of the messages that match, on this host, in time order: the receiver's\n"+
			"(accepted, duplicate, rejected, unavailable) and the sender's (delivered, failed, put_back), the\n"+
			"gzipped days too. FIELD is a key field (those of receiver.dedup_key, and process_no) or one of\n"+
			"file, line, code, peer, remote, event, daemon, queue, msgid, reason. Different fields must all\n"+
			"match; a field given twice matches either value. A field of log.mask is found by its value.\n"+
			"Exit 0 when events were found, 1 when none.\n\n"+
			"  spoolgate trace process_no=000000123\n"+
			"  spoolgate trace -since 2026-12-01 org_code=ORG01 process_no=000000123", stderr)
	path := configFlag(fs)
	sinceFlag := fs.String("since", "7d", "how far back: a duration (7d, 36h) or a date (2026-12-01); 0: all the journal keeps")
	asJSON := fs.Bool("json", false, "print a JSON array of the events")
	all := fs.Bool("all", false, "every instance in the config directory ($"+conf.EnvConfigDir+", default "+conf.DefaultConfigDir+"), not only -config's")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	usage := func(msg string) int {
		fmt.Fprintln(stderr, "spoolgate trace: "+msg)
		fmt.Fprintln(stderr, "usage: spoolgate trace "+synopsis)
		return 2
	}
	q, msg := traceQuery(fs.Args(), *sinceFlag, *all, *path)
	if msg != "" {
		return usage(msg)
	}
	configs := []host.Instance{{Path: *path}} // "": as the daemons find it (loadConfig)
	if *all {
		var err error
		if configs, err = hostInstances(); err != nil {
			fmt.Fprintln(stderr, "spoolgate trace:", err)
			return 2
		}
	}
	tr, code := searchInstances(configs, q, stderr)
	if code != 0 {
		if code == 2 && tr.usage != "" {
			return usage(tr.usage)
		}
		return code
	}
	if *asJSON {
		if tr.found == nil {
			tr.found = []journal.Entry{}
		}
		if err := writeJSON(stdout, tr.found); err != nil {
			return 1
		}
	} else {
		tr.print(stdout, q.Since, *all)
	}
	if len(tr.found) == 0 || tr.failed {
		return 1
	}
	return 0
}

// traceQuery reads trace's arguments: FIELD=VALUE terms and -since; a
// message for the usage line when they do not make a query.
func traceQuery(args []string, sinceFlag string, all bool, path string) (journal.Query, string) {
	var q journal.Query
	if len(args) == 0 {
		return q, "name what to look for, e.g. process_no=000000123"
	}
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return q, fmt.Sprintf("%q: want FIELD=VALUE", a)
		}
		q.Terms = append(q.Terms, journal.Term{Name: name, Value: value})
	}
	since, err := parseSince(sinceFlag, time.Now())
	if err != nil {
		return q, err.Error()
	}
	q.Since = since
	if all && path != "" {
		return q, "give -all or -config, not both"
	}
	return q, ""
}

// traced is what trace found in the journals of the instances searched.
type traced struct {
	found    []journal.Entry
	files    int
	lines    int64
	failed   bool // a journal could not be searched (or is off)
	searched []string
	usage    string // a term no instance's journal knows
}

// searchInstances searches the journal of each config for q, the
// receiver's and the sender's of its instance; the events in time order.
// Exit code 2 when a config does not load or a term names no field.
func searchInstances(configs []host.Instance, q journal.Query, stderr io.Writer) (traced, int) {
	var tr traced
	env := saveEnv()
	for _, ic := range configs {
		env.restore()
		cfg, ok := loadConfig(ic.Path, stderr)
		if !ok {
			return tr, 2
		}
		ic = host.Instance{Name: cfg.Instance, Path: cfg.Path}
		if bad := unknownFields(cfg, q.Terms); bad != "" {
			tr.usage = bad
			return tr, 2
		}
		dir := cfg.Journal.Dir
		if dir == "" {
			fmt.Fprintf(stderr, "spoolgate trace: %s: %s\n", ic.Label(), cfg.JournalOff())
			tr.failed = true
			continue
		}
		key, err := journal.ReadKey(dir)
		if err != nil && !errors.Is(err, iofs.ErrNotExist) {
			fmt.Fprintln(stderr, "spoolgate trace:", err)
			tr.failed = true
		}
		iq := q
		iq.Key = key
		iq.Prefixes = []string{journal.Prefix("receiver", ic.Name), journal.Prefix("sender", ic.Name)}
		res, err := journal.Search(dir, iq)
		if err != nil {
			fmt.Fprintln(stderr, "spoolgate trace:", err)
			tr.failed = true
			continue
		}
		for _, p := range res.Problems {
			fmt.Fprintf(stderr, "spoolgate trace: warning: %s\n", p)
		}
		for i := range res.Entries {
			if res.Entries[i].Instance == "" {
				res.Entries[i].Instance = ic.Name
			}
		}
		tr.found = append(tr.found, res.Entries...)
		tr.files += res.Files
		tr.lines += res.Lines
		tr.searched = append(tr.searched, dir)
	}
	sort.SliceStable(tr.found, func(i, j int) bool { return tr.found[i].Time.Before(tr.found[j].Time) })
	return tr, 0
}

// print writes the events one a line and a summary line under them.
func (tr *traced) print(w io.Writer, since time.Time, instances bool) {
	for i := range tr.found {
		printEntry(w, &tr.found[i], instances)
	}
	from := "everything kept"
	if !since.IsZero() {
		from = "since " + since.Format("2006-01-02 15:04")
	}
	events := "events"
	if len(tr.found) == 1 {
		events = "event"
	}
	fmt.Fprintf(w, "-- %d %s; %d journal files, %d lines, %s in %s\n", len(tr.found), events, tr.files, tr.lines, from, strings.Join(tr.searched, ", "))
	if len(tr.found) == 0 && !since.IsZero() {
		fmt.Fprintln(w, "-- -since 0 searches all the journal keeps")
	}
}

// parseSince reads -since: a duration back from now (conf.ParseDuration:
// 7d, 36h), a local date or date and time, or 0 for everything.
func parseSince(s string, now time.Time) (time.Time, error) {
	switch s {
	case "0", "0d", "0s", "all":
		return time.Time{}, nil
	}
	if d, err := conf.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("-since %q: a duration back from now, not a negative one", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("-since %q: want a duration like 7d or 36h, a date like 2026-12-01 (local time), or 0 for all", s)
}

// unknownFields returns why a term's field cannot be in the journal, or
// "": the journal holds the key fields (receiver.dedup_key's that the
// spec has, and process_no) and its attributes.
func unknownFields(cfg *conf.Config, terms []journal.Term) string {
	keys := journal.KeyFields(cfg.Receiver.DedupKey, cfg.Protocol.Request.Names())
	for _, k := range journal.KeyFields(cfg.Receiver.DedupKey, cfg.Protocol.Result.Names()) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	attrs := journal.Searchable()
	for _, t := range terms {
		if slices.Contains(keys, t.Name) || slices.Contains(attrs, t.Name) {
			continue
		}
		why := "is not in the journal"
		if cfg.Protocol.Request.Index(t.Name) >= 0 || cfg.Protocol.Result.Index(t.Name) >= 0 {
			why = "is a field of the spec, but the journal keeps only the key fields"
		}
		return fmt.Sprintf("%s %s: search a key field (%s) or one of %s", t.Name, why, strings.Join(keys, ", "), strings.Join(attrs, ", "))
	}
	return ""
}

// printEntry prints one event on one line:
//
//	2026-12-06 09:30:00.123  receiver  accepted   200  202612060930_request.txt:17  peer 10.1.2.3:51234  org_code=ORG01 process_no=000000123
func printEntry(w io.Writer, e *journal.Entry, instances bool) {
	var b strings.Builder
	b.WriteString(e.Time.Local().Format("2006-01-02 15:04:05.000"))
	if instances {
		inst := e.Instance
		if inst == "" {
			inst = "-"
		}
		fmt.Fprintf(&b, "  %-10s", inst)
	}
	code := "-"
	if e.Code != 0 {
		code = strconv.Itoa(e.Code)
	}
	fmt.Fprintf(&b, "  %-8s  %-11s  %3s", e.Daemon, e.Event, code)
	where := "-"
	switch {
	case e.File != "" && e.Line > 0:
		where = e.File + ":" + strconv.Itoa(e.Line)
	case e.File != "":
		where = e.File
	case e.Queue != "":
		where = "queue " + e.Queue
		if e.MsgID != "" {
			where += " id " + e.MsgID
		}
	}
	b.WriteString("  " + where)
	if e.Peer != "" {
		b.WriteString("  peer " + e.Peer)
	}
	if e.Remote != "" {
		b.WriteString("  remote " + e.Remote)
	}
	names := make([]string, 0, len(e.Keys))
	for n := range e.Keys {
		names = append(names, n)
	}
	sort.Strings(names)
	sep := "  "
	for _, n := range names {
		v := e.Keys[n]
		if strings.HasPrefix(v, journal.HashPrefix) {
			v = maskedShown
		}
		b.WriteString(sep + strings.TrimPrefix(n, journal.KeyPrefix) + "=" + v)
		sep = " "
	}
	if e.Attempts > 0 {
		b.WriteString("  attempts=" + strconv.Itoa(e.Attempts))
	}
	if e.LatencyMS > 0 {
		b.WriteString(" latency=" + strconv.FormatFloat(e.LatencyMS, 'f', 1, 64) + "ms")
	}
	if e.To != "" {
		b.WriteString("  to " + e.To)
	}
	if e.Reason != "" {
		b.WriteString("  reason: " + strconv.Quote(e.Reason))
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}
