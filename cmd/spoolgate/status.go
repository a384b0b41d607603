package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/console"
	"spoolgate/sender"
)

// runStatus prints the state of the sender: it asks the running sender at
// sender.admin_listen (GET /api/status: circuit, in flight, last error,
// remotes) and, when none answers, reads the directories and says so.
//
//	spoolgate status [-config PATH] [-json] [-age]
//
// -age adds the pending and failed files by age, in qshape's buckets.
// Exit codes: 0, 1 when a directory cannot be read, 2 for bad usage or a
// bad config.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[-config PATH] [-json] [-age]",
		"Prints the sender's state: it asks the running sender at sender.admin_listen (circuit, remotes,\n"+
			"last error, pending, oldest pending age, in flight, failed) and, when none answers, reads the\n"+
			"directories and says so. -age adds the files by age (qshape buckets). Takes no arguments.", stderr)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
	byAge := fs.Bool("age", false, "also show the pending and failed files by age (qshape buckets: 5m, 10m, 20m, 40m, 80m, …)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 2
	}
	if cfg.Sender.Source == conf.SourceAMQP {
		return statusAMQP(cfg, *asJSON, *byAge, stdout, stderr)
	}
	now := time.Now()
	live, liveErr := askSender(cfg.Sender.AdminListen)
	var st sender.Status
	if live == nil {
		var err error
		if st, err = sender.ReadStatus(cfg.Sender, now); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
	}
	var ages *ageTable
	if *byAge {
		pending, failed, err := sender.Ages(cfg.Sender)
		if err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
		ages = newAgeTable(now, pending, failed)
	}
	if *asJSON {
		var out any
		if live != nil {
			out = struct {
				Source string `json:"source"`
				*console.SenderStatus
				Ages *ageTable `json:"ages,omitempty"`
			}{"sender", live, ages}
		} else {
			out = struct {
				Source     string `json:"source"`
				NotRunning string `json:"not_running"`
				sender.Status
				Ages *ageTable `json:"ages,omitempty"`
			}{"directories", liveErr.Error(), st, ages}
		}
		if err := writeJSON(stdout, out); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
		return 0
	}
	age := func(s float64) string {
		if s <= 0 {
			return "-"
		}
		return (time.Duration(s) * time.Second).String()
	}
	if live != nil {
		printLive(stdout, cfg, live, now)
	} else {
		fmt.Fprintf(stdout, "sender:         not running (%v); read from the directories\n", liveErr)
		fmt.Fprintf(stdout, "spool:          %s\n", st.SpoolDir)
		fmt.Fprintf(stdout, "pending:        %d\n", st.Pending)
		fmt.Fprintf(stdout, "oldest pending: %s\n", age(st.OldestPendingSeconds))
		fmt.Fprintf(stdout, "in flight:      %d\n", st.InFlight)
		fmt.Fprintf(stdout, "failed:         %d  (%s)\n", st.Failed, st.FailedDir)
	}
	if ages != nil {
		fmt.Fprintln(stdout)
		ages.print(stdout)
	}
	return 0
}

func printLive(w io.Writer, cfg *conf.Config, st *console.SenderStatus, now time.Time) {
	printLiveState(w, cfg, st, now)
	oldest := "-"
	if st.OldestPendingSeconds > 0 {
		oldest = (time.Duration(st.OldestPendingSeconds) * time.Second).String()
	}
	fmt.Fprintf(w, "spool:          %s\n", cfg.Sender.SpoolDir)
	fmt.Fprintf(w, "pending:        %d\n", st.Pending)
	fmt.Fprintf(w, "oldest pending: %s\n", oldest)
	fmt.Fprintf(w, "in flight:      %d\n", st.InFlight)
	printStuck(w, st.Stuck, now)
	fmt.Fprintf(w, "failed:         %d  (%s)\n", st.FailedCount, cfg.Sender.FailedDir)
	fmt.Fprintf(w, "since start:    %d delivered, %d rejected, %d failed\n", st.Delivered, st.Rejected, st.Failed)
}

// printStuck prints the stuck claims, if any: claims whose disposal failed
// (a full file system) and that the sender retries.
func printStuck(w io.Writer, stuck []sender.StuckClaim, now time.Time) {
	if len(stuck) == 0 {
		return
	}
	fmt.Fprintf(w, "stuck:          %d claim(s) that cannot be disposed of; the sender retries (free space, or fix what the error says)\n", len(stuck))
	for _, c := range stuck {
		fmt.Fprintf(w, "  %s  since %s (%s), %d tries: %s: %s\n", strconv.Quote(c.Name), c.Since.Local().Format("2006-01-02 15:04:05"),
			now.Sub(c.Since).Round(time.Second), c.Tries, c.What, c.Error)
	}
}

