package e2e

import (
	"bufio"
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"spoolgate/protocol"
)

// Action is what a Remote does with one message it has read. The zero
// Action answers nothing and goes on reading (a remote that never replies).
type Action struct {
	Wait      <-chan struct{} // if set, wait until it is closed (or the Remote stops) first: hold the message
	Delay     time.Duration   // then wait this long: the remote's processing time
	Code      int             // then reply with this code; 0: no reply
	ProcessNo string          // reply with this process_no instead of the message's
	Garbage   []byte          // write these bytes instead of a reply
	Close     bool            // then close the connection (a drop, or a stale keep-alive after a reply)
	Reset     bool            // then close the connection with a TCP reset
}

// Msg is a message a Remote has read, for its script.
type Msg struct {
	Conn int    // the connection's number, from 1 in the order accepted
	Line []byte // the message without its framing (its LF, or its header)

	d *protocol.Dialect
}

// ProcessNo returns the process_no a reply to the message echoes (in the
// Remote's dialect).
func (m Msg) ProcessNo() string {
	if m.d == nil {
		return string(protocol.DefaultDialect().ProcessNo(m.Line))
	}
	return string(m.d.ProcessNo(m.Line))
}

// Echo reports whether the message is the dialect's echo telegram.
func (m Msg) Echo() bool { return m.d != nil && m.d.IsEcho(m.Line) }

// Answer is the Action that replies code after no delay.
func Answer(code int) Action { return Action{Code: code} }

// Remote is a scriptable TCP server on 127.0.0.1 standing in for the
// receiver: it reads the messages of each connection in order (pipelined
// lines included) and does with each what its script says, then reads the
// next. It counts connections and messages. It speaks the default dialect
// unless RemoteOptions say otherwise. Its methods are safe for concurrent
// use; it stops when the test ends.
type Remote struct {
	ln         net.Listener
	raw        bool // read plain LF-terminated lines, not framed messages
	onePerRead bool // one message per read (StartOnePerReadRemote)
	script     func(Msg) Action
	d          *protocol.Dialect
	idle       time.Duration
	done       chan struct{} // closed by Stop

	mu            sync.Mutex
	read          []string // messages read, in arrival order, acted on or not
	got           []string // messages acted on (handed to the script), in order
	ok            []string // messages answered 200, in answer order
	conns         map[net.Conn]bool
	accepted      int
	open, maxOpen int // connections
	busy, maxBusy int // messages being acted on (script, wait, delay)
	maxAhead      int // most messages read and not yet acted on, on one connection
	stopped       bool
	wg            sync.WaitGroup
}

// StartRemote listens on a free loopback port and serves script (nil
// answers every message 200).
func StartRemote(t testing.TB, script func(Msg) Action) *Remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeRemote(t, ln, script)
}

// ListenRemote is StartRemote on addr, for a remote that must take a
// given address (a remote that comes back, a configured port).
func ListenRemote(t testing.TB, addr string, script func(Msg) Action) *Remote {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ServeRemote(t, ln, script)
}

// StartLineRemote is StartRemote for a peer of the operator tool: it
// reads plain lines (Msg.Line is a whole line without its LF or CR, the
// length field included, valid or not), so that a test sees exactly what
// a client wrote.
func StartLineRemote(t testing.TB, script func(Msg) Action) *Remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, true, RemoteOptions{}, script)
}

// StartOnePerReadRemote is StartRemote for a partner that reads one
// message per read (a C server's recv into a buffer, parsed for its first
// message): it reads until it has a LF, acts on the message before it,
// and drops whatever else that read returned; it reads again only once it
// has acted. Messages pipelined in one write are so left unanswered but
// for the first; lines written one after the other's reply are answered.
// It speaks the default dialect (framing lf).
func StartOnePerReadRemote(t testing.TB, script func(Msg) Action) *Remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, false, RemoteOptions{onePerRead: true}, script)
}

// ServeRemote serves script on ln, which it closes when it stops.
func ServeRemote(t testing.TB, ln net.Listener, script func(Msg) Action) *Remote {
	return serve(t, ln, false, RemoteOptions{}, script)
}

