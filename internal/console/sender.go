package console

import (
	"context"
	"crypto/subtle"
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

type senderPage struct {
	common
	SenderStatus
	Prev, Next int // failed-list offsets; -1: none
}

func (c *Sender) index(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	p := senderPage{common: newCommon(r, "sender", now), SenderStatus: c.collect(r, now), Prev: -1, Next: -1}
	if p.FailedOffset > 0 {
		p.Prev = max(0, p.FailedOffset-failedPage)
	}
	if p.FailedOffset+failedPage < p.FailedCount {
		p.Next = p.FailedOffset + failedPage
	}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("requeued")); err == nil {
		p.Flash = strings.ReplaceAll(p.L["flash_requeued"], "{n}", strconv.Itoa(n))
		if e, _ := strconv.Atoi(q.Get("errors")); e > 0 {
			p.Flash += " " + strings.ReplaceAll(p.L["flash_errors"], "{n}", strconv.Itoa(e))
		}
	}
	render(w, "sender", p, c.log)
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
