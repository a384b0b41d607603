package journal

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one journal line, parsed.
type Entry struct {
	Time     time.Time         `json:"time"`
	Daemon   string            `json:"daemon"`
	Event    string            `json:"event"`
	Instance string            `json:"instance,omitempty"`
	Code     int               `json:"code,omitempty"`
	Peer     string            `json:"peer,omitempty"`   // receiver
	Remote   string            `json:"remote,omitempty"` // sender
	Keys     map[string]string `json:"keys,omitempty"`   // key fields; masked ones as HashPrefix + hex
	File     string            `json:"file,omitempty"`
	Line     int               `json:"line,omitempty"`
	Queue    string            `json:"queue,omitempty"`
	MsgID    string            `json:"msgid,omitempty"`
	Attempts int               `json:"attempts,omitempty"`
	// LatencyMS is the latency in milliseconds.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	To        string  `json:"to,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	// Written is the file the receiver wrote the line to when File is
	// the name it was published under (a .part renamed; see Search).
	Written string `json:"written,omitempty"`
	// Source is the journal file and line this entry was read from.
	Source string `json:"source"`
}

// errLine is a line that is not a journal line (half a line a failed
// write left, say).
var errLine = errors.New("journal: not a journal line")

// ParseLine parses one journal line (without its LF).
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	col := 0
	for len(line) > 0 || col < 3 {
		var f []byte
		if i := bytes.IndexByte(line, '\t'); i >= 0 {
			f, line = line[:i], line[i+1:]
		} else {
			f, line = line, nil
		}
		switch col {
		case 0:
			t, err := time.Parse(TimeLayout, string(f))
			if err != nil {
				return e, errLine
			}
			e.Time = t
		case 1:
			e.Daemon = string(f)
		case 2:
			e.Event = string(f)
			if e.Daemon == "" || e.Event == "" {
				return e, errLine
			}
		default:
			name, v, ok := bytes.Cut(f, []byte{'='})
			if !ok {
				return e, errLine
			}
			if err := e.set(string(name), unescape(v)); err != nil {
				return e, err
			}
		}
		col++
	}
	return e, nil
}

func (e *Entry) set(name, v string) error {
	var err error
	num := func() int {
		n, aerr := strconv.Atoi(v)
		if aerr != nil {
			err = errLine
		}
		return n
	}
	switch name {
	case "inst":
		e.Instance = v
	case "code":
		e.Code = num()
	case "peer":
		e.Peer = v
	case "remote":
		e.Remote = v
	case "file":
		e.File = v
	case "line":
		e.Line = num()
	case "queue":
		e.Queue = v
	case "msgid":
		e.MsgID = v
	case "attempts":
		e.Attempts = num()
	case "latency":
		f, perr := strconv.ParseFloat(strings.TrimSuffix(v, "ms"), 64)
		if perr != nil {
			return errLine
		}
		e.LatencyMS = f
	case "to":
		e.To = v
	case "reason":
		e.Reason = v
	default:
		if e.Keys == nil {
			e.Keys = make(map[string]string, 2)
		}
		e.Keys[name] = v
	}
	return err
}

// Attr returns the value of attribute or key field name as written ("" when
// the line has none), for matching.
func (e *Entry) Attr(name string) (string, bool) {
	switch name {
	case "time":
		return e.Time.Format(TimeLayout), true
	case "daemon":
		return e.Daemon, true
	case "event":
		return e.Event, true
	case "inst":
		return e.Instance, e.Instance != ""
	case "code":
		return strconv.Itoa(e.Code), e.Code != 0
	case "peer":
		return e.Peer, e.Peer != ""
	case "remote":
		return e.Remote, e.Remote != ""
	case "file":
		return e.File, e.File != ""
	case "line":
		return strconv.Itoa(e.Line), e.Line != 0
	case "queue":
		return e.Queue, e.Queue != ""
	case "msgid":
		return e.MsgID, e.MsgID != ""
	case "attempts":
		return strconv.Itoa(e.Attempts), e.Attempts != 0
	case "to":
		return e.To, e.To != ""
	case "reason":
		return e.Reason, e.Reason != ""
	}
	if v, ok := e.Keys[name]; ok {
		return v, true
	}
	v, ok := e.Keys[KeyPrefix+name]
	return v, ok
}

