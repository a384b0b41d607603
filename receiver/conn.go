package receiver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"spoolgate/protocol"
)

// conn is one accepted connection.
type conn struct {
	nc    net.Conn
	mu    sync.Mutex // orders idle with kicks
	idle  bool       // waiting for a message to start
	fresh bool       // no message started yet: the first one is on its way

	// Admission, guarded by Server.mu (see admission.go).
	ip      netip.Addr // the peer's address once known
	since   time.Time  // accepted at
	waiting bool       // no complete first message yet: no max_conns slot
	evicted bool       // closed to make room for a newer connection
	dropped bool       // evicted: no longer counted in Server.waiting
	counted bool       // counted in perIP
	active  bool       // holds a max_conns slot (set by its own goroutine)
}

// setIdle marks c idle (waiting for the start of a message) with the idle
// deadline. When the server is draining it returns false, except for a
// fresh connection: its first message gets up to grace to arrive.
func (c *conn) setIdle(deadline time.Time, grace time.Duration, draining *atomic.Bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if draining.Load() {
		if !c.fresh {
			return false
		}
		if g := time.Now().Add(grace); g.Before(deadline) {
			deadline = g
		}
	}
	c.idle = true
	c.nc.SetReadDeadline(deadline)
	return true
}

func (c *conn) setBusy() {
	c.mu.Lock()
	c.idle = false
	c.fresh = false
	c.mu.Unlock()
}

// kickIfIdle ends the wait of an idle connection; a fresh one gets up to
// grace for its first message.
func (c *conn) kickIfIdle(grace time.Duration) {
	c.mu.Lock()
	if c.idle {
		if c.fresh {
			c.nc.SetReadDeadline(time.Now().Add(grace))
		} else {
			c.nc.SetReadDeadline(time.Now())
		}
	}
	c.mu.Unlock()
}

// session is one connection once it is open (Server.open): the
// connection its messages come on, and what answering them needs.
type session struct {
	c      *conn
	nc     net.Conn // c.nc, or the TLS connection over it
	remote string   // the peer, host:port (its PROXY header's, behind a balancer)
	br     *bufio.Reader
	rd     protocol.MessageReader
	p      *pipe
	wrote  bool // a reply went out: close gracefully so it is not reset
	debug  bool // the logger is at debug, read once a batch
}

// serveConn serves one accepted connection until it ends: it opens it,
// then answers its messages in batches.
func (s *Server) serveConn(c *conn) {
	defer func() {
		s.untrack(c)
		s.m.connections.Dec()
		s.wg.Done()
	}()
	cfg := s.cfg.Load()
	ss, ok := s.open(c, cfg)
	if !ok {
		return
	}
	ss.br = bufio.NewReaderSize(ss.nc, readBufSize)
	ss.rd = s.d.NewReader(ss.br, cfg.maxMessage)
	ss.p = &pipe{s: s, remote: ss.remote}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("connection accepted", "remote", ss.remote)
	}
	for s.serveBatch(ss) {
	}
}

