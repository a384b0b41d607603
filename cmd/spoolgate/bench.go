package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"spoolgate/internal/bench"
)

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bench", "-addr HOST:PORT [-c N] [-n COUNT | -d DURATION] [-keepalive] [-pipeline N] [-json] | -null ADDR | -make-spool DIR | -probe DIR | -time-claim SPOOL/NAME",
		"Load generator: sends valid messages (or every Nth invalid) to a receiver and prints messages/s,\n"+
			"p50/p99/max latency and the reply codes. -null serves the reference that answers 200 and stores\n"+
			"nothing; -make-spool writes result files; -probe measures this machine; -time-claim times one\n"+
			"file through the sender. Takes no arguments.", stderr)
	var o bench.Options
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
	asJSON := fs.Bool("json", false, "print the result as JSON")
	null := fs.String("null", "", "serve the null reference on ADDR (answers 200 to every line, stores nothing) until interrupted")
	spool := fs.String("make-spool", "", "write -files single-line result files into DIR (oldest first by mtime) and exit")
	files := fs.Int("files", 1000, "with -make-spool: how many files")
	probe := fs.String("probe", "", "measure this machine for -d each (default 5s): the fsync rate of a file in DIR, then how long a sleeping goroutine is paused")
	timeClaim := fs.String("time-claim", "", "wait (at most -d, default 10m) until the sender claims the spool file SPOOL/NAME, then until its claim is gone; print how long that took (on stderr \"watching\" once it looks)")
	idle := fs.Int("idle", 0, "open this many connections to -addr that send nothing, hold them for -d (default 10s), print how many opened")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *null != "" {
		ln, err := net.Listen("tcp", *null)
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "null reference listening on %s\n", ln.Addr())
		if err := bench.ServeNull(ctx, ln); err != nil {
			fmt.Fprintf(stderr, "spoolgate bench: %v\n", err)
			return 1
		}
		return 0
	}
	if *spool != "" {
		if err := bench.MakeSpool(*spool, *files, o.Base); err != nil {
			fmt.Fprintf(stderr, "spoolgate bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %d files into %s\n", *files, *spool)
		return 0
	}
	if *probe != "" {
		d := o.Duration
		if d <= 0 {
			d = 5 * time.Second
		}
		r, err := bench.Probe(ctx, *probe, d)
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate bench: %v\n", err)
			return 1
		}
		printResult(stdout, r, *asJSON)
		return 0
	}
	if *timeClaim != "" {
		d := o.Duration
		if d <= 0 {
			d = 10 * time.Minute
		}
		wait, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		c, err := bench.TimeClaim(wait, filepath.Dir(*timeClaim), filepath.Base(*timeClaim), time.Millisecond, func() {
			fmt.Fprintf(stderr, "watching %s\n", filepath.Join(filepath.Dir(*timeClaim), ".inflight", filepath.Base(*timeClaim)))
		})
		if err != nil {
			fmt.Fprintf(stderr, "spoolgate bench: time %s: %v\n", *timeClaim, err)
			return 1
		}
		printResult(stdout, c, *asJSON)
		return 0
	}
	if o.Addr == "" {
		fmt.Fprintln(stderr, "spoolgate bench: -addr HOST:PORT (or -null ADDR, -probe DIR) is required")
		return 2
	}
	if *idle > 0 {
		d := o.Duration
		if d <= 0 {
			d = 10 * time.Second
		}
		hold, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		n, _ := bench.HoldIdle(hold, o.Addr, *idle)
		fmt.Fprintf(stdout, "held %d idle connections\n", n)
		return 0
	}
	if o.Duration > 0 {
		o.Count = 0
	}
	r, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	printResult(stdout, r, *asJSON)
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
