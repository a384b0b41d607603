package main

import (
	"fmt"
	"io"
	"strconv"

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
			"line, newest last. Takes no arguments.", stderr)
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
	files, err := sender.ReadFailed(cfg.Sender)
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate failed:", err)
		return 1
	}
	if *asJSON {
		if files == nil {
			files = []sender.FailedFile{}
		}
		if err := writeJSON(stdout, files); err != nil {
			return 1
		}
		return 0
	}
	if len(files) == 0 {
		fmt.Fprintf(stdout, "no failed files in %s\n", cfg.Sender.FailedDir)
		return 0
	}
	for _, f := range files {
		code := "-"
		if f.Code != 0 {
			code = strconv.Itoa(f.Code)
		}
		fmt.Fprintf(stdout, "%s  code=%s  attempts=%d  %s  %s\n", f.Time.Local().Format("2006-01-02 15:04:05"), code, f.Attempts, strconv.Quote(f.Name), f.Reason)
	}
	fmt.Fprintf(stdout, "%d failed in %s; 'spoolgate requeue -all' sends them again\n", len(files), cfg.Sender.FailedDir)
	return 0
}
