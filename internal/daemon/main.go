package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"spoolgate/conf"
	"spoolgate/internal/logging"
	"spoolgate/internal/version"
)

// RunFunc is a daemon's body: it serves until ctx is done (the first
// SIGTERM or SIGINT), then drains and returns. path is the config file, for
// reload.
type RunFunc func(ctx context.Context, path string, cfg *conf.Config, lg *logging.Logging) error

// ParseFlags parses args with fs, whose usage and errors it routes: -h or
// -help prints the usage on stdout and returns 0, false (exit 0: help
// asked for is not an error); a bad flag prints the error and the usage on
// stderr and returns 2, false; else it returns 0, true. fs's error
// handling becomes ContinueOnError.
func ParseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.Init(fs.Name(), flag.ContinueOnError)
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(buf.Bytes())
		return 0, false
	case err != nil:
		_, _ = stderr.Write(buf.Bytes())
		return 2, false
	}
	return 0, true
}

// Main is the whole of a daemon's main: it parses -config (-version
// prints the version and returns 0), loads the
// config (and checks it with require, when not nil), builds the logger,
// logs the config's warnings, traps signals, calls run, and returns the
// exit code for os.Exit: 2 for bad usage or a bad config (printed as one
// line on stderr), else Exit(run's error); -h prints the usage and exits 0.
// name is the daemon's short name ("receiver"), which also names its log
// file.
func Main(name string, require func(*conf.Config) error, run RunFunc) int {
	prog := "spoolgate-" + name
	config := flag.String("config", "", "config file (default $"+conf.EnvConfig+", else "+conf.DefaultPath+")")
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-config PATH]\n\nThe spoolgate %s daemon; it takes no arguments. "+
			"Exit codes: 0 after a drain, 2 for a bad configuration, 1 otherwise.\n\n", prog, name)
		flag.PrintDefaults()
	}
	if code, ok := ParseFlags(flag.CommandLine, os.Args[1:], os.Stdout, os.Stderr); !ok {
		return code
	}
	if *showVersion {
		version.Print(os.Stdout, prog)
		return 0
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", prog, flag.Arg(0))
		return 2
	}
	path := conf.Path(*config)
	cfg, err := conf.Load(path)
	if err == nil && require != nil {
		err = require(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return Exit(err)
	}
	lg, err := logging.New(cfg.Log, name, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, w := range cfg.Warnings {
		lg.Logger.Warn(w)
	}
	ctx, stop := Signals(context.Background(), lg.Logger)
	err = run(ctx, path, cfg, lg)
	stop()
	if err != nil {
		lg.Logger.Error(prog + ": " + err.Error())
		fmt.Fprintln(os.Stderr, prog+":", err)
	}
	_ = lg.Close()
	return Exit(err)
}
