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

// benchArgs are the flags of spoolgate bench: the load generator's
// options, and the modes that do something else instead.
type benchArgs struct {
	o                         bench.Options
	asJSON                    bool
	null, spool, probe, claim string
	files, idle               int
}

// benchFlags returns the flag set of spoolgate bench and what it fills.
func benchFlags(stderr io.Writer) (*flag.FlagSet, *benchArgs) {
	fs := newFlags("bench", "-addr HOST:PORT [-c N] [-n COUNT | -d DURATION] [-keepalive] [-pipeline N] [-json] | -null ADDR | -make-spool DIR | -probe DIR | -time-claim SPOOL/NAME",
		"Load generator: sends valid messages (or every Nth invalid) to a receiver and prints messages/s,\n"+
			"p50/p99/max latency and the reply codes. -null serves the reference that answers 200 and stores\n"+
			"nothing; -make-spool writes result files; -probe measures this machine; -time-claim times one\n"+
			"file through the sender. Takes no arguments.", stderr)
	a := &benchArgs{}
	o := &a.o
	fs.StringVar(&o.Addr, "addr", "", "HOST:PORT of the receiver under test")
	fs.IntVar(&o.Clients, "c", 16, "concurrent clients")
	fs.IntVar(&o.Count, "n", 10000, "messages in all (ignored with -d)")
	fs.DurationVar(&o.Duration, "d", 0, "run for this long instead of -n messages")
	fs.BoolVar(&o.KeepAlive, "keepalive", false, "one connection per client (default: one per message, or per window with -pipeline)")
	fs.IntVar(&o.Pipeline, "pipeline", 0, "write N messages per connection before reading their replies (0, 1: one at a time)")
	fs.IntVar(&o.Payload, "payload", 20, "payload bytes per message (0..8000)")
	fs.IntVar(&o.InvalidEvery, "invalid-every", 0, "make every Nth message invalid (0: none)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per message: connect, write and reply")
	fs.IntVar(&o.Base, "base", int(time.Now().UnixNano()/1000%900_000_000), "first process_no (default: from the clock, so runs do not collide in the duplicate window)")
	fs.BoolVar(&a.asJSON, "json", false, "print the result as JSON")
	fs.StringVar(&a.null, "null", "", "serve the null reference on ADDR (answers 200 to every line, stores nothing) until interrupted")
	fs.StringVar(&a.spool, "make-spool", "", "write -files single-line result files into DIR (oldest first by mtime) and exit")
	fs.IntVar(&a.files, "files", 1000, "with -make-spool: how many files")
	fs.StringVar(&a.probe, "probe", "", "measure this machine for -d each (default 5s): the fsync rate of a file in DIR, then how long a sleeping goroutine is paused")
	fs.StringVar(&a.claim, "time-claim", "", "wait (at most -d, default 10m) until the sender claims the spool file SPOOL/NAME, then until its claim is gone; print how long that took (on stderr \"watching\" once it looks)")
	fs.IntVar(&a.idle, "idle", 0, "open this many connections to -addr that send nothing, hold them for -d (default 10s), print how many opened")
	return fs, a
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs, a := benchFlags(stderr)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case a.null != "":
		err = benchNull(ctx, a.null, stdout)
	case a.spool != "":
		if err = bench.MakeSpool(a.spool, a.files, a.o.Base); err == nil {
			fmt.Fprintf(stdout, "wrote %d files into %s\n", a.files, a.spool)
		}
	case a.probe != "":
		var r bench.ProbeResult
		if r, err = bench.Probe(ctx, a.probe, orDefault(a.o.Duration, 5*time.Second)); err == nil {
			printResult(stdout, r, a.asJSON)
		}
	case a.claim != "":
		err = benchClaim(ctx, a, stdout, stderr)
	case a.o.Addr == "":
		fmt.Fprintln(stderr, "spoolgate bench: -addr HOST:PORT (or -null ADDR, -probe DIR) is required")
		return 2
	case a.idle > 0:
		hold, cancel := context.WithTimeout(ctx, orDefault(a.o.Duration, 10*time.Second))
		defer cancel()
		n, _ := bench.HoldIdle(hold, a.o.Addr, a.idle)
		fmt.Fprintf(stdout, "held %d idle connections\n", n)
	default:
		return benchLoad(ctx, a, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "spoolgate bench: %v\n", err)
		return 1
	}
	return 0
}

// orDefault returns d, or def when d is not positive (-d not given).
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// benchNull serves the null reference on addr until ctx is done.
func benchNull(ctx context.Context, addr string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "null reference listening on %s\n", ln.Addr())
	return bench.ServeNull(ctx, ln)
}

// benchClaim times the sender's claim of the spool file -time-claim names,
// waiting at most -d (default 10 minutes).
func benchClaim(ctx context.Context, a *benchArgs, stdout, stderr io.Writer) error {
	wait, cancel := context.WithTimeout(ctx, orDefault(a.o.Duration, 10*time.Minute))
	defer cancel()
	dir, name := filepath.Dir(a.claim), filepath.Base(a.claim)
	c, err := bench.TimeClaim(wait, dir, name, time.Millisecond, func() {
		fmt.Fprintf(stderr, "watching %s\n", filepath.Join(dir, ".inflight", name))
	})
	if err != nil {
		return fmt.Errorf("time %s: %w", a.claim, err)
	}
	printResult(stdout, c, a.asJSON)
	return nil
}

// benchLoad runs the load generator: exit 2 for bad options, 1 when a
// message failed.
func benchLoad(ctx context.Context, a *benchArgs, stdout, stderr io.Writer) int {
	o := a.o
	if o.Duration > 0 {
		o.Count = 0
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	printResult(stdout, r, a.asJSON)
	if r.Errors > 0 {
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
