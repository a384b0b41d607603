// Package console is the web console of both daemons, served on their
// admin address: GET / is one HTML page (embedded assets, no external
// ones, readable without JavaScript, refreshed in place every few seconds
// by a little vanilla JS), GET /api/status the same data as JSON, and for
// the sender POST /api/requeue, allowed only with admin.token. Everything
// shown from the disk or the wire goes through html/template's escaping.
//
// It sits above both daemons, beside their mains (and the spoolgate tool,
// which reads /api/status as SenderStatus): it takes the small interfaces
// SenderState, FailedFiles and ReceiverState, which a running sender and
// receiver satisfy, and of the daemon packages uses only the values they
// return (sender.Snapshot, receiver.Status).
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"spoolgate/internal/daemon"
)

//go:embed assets
var assets embed.FS

// refreshEvery is how often the page refreshes itself and the history
// samples the counters.
const refreshEvery = 5 * time.Second

// page is the parsed template set; style and script are inlined into
// every page, so a page is one request.
var (
	page   = template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html"))
	style  = template.CSS(mustRead("assets/console.css"))
	script = template.JS(mustRead("assets/console.js"))
	// csp lets the page run its own script and nothing else: not an inline
	// handler, not a script from anywhere, even if something slipped past
	// the escaping.
	csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + scriptHash() + "'; connect-src 'self'; " +
		"img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

func scriptHash() string {
	h := sha256.Sum256([]byte(script))
	return base64.StdEncoding.EncodeToString(h[:])
}

func mustRead(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var funcs = template.FuncMap{
	"age":   fmtAge,
	"bytes": fmtBytes,
	"when":  fmtTime,
	"secs":  func(s float64) string { return fmtAge(time.Duration(s * float64(time.Second))) },
	"ms":    func(s float64) string { return strconv.FormatFloat(s*1000, 'f', 2, 64) + " ms" },
	"f1":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"add":   func(a, b int) int { return a + b },
	"ago":   func(t, now time.Time) string { return fmtAge(now.Sub(t)) },
	"chart": newChart,
	// errorIn is an errorView with the page's labels, for the "error"
	// template; remote says whether to name the error's remote.
	"errorIn": func(e errorView, l map[string]string, remote bool) map[string]any {
		return map[string]any{"E": e, "L": l, "Remote": remote}
	},
	"agoIn": func(age string, l map[string]string) string { return strings.ReplaceAll(l["ago_fmt"], "{age}", age) },
}

// chartData is what the chart template draws, every word resolved.
type chartData struct {
	Title, Ago, Now, PerMin string
	Max                     uint64
	Lines                   []chartLine
}

func newChart(title string, s Series, l map[string]string) chartData {
	c := chartData{Title: title, Ago: l["ago_60"], Now: l["now"], PerMin: l["per_min"], Max: s.Max, Lines: s.Lines}
	c.Lines = slices.Clone(s.Lines)
	for i := range c.Lines {
		c.Lines[i].Label = l["series_"+c.Lines[i].Name]
	}
	return c
}

// common is what every page has.
type common struct {
	Kind    string // "sender" or "receiver"
	Host    string
	Now     time.Time
	Lang    string
	L       map[string]string // labels in Lang
	Other   string            // the other language
	Style   template.CSS
	Script  template.JS
	Refresh int // seconds
	Flash   string
	// Instances is the overview of the host's instances (host.go); nil:
	// none to show.
	Instances []instanceRow
}

func newCommon(r *http.Request, daemonName string, now time.Time) common {
	lang := pickLang(r)
	other := "ko"
	if lang == "ko" {
		other = "en"
	}
	host, _ := os.Hostname()
	return common{Kind: daemonName, Host: host, Now: now, Lang: lang, L: labels[lang], Other: other,
		Style: style, Script: script, Refresh: int(refreshEvery / time.Second)}
}

// pickLang chooses "ko" or "en": ?lang= first, then the Accept-Language
// entry with the highest weight among them, else English.
func pickLang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "ko" || l == "en" {
		return l
	}
	best, bestQ := "en", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if (base == "ko" || base == "en") && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

// render executes the named template into a buffer first, so a failure
// is a clean 500, not half a page.
func render(w http.ResponseWriter, name string, data any, log *slog.Logger) {
	var b bytes.Buffer
	b.Grow(32 << 10)
	if err := page.ExecuteTemplate(&b, name, data); err != nil {
		log.Error("console: render", "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", csp)
	_, _ = w.Write(b.Bytes())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// History is a bounded ring of per-minute counts over the last hour, fed
// with cumulative counters (sampled every few seconds), so counting costs
// the hot path nothing. Its size never grows with uptime. It is safe for
// concurrent use.
type History struct {
	mu    sync.Mutex
	slots [historyMinutes + 1]sample // by minute % len
	base  sample                     // the first observation: the counts at start
}

const historyMinutes = 60

type sample struct {
	minute int64 // unix minute; 0: empty
	cum    [3]uint64
}

// Observe records the cumulative counters at now: the last observation
// of each minute is the one kept.
func (h *History) Observe(now time.Time, cum [3]uint64) {
	m := now.Unix() / 60
	h.mu.Lock()
	if h.base.minute == 0 {
		h.base = sample{minute: m, cum: cum}
	}
	h.slots[m%int64(len(h.slots))] = sample{minute: m, cum: cum}
	h.mu.Unlock()
}

// Series is the per-minute history: Values[s][i] is the count of series s
// in minute Start+i; the last minute is the current, partial one.
type Series struct {
	Start  time.Time   `json:"start"`
	Step   int         `json:"step_seconds"`
	Values [][]uint64  `json:"values"`
	Names  []string    `json:"names"`
	Max    uint64      `json:"-"`
	Lines  []chartLine `json:"-"`
}

// PerMinute returns the counts of the last 60 minutes up to now, named.
// A minute without a sample of its own counts 0 and its changes go to the
// next minute that has one.
func (h *History) PerMinute(now time.Time, names []string) Series {
	cur := now.Unix() / 60
	first := cur - historyMinutes + 1
	s := Series{Start: time.Unix(first*60, 0), Step: 60, Names: names, Values: make([][]uint64, len(names))}
	for i := range s.Values {
		s.Values[i] = make([]uint64, historyMinutes)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var prev *sample
	for m := first - 1; m >= cur-int64(len(h.slots))+1 && prev == nil; m-- { // the baseline
		if sl := &h.slots[m%int64(len(h.slots))]; sl.minute == m {
			prev = sl
		}
	}
	if prev == nil && h.base.minute >= first { // started within the hour
		prev = &h.base
	}
	for m := first; m <= cur; m++ {
		sl := &h.slots[m%int64(len(h.slots))]
		if sl.minute != m {
			continue
		}
		if prev != nil {
			for i := range names {
				if sl.cum[i] >= prev.cum[i] {
					s.Values[i][m-first] = sl.cum[i] - prev.cum[i]
				}
			}
		}
		prev = sl
	}
	s.chart()
	return s
}

// chartLine is one series drawn as an SVG polyline.
type chartLine struct {
	Name   string
	Label  string // in the page's language
	Points string // "x,y x,y …" numbers only; "" for a series of zeros (not drawn)
	Total  uint64
}

// Chart geometry of the SVG viewBox.
const (
	chartW = 600
	chartH = 120
)

func (s *Series) chart() {
	for _, v := range s.Values {
		for _, n := range v {
			s.Max = max(s.Max, n)
		}
	}
	top := max(s.Max, 1)
	for i, v := range s.Values {
		var b strings.Builder
		var total uint64
		for j, n := range v {
			total += n
			x := float64(j) * chartW / float64(historyMinutes-1)
			y := chartH - float64(n)*(chartH-4)/float64(top) - 2
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		}
		l := chartLine{Name: s.Names[i], Total: total}
		if total > 0 { // a series of zeros is no line along the floor (a red one for failures)
			l.Points = strings.TrimSpace(b.String())
		}
		s.Lines = append(s.Lines, l)
	}
}

// Run samples counts into h every few seconds until ctx is done.
func (h *History) Run(ctx context.Context, counts func() [3]uint64) {
	h.Observe(time.Now(), counts())
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Observe(now, counts())
		}
	}
}

func fmtAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func fmtBytes(n any) string {
	var v float64
	switch x := n.(type) {
	case int64:
		v = float64(x)
	case uint64:
		v = float64(x)
	case int:
		v = float64(x)
	}
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if v < 1024 || u == "TiB" {
			if u == "B" {
				return strconv.Itoa(int(v)) + " B"
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u
		}
		v /= 1024
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// Routes returns the admin routes of a console handler set.
func routes(index, status http.HandlerFunc, more ...daemon.Route) []daemon.Route {
	return append([]daemon.Route{
		{Pattern: "GET /{$}", Handler: index},
		{Pattern: "GET /api/status", Handler: status},
	}, more...)
}
