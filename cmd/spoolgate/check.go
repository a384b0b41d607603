package main

import (
	"flag"
	"fmt"
	"io"

	"spoolgate/conf"
)

// newFlags returns a flag set that reports to stderr and does not exit.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("spoolgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "config file (default $SPOOLGATE_CONFIG, else /etc/spoolgate/conf.properties)")
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		return 2
	}
	p := conf.Path(*path)
	cfg, err := conf.Load(p)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok\n", p)
	if err := cfg.RequireSender(); err != nil {
		fmt.Fprintf(stdout, "note: the sender will not start until it is set: %v\n", err)
	}
	return 0
}
