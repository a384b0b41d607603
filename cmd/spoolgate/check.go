package main

import (
	"encoding/json"
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

// configFlag adds -config to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file (default $SPOOLGATE_CONFIG, else /etc/spoolgate/conf.properties)")
}

// loadConfig loads the config -config names; on error it prints the
// error's one line to stderr and returns false (the caller exits 2).
func loadConfig(path string, stderr io.Writer) (*conf.Config, bool) {
	cfg, err := conf.Load(conf.Path(path))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false
	}
	return cfg, true
}

// writeJSON writes v as indented JSON, for scripts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := configFlag(fs)
	if fs.Parse(args) != nil || fs.NArg() > 0 {
		return 2
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok\n", conf.Path(*path))
	if err := cfg.RequireSender(); err != nil {
		fmt.Fprintf(stdout, "note: the sender will not start until it is set: %v\n", err)
	}
	return 0
}
