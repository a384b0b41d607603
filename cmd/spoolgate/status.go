package main

import (
	"fmt"
	"io"
	"time"

	"spoolgate/sender"
)

// runStatus prints the state of the sender's spool, read from the
// directories alone: it is right whether the daemon runs or not.
//
//	spoolgate status [-config PATH] [-json]
//
// Exit codes: 0, 1 when a directory cannot be read, 2 for bad usage or a
// bad config.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "[-config PATH] [-json]",
		"Prints the sender's spool: pending files, the oldest pending age, in flight, failed. Takes no arguments.", stderr)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	st, err := sender.ReadStatus(cfg.Sender, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate status:", err)
		return 1
	}
	if *asJSON {
		if err := writeJSON(stdout, st); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
		return 0
	}
	oldest := "-"
	if st.OldestPendingSeconds > 0 {
		oldest = (time.Duration(st.OldestPendingSeconds) * time.Second).String()
	}
	fmt.Fprintf(stdout, "spool:          %s\n", st.SpoolDir)
	fmt.Fprintf(stdout, "pending:        %d\n", st.Pending)
	fmt.Fprintf(stdout, "oldest pending: %s\n", oldest)
	fmt.Fprintf(stdout, "in flight:      %d\n", st.InFlight)
	fmt.Fprintf(stdout, "failed:         %d  (%s)\n", st.Failed, st.FailedDir)
	return 0
}
