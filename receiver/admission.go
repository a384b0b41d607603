package receiver

import (
	"net"
	"net/netip"
	"time"
)

// Admission (docs/PROTOCOL.md §3). A connection is *waiting* from
// its accept until its first complete message: it holds no max_conns slot,
// so a flood of sockets that never send (or never finish a TLS handshake)
// cannot keep anyone else out. Waiting connections are bounded on their
// own: at most max(max_conns, minWaiting) of them; one more evicts the oldest waiting
// connection of the address with the most waiting ones, so the flooding
// address pays, not the others. Once its first message is complete a
// connection takes a max_conns slot (waiting for one if all are taken) and
// keeps it until it closes. max_conns_per_ip bounds the connections of one
// address, waiting or served, and the TLS handshake has its own deadline
// (receiver.tls.handshake_timeout).

// Causes of a refused connection, the label of
// spoolgate_receiver_refused_connections_total and of the rate-limited log.
const (
	refusedAllow       = "allow"        // not in receiver.allow
	refusedPerIP       = "per_ip"       // over receiver.max_conns_per_ip
	refusedHandshake   = "handshake"    // TLS handshake failed or timed out
	refusedClientNames = "client_names" // mTLS identity not in receiver.tls.client_names
	refusedEvicted     = "evicted"      // waiting, evicted for a newer connection
)

const evictedMsg = "connection closed: it had sent no message yet when the waiting connections were full (the busiest address loses its oldest)"

// refuse closes c (whose peer is remote) without a reply, counts it, and
// logs it once per cause, address and interval (bounded: see
// maxRefusedAddrs), with the count of refusals the line stands for, so
// that every refused address is named each interval. After a failed
// handshake it closes gracefully (half-close, then discard for a moment):
// the peer's data arriving on a closed socket would make the kernel reset
// the connection, and the reset can destroy the TLS alert that tells a
// client why (a sender then knows its certificate is rejected, rather than
// seeing a reset).
func (s *Server) refuse(c *conn, remote, cause, msg string, attrs ...any) {
	if cause == refusedAllow {
		s.denied.Add(1)
		s.m.denied.Inc()
	}
	s.m.refused.WithLabelValues(cause).Inc()
	if n, ok := s.refusedLog.Event(cause+" "+hostOf(remote), time.Now()); ok {
		s.log.Warn(msg, append([]any{"remote", remote, "cause", cause, "count", n, "interval", s.refusedEvery}, attrs...)...)
	}
	if cause == refusedHandshake || cause == refusedClientNames {
		s.closeConn(c.nc, true)
		return
	}
	c.nc.Close()
}

// hostOf returns the host of a host:port, or hostport as it is.
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// addrOf returns the IP of a, unmapped; the zero Addr when a is not TCP.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// minWaiting is the least number of waiting connections allowed, so that a
// small max_conns does not make partners evict each other's connects.
const minWaiting = 64

// track registers a newly accepted connection as waiting; when more than
// max(limit, minWaiting) are waiting it evicts one (see Admission).
func (s *Server) track(c *conn, limit int) {
	limit = max(limit, minWaiting)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = struct{}{}
	c.waiting = true
	c.since = time.Now()
	s.waiting++
	if s.waiting <= limit {
		return
	}
	count := make(map[netip.Addr]int)
	for o := range s.conns {
		if o.waiting && !o.evicted && o != c {
			count[o.ip]++
		}
	}
	var victim *conn
	for o := range s.conns {
		if !o.waiting || o.evicted || o == c {
			continue
		}
		if victim == nil || count[o.ip] > count[victim.ip] ||
			(count[o.ip] == count[victim.ip] && o.since.Before(victim.since)) {
			victim = o
		}
	}
	if victim != nil {
		// It stops counting at once: the next accept must not evict
		// again before its goroutine has untracked it.
		victim.evicted, victim.dropped = true, true
		s.waiting--
		victim.nc.Close() // its goroutine sees the error and refuses it
	}
}

// admit records c's address; false when the address is at
// max_conns_per_ip (0: no limit) or c was evicted meanwhile. Admitting c
// again with the address it was admitted with is a no-op (a direct peer
// behind PROXY protocol is admitted before its first byte).
func (s *Server) admit(c *conn, ip netip.Addr, perIP int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.evicted {
		return false
	}
	if c.counted && c.ip == ip {
		return true
	}
	c.ip = ip // the eviction counts by the peer's address from now on
	if perIP > 0 && s.perIP[ip] >= perIP {
		return false
	}
	s.perIP[ip]++
	c.counted = true
	return true
}

// activate ends c's wait after its first complete message: false when it
// was evicted first (it is closed); else it takes a max_conns slot,
// waiting while all are taken (not during a drain, which accepts nobody).
func (s *Server) activate(c *conn) bool {
	s.mu.Lock()
	if c.evicted {
		s.mu.Unlock()
		return false
	}
	c.waiting = false
	s.waiting--
	s.mu.Unlock()
	s.lim.take(&s.draining)
	c.active = true
	return true
}

// untrack forgets c when it closes.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.waiting && !c.dropped {
		s.waiting--
	}
	if c.counted {
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
	}
	s.mu.Unlock()
	if c.active {
		s.lim.release()
	}
}

// evictedNow reports whether c was evicted (its I/O error is then ours).
func (s *Server) evictedNow(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.evicted
}
