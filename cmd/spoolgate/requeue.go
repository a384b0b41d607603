package main

import (
	"fmt"
	"io"
)

// runRequeue moves failed files back into the spool and removes their
// .reason files; safe while the sender runs.
//
//	spoolgate requeue [-config PATH] [-json] (-all | FILE…)
//
// FILE is a name in failed_dir or a path to one. With sender.source=amqp,
// -all moves the failed queue back to the results queue (sourceamqp.go).
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
	return sourceOf(cfg).requeue(fs.Args(), *all, *asJSON, stdout, stderr)
}
