package conf

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"spoolgate/protocol"
)

// liveKeys are the keys a running daemon applies on reload without a
// restart (SPEC §6).
var liveKeys = map[string]bool{
	"log.level":                      true,
	"receiver.read_timeout":          true,
	"receiver.idle_timeout":          true,
	"receiver.write_timeout":         true,
	"receiver.max_conns":             true,
	"receiver.max_conns_per_ip":      true,
	"receiver.tls.cert":              true,
	"receiver.tls.key":               true,
	"receiver.tls.client_ca":         true,
	"receiver.tls.client_names":      true,
	"receiver.tls.handshake_timeout": true,
	"sender.tls.ca":                  true,
	"sender.tls.cert":                true,
	"sender.tls.key":                 true,
	"sender.tls.server_name":         true,
	"receiver.allow":                 true,
	"receiver.proxy_trusted":         true,
	"receiver.dedup_window":          true,
	"sender.workers":                 true,
	"sender.timeout":                 true,
	"sender.retries":                 true,
	"sender.window":                  true,
	"sender.connect_timeout":         true,
	"sender.retry_backoff":           true,
	"sender.retry_backoff_max":       true,
	"shutdown_timeout":               true,
}

// IsLive reports whether a running daemon applies key on reload; every
// other key needs a restart. The live keys are log.level,
// receiver.{read,idle,write}_timeout, receiver.max_conns, receiver.allow,
// receiver.proxy_trusted, receiver.dedup_window, sender.workers,
// sender.timeout, sender.retries, sender.window, sender.connect_timeout,
// sender.retry_backoff, sender.retry_backoff_max and shutdown_timeout: the
// log level, timeouts, retries, workers, max_conns and allow of SPEC §6;
// also receiver.max_conns_per_ip and the TLS files and names
// (receiver.tls.*, sender.tls.*), which reload without dropping
// connections (switching between plain TCP and TLS still needs a restart).
func IsLive(key string) bool { return liveKeys[key] }

// LiveDiff compares c, a newly loaded config, with old, the running one,
// and returns the keys whose values differ: live lists those the daemons
// apply on reload (see IsLive), restart those that take effect only after a
// restart. Both are in the order of SPEC §5; a changed message spec is
// reported as protocol.request.* or protocol.result.*. Either config may be
// nil (every key then differs). LiveDiff only reads c and old.
func (c *Config) LiveDiff(old *Config) (live, restart []string) {
	a, b := c.values(), old.values()
	for i, kv := range a {
		if kv.value == b[i].value {
			continue
		}
		if IsLive(kv.key) {
			live = append(live, kv.key)
		} else {
			restart = append(restart, kv.key)
		}
	}
	return live, restart
}

type keyValue struct{ key, value string }

// values returns every setting of c as canonical text, in a fixed order;
// for a nil c every value is a marker no real value equals.
func (c *Config) values() []keyValue {
	var cc Config
	nilMarker := c == nil
	if c != nil {
		cc = *c
	}
	r, s, g := &cc.Receiver, &cc.Sender, &cc.Log
	d := func(v time.Duration) string { return v.String() }
	i := strconv.Itoa
	b := strconv.FormatBool
	out := []keyValue{
		{"receiver.listen", r.Listen},
		{"receiver.data_dir", r.DataDir},
		{"receiver.publish", r.Publish},
		{"receiver.fsync", r.Fsync},
		{"receiver.max_conns", i(r.MaxConns)},
		{"receiver.max_conns_per_ip", i(r.MaxConnsPerIP)},
		{"receiver.max_message_bytes", i(r.MaxMessageBytes)},
		{"receiver.read_timeout", d(r.ReadTimeout)},
		{"receiver.idle_timeout", d(r.IdleTimeout)},
		{"receiver.write_timeout", d(r.WriteTimeout)},
		{"receiver.allow", prefixList(r.Allow)},
		{"receiver.proxy_protocol", b(r.ProxyProtocol)},
		{"receiver.proxy_trusted", prefixList(r.ProxyTrusted)},
		{"receiver.dedup_window", d(r.DedupWindow)},
		{"receiver.dedup_key", strings.Join(r.DedupKey, ",")},
		{"receiver.tls.cert", r.TLS.Cert},
		{"receiver.tls.key", r.TLS.Key},
		{"receiver.tls.client_ca", r.TLS.ClientCA},
		{"receiver.tls.client_names", strings.Join(r.TLS.ClientNames, ",")},
		{"receiver.tls.handshake_timeout", d(r.TLS.HandshakeTimeout)},
		{"receiver.admin_listen", r.AdminListen},
		{"sender.remote", strings.Join(s.Remote, ",")},
		{"sender.spool_dir", s.SpoolDir},
		{"sender.failed_dir", s.FailedDir},
		{"sender.sent_dir", s.SentDir},
		{"sender.workers", i(s.Workers)},
		{"sender.timeout", d(s.Timeout)},
		{"sender.retries", i(s.Retries)},
		{"sender.window", i(s.Window)},
		{"sender.connect_timeout", d(s.ConnectTimeout)},
		{"sender.retry_backoff", d(s.RetryBackoff)},
		{"sender.retry_backoff_max", d(s.RetryBackoffMax)},
		{"sender.keepalive", b(s.Keepalive)},
		{"sender.scan_interval", d(s.ScanInterval)},
		{"sender.settle", d(s.Settle)},
		{"sender.tls.ca", s.TLS.CA},
		{"sender.tls.cert", s.TLS.Cert},
		{"sender.tls.key", s.TLS.Key},
		{"sender.tls.server_name", s.TLS.ServerName},
		{"sender.admin_listen", s.AdminListen},
		{"log.dir", g.Dir},
		{"log.level", g.Level},
		{"log.format", g.Format},
		{"log.max_size_mb", i(g.MaxSizeMB)},
		{"log.max_backups", i(g.MaxBackups)},
		{"log.max_age_days", i(g.MaxAgeDays)},
		{"log.compress", b(g.Compress)},
		{"log.rotate_daily", b(g.RotateDaily)},
		{"shutdown_timeout", d(cc.ShutdownTimeout)},
		{"admin.pprof", b(cc.AdminPprof)},
		{"admin.token", cc.AdminToken},
		{"protocol.request.*", specText(cc.Protocol.Request)},
		{"protocol.result.*", specText(cc.Protocol.Result)},
	}
	if nilMarker {
		for i := range out {
			out[i].value = "\x00nil"
		}
	}
	return out
}

func prefixList(ps []netip.Prefix) string {
	var sb strings.Builder
	for i, p := range ps {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(p.String())
	}
	return sb.String()
}

// specText is a canonical text of a spec: name=rule pairs in order.
func specText(s *protocol.Spec) string {
	if s == nil {
		return ""
	}
	var sb strings.Builder
	for i, f := range s.Fields() {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(f.Name)
		sb.WriteByte('=')
		sb.WriteString(f.Rule.String())
	}
	return sb.String()
}