// RemoteOptions make a Remote other than the default one.
type RemoteOptions struct {
	// Dialect frames the messages read and the replies written (an
	// Action's Code is CodeOK, CodeInvalid or else unavailable, sent as
	// the dialect's code values); nil: protocol.DefaultDialect().
	Dialect *protocol.Dialect
	// Idle closes a connection on which no message has begun this long
	// after its accept or its last message (as receiver.idle_timeout
	// does); 0: never.
	Idle time.Duration

	onePerRead bool // StartOnePerReadRemote
}

// StartRemoteWith is StartRemote with o.
func StartRemoteWith(t testing.TB, o RemoteOptions, script func(Msg) Action) *Remote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, false, o, script)
}

func serve(t testing.TB, ln net.Listener, raw bool, o RemoteOptions, script func(Msg) Action) *Remote {
	if script == nil {
		script = func(Msg) Action { return Answer(protocol.CodeOK) }
	}
	if o.Dialect == nil {
		o.Dialect = protocol.DefaultDialect()
	}
	r := &Remote{ln: ln, raw: raw, onePerRead: o.onePerRead, script: script, d: o.Dialect, idle: o.Idle, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	r.wg.Go(r.acceptLoop)
	t.Cleanup(r.Stop)
	return r
}

// Addr is the address the Remote listens on.
func (r *Remote) Addr() string { return r.ln.Addr().String() }

// Stop closes the listener and every connection, releases held messages
// and waits for the Remote's goroutines. It may be called more than once.
func (r *Remote) Stop() {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.done)
		r.ln.Close()
		for c := range r.conns {
			c.Close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *Remote) acceptLoop() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.conns[c] = true
		r.accepted++
		r.open++
		r.maxOpen = max(r.maxOpen, r.open)
		conn := r.accepted
		r.mu.Unlock()
		r.wg.Go(func() { r.serve(c, conn) })
	}
}

func (r *Remote) serve(c net.Conn, conn int) {
	defer func() {
		c.Close()
		r.mu.Lock()
		delete(r.conns, c)
		r.open--
		r.mu.Unlock()
	}()
	// The reader reads ahead of the answers, so that the Remote sees how far
	// ahead a pipelining client writes; the loop below acts on the lines in
	// order.
	lines := make(chan []byte, 4096)
	var ahead int                   // read and not yet acted on, on this connection; under r.mu
	acted := make(chan struct{}, 1) // onePerRead: the message handed on was acted on
	quit := make(chan struct{})     // the loop below is over
	r.wg.Go(func() { r.readAhead(c, lines, &ahead, acted, quit) })
	defer func() {
		close(quit)
		c.Close()
		for range lines { // until the reader has seen the close
		}
	}()
	for line := range lines {
		r.mu.Lock()
		r.got = append(r.got, string(line))
		r.busy++
		r.maxBusy = max(r.maxBusy, r.busy)
		r.mu.Unlock()
		a := r.script(Msg{Conn: conn, Line: line, d: r.d})
		if a.Wait != nil {
			select {
			case <-a.Wait:
			case <-r.done:
			}
		}
		if a.Delay > 0 {
			select {
			case <-time.After(a.Delay): // the remote's processing time, not synchronisation
			case <-r.done:
			}
		}
		r.mu.Lock()
		r.busy--
		ahead-- // before the write: the client may write the next line at once
		if a.Code == protocol.CodeOK && a.Garbage == nil {
			r.ok = append(r.ok, string(line))
		}
		r.mu.Unlock()
		if out := r.reply(line, a); out != nil {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
		if r.onePerRead {
			acted <- struct{}{}
		}
		if a.Reset {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			return
		}
		if a.Close {
			return
		}
	}
}

// readAhead reads the messages of c into lines, ahead of the answers, and
// counts them in *ahead (under r.mu); it closes lines when c ends. A
// Remote that reads one message per read waits, after each, until it was
// acted on (acted) or the connection's loop is over (quit).
func (r *Remote) readAhead(c net.Conn, lines chan<- []byte, ahead *int, acted, quit <-chan struct{}) {
	defer close(lines)
	br := bufio.NewReader(c)
	rd := r.d.NewReader(br, protocol.MaxMessageBytes)
	var acc, buf []byte // onePerRead
	for {
		if r.idle > 0 && !r.onePerRead && br.Buffered() == 0 {
			c.SetReadDeadline(time.Now().Add(r.idle))
			if _, err := br.Peek(1); err != nil {
				return // idle too long, or closed
			}
			c.SetReadDeadline(time.Time{})
		}
		line, last, ok := r.next(c, br, rd, &acc, &buf)
		if !ok {
			return
		}
		line = append([]byte(nil), line...)
		r.mu.Lock()
		r.read = append(r.read, string(line))
		*ahead++
		r.maxAhead = max(r.maxAhead, *ahead)
		r.mu.Unlock()
		lines <- line
		if last { // a last line without its LF
			return
		}
		if r.onePerRead {
			select {
			case <-acted:
			case <-quit:
				return
			}
		}
	}
}

// next reads the next message of c as the Remote reads (one per read,
// plain lines, or framed in its dialect): ok false at the end of the
// stream; last for a plain line ended by the stream, not a LF.
func (r *Remote) next(c net.Conn, br *bufio.Reader, rd protocol.MessageReader, acc, buf *[]byte) (line []byte, last, ok bool) {
	var err error
	switch {
	case r.onePerRead:
		line, err = readOne(c, acc, buf)
		return line, false, err == nil
	case r.raw:
		line, err = br.ReadBytes('\n')
		if err != nil && len(line) == 0 {
			return nil, false, false
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), err != nil, true
	}
	line, err = rd.ReadMessage()
	return line, false, err == nil
}

// reply is what the Remote writes for line after a: the garbage, the
// reply in its dialect, or nil.
func (r *Remote) reply(line []byte, a Action) []byte {
	switch {
	case a.Garbage != nil:
		return a.Garbage
	case a.Code != 0:
		return r.d.AppendReply(nil, r.withProcessNo(line, a.ProcessNo), a.Code, time.Now())
	}
	return nil
}

// withProcessNo returns line with its process_no field replaced by pno
// (padded to its width in the fixed layout), for a reply that echoes
// another process_no; line itself when pno is "".
func (r *Remote) withProcessNo(line []byte, pno string) []byte {
	spec := r.d.Request()
	start, end, ok := spec.FieldSpan(line, spec.Index("process_no"))
	if pno == "" || !ok {
		return line
	}
	v := []byte(pno)
	if r.d.Config().Layout == protocol.LayoutFixed {
		v = append(v, bytes.Repeat([]byte{' '}, max(0, end-start-len(v)))...)
	}
	return append(append(append([]byte(nil), line[:start]...), v...), line[end:]...)
}

// Read returns a copy of every message read, in arrival order, including
// those read ahead on a connection that was then closed before they were
// acted on.
func (r *Remote) Read() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.read...)
}

