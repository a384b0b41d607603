package console

import (
	"context"
	"crypto/subtle"
	"html"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"spoolgate/internal/daemon"
	"spoolgate/sender"
)

// Listing sizes of the sender page.
const (
	oldestShown = 50 // the oldest pending files
	failedPage  = 50 // failed files per page
)

// SenderState is what the sender's page shows of a running sender; a
// *sender.Sender is one. Its methods are called from the console's
// handlers and sampler at once: they must be safe for concurrent use.
type SenderState interface {
	// Snapshot returns the sender's state with at most oldest of the
	// oldest pending files.
	Snapshot(now time.Time, oldest int) sender.Snapshot
	// Counts returns the messages delivered, rejected and failed since
	// start, for the per-minute chart.
	Counts() [3]uint64
}

// FailedFiles lists a sender's failed files and puts them back to be sent
// again; a *sender.Sender is one, safe for concurrent use.
type FailedFiles interface {
	// Failed returns n failed files from off, newest first, and how many
	// there are.
	Failed(off, n int) ([]sender.FailedFile, int, error)
	// Requeue moves the named failed files back into the spool.
	Requeue(names []string) []sender.RequeueResult
	// RequeueAll moves every failed file back.
	RequeueAll() ([]sender.RequeueResult, error)
}

// Sender is the console of a sender. Create it with NewSender; its
// handlers are safe for concurrent use.
type Sender struct {
	s      SenderState
	failed FailedFiles
	token  string
	log    *slog.Logger
	hist   History
	cop    *http.CrossOriginProtection
	host   Host
}

// WithHost makes the page show the overview of the host's instances h,
// and returns c. Call it before serving.
func (c *Sender) WithHost(h Host) *Sender {
	c.host = h
	return c
}

// NewSender returns the console of a sender: s for its state, failed for
// its failed files (a running sender is both). token is admin.token: ""
// makes the console read-only. log defaults to a discard logger.
func NewSender(s SenderState, failed FailedFiles, token string, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{s: s, failed: failed, token: token, log: log, cop: http.NewCrossOriginProtection()}
}

// Run samples the counters for the per-minute chart until ctx is done.
func (c *Sender) Run(ctx context.Context) {
	c.hist.Run(ctx, c.s.Counts)
}

// Routes are the console's admin routes: GET /, GET /api/status and
// POST /api/requeue.
func (c *Sender) Routes() []daemon.Route {
	return routes(c.index, c.status, daemon.Route{Pattern: "POST /api/requeue", Handler: http.HandlerFunc(c.requeue)})
}

// SenderStatus is the JSON of the sender's GET /api/status (field names
// documented in the README's runbook).
type SenderStatus struct {
	Daemon string    `json:"daemon"`
	Time   time.Time `json:"time"`
	sender.Snapshot
	Oldest       []PendingFile `json:"oldest_pending"` // the Snapshot's, with names as FailedFile's
	FailedCount  int           `json:"failed"`
	FailedFiles  []FailedFile  `json:"failed_files"` // newest first, one page
	FailedOffset int           `json:"failed_offset"`
	FailedError  string        `json:"failed_error,omitempty"`
	History      Series        `json:"history"` // delivered, rejected, failed per minute
	Actions      bool          `json:"actions_enabled"`
}

// FailedFile is a failed file as the console shows it. Name is valid
// UTF-8: the file's name, or, when that is not UTF-8 (an EUC-KR name),
// the name with each byte that is not written \xNN; NameBase64 then holds
// the name's bytes, to requeue it by (file_base64=).
type FailedFile struct {
	sender.FailedFile
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64,omitempty"`
	raw        string // the name's bytes
}

// PendingFile is a pending file, its name as FailedFile's.
type PendingFile struct {
	sender.PendingFile
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64,omitempty"`
	raw        string
}

func (c *Sender) collect(r *http.Request, now time.Time) SenderStatus {
	off, _ := strconv.Atoi(r.URL.Query().Get("failed"))
	off = max(0, off)
	st := SenderStatus{Daemon: "sender", Time: now, Snapshot: c.s.Snapshot(now, oldestShown), FailedOffset: off, Actions: c.token != ""}
	st.Oldest = make([]PendingFile, len(st.Snapshot.Oldest))
	for i, f := range st.Snapshot.Oldest {
		st.Oldest[i] = PendingFile{PendingFile: f, Name: shownName(f.Name), NameBase64: nameBase64(f.Name), raw: f.Name}
	}
	st.Snapshot.Oldest = nil
	failed, n, err := c.failed.Failed(off, failedPage)
	st.FailedCount = n
	if err != nil {
		st.FailedError = err.Error()
	}
	st.FailedFiles = make([]FailedFile, len(failed))
	for i, f := range failed {
		st.FailedFiles[i] = FailedFile{FailedFile: f, Name: shownName(f.Name), NameBase64: nameBase64(f.Name), raw: f.Name}
	}
	c.hist.Observe(now, c.s.Counts()) // the current minute up to now
	st.History = c.hist.PerMinute(now, []string{"delivered", "rejected", "failed"})
	return st
}