// open readies c for messages: its PROXY header names the peer
// (proxy.go), the peer is allowed and admitted (admission.go), and the TLS
// handshake is done. false: c was refused, and is closed.
func (s *Server) open(c *conn, cfg *live) (*session, bool) {
	nc, ok := s.proxied(c, cfg)
	if !ok {
		return nil, false
	}
	ra := nc.RemoteAddr()
	remote := ra.String()
	if !allowed(cfg.allow, ra) {
		s.refuse(c, remote, refusedAllow, "connection refused: address not in receiver.allow")
		return nil, false
	}
	if !s.admit(c, addrOf(ra), cfg.maxPerIP) {
		if s.evictedNow(c) {
			s.refuse(c, remote, refusedEvicted, evictedMsg)
		} else {
			s.refuse(c, remote, refusedPerIP, "connection refused: receiver.max_conns_per_ip reached", "max_conns_per_ip", cfg.maxPerIP)
		}
		return nil, false
	}
	if s.tls != nil {
		tc := tls.Server(nc, s.tls.Config())
		tc.SetDeadline(time.Now().Add(cfg.handshakeTimeout))
		if err := tc.Handshake(); err != nil {
			cause, msg, attrs := handshakeRefusal(err)
			if s.evictedNow(c) {
				cause, msg, attrs = refusedEvicted, evictedMsg, nil
			}
			s.refuse(c, remote, cause, msg, attrs...)
			return nil, false
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	return &session{c: c, nc: nc, remote: remote}, true
}

// serveBatch waits for the next message of ss, reads it and the messages
// already whole after it (a batch, pipeline.go), stores them and writes
// their replies. false: the connection ended, and is closed.
func (s *Server) serveBatch(ss *session) bool {
	cfg := s.cfg.Load()
	ss.debug = s.log.Enabled(context.Background(), slog.LevelDebug)
	if ss.br.Buffered() == 0 && !s.awaitMessage(ss, cfg) {
		return false
	}
	ss.nc.SetReadDeadline(time.Now().Add(cfg.readTimeout))
	line, err := ss.rd.ReadMessage()
	if ss.c.waiting && (err == nil || frameFault(err)) && !s.activate(ss.c) {
		s.refuse(ss.c, ss.remote, refusedEvicted, evictedMsg)
		return false
	}
	if err != nil && !frameFault(err) {
		s.endConn(ss, "connection read end", err)
		return false
	}
	ss.p.reset(cfg, ss.debug)
	err = ss.p.fill(ss.rd, line, err)
	ss.p.commit()
	ss.nc.SetWriteDeadline(time.Now().Add(cfg.writeTimeout))
	_, werr := ss.nc.Write(ss.p.replies(s.clock()))
	ss.wrote = true
	switch {
	case werr != nil:
		if ss.debug {
			s.log.Debug("write reply", "remote", ss.remote, "err", werr)
		}
		ss.nc.Close()
		return false
	case err != nil, s.draining.Load() && ss.br.Buffered() == 0:
		// A frame fault: the next message boundary is lost. Or a drain
		// with nothing more buffered.
		s.closeConn(ss.nc, true)
		return false
	}
	return true
}

// awaitMessage waits, idle, for the first byte of the next message of ss.
// false: the connection ended meanwhile (the peer's end, the idle
// timeout, a drain, an eviction), and is closed.
func (s *Server) awaitMessage(ss *session, cfg *live) bool {
	if !ss.c.setIdle(time.Now().Add(cfg.idleTimeout), min(cfg.readTimeout, freshGrace), &s.draining) {
		s.closeConn(ss.nc, ss.wrote)
		return false
	}
	_, err := ss.br.Peek(1)
	ss.c.setBusy()
	if err == nil {
		return true
	}
	if s.evictedNow(ss.c) {
		s.refuse(ss.c, ss.remote, refusedEvicted, evictedMsg)
		return false
	}
	s.endConn(ss, "connection idle end", err)
	return false
}

// endConn closes ss after its read failed with err (io.EOF: the peer's
// end), logging why at debug.
func (s *Server) endConn(ss *session, msg string, err error) {
	if ss.debug && !errors.Is(err, io.EOF) {
		s.log.Debug(msg, "remote", ss.remote, "err", err)
	}
	s.closeConn(ss.nc, ss.wrote)
}

// closeConn closes nc. When replies went out (graceful) it half-closes,
// discards what the peer still sends for a moment (bounded in time and
// bytes) and then closes, so the kernel does not reset the connection and
// destroy a reply the peer has not read. Without replies there is nothing
// to protect, and a plain close frees the slot of an idle peer at once.
func (s *Server) closeConn(nc net.Conn, graceful bool) {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := nc.(closeWriter); ok && graceful {
		nc.SetWriteDeadline(time.Now().Add(lingerTime))
		if cw.CloseWrite() == nil {
			nc.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, nc, lingerBytes)
		}
	}
	nc.Close()
}

func allowed(allow []netip.Prefix, a net.Addr) bool {
	if len(allow) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
