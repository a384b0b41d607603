// Package bench is the load generator behind `spoolgate bench` and the null
// reference server it measures the gateway against.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"spoolgate/protocol"
)

// Options says what load to generate.
type Options struct {
	Addr         string        // host:port of the server under test
	Clients      int           // concurrent clients
	Count        int           // messages in all; 0 with Duration set means until Duration
	Duration     time.Duration // stop sending after this long (0: until Count)
	KeepAlive    bool          // one connection per client, else one per message (or window)
	Payload      int           // payload bytes per message
	InvalidEvery int           // every Nth message is invalid (bad process_no); 0 never
	Timeout      time.Duration // per message (per window when pipelining): connect, write and reply
	// Base is added to every process_no so that runs against the same
	// receiver do not collide in its duplicate window.
	Base int
	// Pipeline is how many messages a client writes on its connection
	// before it reads their replies (a window; the replies are read while
	// the window is written); 0 or 1 sends one message at a time. Without
	// KeepAlive each window has a connection of its own.
	Pipeline int
	// Dialect is the wire the messages are sent in and the replies read
	// in; nil means protocol.DefaultDialect().
	Dialect *protocol.Dialect
}

// Result is what a run measured.
type Result struct {
	Messages   int            `json:"messages"` // replies received
	Errors     int            `json:"errors"`   // messages without a reply
	FirstError string         `json:"first_error,omitempty"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"messages_per_second"`
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
	Codes      map[string]int `json:"codes"`
}

// String formats the result for a terminal.
func (r Result) String() string {
	codes := make([]string, 0, len(r.Codes))
	for c, n := range r.Codes {
		codes = append(codes, fmt.Sprintf("%s=%d", c, n))
	}
	slices.Sort(codes)
	s := fmt.Sprintf("messages %d in %.2fs: %.0f msg/s\nlatency p50 %v p90 %v p99 %v max %v\ncodes %s errors %d",
		r.Messages, r.Seconds, r.PerSecond, r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), strings.Join(codes, " "), r.Errors)
	if r.FirstError != "" {
		s += "\nfirst error: " + r.FirstError
	}
	return s
}

// Run generates the load and returns what it measured. It returns an error
// only for bad options; failed messages are counted in Result.Errors.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Clients < 1 || (o.Count < 1 && o.Duration <= 0) || o.Payload < 0 || o.Payload > 8000 || o.Pipeline < 0 {
		return Result{}, errors.New("bench: need clients >= 1, a count or a duration, payload 0..8000, pipeline >= 0")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	gen, err := newGenerator(o)
	if err != nil {
		return Result{}, err
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var next atomic.Int64
	take := func() (int, bool) {
		if ctx.Err() != nil {
			return 0, false
		}
		i := int(next.Add(1)) - 1
		return i, o.Count <= 0 || i < o.Count
	}
	// takeWindow reserves up to n consecutive messages at once, so that
	// the windows of two clients never interleave: the first and how many
	// (0: stop).
	takeWindow := func(n int) (int, int) {
		if ctx.Err() != nil {
			return 0, 0
		}
		first := int(next.Add(int64(n))) - n
		if o.Count > 0 {
			n = min(n, o.Count-first)
		}
		return first, max(n, 0)
	}
	locals := make([]local, o.Clients)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &locals[w]
			l.codes = map[string]int{}
			c := client{o: o, gen: gen}
			defer c.close()
			if o.Pipeline > 1 {
				c.pipeline(takeWindow, l.add)
				return
			}
			for {
				i, ok := take()
				if !ok {
					return
				}
				t0 := time.Now()
				code, err := c.send(gen.append(nil, i, time.Now().Format("20060102150405")))
				l.add(code, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := Result{Codes: map[string]int{}, Seconds: elapsed.Seconds()}
	var lat []time.Duration
	for _, l := range locals {
		lat = append(lat, l.lat...)
		r.Errors += l.errs
		if r.FirstError == "" {
			r.FirstError = l.first
		}
		for c, n := range l.codes {
			r.Codes[c] += n
		}
	}
	slices.Sort(lat)
	r.Messages = len(lat)
	if r.Seconds > 0 {
		r.PerSecond = float64(r.Messages) / r.Seconds
	}
	if len(lat) > 0 {
		pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	}
	return r, nil
}

// local is what one client measured.
type local struct {
	lat   []time.Duration
	codes map[string]int
	errs  int
	first string
}

// add records one message: its reply code and latency, or its error.
func (l *local) add(code string, lat time.Duration, err error) {
	if err != nil {
		l.errs++
		if l.first == "" {
			l.first = err.Error()
		}
		return
	}
	l.lat = append(l.lat, lat)
	l.codes[code]++
}

// client sends messages one at a time, on one connection (keep-alive) or a
// new connection per message.
type client struct {
	o    Options
	gen  *generator
	conn net.Conn
	rd   protocol.MessageReader
}

func (c *client) send(msg []byte) (string, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.o.Addr, c.o.Timeout)
		if err != nil {
			return "", err
		}
		c.conn, c.rd = conn, c.gen.d.NewReader(bufio.NewReaderSize(conn, 256), protocol.MaxMessageBytes)
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.o.Timeout))
	line, err := func() ([]byte, error) {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, err
		}
		return c.rd.ReadMessage()
	}()
	if err != nil || !c.o.KeepAlive {
		c.close()
	}
	if err != nil {
		return "", err
	}
	return c.gen.code(line), nil
}