func (c *Sender) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.collect(r, time.Now()))
}

// senderView is the sender page with every value resolved to what is
// shown: the template only copies (and escapes) fields of flat structs,
// which keeps a page well under a millisecond.
type senderView struct {
	common
	Ready                  bool
	NotReady               string // why not, unless the circuit card says it
	Open                   bool
	Since, SinceAgo, Cause string
	NextProbe              string // how soon the open circuit dials the remote next ("": not known)
	LastError              errorView
	Pending, InFlight      int
	OldestAge              string
	FailedCount            int
	FailedError            string
	Remotes                []remoteRow
	Chart                  chartData
	Oldest, Failed         int           // rows listed
	OldestRows, FailedRows template.HTML // the table rows, escaped by rows()
	Actions                bool
	From, To, Prev, Next   int // failed-list rows shown and the offsets of the pages around; -1: none
}

type remoteRow struct {
	Addr, State, Label, LastOK string
	Error                      errorView
}

// errorView is an error as the page shows it: once, and either as the
// current state (red) or as past, with its age (muted).
type errorView struct {
	Text    string // "": none
	At, Age string // when, in the page's one time format, and how long ago
	Remote  string
	Current bool // still so: the circuit is open, or its remote is down
	Circuit bool // the open circuit's cause, which its card shows: not repeated
}

// errorOf returns the view of an error of remote at at; current says
// whether it is still so; cause is the open circuit's ("" when closed).
func errorOf(at time.Time, remote, text string, current bool, cause string, now time.Time, lang string) errorView {
	if text == "" {
		return errorView{}
	}
	return errorView{Text: translateReason(text, lang), At: fmtTime(at), Age: fmtAge(now.Sub(at)), Remote: remote,
		Current: current, Circuit: cause != "" && strings.HasSuffix(text, cause)}
}

// rows writes the rows of the two long tables (up to 50 each) with
// html.EscapeString on every value: the same escaping html/template applies
// to text and to quoted attribute values, without its per-value reflection,
// which would cost most of the page's time budget.
func rows(v *senderView, st *SenderStatus, L map[string]string) {
	var b strings.Builder
	b.Grow(len(st.Oldest) * 120)
	for _, f := range st.Oldest {
		b.WriteString(`<tr class="pending"><td class="name">`)
		b.WriteString(nameHTML(f.raw))
		if f.Restored {
			b.WriteString(` <small>(` + html.EscapeString(L["restored"]) + `)</small>`)
		}
		b.WriteString(`</td><td>` + fmtAge(time.Duration(f.AgeSeconds*float64(time.Second))) + `</td><td>` + fmtBytes(f.Size) + "</td></tr>\n")
	}
	v.OldestRows = template.HTML(b.String())
	b.Reset()
	b.Grow(len(st.FailedFiles) * 300)
	label := html.EscapeString(L["requeue"])
	for _, f := range st.FailedFiles {
		name := html.EscapeString(f.Name) // shown: valid UTF-8
		code := "-"
		if f.Code != 0 {
			code = strconv.Itoa(f.Code)
		}
		b.WriteString(`<tr class="failed" data-name="` + name + `"><td class="name">` + nameHTML(f.raw) + `</td><td class="reason">` +
			html.EscapeString(translateReason(f.Reason, v.Lang)) + `</td><td>` + code + `</td><td>` + strconv.Itoa(f.Attempts) + `</td><td>` + fmtTime(f.Time) + `</td>`)
		if v.Actions {
			// The button carries the name's bytes: itself when UTF-8,
			// else base64 (the page's text of it is not the name).
			field, value := "file", name
			if f.NameBase64 != "" {
				field, value = "file_base64", f.NameBase64
			}
			b.WriteString(`<td><button form="act" type="submit" name="` + field + `" value="` + value + `" class="requeue">` + label + `</button></td>`)
		}
		b.WriteString("</tr>\n")
	}
	v.FailedRows = template.HTML(b.String())
}

