package sender

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// maxIdle is how long an idle kept-alive connection may wait for reuse;
// older ones are closed rather than risk the remote's idle timeout. With
// the heartbeat on, its echoes keep a connection (client.maxIdle).
const maxIdle = 30 * time.Second

// replyBuf is the read buffer of a connection: the replies to a send
// window of about 80 lines in one read.
const replyBuf = 4096

// conn is one connection to the remote.
type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	rd     protocol.MessageReader // the dialect's framing of replies over br
	addr   string
	born   time.Time // when it was dialled
	idle   time.Time // when it went back to the pool
	reused bool      // it carried a message before
	read   int64     // bytes read from the remote
}

// countingReader counts what the remote sent on a connection (see
// closedUnread), and notes when it last sent anything (see
// Sender.quietTimeout).
type countingReader struct {
	cn    *conn
	heard *atomic.Int64 // the client's: unix ns of the last byte from the remote
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.cn.nc.Read(p)
	if n > 0 {
		r.cn.read += int64(n)
		r.heard.Store(time.Now().UnixNano())
	}
	return n, err
}

// client connects to the remote (the first reachable of its addresses),
// keeps idle connections for reuse, and trips the circuit when no address
// can be reached. It is safe for concurrent use.
type client struct {
	remotes   []string
	d         *protocol.Dialect // how replies are framed
	tls       *tlsutil.Client   // nil: plain TCP
	keepalive bool
	live      func() *tunables
	circuit   *circuit
	maxIdle   time.Duration // maxIdle, or longer than the heartbeat's period (heartbeat.go)

	heard atomic.Int64 // unix ns of the last byte read from the remote, any connection

	mu       sync.Mutex
	idle     []*conn
	open     int          // connections open, idle or in use
	cur      int          // index in remotes of the address in use
	switched time.Time    // when cur last moved off the primary
	notes    []remoteNote // per remote: the last dial outcome, for the console
}

// newClient returns the client of the remotes of c, speaking d, over TLS
// with tc (nil: plain TCP), whose failures to reach them trip cb; cb's
// probe dials with it.
func newClient(c conf.Sender, d *protocol.Dialect, tc *tlsutil.Client, live func() *tunables, cb *circuit) *client {
	cl := &client{
		remotes:   slices.Clone(c.Remote),
		d:         d,
		tls:       tc,
		keepalive: c.Keepalive,
		live:      live,
		circuit:   cb,
		maxIdle:   maxIdle,
	}
	cb.probe = cl.probe
	cb.heard = cl.heardAt
	return cl
}

// heardAt is when the remote last sent a byte, on any connection.
func (c *client) heardAt() time.Time { return time.Unix(0, c.heard.Load()) }

// newTLS loads sender.tls.*; nil when none is set (plain TCP).
func newTLS(ca, cert, key, serverName string) (*tlsutil.Client, error) {
	if ca == "" && cert == "" && key == "" && serverName == "" {
		return nil, nil
	}
	return tlsutil.NewClient(tlsutil.ClientFiles{CA: ca, Cert: cert, Key: key, ServerName: serverName})
}

// dialOne connects to addr within connect_timeout.
func (c *client) dialOne(ctx context.Context, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.live().connectTimeout)
	defer cancel()
	d := &net.Dialer{}
	var nc net.Conn
	var err error
	if c.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: c.tls.Config(addr)}).DialContext(ctx, "tcp", addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, tlsutil.AsRejected(err)
	}
	cn := &conn{nc: nc, addr: addr, born: time.Now()}
	cn.br = bufio.NewReaderSize(countingReader{cn: cn, heard: &c.heard}, replyBuf)
	cn.rd = c.d.NewReader(cn.br, protocol.MaxMessageBytes)
	return cn, nil
}

