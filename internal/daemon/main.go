package daemon

import (
	"context"
	"flag"
	"fmt"
	"os"

	"spoolgate/conf"
	"spoolgate/internal/logging"
)

// RunFunc is a daemon's body: it serves until ctx is done (the first
// SIGTERM or SIGINT), then drains and returns. path is the config file, for
// reload.
type RunFunc func(ctx context.Context, path string, cfg *conf.Config, lg *logging.Logging) error

// Main is the whole of a daemon's main: it parses -config, loads the
// config (and checks it with require, when not nil), builds the logger,
// traps signals, calls run, and returns the exit code for os.Exit: 2 for
// bad usage or a bad config (printed as one line on stderr), else
// Exit(run's error). name is the daemon's short name ("receiver"), which
// also names its log file.
func Main(name string, require func(*conf.Config) error, run RunFunc) int {
	prog := "spoolgate-" + name
	config := flag.String("config", "", "config file (default $"+conf.EnvConfig+", else "+conf.DefaultPath+")")
	flag.Parse()
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
