package console

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"spoolgate/cmd/internal/host"
)

// Host is the overview of this host's instances (several partners on one
// host, docs/PROTOCOL.md §10) that both consoles show above their own
// state; a *host.View is one. Its methods are called from the handlers
// at once: they must be safe for concurrent use.
type Host interface {
	// Summaries returns the instances of the host's config directory.
	Summaries(now time.Time) []host.Summary
	// Self reports whether s is this daemon's instance.
	Self(s host.Summary) bool
}

// instanceRow is one instance of the overview, every value resolved.
type instanceRow struct {
	Name             string // "-" for the unnamed instance
	Self             bool
	Receiver, Sender daemonCell
	Backlog, Oldest  string
	Failed           string
	Error            string
}

// daemonCell is a daemon of the overview: its state, in a word of the
// page's language, and the link to its console.
type daemonCell struct {
	State, Label, Link string // State: up, not_ready, down, off, not_asked
}

// overview returns the rows of the host's instances for the page
// requested by r, or nil when there is no Host or the host has one
// instance (this one: its page is the overview).
func overview(h Host, r *http.Request, now time.Time, lang string, L map[string]string) []instanceRow {
	if h == nil {
		return nil
	}
	sums := h.Summaries(now)
	if len(sums) < 2 {
		return nil
	}
	rows := make([]instanceRow, 0, len(sums))
	for _, s := range sums {
		row := instanceRow{Name: s.Instance.Shown(), Self: h.Self(s), Backlog: "?", Oldest: "?", Failed: "?", Error: s.LastError}
		if s.ConfigError != "" {
			row.Error = s.ConfigError
			rows = append(rows, row)
			continue
		}
		row.Receiver = cell(s.Receiver, r, lang, L)
		row.Sender = cell(s.Sender, r, lang, L)
		if s.From != "" {
			row.Backlog, row.Oldest, row.Failed = strconv.Itoa(s.Backlog), "-", strconv.Itoa(s.Failed)
			if s.OldestPendingSeconds > 0 {
				row.Oldest = fmtAge(time.Duration(s.OldestPendingSeconds * float64(time.Second)))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func cell(d host.Daemon, r *http.Request, lang string, L map[string]string) daemonCell {
	state := map[string]string{"up": "up", "not ready": "not_ready", "down": "down", "off": "off", "not asked": "not_asked"}[d.State()]
	return daemonCell{State: state, Label: L["inst_"+state], Link: consoleLink(d.Admin, r, lang)}
}

// consoleLink is the URL of the console at the admin address admin, as
// the browser that asked r can reach it: an address on the loopback or
// on every address is the host the browser named (this console's, or the
// local end of an ssh -L), with admin's port; "" when admin is empty.
func consoleLink(admin string, r *http.Request, lang string) string {
	h, port, err := net.SplitHostPort(admin)
	if err != nil || admin == "" {
		return ""
	}
	if ip := net.ParseIP(h); h == "" || h == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		if rh, _, err := net.SplitHostPort(r.Host); err == nil {
			h = rh
		} else if r.Host != "" {
			h = r.Host
		}
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(h, port), Path: "/", RawQuery: "lang=" + url.QueryEscape(lang)}
	return u.String()
}
