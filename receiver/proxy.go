package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol behind an L4 load balancer (PROTOCOL.md §3). With
// receiver.proxy_protocol=on a connection from receiver.proxy_trusted must
// start with a PROXY header (v1 or v2), and the address in it is the peer
// for receiver.allow, the logs and the metrics; the header comes before a
// TLS handshake. A connection from any other address is a direct one: it
// is served as it is, unless it sends a header (a forged address), which
// closes it.

const (
	// proxyBufSize holds a v1 header (at most 107 bytes) and a v2 header
	// with its addresses in one read; v2 TLVs beyond it take more reads.
	proxyBufSize = 256
	// proxyLogEvery is how often each cause of a refused header is logged.
	proxyLogEvery = time.Minute
)

// The causes of a refused header: the reason label of
// spoolgate_receiver_proxy_refused_total and the key of its rate-limited
// log line.
const (
	proxyUntrusted = "untrusted" // a header from an address not in proxy_trusted
	proxyMalformed = "malformed" // a balancer sent a header that does not parse
	proxyMissing   = "missing"   // a balancer sent data without a header
	proxyTimeout   = "timeout"   // a balancer sent nothing within read_timeout
)

var proxyCauses = []string{proxyUntrusted, proxyMalformed, proxyMissing, proxyTimeout}

// proxied reads the PROXY header of a new connection when
// receiver.proxy_protocol is on and returns the connection to serve: its
// RemoteAddr is the address from the header, and it reads on after the
// header. With proxy_protocol off it returns c.nc as it is. It returns
// false after closing the connection: a health check of a balancer (a
// LOCAL or UNKNOWN header, or a close before any byte), counted and logged
// at debug only, or a refused header, counted and logged at warn at most
// once a minute per cause and address; or a direct peer over
// max_conns_per_ip, or evicted while it waited, refused as serveConn
// refuses them. No reply is sent on any.
func (s *Server) proxied(c *conn, cfg *live) (net.Conn, bool) {
	if !s.base.ProxyProtocol {
		return c.nc, true
	}
	raw := c.nc.RemoteAddr()
	trusted := inPrefixes(cfg.proxyTrusted, raw)
	if !trusted && !allowed(cfg.allow, raw) {
		return c.nc, true // serveConn refuses it, with its log line
	}
	// A direct peer is who it is: it counts against max_conns_per_ip from
	// now, not from its first byte, or one address could hold any number
	// of silent connections. A balancer's connection counts once its
	// header names the peer (serveConn).
	if !trusted && !s.admit(c, addrOf(raw), cfg.maxPerIP) {
		if s.evictedNow(c) {
			s.refuse(c, raw.String(), refusedEvicted, evictedMsg)
		} else {
			s.refuse(c, raw.String(), refusedPerIP, "connection refused: receiver.max_conns_per_ip reached", "max_conns_per_ip", cfg.maxPerIP)
		}
		return nil, false
	}
	// Waiting for the first byte is an idle wait (a drain shortens it):
	// read_timeout for a balancer, idle_timeout for a direct peer.
	wait := cfg.idleTimeout
	if trusted {
		wait = cfg.readTimeout
	}
	c.setIdle(time.Now().Add(wait), min(cfg.readTimeout, freshGrace), &s.draining)
	br := bufio.NewReaderSize(c.nc, proxyBufSize)
	_, err := br.Peek(1)
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
	if err != nil {
		switch {
		case s.evictedNow(c): // closed to make room: counted as such
			s.refuse(c, raw.String(), refusedEvicted, evictedMsg)
			return nil, false
		case trusted && !timedOut(err): // closed or reset before any byte
			s.proxyHealthCheck(raw, "closed before a header")
		case trusted && !s.draining.Load():
			s.proxyRefuse(proxyTimeout, raw, err, nil)
		default:
			s.log.Debug("connection closed before its first byte", "remote", raw.String(), "err", err)
		}
		c.nc.Close()
		return nil, false
	}
	c.nc.SetReadDeadline(time.Now().Add(cfg.readTimeout))
	h, err := proxyproto.Read(br)
	if err != nil && s.evictedNow(c) {
		s.refuse(c, raw.String(), refusedEvicted, evictedMsg)
		return nil, false
	}
	if !trusted {
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			return &proxyConn{Conn: c.nc, br: br, remote: raw}, true // a direct peer
		}
		s.proxyRefuse(proxyUntrusted, raw, err, h)
		c.nc.Close()
		return nil, false
	}
	if err == nil {
		if h.Command.IsLocal() {
			s.proxyHealthCheck(raw, "LOCAL header")
			c.nc.Close()
			return nil, false
		}
		if src, ok := h.SourceAddr.(*net.TCPAddr); ok && src != nil {
			return &proxyConn{Conn: c.nc, br: br, remote: src}, true
		}
		err = fmt.Errorf("not a TCP source address (transport %#x)", byte(h.TransportProtocol))
	}
	cause := proxyMalformed
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		cause = proxyMissing
	case timedOut(err):
		cause = proxyTimeout
	}
	s.proxyRefuse(cause, raw, err, nil)
	c.nc.Close()
	return nil, false
}

// proxyHealthCheck counts a balancer's health check; it is logged at debug
// only, as a busy balancer checks every few seconds.
func (s *Server) proxyHealthCheck(balancer net.Addr, what string) {
	s.m.proxyHealthChecks.Inc()
	s.log.Debug("health check from a load balancer: closed", "balancer", balancer.String(), "seen", what)
}

// proxyRefuse counts a connection closed for its header and logs it at
// warn, once per cause, address and proxyLogEvery (bounded: see
// maxRefusedAddrs), with the count of refusals the line stands for.
func (s *Server) proxyRefuse(cause string, from net.Addr, err error, h *proxyproto.Header) {
	s.m.proxyRefused.WithLabelValues(cause).Inc()
	n, ok := s.proxyLog.Event(cause+" "+addrOf(from).String(), s.clock())
	if !ok {
		return
	}
	var msg string
	switch cause {
	case proxyUntrusted:
		msg = "connection refused: PROXY header from an address not in receiver.proxy_trusted (a forged address?)"
	case proxyMissing:
		msg = "connection refused: a trusted load balancer sent no PROXY header (is send-proxy / proxy_protocol on?)"
	case proxyTimeout:
		msg = "connection refused: no PROXY header from a trusted load balancer within receiver.read_timeout"
	default:
		msg = "connection refused: malformed PROXY header from a trusted load balancer"
	}
	args := []any{"count", n, "remote", from.String()}
	if h != nil && h.SourceAddr != nil {
		args = append(args, "claimed", h.SourceAddr.String())
	}
	if err != nil {
		args = append(args, "err", err)
	}
	s.log.Warn(msg, args...)
}

func inPrefixes(ps []netip.Prefix, a net.Addr) bool {
	return len(ps) > 0 && allowed(ps, a)
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// proxyConn is a connection after its PROXY header: reads return what was
// buffered past the header first, RemoteAddr is the peer's address.
// Like a net.Conn, one goroutine reads at a time.
type proxyConn struct {
	net.Conn
	br     *bufio.Reader // nil once drained
	remote net.Addr
}

func (p *proxyConn) Read(b []byte) (int, error) {
	if p.br != nil {
		if p.br.Buffered() > 0 {
			return p.br.Read(b)
		}
		p.br = nil
	}
	return p.Conn.Read(b)
}

func (p *proxyConn) RemoteAddr() net.Addr { return p.remote }

// CloseWrite half-closes the connection, so closeConn can close it
// gracefully.
func (p *proxyConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