// dial tries the address in use, then the others in order; the primary is
// tried first again once the backup has been in use for retry_backoff_max.
func (c *client) dial(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	start := c.cur
	if start != 0 && time.Since(c.switched) > c.live().backoffMax {
		start, c.switched = 0, time.Now()
	}
	c.mu.Unlock()
	var errs []error
	for i := range c.remotes {
		idx := (start + i) % len(c.remotes)
		cn, err := c.dialOne(ctx, c.remotes[idx])
		if err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.note(idx, err)
			c.mu.Unlock()
		}
		if err == nil {
			c.mu.Lock()
			c.note(idx, nil)
			if idx != c.cur {
				c.cur = idx
				if idx != 0 {
					c.switched = time.Now()
				}
			}
			c.open++
			c.mu.Unlock()
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// get returns an idle connection or a new one. While no address can be
// reached it trips the circuit and waits for it to close: that counts
// against no file. It fails only with ctx's error.
func (c *client) get(ctx context.Context, onDialError func()) (*conn, error) {
	if cn := c.takeIdle(); cn != nil {
		return cn, nil
	}
	for {
		if err := c.circuit.waitSend(ctx); err != nil {
			return nil, err
		}
		cn, err := c.dial(ctx)
		if err == nil {
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c.unreachable(onDialError, err, false)
	}
}

// probe dials the remote once for the circuit; a success is kept for reuse.
// Over TLS it also waits a moment for an alert: with TLS 1.3 a remote
// that rejects our client certificate says so only after the dial.
func (c *client) probe(ctx context.Context) error {
	c.mu.Lock()
	c.cur = 0
	c.mu.Unlock()
	cn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	wait := min(c.live().connectTimeout, closeWait)
	if c.tls != nil {
		wait = min(c.live().connectTimeout, alertWait)
	}
	if err := cn.awaitAlert(wait); err != nil {
		c.discard(cn)
		return err
	}
	c.put(cn)
	return nil
}

// alertWait bounds how long a probe waits for a TLS alert after the dial;
// closeWait, over plain TCP, for the remote to close the connection it
// accepted (a balancer whose backends are down does so at once).
const (
	alertWait = time.Second
	closeWait = 100 * time.Millisecond
)

// awaitAlert reads for d: a TLS alert about our certificate, or a close,
// that arrives is returned; a timeout, the usual case, returns nil and
// leaves the connection usable (crypto/tls read timeouts are temporary).
func (cn *conn) awaitAlert(d time.Duration) error {
	if err := cn.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := cn.br.Peek(1)
	if err == nil {
		return nil // data before a request: roundTrip will see what it is
	}
	if isTimeout(err) {
		return nil
	}
	return tlsutil.AsRejected(err)
}

// current is the address new connections go to first.
func (c *client) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remotes[c.cur]
}

func (c *client) takeIdle() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := len(c.idle); n > 0; n = len(c.idle) {
		cn := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		if time.Since(cn.idle) < c.maxIdle {
			return cn
		}
		c.open--
		_ = cn.nc.Close()
	}
	return nil
}

// put returns a healthy connection after use: kept for reuse when
// keepalive is on and no more than workers connections would be open. A
// connection to a backup address is not kept past retry_backoff_max, so
// that new connections try the primary again.
func (c *client) put(cn *conn) {
	c.mu.Lock()
	t := c.live()
	backupExpired := cn.addr != c.remotes[0] && time.Since(cn.born) > t.backoffMax
	if c.keepalive && c.open <= t.workers && !backupExpired {
		cn.idle = time.Now()
		cn.reused = true
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	c.open--
	c.mu.Unlock()
	_ = cn.nc.Close()
}

// discard closes a connection after an error.
func (c *client) discard(cn *conn) {
	c.mu.Lock()
	c.open--
	c.mu.Unlock()
	_ = cn.nc.Close()
}

// trim closes idle connections while more than workers are open (after
// workers was lowered).
func (c *client) trim() {
	c.mu.Lock()
	var drop []*conn
	for n := len(c.idle); n > 0 && c.open > c.live().workers; n = len(c.idle) {
		drop = append(drop, c.idle[n-1])
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.open--
	}
	c.mu.Unlock()
	for _, cn := range drop {
		_ = cn.nc.Close()
	}
}

// closeIdle closes every idle connection.
func (c *client) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.open -= len(idle)
	c.mu.Unlock()
	for _, cn := range idle {
		_ = cn.nc.Close()
	}
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes one framed message and reads its reply within timeout;
// hard cancels it early (shutdown deadline).
func (cn *conn) roundTrip(hard context.Context, frame []byte, timeout time.Duration) ([]byte, error) {
	if err := cn.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(hard, func() { _ = cn.nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	if _, err := cn.nc.Write(frame); err != nil {
		return nil, err
	}
	return cn.readReply()
}

// readReply reads one reply in the dialect's framing: the reply without
// its LF or header, valid until the next read. It is the one place that
// reads a reply off the wire (roundTrip and the send window call it;
// replyResult says what it means): the stream ending before a whole reply
// is io.ErrUnexpectedEOF, a reply too long or a header that cannot be
// read a frame fault (protocol.FrameReason), a TLS alert rejecting our
// certificate a *tlsutil.RejectedError.
func (cn *conn) readReply() ([]byte, error) {
	line, err := cn.rd.ReadMessage()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		err = tlsutil.AsRejected(err)
	}
	return line, err
}

// replyBuffered reports whether a whole reply (or a fault of its framing)
// has been read from the connection and not yet taken: readReply would not
// wait.
func (cn *conn) replyBuffered() bool { return cn.rd.Ready() }
