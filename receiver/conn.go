package receiver

import (
	"bufio"
	"bytes"
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

func (s *Server) serveConn(c *conn) {
	defer func() {
		s.untrack(c)
		s.m.connections.Dec()
		s.wg.Done()
	}()
	cfg := s.cfg.Load()
	nc, ok := s.proxied(c, cfg) // the PROXY header names the peer (proxy.go)
	if !ok {
		return
	}
	ra := nc.RemoteAddr()
	remote := ra.String()
	if !allowed(cfg.allow, ra) {
		s.refuse(c, remote, refusedAllow, "connection refused: address not in receiver.allow")
		return
	}
	if !s.admit(c, addrOf(ra), cfg.maxPerIP) {
		if s.evictedNow(c) {
			s.refuse(c, remote, refusedEvicted, evictedMsg)
		} else {
			s.refuse(c, remote, refusedPerIP, "connection refused: receiver.max_conns_per_ip reached", "max_conns_per_ip", cfg.maxPerIP)
		}
		return
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
			return
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	br := bufio.NewReaderSize(nc, readBufSize)
	rd := protocol.NewReader(br, cfg.maxMessage)
	p := &pipe{s: s, remote: remote}
	wrote := false // a reply went out: close gracefully so it is not reset
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("connection accepted", "remote", remote)
	}
	for {
		cfg = s.cfg.Load()
		debug := s.log.Enabled(context.Background(), slog.LevelDebug)
		if br.Buffered() == 0 {
			if !c.setIdle(time.Now().Add(cfg.idleTimeout), min(cfg.readTimeout, freshGrace), &s.draining) {
				s.closeConn(nc, wrote)
				return
			}
			_, err := br.Peek(1)
			c.setBusy()
			if err != nil {
				if s.evictedNow(c) {
					s.refuse(c, remote, refusedEvicted, evictedMsg)
					return
				}
				if debug && !errors.Is(err, io.EOF) {
					s.log.Debug("connection idle end", "remote", remote, "err", err)
				}
				s.closeConn(nc, wrote)
				return
			}
		}
		nc.SetReadDeadline(time.Now().Add(cfg.readTimeout))
		line, err := rd.ReadMessage()
		if c.waiting && (err == nil || errors.Is(err, protocol.ErrTooLong)) && !s.activate(c) {
			s.refuse(c, remote, refusedEvicted, evictedMsg)
			return
		}
		if err != nil && !errors.Is(err, protocol.ErrTooLong) {
			if debug && !errors.Is(err, io.EOF) {
				s.log.Debug("connection read end", "remote", remote, "err", err)
			}
			s.closeConn(nc, wrote)
			return
		}
		// The messages already whole in the read buffer join this one in
		// a batch (pipeline.go): reading them does not block, and their
		// lines stay where they are (nothing refills the buffer) until
		// the batch is answered. A message too long ends the batch: the
		// next message boundary is lost.
		p.reset(cfg, debug)
		p.add(line, err)
		for err == nil && p.len() < maxPipeline && completeBuffered(br) {
			if line, err = rd.ReadMessage(); err != nil && !errors.Is(err, protocol.ErrTooLong) {
				break // not expected with a whole message buffered; ends the connection
			}
			p.add(line, err)
		}
		p.commit()
		nc.SetWriteDeadline(time.Now().Add(cfg.writeTimeout))
		_, werr := nc.Write(p.replies(s.clock()))
		wrote = true
		if werr != nil {
			if debug {
				s.log.Debug("write reply", "remote", remote, "err", werr)
			}
			nc.Close()
			return
		}
		if err != nil { // too long: the next message boundary is lost
			s.closeConn(nc, true)
			return
		}
		if s.draining.Load() && br.Buffered() == 0 {
			s.closeConn(nc, true)
			return
		}
	}
}

// completeBuffered reports whether br holds a whole message (an LF), so
// the next read does not block and replies can wait to go out together.
func completeBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
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
