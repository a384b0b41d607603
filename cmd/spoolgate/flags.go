package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"spoolgate/conf"
	"spoolgate/internal/daemon"
)

// newFlags returns the flag set of a command. args is its synopsis after
// the command name ("[-config PATH] (-all | FILE...)") and doc what it does;
// -h prints both and the flags.
func newFlags(name, args, doc string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("spoolgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: spoolgate %s %s\n\n%s\n\nflags:\n", name, args, doc)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args: ok is false when the command must exit with
// code: 0 after -h (the usage is printed on stdout), 2 for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	return daemon.ParseFlags(fs, args, stdout, stderr)
}

// configFlag adds -config to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "config file (default $SPOOLGATE_CONFIG, from the environment or else from the environment file "+
		"the daemons read, /etc/default/spoolgate or /etc/sysconfig/spoolgate; else /etc/spoolgate/conf.properties)")
}

// loadConfig loads the config -config names (readConfig); it prints a
// warning about the environment file, and on error every problem, one a
// line, to stderr and returns false (the caller exits 2).
func loadConfig(path string, stderr io.Writer) (*conf.Config, bool) {
	cfg, warning, err := readConfig(path)
	if warning != "" {
		fmt.Fprintln(stderr, "warning: "+warning)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false
	}
	return cfg, true
}

// readConfig loads the config as the daemons do under systemd: the
// environment file's variables first (applyEnvFile: its SPOOLGATE_CONFIG
// names the file when neither -config nor the environment does, its
// SPOOLGATE_<KEY> override keys), then path, else $SPOOLGATE_CONFIG, else
// the default. A named instance's file (conf.Instance) is read without the
// environment file: its template units do not read it (instances.go).
// warning says why the environment file was not read.
func readConfig(path string) (cfg *conf.Config, warning string, err error) {
	if conf.Instance(conf.Path(path)) == "" {
		warning = applyEnvFile()
	}
	cfg, err = conf.Load(conf.Path(path))
	return cfg, warning, err
}

// writeJSON writes v as indented JSON, for scripts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