// Messages returns a copy of every message acted on (handed to the
// script), in order: what the remote received, as a server that reads one
// message at a time would see it.
func (r *Remote) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// Delivered returns a copy of the messages answered 200, in answer order.
func (r *Remote) Delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ok...)
}

// Open returns how many connections are open now.
func (r *Remote) Open() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

// Accepted returns how many connections the Remote has accepted.
func (r *Remote) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// MaxAhead returns the most messages read and not yet acted on, on one
// connection, since the start: how far ahead a pipelining client wrote.
func (r *Remote) MaxAhead() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxAhead
}

// Busy returns how many messages are being acted on.
func (r *Remote) Busy() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy
}

// Max returns the most connections open at once and the most messages
// being acted on at once since the start or the last ResetMax.
func (r *Remote) Max() (open, busy int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxOpen, r.maxBusy
}

// ResetMax restarts the high-water marks of Max from the current values.
func (r *Remote) ResetMax() {
	r.mu.Lock()
	r.maxOpen, r.maxBusy = r.open, r.busy
	r.mu.Unlock()
}

// readOne reads from c, for a Remote that reads one message per read, until
// the input read holds a LF: it returns the message before it, and drops
// what the read that brought the LF returned after it.
func readOne(c net.Conn, acc, buf *[]byte) ([]byte, error) {
	if *buf == nil {
		*buf = make([]byte, 64<<10)
	}
	for {
		if i := bytes.IndexByte(*acc, '\n'); i >= 0 {
			line := append([]byte(nil), (*acc)[:i]...)
			*acc = (*acc)[:0]
			return line, nil
		}
		n, err := c.Read(*buf)
		*acc = append(*acc, (*buf)[:n]...)
		if err != nil && bytes.IndexByte(*acc, '\n') < 0 {
			return nil, err
		}
	}
}