// pipeline sends windows of up to o.Pipeline consecutive messages until
// take says stop: it writes a window in one go from a second goroutine while it
// reads the window's replies, so that neither side's socket buffer can
// hold up the other, and records each message's latency from the start of
// its window's write. The messages of a window that got no reply are
// counted as errors and the connection is dropped.
func (c *client) pipeline(take func(n int) (int, int), add func(string, time.Duration, error)) {
	var buf []byte
	for {
		first, n := take(c.o.Pipeline)
		if n == 0 {
			return
		}
		buf = buf[:0]
		stamp := time.Now().Format("20060102150405")
		for i := first; i < first+n; i++ {
			buf = c.gen.append(buf, i, stamp)
		}
		got, err := c.window(buf, n, add)
		for ; got < n; got++ {
			add("", 0, err)
		}
		if err != nil || !c.o.KeepAlive {
			c.close()
		}
	}
}

// window writes buf (n messages) and reads n replies; it returns how many
// replies it read and the error that stopped it.
func (c *client) window(buf []byte, n int, add func(string, time.Duration, error)) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.o.Addr, c.o.Timeout)
		if err != nil {
			return 0, err
		}
		c.conn, c.rd = conn, c.gen.d.NewReader(bufio.NewReaderSize(conn, 64<<10), protocol.MaxMessageBytes)
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.o.Timeout))
	t0 := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := c.conn.Write(buf)
		werr <- err
	}()
	got := 0
	var err error
	for ; got < n; got++ {
		var line []byte
		if line, err = c.rd.ReadMessage(); err != nil {
			break
		}
		add(c.gen.code(line), time.Since(t0), nil)
	}
	if err != nil {
		c.conn.Close() // ends the write too
	}
	if e := <-werr; err == nil && e != nil {
		err = e
	}
	return got, err
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// ServeNull serves the reference: for every message received, framed in
// d (nil: protocol.DefaultDialect()), it answers an ok reply in d echoing
// the message's process_no (when it has one) — no validation, no storage —
// so the cost of the gateway reads as a ratio. It returns when ctx is done
// or the listener fails.
func ServeNull(ctx context.Context, ln net.Listener, d *protocol.Dialect) error {
	if d == nil {
		d = protocol.DefaultDialect()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			br, bw := bufio.NewReader(conn), bufio.NewWriter(conn)
			r := d.NewReader(br, protocol.MaxMessageBytes)
			for {
				line, err := r.ReadMessage()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						return
					}
					bw.Flush()
					return
				}
				bw.Write(d.AppendReply(bw.AvailableBuffer(), line, protocol.CodeOK, time.Now()))
				if br.Buffered() == 0 {
					if bw.Flush() != nil {
						return
					}
				}
			}
		}()
	}
}
