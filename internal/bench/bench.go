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
	KeepAlive    bool          // one connection per client, else one per message
	Payload      int           // payload bytes per message
	InvalidEvery int           // every Nth message is invalid (bad process_no); 0 never
	Timeout      time.Duration // per message: connect, write and reply
	// Base is added to every process_no so that runs against the same
	// receiver do not collide in its duplicate window.
	Base int
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
	if o.Clients < 1 || (o.Count < 1 && o.Duration <= 0) || o.Payload < 0 || o.Payload > 8000 {
		return Result{}, errors.New("bench: need clients >= 1, a count or a duration, payload 0..8000")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
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
	type local struct {
		lat   []time.Duration
		codes map[string]int
		errs  int
		first string
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
			c := client{o: o}
			defer c.close()
			for {
				i, ok := take()
				if !ok {
					return
				}
				t0 := time.Now()
				code, err := c.send(message(o, i))
				if err != nil {
					l.errs++
					if l.first == "" {
						l.first = err.Error()
					}
					continue
				}
				l.lat = append(l.lat, time.Since(t0))
				l.codes[code]++
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

// message builds message i of a run: valid under the default request spec,
// unless i is picked by InvalidEvery.
func message(o Options, i int) []byte {
	pno := fmt.Sprintf("%09d", (o.Base+i)%1_000_000_000)
	if o.InvalidEvery > 0 && (i+1)%o.InvalidEvery == 0 {
		pno = pno[:8] + "x"
	}
	now := time.Now().Format("20060102150405")
	body := "REQ|" + pno + "|" + now + "|BENCH|SV01|K-" + pno + "|" + strings.Repeat("p", o.Payload) + "|"
	out, _ := protocol.AppendFrame(nil, []byte(body))
	return out
}

// client sends messages one at a time, on one connection (keep-alive) or a
// new connection per message.
type client struct {
	o    Options
	conn net.Conn
	br   *bufio.Reader
}

func (c *client) send(msg []byte) (string, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.o.Addr, c.o.Timeout)
		if err != nil {
			return "", err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 256)
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.o.Timeout))
	line, err := func() ([]byte, error) {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, err
		}
		return c.br.ReadSlice('\n')
	}()
	if err != nil || !c.o.KeepAlive {
		c.close()
	}
	if err != nil {
		return "", err
	}
	code := "unreadable"
	if r, err := protocol.ParseReply(line); err == nil {
		code = fmt.Sprintf("%03d", r.Code)
	}
	return code, nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// ServeNull serves the reference: for every line received it answers a
// 200 reply echoing the line's process_no (when it has one) — no
// validation, no storage — so the cost of the gateway reads as a ratio. It
// returns when ctx is done or the listener fails.
func ServeNull(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	spec := protocol.DefaultRequestSpec()
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
			r := protocol.NewReader(br, protocol.MaxMessageBytes)
			for {
				line, err := r.ReadMessage()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						return
					}
					bw.Flush()
					return
				}
				bw.Write(protocol.AppendReply(bw.AvailableBuffer(), spec.ProcessNo(line), time.Now(), protocol.CodeOK))
				if br.Buffered() == 0 {
					if bw.Flush() != nil {
						return
					}
				}
			}
		}()
	}
}
