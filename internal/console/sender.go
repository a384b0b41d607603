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

// Sender is the console of a sender. Create it with NewSender; its
// handlers are safe for concurrent use.
type Sender struct {
	s     *sender.Sender
	token string
	log   *slog.Logger
	hist  History
	cop   *http.CrossOriginProtection
}

// NewSender returns the console of s. token is admin.token: "" makes the
// console read-only. log defaults to a discard logger.
func NewSender(s *sender.Sender, token string, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{s: s, token: token, log: log, cop: http.NewCrossOriginProtection()}
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
	FailedCount  int                 `json:"failed"`
	FailedFiles  []sender.FailedFile `json:"failed_files"` // newest first, one page
	FailedOffset int                 `json:"failed_offset"`
	FailedError  string              `json:"failed_error,omitempty"`
	History      Series              `json:"history"` // delivered, rejected, failed per minute
	Actions      bool                `json:"actions_enabled"`
}

func (c *Sender) collect(r *http.Request, now time.Time) SenderStatus {
	off, _ := strconv.Atoi(r.URL.Query().Get("failed"))
	off = max(0, off)
	st := SenderStatus{Daemon: "sender", Time: now, Snapshot: c.s.Snapshot(now, oldestShown), FailedOffset: off, Actions: c.token != ""}
	var err error
	st.FailedFiles, st.FailedCount, err = c.s.Failed(off, failedPage)
	if err != nil {
		st.FailedError = err.Error()
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
	NotReady               string
	Open                   bool
	Since, SinceAgo, Cause string
	LastError              string
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

type remoteRow struct{ Addr, State, Label, LastOK, LastError string }

// rows writes the rows of the two long tables (up to 50 each) with
// html.EscapeString on every value: the same escaping html/template applies
// to text and to quoted attribute values, without its per-value reflection,
// which would cost most of the page's time budget.
func rows(v *senderView, st *SenderStatus, L map[string]string) {
	var b strings.Builder
	b.Grow(len(st.Oldest) * 120)
	for _, f := range st.Oldest {
		b.WriteString(`<tr class="pending"><td class="name">`)
		b.WriteString(html.EscapeString(f.Name))
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
		name := html.EscapeString(f.Name)
		code := "-"
		if f.Code != 0 {
			code = strconv.Itoa(f.Code)
		}
		b.WriteString(`<tr class="failed" data-name="` + name + `"><td class="name">` + name + `</td><td class="reason">` +
			html.EscapeString(f.Reason) + `</td><td>` + code + `</td><td>` + strconv.Itoa(f.Attempts) + `</td><td>` + fmtTime(f.Time) + `</td>`)
		if v.Actions {
			b.WriteString(`<td><button form="act" type="submit" name="file" value="` + name + `" class="requeue">` + label + `</button></td>`)
		}
		b.WriteString("</tr>\n")
	}
	v.FailedRows = template.HTML(b.String())
}

func (c *Sender) index(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	st := c.collect(r, now)
	v := senderView{common: newCommon(r, "sender", now), Ready: st.Ready, NotReady: st.NotReady, Open: st.Circuit.Open,
		Cause: st.Circuit.Cause, Pending: st.Pending, InFlight: st.InFlight, OldestAge: "-", FailedCount: st.FailedCount,
		FailedError: st.FailedError, Actions: st.Actions, Prev: -1, Next: -1}
	L := v.L
	if st.Circuit.Open {
		v.Since, v.SinceAgo = fmtTime(st.Circuit.Since), fmtAge(now.Sub(st.Circuit.Since))
	}
	if e := st.LastError; e != nil {
		v.LastError = fmtTime(e.At) + " " + e.Remote + " " + e.Text
	}
	if st.OldestPendingSeconds > 0 {
		v.OldestAge = fmtAge(time.Duration(st.OldestPendingSeconds * float64(time.Second)))
	}
	for _, rm := range st.Remotes {
		row := remoteRow{Addr: rm.Addr, State: rm.State, Label: L["remote_"+rm.State], LastOK: fmtTime(rm.LastOK)}
		if rm.LastError != "" {
			row.LastError = fmtTime(rm.ErrorAt) + " " + rm.LastError
		}
		v.Remotes = append(v.Remotes, row)
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
// or the form field token. file=NAME (repeatable) or all=1. A form post
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
	names := r.PostForm["file"]
	if r.PostForm.Get("all") != "" {
		var err error
		if res, err = c.s.RequeueAll(); err != nil {
			c.log.Error("console: requeue all", "err", err, "from", r.RemoteAddr)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else if len(names) > 0 {
		res = c.s.Requeue(names)
	} else {
		http.Error(w, "nothing to requeue: give file=NAME or all=1", http.StatusBadRequest)
		return
	}
	type result struct {
		File  string `json:"file"`
		To    string `json:"to,omitempty"`
		Error string `json:"error,omitempty"`
	}
	out := make([]result, 0, len(res))
	var done []string
	errs := 0
	for _, x := range res {
		o := result{File: x.Name, To: x.To}
		if x.Err != nil {
			o.Error = x.Err.Error()
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
