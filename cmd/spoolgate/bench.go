package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"spoolgate/internal/bench"
)

// benchRun is one run of spoolgate bench: the load's options and the
// modes other than the load, from its flags.
type benchRun struct {
	o         bench.Options
	config    *string // -config: the dialect
	asJSON    *bool
	null      *string
	spool     *string
	files     *int
	probe     *string
	timeClaim *string
	idle      *int
	stdout    io.Writer
	stderr    io.Writer
}

// benchFlags declares the flags of spoolgate bench on fs into r.
func benchFlags(fs *flag.FlagSet, r *benchRun) {
	o := &r.o
	fs.StringVar(&o.Addr, "addr", "", "HOST:PORT of the receiver under test")
	r.config = fs.String("config", "", "config file whose dialect (protocol.*) the messages and replies are in, and -null's (default: the default dialect)")
	fs.IntVar(&o.Clients, "c", 16, "concurrent clients")
	fs.IntVar(&o.Count, "n", 10000, "messages in all (ignored with -d)")
	fs.DurationVar(&o.Duration, "d", 0, "run for this long instead of -n messages")
	fs.BoolVar(&o.KeepAlive, "keepalive", false, "one connection per client (default: one per message, or per window with -pipeline)")
	fs.IntVar(&o.Pipeline, "pipeline", 0, "write N messages per connection before reading their replies (0, 1: one at a time)")
	fs.IntVar(&o.Payload, "payload", 20, "payload bytes per message (0..8000)")
	fs.IntVar(&o.InvalidEvery, "invalid-every", 0, "make every Nth message invalid (0: none)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per message: connect, write and reply")
	fs.IntVar(&o.Base, "base", int(time.Now().UnixNano()/1000%900_000_000), "first process_no (default: from the clock, so runs do not collide in the duplicate window)")
	r.asJSON = fs.Bool("json", false, "print the result as JSON")
	r.null = fs.String("null", "", "serve the null reference on ADDR (answers 200 to every message, stores nothing) until interrupted")
	r.spool = fs.String("make-spool", "", "write -files single-line result files into DIR (oldest first by mtime) and exit")
	r.files = fs.Int("files", 1000, "with -make-spool: how many files")
	r.probe = fs.String("probe", "", "measure this machine for -d each (default 5s): the fsync rate of a file in DIR, then how long a sleeping goroutine is paused")
	r.timeClaim = fs.String("time-claim", "", "wait (at most -d, default 10m) until the sender claims the spool file SPOOL/NAME, then until its claim is gone; print how long that took (on stderr \"watching\" once it looks)")
	r.idle = fs.Int("idle", 0, "open this many connections to -addr that send nothing, hold them for -d (default 10s), print how many opened")
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", "-addr HOST:PORT [-config PATH] [-c N] [-n COUNT | -d DURATION] [-keepalive] [-pipeline N] [-json] | -null ADDR | -make-spool DIR | -probe DIR | -time-claim SPOOL/NAME",
		"Load generator: sends valid messages (or every Nth invalid) to a receiver and prints messages/s,\n"+
			"p50/p99/max latency and the reply codes, in the dialect of -config. -null serves the reference that\n"+
			"answers 200 and stores nothing; -make-spool writes result files; -probe measures this machine;\n"+
			"-time-claim times one file through the sender. Takes no arguments.", stderr)
	r := &benchRun{stdout: stdout, stderr: stderr}
	benchFlags(fs, r)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *r.config != "" {
		cfg, ok := loadConfig(*r.config, stderr)
		if !ok {
			return 2
		}
		r.o.Dialect = cfg.Protocol.Dialect
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case *r.null != "":
		return r.serveNull(ctx)
	case *r.spool != "":
		if err := bench.MakeSpool(*r.spool, *r.files, r.o.Base); err != nil {
			return r.fail(err)
		}
		fmt.Fprintf(stdout, "wrote %d files into %s\n", *r.files, *r.spool)
		return 0
	case *r.probe != "":
		res, err := bench.Probe(ctx, *r.probe, r.duration(5*time.Second))
		if err != nil {
			return r.fail(err)
		}
		printResult(stdout, res, *r.asJSON)
		return 0
	case *r.timeClaim != "":
		return r.runTimeClaim(ctx)
	case r.o.Addr == "":
		fmt.Fprintln(stderr, "spoolgate bench: -addr HOST:PORT (or -null ADDR, -probe DIR) is required")
		return 2
	case *r.idle > 0:
		hold, cancel := context.WithTimeout(ctx, r.duration(10*time.Second))
		defer cancel()
		n, _ := bench.HoldIdle(hold, r.o.Addr, *r.idle)
		fmt.Fprintf(stdout, "held %d idle connections\n", n)
		return 0
	}
	return r.load(ctx)
}

// duration returns -d, or def when it is not set.
func (r *benchRun) duration(def time.Duration) time.Duration {
	if r.o.Duration > 0 {
		return r.o.Duration
	}
	return def
}

// fail prints err and returns exit code 1.
func (r *benchRun) fail(err error) int {
	fmt.Fprintf(r.stderr, "spoolgate bench: %v\n", err)
	return 1
}

// serveNull is -null: the null reference until ctx is done.
func (r *benchRun) serveNull(ctx context.Context) int {
	ln, err := net.Listen("tcp", *r.null)
	if err != nil {
		return r.fail(err)
	}
	fmt.Fprintf(r.stdout, "null reference listening on %s\n", ln.Addr())
	if err := bench.ServeNull(ctx, ln, r.o.Dialect); err != nil {
		return r.fail(err)
	}
	return 0
}

// runTimeClaim is -time-claim.
func (r *benchRun) runTimeClaim(ctx context.Context) int {
	wait, cancel := context.WithTimeout(ctx, r.duration(10*time.Minute))
	defer cancel()
	dir, name := filepath.Dir(*r.timeClaim), filepath.Base(*r.timeClaim)
	c, err := bench.TimeClaim(wait, dir, name, time.Millisecond, func() {
		fmt.Fprintf(r.stderr, "watching %s\n", filepath.Join(dir, ".inflight", name))
	})
	if err != nil {
		fmt.Fprintf(r.stderr, "spoolgate bench: time %s: %v\n", *r.timeClaim, err)
		return 1
	}
	printResult(r.stdout, c, *r.asJSON)
	return 0
}

// load runs the load and prints what it measured.
func (r *benchRun) load(ctx context.Context) int {
	if r.o.Duration > 0 {
		r.o.Count = 0
	}
	res, err := bench.Run(ctx, r.o)
	if err != nil {
		fmt.Fprintln(r.stderr, err)
		return 2
	}
	printResult(r.stdout, res, *r.asJSON)
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// printResult writes r as indented JSON, or as its String for a terminal.
func printResult(w io.Writer, r fmt.Stringer, asJSON bool) {
	if !asJSON {
		fmt.Fprintln(w, r)
		return
	}
	_ = writeJSON(w, r)
}
