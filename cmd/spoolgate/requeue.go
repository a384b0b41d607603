package main

import (
	"fmt"
	"io"

	"spoolgate/conf"
	"spoolgate/sender"
)

// runRequeue moves failed files back into the spool and removes their
// .reason files; safe while the sender runs.
//
//	spoolgate requeue [-config PATH] [-json] (-all | FILE…)
//
// FILE is a name in failed_dir or a path to one. With sender.source=amqp,
// -all moves the failed queue back to the results queue (statusamqp.go).
// Exit codes: 0 when every file was requeued, 1 when any was not, 2 for
// bad usage or a bad config.
func runRequeue(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("requeue", "[-config PATH] [-json] (-all | FILE...)",
		"Moves failed files back into the spool (and removes their .reason files); safe while the sender runs.\n"+
			"FILE is a name in sender.failed_dir or a path to one; -all requeues every failed file.\n"+
			"With sender.source=amqp: -all moves the messages of sender.amqp.failed_queue back to sender.amqp.queue.", stderr)
	path := configFlag(fs)
	all := fs.Bool("all", false, "requeue every failed file")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	switch {
	case !*all && fs.NArg() == 0:
		fmt.Fprintln(stderr, "spoolgate requeue: name the failed files to requeue (names in sender.failed_dir, or paths), or give -all for every one")
		fmt.Fprintln(stderr, "usage: spoolgate requeue [-config PATH] [-json] (-all | FILE...)")
		return 2
	case *all && fs.NArg() > 0:
		fmt.Fprintln(stderr, "spoolgate requeue: give -all or the failed files, not both")
		fmt.Fprintln(stderr, "usage: spoolgate requeue [-config PATH] [-json] (-all | FILE...)")
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 2
	}
	if cfg.Sender.Source == conf.SourceAMQP {
		return requeueAMQP(cfg, *all, *asJSON, stdout, stderr)
	}
	var res []sender.RequeueResult
	if *all {
		var err error
		if res, err = sender.RequeueAll(cfg.Sender); err != nil {
			fmt.Fprintln(stderr, "spoolgate requeue:", err)
			return 1
		}
	} else {
		res = sender.Requeue(cfg.Sender, fs.Args())
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
			if !*asJSON {
				fmt.Fprintln(stderr, "spoolgate requeue:", r.Err)
			}
		}
		if r.To != "" && !*asJSON {
			fmt.Fprintf(stdout, "requeued %s -> %s\n", r.Name, r.To)
		}
		out = append(out, o)
	}
	if *asJSON {
		if err := writeJSON(stdout, out); err != nil {
			return 1
		}
	} else if len(res) == 0 {
		fmt.Fprintln(stdout, "nothing to requeue")
	}
	return code
}
