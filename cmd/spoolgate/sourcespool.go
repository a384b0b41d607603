package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"spoolgate/cmd/internal/console"
	"spoolgate/conf"
	"spoolgate/sender"
)

// The spool as the sender's source in the operator's tool
// (sender.source=spool): files in the spool's directories.

// spoolTool is the tool's view of the spool.
type spoolTool struct{ cfg *conf.Config }

// status is spoolgate status with sender.source=spool: the running
// sender's state when it answers, else what the directories hold (when
// the sender is expected here); -age reads the directories too.
func (t spoolTool) status(r *statusRun) int {
	snd := r.ds[len(r.ds)-1]
	var st sender.Status
	if r.live == nil && snd.Expected {
		var err error
		if st, err = sender.ReadStatus(t.cfg.Sender, r.now); err != nil {
			fmt.Fprintln(r.stderr, "spoolgate status:", err)
			return 1
		}
	}
	var ages *ageTable
	if r.byAge {
		pending, failed, err := sender.Ages(t.cfg.Sender)
		if err != nil {
			fmt.Fprintln(r.stderr, "spoolgate status:", err)
			return 1
		}
		ages = newAgeTable(r.now, pending, failed)
	}
	if r.asJSON {
		return t.statusJSON(r, st, ages)
	}
	t.printStatus(r, st)
	if ages != nil {
		fmt.Fprintln(r.stdout)
		ages.print(r.stdout)
	}
	return 0
}

// statusJSON is status -json: the running sender's state, or what the
// directories hold (st).
func (t spoolTool) statusJSON(r *statusRun, st sender.Status, ages *ageTable) int {
	var out any
	if r.live != nil {
		out = struct {
			Source string `json:"source"`
			*console.SenderStatus
			Ages    *ageTable     `json:"ages,omitempty"`
			Daemons []daemonState `json:"daemons"`
			Down    []string      `json:"down"`
		}{"sender", r.live, ages, r.ds, downNames(r.ds)}
	} else {
		out = struct {
			Source     string `json:"source"`
			NotRunning string `json:"not_running"`
			sender.Status
			Ages    *ageTable     `json:"ages,omitempty"`
			Daemons []daemonState `json:"daemons"`
			Down    []string      `json:"down"`
		}{"directories", r.liveErr.Error(), st, ages, r.ds, downNames(r.ds)}
	}
	if err := writeJSON(r.stdout, out); err != nil {
		fmt.Fprintln(r.stderr, "spoolgate status:", err)
		return 1
	}
	return 0
}

// printStatus prints the daemons and the running sender's state, or what
// the directories hold (st).
func (t spoolTool) printStatus(r *statusRun, st sender.Status) {
	w, snd := r.stdout, r.ds[len(r.ds)-1]
	for _, d := range r.ds[:len(r.ds)-1] {
		printDaemon(w, d, t.cfg.Receiver.AdminListen)
	}
	switch {
	case r.live != nil:
		printLive(w, t.cfg, r.live, r.now)
	case !snd.Expected:
		fmt.Fprintf(w, "sender:         not running (%v); not expected on this host (sender.remote is empty, or -daemons)\n", r.liveErr)
	default:
		state := "not running"
		if snd.noAdmin {
			state = "not asked"
		}
		age := "-"
		if st.OldestPendingSeconds > 0 {
			age = (time.Duration(st.OldestPendingSeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "sender:         %s (%v); read from the directories\n", state, r.liveErr)
		fmt.Fprintf(w, "spool:          %s\n", st.SpoolDir)
		fmt.Fprintf(w, "pending:        %d\n", st.Pending)
		fmt.Fprintf(w, "oldest pending: %s\n", age)
		fmt.Fprintf(w, "in flight:      %d\n", st.InFlight)
		fmt.Fprintf(w, "failed:         %d  (%s)\n", st.Failed, st.FailedDir)
	}
}

// requeue moves the named failed files (or every one, all) back into the
// spool and removes their .reason files.
func (t spoolTool) requeue(names []string, all, asJSON bool, stdout, stderr io.Writer) int {
	var res []sender.RequeueResult
	if all {
		var err error
		if res, err = sender.RequeueAll(t.cfg.Sender); err != nil {
			fmt.Fprintln(stderr, "spoolgate requeue:", err)
			return 1
		}
	} else {
		res = sender.Requeue(t.cfg.Sender, names)
	}
	code := 0
	type result struct {
		File  string `json:"file"`
		To    string `json:"to,omitempty"`
		Error string `json:"error,omitempty"`
	}
	out := make([]result, 0, len(res))
	for _, r := range res {
		o := result{File: r.Name, To: r.To}
		if r.Err != nil {
			o.Error = r.Err.Error()
			code = 1
			if !asJSON {
				fmt.Fprintln(stderr, "spoolgate requeue:", r.Err)
			}
		}
		if r.To != "" && !asJSON {
			fmt.Fprintf(stdout, "requeued %s -> %s\n", r.Name, r.To)
		}
		out = append(out, o)
	}
	if asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return 1
		}
	} else if len(res) == 0 {
		fmt.Fprintln(stdout, "nothing to requeue")
	}
	return code
}

// failed lists the files in failed_dir with their reasons, then what to
// do with them.
func (t spoolTool) failed(asJSON bool, stdout, stderr io.Writer) int {
	files, err := sender.ReadFailed(t.cfg.Sender)
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate failed:", err)
		return 1
	}
	if asJSON {
		if files == nil {
			files = []sender.FailedFile{}
		}
		if err := writeJSON(stdout, files); err != nil {
			return 1
		}
		return 0
	}
	if len(files) == 0 {
		fmt.Fprintf(stdout, "no failed files in %s\n", t.cfg.Sender.FailedDir)
		return 0
	}
	for _, f := range files {
		code := "-"
		if f.Code != 0 {
			code = strconv.Itoa(f.Code)
		}
		fmt.Fprintf(stdout, "%s  code=%s  attempts=%d  %s  %s\n", f.Time.Local().Format("2006-01-02 15:04:05"), code, f.Attempts, strconv.Quote(f.Name), f.Reason)
	}
	fmt.Fprintf(stdout, "%d failed in %s:\n", len(files), t.cfg.Sender.FailedDir)
	printAdvice(stdout, files)
	return 0
}
