package main

import (
	"fmt"
	"io"

	"spoolgate/sender"
)

// runFailed lists the failed files with their reason, code, attempts and
// time, one per line, newest last (like postqueue -p for the dead ones).
//
//	spoolgate failed [-config PATH] [-json]
//
// Exit codes: 0, 1 when failed_dir cannot be read, 2 for bad usage or a
// bad config.
func runFailed(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("failed", "[-config PATH] [-json]",
		"Lists the failed files in sender.failed_dir with their reason, code, attempts and time, one per\n"+
			"line, newest last, then what to do with them: 'spoolgate requeue -all' only when every one ran out\n"+
			"of retries; a file the remote rejected (400), one never sent (invalid, too large) or one that is not\n"+
			"a regular file fails again as it is. -json adds each file's class (retry, rejected, not_sent,\n"+
			"not_regular, unknown). Takes no arguments.", stderr)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate failed: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 2
	}
	return sourceOf(cfg).failed(*asJSON, stdout, stderr)
}

// printAdvice says, per class of failed files, what to do with them:
// 'requeue -all' only when every file may be delivered as it is (issue
// 21: it was suggested for files that fail again).
func printAdvice(w io.Writer, files []sender.FailedFile) {
	n := make(map[sender.FailClass]int)
	for _, f := range files {
		n[f.Class]++
	}
	if k := n[sender.FailRetry]; k == len(files) {
		fmt.Fprintf(w, "  %d ran out of retries (timeout, reset, 500, unreadable reply): once the remote answers again, 'spoolgate requeue -all' sends them again\n", k)
	} else if k > 0 {
		fmt.Fprintf(w, "  %d ran out of retries (timeout, reset, 500, unreadable reply): once the remote answers again, requeue them by name (spoolgate requeue NAME...); not with -all, which would requeue the others below too, and they fail again as they are\n", k)
	}
	for _, c := range []struct {
		class sender.FailClass
		text  string
	}{
		{sender.FailRejected, "rejected by the remote (400): as they are they are rejected again; fix the file or its producer, then requeue it by name"},
		{sender.FailNotSent, "never sent (invalid against protocol.result.*, or too large: the reason says which): as they are they fail again; fix the producer or the file (split one too large), or the spec, then requeue it by name"},
		{sender.FailNotRegular, "not a regular file (a symlink, pipe, socket or device): never sent nor requeued; fix the producer and remove it from failed_dir"},
		{sender.FailUnknown, "without a .reason file: look at them, and requeue by name those that should be sent"},
	} {
		if k := n[c.class]; k > 0 {
			fmt.Fprintf(w, "  %d %s\n", k, c.text)
		}
	}
}