func (c *Sender) index(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	st := c.collect(r, now)
	v := senderView{common: newCommon(r, "sender", now), Ready: st.Ready, Open: st.Circuit.Open,
		Cause: st.Circuit.Cause, Pending: st.Pending, InFlight: st.InFlight, OldestAge: "-", FailedCount: st.FailedCount,
		FailedError: st.FailedError, Actions: st.Actions, Prev: -1, Next: -1}
	L := v.L
	v.Instances = overview(c.host, r, now, v.Lang, L)
	cause := ""
	if st.Circuit.Open {
		// The circuit card says why it is not ready, once, with its time.
		v.Since, v.SinceAgo = fmtTime(st.Circuit.Since), fmtAge(now.Sub(st.Circuit.Since))
		if at := st.Circuit.NextProbe; !at.IsZero() {
			v.NextProbe = fmtAge(at.Sub(now))
		}
		cause = st.Circuit.Cause
	} else {
		v.NotReady = translateReason(st.NotReady, v.Lang)
	}
	down := map[string]bool{}
	for _, rm := range st.Remotes {
		down[rm.Addr] = rm.State == sender.RemoteDown
		v.Remotes = append(v.Remotes, remoteRow{Addr: rm.Addr, State: rm.State, Label: L["remote_"+rm.State], LastOK: fmtTime(rm.LastOK),
			Error: errorOf(rm.ErrorAt, rm.Addr, rm.LastError, rm.State == sender.RemoteDown, cause, now, v.Lang)})
	}
	if e := st.LastError; e != nil {
		v.LastError = errorOf(e.At, e.Remote, e.Text, st.Circuit.Open || down[e.Remote], cause, now, v.Lang)
	}
	if st.OldestPendingSeconds > 0 {
		v.OldestAge = fmtAge(time.Duration(st.OldestPendingSeconds * float64(time.Second)))
	}
	v.Chart = newChart(L["chart_sender"], st.History, L)
	v.Oldest, v.Failed = len(st.Oldest), len(st.FailedFiles)
	rows(&v, &st, L)
	v.From, v.To = st.FailedOffset+1, st.FailedOffset+len(st.FailedFiles)
	if st.FailedOffset > 0 {
		v.Prev = max(0, st.FailedOffset-failedPage)
	}
	if st.FailedOffset+failedPage < st.FailedCount {
		v.Next = st.FailedOffset + failedPage
	}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("requeued")); err == nil {
		v.Flash = strings.ReplaceAll(L["flash_requeued"], "{n}", strconv.Itoa(n))
		if e, _ := strconv.Atoi(q.Get("errors")); e > 0 {
			v.Flash += " " + strings.ReplaceAll(L["flash_errors"], "{n}", strconv.Itoa(e))
		}
	}
	render(w, "sender", &v, c.log)
}

// requeue moves failed files back into the spool: POST, same origin, with
// admin.token in the X-Spoolgate-Token header (or Authorization: Bearer)
// or the form field token. file=NAME or file_base64=BYTES (the name's
// bytes, for a name that is not UTF-8; both repeatable) or all=1. A form post
// is answered with a redirect to the page; a header-token client gets
// JSON.
func (c *Sender) requeue(w http.ResponseWriter, r *http.Request) {
	if c.token == "" {
		c.log.Warn("console: requeue refused: actions are off (admin.token not set)", "from", r.RemoteAddr)
		http.Error(w, "actions are off: set admin.token (e.g. SPOOLGATE_ADMIN_TOKEN in the environment file) and restart", http.StatusForbidden)
		return
	}
	if err := c.cop.Check(r); err != nil {
		c.log.Warn("console: requeue refused: cross-origin request", "from", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	given, viaHeader := r.Header.Get("X-Spoolgate-Token"), true
	if given == "" {
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			given = b
		} else {
			given, viaHeader = r.PostForm.Get("token"), false
		}
	}
	if subtle.ConstantTimeCompare([]byte(given), []byte(c.token)) != 1 {
		c.log.Warn("console: requeue refused: wrong or missing token", "from", r.RemoteAddr)
		http.Error(w, "wrong or missing token", http.StatusForbidden)
		return
	}
	var res []sender.RequeueResult
	names, err := requeueNames(r.PostForm["file"], r.PostForm["file_base64"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("all") != "" {
		var err error
		if res, err = c.failed.RequeueAll(); err != nil {
			c.log.Error("console: requeue all", "err", err, "from", r.RemoteAddr)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else if len(names) > 0 {
		res = c.failed.Requeue(names)
	} else {
		http.Error(w, "nothing to requeue: give file=NAME, file_base64=BYTES or all=1", http.StatusBadRequest)
		return
	}
	type result struct {
		File       string `json:"file"` // as FailedFile.Name
		FileBase64 string `json:"file_base64,omitempty"`
		To         string `json:"to,omitempty"`
		Error      string `json:"error,omitempty"`
	}
	out := make([]result, 0, len(res))
	var done []string
	errs := 0
	for _, x := range res {
		o := result{File: shownName(x.Name), FileBase64: nameBase64(x.Name), To: shownName(x.To)}
		if x.Err != nil {
			o.Error = shownName(x.Err.Error())
			errs++
			c.log.Warn("console: requeue failed", "file", x.Name, "err", x.Err, "from", r.RemoteAddr)
		} else {
			done = append(done, x.Name)
		}
		out = append(out, o)
	}
	c.log.Info("console: requeued failed files", "files", strings.Join(done, ","), "count", len(done), "errors", errs, "from", r.RemoteAddr)
	if viaHeader {
		writeJSON(w, http.StatusOK, out)
		return
	}
	v := url.Values{}
	v.Set("lang", pickLang(r))
	v.Set("requeued", strconv.Itoa(len(done)))
	if errs > 0 {
		v.Set("errors", strconv.Itoa(errs))
	}
	http.Redirect(w, r, "/?"+v.Encode(), http.StatusSeeOther)
}
