package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"spoolgate/cmd/internal/console"
	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/sender"
)

// runStatus prints the state of the sender: it asks the running sender at
// sender.admin_listen (GET /api/status: circuit, in flight, last error,
// remotes) and, when none answers, reads the directories and says so. It
// asks the receiver at receiver.admin_listen whether it runs and is ready.
//
//	spoolgate status [-config PATH] [-daemons LIST] [-json] [-age]
//
// -age adds the pending and failed files by age, in qshape's buckets.
// Exit codes (statusUsage): 0 when every daemon expected here answers, 1
// when one does not (each named on stderr) or a directory or the broker
// cannot be read, 2 for bad usage or a bad config.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[-config PATH] [-daemons LIST] [-json] [-age] | -all [-json]", statusUsage, stderr)
	path := configFlag(fs)
	list := fs.String("daemons", "", "the daemons that run on this host: receiver, sender or receiver,sender (default: the receiver, and the sender when sender.remote is set)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	byAge := fs.Bool("age", false, "also show the pending and failed files by age (qshape buckets: 5m, 10m, 20m, 40m, 80m, …)")
	all := fs.Bool("all", false, "one row for every instance in the config directory ($"+conf.EnvConfigDir+", default "+conf.DefaultConfigDir+"): name, daemons, backlog, oldest, failed, last error")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *all {
		if *path != "" || *list != "" || *byAge {
			fmt.Fprintln(stderr, "spoolgate status: -all takes -json only (not -config, -daemons or -age)")
			return 2
		}
		return statusAll(*asJSON, stdout, stderr)
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 2
	}
	on := daemons{receiver: true, sender: cfg.RequireSender() == nil}
	if *list != "" {
		var err error
		if on, err = parseDaemons(*list); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 2
		}
	}
	now := time.Now()
	live, liveErr := askSender(cfg.Sender.AdminListen)
	ds := daemonStates(cfg, on, live, liveErr)
	code := sourceOf(cfg).status(&statusRun{ds: ds, live: live, liveErr: liveErr, now: now,
		asJSON: *asJSON, byAge: *byAge, stdout: stdout, stderr: stderr})
	if code == 2 {
		return code
	}
	for _, d := range ds {
		if d.down() {
			fmt.Fprintf(stderr, "spoolgate status: spoolgate-%s is not running: %s\n", d.Name, d.Error)
			code = 1
		}
	}
	return code
}

// statusUsage is the help of spoolgate status, exit codes included (the
// README's operator's tool section says the same).
const statusUsage = "Prints the sender's state: it asks the running sender at sender.admin_listen (circuit, remotes,\n" +
	"last error, pending, oldest pending age, in flight, stuck claims, failed) and, when none answers,\n" +
	"reads the directories and says so. It asks the receiver at receiver.admin_listen whether it runs\n" +
	"and is ready. -age adds the files by age (qshape buckets). Takes no arguments.\n\n" +
	"With -all: one row for every instance of the config directory (name, receiver, sender, backlog,\n" +
	"oldest pending, failed, last error), each daemon expected as without -daemons; exit 1 when a\n" +
	"daemon of any instance is down (each named on stderr), 2 when a config does not load.\n\n" +
	"Exit codes: 0 every daemon expected on this host (-daemons) answers, ready or not; 1 one does not\n" +
	"(each is named on stderr), or a directory or the broker cannot be read; 2 bad usage or config."

// daemonState is what status found of one daemon.
type daemonState struct {
	Name     string `json:"name"`     // receiver or sender
	Expected bool   `json:"expected"` // on this host (-daemons)
	Running  bool   `json:"running"`  // its admin address answered
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	Error    string `json:"error,omitempty"` // why it is not known to run
	noAdmin  bool   // its admin address is empty: whether it runs cannot be asked
}

// down reports an expected daemon that does not answer.
func (d daemonState) down() bool { return d.Expected && !d.Running && !d.noAdmin }

// daemonStates asks the receiver (when expected) and takes the sender's
// answer (live, or why none: liveErr).
func daemonStates(cfg *conf.Config, on daemons, live *console.SenderStatus, liveErr error) []daemonState {
	var ds []daemonState
	if on.receiver {
		d := daemonState{Name: "receiver", Expected: true}
		rs, err := askReceiver(cfg.Receiver.AdminListen)
		if err != nil {
			d.Error, d.noAdmin = err.Error(), errors.Is(err, errNoAdmin)
		} else {
			d.Running, d.Ready, d.NotReady = true, rs.Ready, rs.NotReady
		}
		ds = append(ds, d)
	}
	d := daemonState{Name: "sender", Expected: on.sender}
	if live != nil {
		d.Running, d.Ready, d.NotReady = true, live.Ready, live.NotReady
	} else {
		d.Error, d.noAdmin = liveErr.Error(), errors.Is(liveErr, errNoAdmin)
	}
	return append(ds, d)
}

// printDaemon prints the line of a daemon other than the sender (whose
// state printLiveState prints).
func printDaemon(w io.Writer, d daemonState, addr string) {
	label := d.Name + ":"
	switch {
	case d.Running && d.Ready:
		fmt.Fprintf(w, "%-15s running (admin %s); ready\n", label, addr)
	case d.Running:
		fmt.Fprintf(w, "%-15s running (admin %s); NOT READY: %s\n", label, addr, d.NotReady)
	case d.noAdmin:
		fmt.Fprintf(w, "%-15s not asked (%s)\n", label, d.Error)
	default:
		fmt.Fprintf(w, "%-15s not running (%s)\n", label, d.Error)
	}
}

// downNames lists the expected daemons that do not answer (never nil).
func downNames(ds []daemonState) []string {
	out := []string{}
	for _, d := range ds {
		if d.down() {
			out = append(out, d.Name)
		}
	}
	return out
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
		if at := st.Circuit.NextProbe; !at.IsZero() {
			fmt.Fprintf(w, "next probe:     %s (in %s)\n", at.Local().Format("15:04:05.0"), max(0, at.Sub(now)).Round(100*time.Millisecond))
		}
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

// errNoAdmin: a daemon's admin address is empty, so whether it runs
// cannot be asked.
var errNoAdmin = host.ErrNoAdmin

// askSender gets the running sender's /api/status at its admin address; a
// wildcard listen address is asked on the loopback. The error says why
// there is no answer.
func askSender(addr string) (*console.SenderStatus, error) {
	var st console.SenderStatus
	if err := askAdmin("sender", addr, &st, func() bool { return st.Daemon == "sender" }); err != nil {
		return nil, err
	}
	return &st, nil
}

// askReceiver gets the running receiver's /api/status (as askSender).
func askReceiver(addr string) (*console.ReceiverStatus, error) {
	var st console.ReceiverStatus
	if err := askAdmin("receiver", addr, &st, func() bool { return st.Daemon == "receiver" }); err != nil {
		return nil, err
	}
	return &st, nil
}

// askAdmin decodes the /api/status of the daemon at its admin address addr
// into v (host.AskStatus); is tells whether v is that daemon's.
func askAdmin(daemon, addr string, v any, is func() bool) error {
	return host.AskStatus(daemon, addr, v, is)
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