// unescape undoes appendEscaped.
func unescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			out = append(out, c)
			continue
		}
		i++
		switch v[i] {
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 'x':
			if i+2 < len(v) {
				if b, err := strconv.ParseUint(string(v[i+1:i+3]), 16, 8); err == nil {
					out = append(out, byte(b))
					i += 2
					continue
				}
			}
			out = append(out, '\\', 'x')
		default:
			out = append(out, v[i])
		}
	}
	return string(out)
}

// Term is one FIELD=VALUE of a search: a key field or an attribute.
type Term struct{ Name, Value string }

// Query is what Search looks for: entries that match every term name,
// where a name given more than once matches any of its values. A key
// field matches its value as written, or the value's keyed hash (when Key
// is set) when the journal stored it masked. file matches the name a
// request file was written or published under.
type Query struct {
	Terms []Term
	// Since skips what happened before it (zero: nothing).
	Since time.Time
	// Key is the journal's key (ReadKey); nil: masked values are not
	// found.
	Key []byte
	// Prefixes picks the files (daemon, or daemon@instance); nil: all.
	Prefixes []string
	// Workers is how many files are read at once (default GOMAXPROCS).
	Workers int
}

// Result is what Search found.
type Result struct {
	Entries []Entry // in time order
	Files   int     // journal files read
	Lines   int64   // lines read
	// Problems are files or lines that could not be read (a gzip cut
	// short, half a line a failed write left); the rest was searched.
	Problems []string
}

type matcher struct {
	names   []string            // distinct term names, in order
	values  map[string][]string // name → values as the journal may hold them
	needles [][][]byte          // by name: what a matching line must contain (one of)
	// strictFile are the file= values as given: after resolve, an entry
	// matches when one names its file exactly (values holds their minutes
	// too, to find the lines written to a .part before resolve).
	strictFile []string
}

func newMatcher(q Query) *matcher {
	m := &matcher{values: map[string][]string{}}
	for _, t := range q.Terms {
		if _, ok := m.values[t.Name]; !ok {
			m.names = append(m.names, t.Name)
		}
		vs := []string{t.Value}
		if q.Key != nil && !attrNames[t.Name] {
			vs = append(vs, Hash(q.Key, t.Name, t.Value), Hash(q.Key, KeyPrefix+t.Name, t.Value))
		}
		m.values[t.Name] = append(m.values[t.Name], vs...)
	}
	if vs, ok := m.values["file"]; ok {
		// A request file is written as <yyyyMMddHHmm>_request.txt.part and
		// published under a name of its minute (the same without .part, or
		// the minute's next name): before resolve its lines are found by
		// the minute, then matched by the name they were published under.
		var all []string
		for _, v := range vs {
			v = filepath.Base(v)
			all = append(all, v)
			if p := minuteStamp(v); p != "" {
				all = append(all, p)
			}
		}
		m.values["file"], m.strictFile = all, vs
	}
	for _, n := range m.names {
		var ns [][]byte
		for _, v := range m.values[n] {
			ns = append(ns, appendEscaped(nil, v))
		}
		m.needles = append(m.needles, ns)
	}
	return m
}

// minuteStamp returns the yyyyMMddHHmm a request file's name starts
// with, or "".
func minuteStamp(name string) string {
	const n = len("200601021504")
	if len(name) <= n {
		return ""
	}
	for i := 0; i < n; i++ {
		if name[i] < '0' || name[i] > '9' {
			return ""
		}
	}
	return name[:n]
}

// rarest returns the term whose lines scan looks for: the one whose
// shortest needle is longest (a process_no rather than code=200).
func (m *matcher) rarest() int {
	best, bestLen := 0, -1
	for i, ns := range m.needles {
		short := -1
		for _, n := range ns {
			if short < 0 || len(n) < short {
				short = len(n)
			}
		}
		if short > bestLen {
			best, bestLen = i, short
		}
	}
	return best
}

