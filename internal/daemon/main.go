package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"spoolgate/internal/logging"
	"spoolgate/internal/version"
)

// Config is a daemon's loaded configuration as Main and the reload use
// it; *conf.Config is one. C is the type itself, so that ReloadDiff can
// compare two and Run receives it whole.
type Config[C any] interface {
	// LogOptions returns the options of the daemon's logger.
	LogOptions() logging.Options
	// Warnings returns lines that Main logs once the logger is built.
	Warnings() []string
	// ReloadDiff returns the keys of daemon ("receiver", "sender") whose
	// values differ from old's: live those it applies on reload, restart
	// those that take effect only after a restart.
	ReloadDiff(old C, daemon string) (live, restart []string)
}

// A Program is a daemon as Main runs it: its name, where it finds its
// config, how it loads it, and its body.
type Program[C Config[C]] struct {
	// Name is the daemon's short name ("receiver"): the binary is
	// spoolgate-Name, its log file Name.log, and ReloadDiff compares its
	// keys.
	Name string
	// Path returns the config file to load for the -config flag's value
	// ("" when not given); PathUsage is the flag's help.
	Path      func(flag string) string
	PathUsage string
	// Load reads and checks the config file at path, at start and on every
	// reload. An error that is a bad configuration (see Exit) exits 2.
	Load func(path string) (C, error)
	// Run is the daemon's body: it serves until ctx is done (the first
	// SIGTERM or SIGINT), then drains and returns.
	Run func(ctx context.Context, p *Process[C]) error
}

// A Process is a running daemon as Main hands it to Run: the config file,
// the config loaded from it at start, and the logging built from that.
type Process[C Config[C]] struct {
	Path    string
	Config  C
	Logging *logging.Logging
	Logger  *slog.Logger // Logging.Logger
	prog    *Program[C]
}

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
// prints the version and returns 0), loads the config with p.Load, builds
// the logger, logs the config's warnings, traps signals, calls p.Run, and
// returns the exit code for os.Exit: 2 for bad usage or a bad config
// (printed as one line on stderr), else Exit(Run's error); -h prints the
// usage and exits 0.
func Main[C Config[C]](p Program[C]) int {
	prog := "spoolgate-" + p.Name
	config := flag.String("config", "", p.PathUsage)
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-config PATH]\n\nThe spoolgate %s daemon; it takes no arguments. "+
			"Exit codes: 0 after a drain, 2 for a bad configuration, 1 otherwise.\n\n", prog, p.Name)
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
	path := p.Path(*config)
	cfg, err := p.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return Exit(err)
	}
	lg, err := logging.New(cfg.LogOptions(), p.Name, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, w := range cfg.Warnings() {
		lg.Logger.Warn(w)
	}
	ctx, stop := Signals(context.Background(), lg.Logger)
	err = p.Run(ctx, &Process[C]{Path: path, Config: cfg, Logging: lg, Logger: lg.Logger, prog: &p})
	stop()
	if err != nil {
		lg.Logger.Error(prog + ": " + err.Error())
		fmt.Fprintln(os.Stderr, prog+":", err)
	}
	_ = lg.Close()
	return Exit(err)
}