// printLiveState prints the running sender's readiness, circuit, remotes
// and last error.
func printLiveState(w io.Writer, cfg *conf.Config, st *console.SenderStatus, now time.Time) {
	state := "ready"
	if !st.Ready {
		state = "NOT READY: " + st.NotReady
	}
	fmt.Fprintf(w, "sender:         running (admin %s); %s\n", cfg.Sender.AdminListen, state)
	if st.Circuit.Open {
		fmt.Fprintf(w, "circuit:        OPEN since %s (%s): %s\n", st.Circuit.Since.Local().Format("2006-01-02 15:04:05"),
			now.Sub(st.Circuit.Since).Round(time.Second), st.Circuit.Cause)
	} else {
		fmt.Fprintf(w, "circuit:        closed\n")
	}
	for _, r := range st.Remotes {
		line := fmt.Sprintf("remote:         %s  %s", r.Addr, r.State)
		if r.LastError != "" {
			line += fmt.Sprintf("  (last error %s: %s)", r.ErrorAt.Local().Format("15:04:05"), r.LastError)
		}
		fmt.Fprintln(w, line)
	}
	if e := st.LastError; e != nil {
		fmt.Fprintf(w, "last error:     %s %s %s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Remote, e.Text)
	} else {
		fmt.Fprintf(w, "last error:     none\n")
	}
}

// askSender gets the running sender's /api/status at its admin address; a
// wildcard listen address is asked on the loopback. The error says why
// there is no answer.
func askSender(addr string) (*console.SenderStatus, error) {
	if addr == "" {
		return nil, errors.New("sender.admin_listen is empty")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := cl.Get("http://" + net.JoinHostPort(host, port) + "/api/status")
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return nil, fmt.Errorf("no answer at %s: %v", addr, oe.Err)
		}
		return nil, fmt.Errorf("no answer at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/api/status answered %s", addr, resp.Status)
	}
	var st console.SenderStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil || st.Daemon != "sender" {
		return nil, fmt.Errorf("%s is not a spoolgate-sender's admin address", addr)
	}
	return &st, nil
}

// ageBuckets are qshape's: each column counts the files younger than it
// and at least as old as the one before; the last holds the rest.
var ageBuckets = []int{5, 10, 20, 40, 80, 160, 320, 640, 1280}

// ageTable counts files by age in minutes.
type ageTable struct {
	Buckets []string `json:"buckets"` // "5", "10", …, "1280+": the upper bound in minutes
	Pending []int    `json:"pending"`
	Failed  []int    `json:"failed"`
	Total   struct {
		Pending int `json:"pending"`
		Failed  int `json:"failed"`
	} `json:"total"`
}

func newAgeTable(now time.Time, pending, failed []time.Time) *ageTable {
	t := &ageTable{}
	for _, b := range ageBuckets {
		t.Buckets = append(t.Buckets, fmt.Sprint(b))
	}
	t.Buckets = append(t.Buckets, fmt.Sprintf("%d+", ageBuckets[len(ageBuckets)-1]))
	count := func(ts []time.Time) []int {
		out := make([]int, len(t.Buckets))
		for _, at := range ts {
			m := now.Sub(at).Minutes()
			i := 0
			for i < len(ageBuckets) && m >= float64(ageBuckets[i]) {
				i++
			}
			out[i]++
		}
		return out
	}
	t.Pending, t.Failed = count(pending), count(failed)
	t.Total.Pending, t.Total.Failed = len(pending), len(failed)
	return t
}

func (t *ageTable) print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s", "minutes", "T")
	for _, h := range t.Buckets {
		fmt.Fprintf(&b, " %6s", h)
	}
	b.WriteString("\n")
	row := func(name string, total int, n []int) {
		fmt.Fprintf(&b, "%-8s %6d", name, total)
		for _, x := range n {
			fmt.Fprintf(&b, " %6d", x)
		}
		b.WriteString("\n")
	}
	row("pending", t.Total.Pending, t.Pending)
	row("failed", t.Total.Failed, t.Failed)
	_, _ = io.WriteString(w, b.String())
}