// maybe reports whether line may match: it holds a needle of every name.
func (m *matcher) maybe(line []byte) bool {
	for _, ns := range m.needles {
		found := false
		for _, n := range ns {
			if bytes.Contains(line, n) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// match reports whether e matches every term; strict applies the file=
// values as given (after resolve), else the .part files of their minutes
// match too.
func (m *matcher) match(e *Entry, strict bool) bool {
	for _, n := range m.names {
		ok := false
		vs := m.values[n]
		if n == "file" && strict {
			vs = m.strictFile
		}
		for _, v := range vs {
			switch {
			case n == "file" && !strict && len(v) == len("200601021504"):
				ok = e.File == v || strings.HasPrefix(e.File, v) && strings.HasSuffix(e.File, ".part") // resolved later
			case n == "file":
				b := filepath.Base(v)
				ok = e.File == b || e.Written == b || e.To == b
			default:
				got, has := e.Attr(n)
				ok = has && got == v
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

var (
	published    = []byte(Published.String())
	publishedCol = []byte("\t" + Published.String() + "\t")
)

// eventIs reports whether line's third column is event.
func eventIs(line, event []byte) bool {
	i := bytes.IndexByte(line, '\t')
	if i < 0 {
		return false
	}
	line = line[i+1:]
	if i = bytes.IndexByte(line, '\t'); i < 0 {
		return false
	}
	line = line[i+1:]
	return bytes.HasPrefix(line, event) && (len(line) == len(event) || line[len(event)] == '\t')
}

// Search reads the journal files of dir (compressed or not) that may hold
// events from q.Since on, and returns the entries that match q, in time
// order (for the same time: the receiver first, then file order). A
// receiver line's file written as NAME.part is shown under the name it
// was published under (Entry.File; Entry.Written keeps the .part) when
// the journal holds that publication. Files are read in parallel; a file
// or line that cannot be read is a Problem, not an error. The error is
// for a query without terms and a directory that cannot be listed.
func Search(dir string, q Query) (Result, error) {
	if len(q.Terms) == 0 {
		return Result{}, errors.New("journal: search for nothing: name a field and its value")
	}
	files, err := searchFiles(dir, q)
	if err != nil {
		return Result{}, err
	}
	m := newMatcher(q)
	workers := q.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	parts := make([]filePart, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(files)) {
		wg.Go(func() {
			for i := range next {
				parts[i] = searchFile(files[i], m, q.Since)
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	res := Result{Files: len(files)}
	var published []Entry
	for _, p := range parts {
		res.Entries = append(res.Entries, p.entries...)
		published = append(published, p.published...)
		res.Lines += p.lines
		res.Problems = append(res.Problems, p.problems...)
	}
	resolve(res.Entries, published)
	// The published names are known now: a file= term may match more.
	if _, ok := m.values["file"]; ok {
		out := res.Entries[:0]
		for _, e := range res.Entries {
			if m.match(&e, true) {
				out = append(out, e)
			}
		}
		res.Entries = out
	}
	sort.SliceStable(res.Entries, func(i, j int) bool {
		a, b := &res.Entries[i], &res.Entries[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.Daemon == "receiver" && b.Daemon != "receiver"
	})
	return res, nil
}

// searchFiles returns the journal files of dir that Search reads for q:
// those of q.Prefixes (all when nil) that may hold events from q.Since on.
func searchFiles(dir string, q Query) ([]File, error) {
	keep := func(string) bool { return true }
	if q.Prefixes != nil {
		keep = func(p string) bool { return slices.Contains(q.Prefixes, p) }
	}
	files, err := Files(dir, keep)
	if err != nil || q.Since.IsZero() {
		return files, err
	}
	// A file holds its day's events, and a few of the day before written
	// just after midnight.
	from := midnight(q.Since).AddDate(0, 0, -1)
	i := 0
	for i < len(files) && files[i].Day.Before(from) {
		i++
	}
	return files[i:], nil
}

// filePart is what Search found in one file: the entries that match, a
// receiver's publications (to name the files written as .part), the lines
// read and the problems met.
type filePart struct {
	entries, published []Entry
	lines              int64
	problems           []string
}

// searchFile reads one journal file for the entries m matches from since
// on; at most three of its lines that are not journal lines are named.
func searchFile(f File, m *matcher, since time.Time) filePart {
	var p filePart
	receiver := f.Daemon() == "receiver"
	base := filepath.Base(f.Path)
	bad := 0
	needles := m.needles[m.rarest()]
	if receiver {
		needles = append(needles[:len(needles):len(needles)], publishedCol)
	}
	n, err := scan(f, needles, func(line []byte, no int64) {
		pub := receiver && eventIs(line, published)
		if !pub && !m.maybe(line) {
			return
		}
		e, err := ParseLine(line)
		if err != nil {
			bad++
			if bad <= 3 {
				p.problems = append(p.problems, fmt.Sprintf("%s:%d: not a journal line: %.60q", base, no, line))
			}
			return
		}
		if e.Time.Before(since) {
			return
		}
		e.Source = base + ":" + strconv.FormatInt(no, 10)
		if pub {
			p.published = append(p.published, e)
		}
		if e.Event != "published" && m.match(&e, false) {
			p.entries = append(p.entries, e)
		}
	})
	p.lines = n
	if err != nil {
		p.problems = append(p.problems, fmt.Sprintf("%s: %v (read up to line %d)", base, err, n))
	}
	return p
}

// resolve gives the receiver entries written to a .part file the name it
// was published under: the first publication of that file (same
// instance) at or after the entry. A .part published later again (a
// restart within the same minute) is the next one's.
func resolve(entries, published []Entry) {
	if len(published) == 0 {
		return
	}
	sort.SliceStable(published, func(i, j int) bool { return published[i].Time.Before(published[j].Time) })
	for i := range entries {
		e := &entries[i]
		if e.Daemon != "receiver" || !strings.HasSuffix(e.File, ".part") {
			continue
		}
		for _, p := range published {
			if p.File == e.File && p.Instance == e.Instance && !p.Time.Before(e.Time) && p.To != "" {
				e.Written, e.File = e.File, p.To
				break
			}
		}
	}
}

// scan reads f (gunzipping a .log.gz) in chunks of whole lines and calls
// fn, in file order, for each line that holds one of needles, with its
// number from 1; it returns how many lines f has. Looking for the needles
// in a whole chunk, rather than line by line, is what makes a search
// about as fast as gunzip.
func scan(f File, needles [][]byte, fn func(line []byte, no int64)) (int64, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	var r io.Reader = fh
	if f.Compressed {
		zr, err := gzip.NewReader(bufio.NewReaderSize(fh, 256<<10))
		if err != nil {
			return 0, err
		}
		defer zr.Close()
		r = zr
	}
	buf := make([]byte, 1<<20)
	var (
		lines  int64 // lines before the chunk
		have   int   // bytes in buf
		starts []int
	)
	for {
		n, rerr := io.ReadFull(r, buf[have:])
		have += n
		eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !eof {
			return lines, rerr
		}
		end := bytes.LastIndexByte(buf[:have], '\n') + 1
		if eof {
			if have == 0 {
				return lines, nil
			}
			end = have // a last line without its LF too
		}
		if end == 0 { // a line longer than the buffer
			buf = append(buf, make([]byte, len(buf))...)
			continue
		}
		chunk := buf[:end]
		starts = starts[:0]
		for _, nd := range needles {
			for off := 0; ; {
				i := bytes.Index(chunk[off:], nd)
				if i < 0 {
					break
				}
				p := off + i
				starts = append(starts, bytes.LastIndexByte(chunk[:p], '\n')+1)
				next := bytes.IndexByte(chunk[p:], '\n')
				if next < 0 {
					break
				}
				off = p + next + 1
			}
		}
		slices.Sort(starts)
		no, prev := lines, 0
		for k, st := range starts {
			if k > 0 && st == starts[k-1] {
				continue
			}
			no += int64(bytes.Count(chunk[prev:st], []byte{'\n'}))
			prev = st
			line := chunk[st:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			fn(line, no+1)
		}
		lines += int64(bytes.Count(chunk, []byte{'\n'}))
		if eof {
			if end > 0 && chunk[end-1] != '\n' {
				lines++
			}
			return lines, nil
		}
		have = copy(buf, buf[end:have])
	}
}

// Searchable returns the attribute names a Term may use besides the key
// fields, in line order.
func Searchable() []string {
	return []string{"daemon", "event", "inst", "code", "peer", "remote", "file", "line", "queue", "msgid", "attempts", "to", "reason"}
}
