package conf

import (
	"net/netip"
	"strings"

	"spoolgate/protocol"
)

// IsLive reports whether a running daemon (either) applies key on reload;
// every other key needs a restart. The table in keys.go says which: the
// log level, timeouts, retries, workers, window, settle, scan_interval,
// max_conns, allow and dedup_window; also
// receiver.max_conns_per_ip, receiver.proxy_trusted and the TLS files and
// names (receiver.tls.*, sender.tls.*), which reload without dropping
// connections (switching between plain TCP and TLS still needs a restart),
// and shutdown_timeout (the receiver's; the sender keeps the one it started
// with).
func IsLive(key string) bool {
	k, ok := lookup(key)
	return ok && k.live != restart
}

// LiveIn reports whether the receiver (daemon "receiver") or the sender
// ("sender") applies key on reload.
func LiveIn(daemon, key string) bool {
	k, ok := lookup(key)
	switch daemon {
	case "receiver":
		return ok && k.live&liveReceiver != 0
	case "sender":
		return ok && k.live&liveSender != 0
	}
	return false
}

// Keys returns the names of the fixed keys in the order of conf.properties.
func Keys() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// LiveDiff compares c, a newly loaded config, with old, the running one,
// and returns the keys whose values differ: live lists those the daemons
// apply on reload (see IsLive), restart those that take effect only after a
// restart. Both are in the order of conf.properties; a changed message spec is
// reported as protocol.request.*, protocol.result.* or protocol.reply.*. Either config may be
// nil (every key then differs). LiveDiff only reads c and old.
func (c *Config) LiveDiff(old *Config) (live, restart []string) {
	a, b := c.values(), old.values()
	for i, kv := range a {
		if kv.value == b[i].value {
			continue
		}
		if IsLive(strings.Replace(kv.key, ".*", ".fields", 1)) {
			live = append(live, kv.key)
		} else {
			restart = append(restart, kv.key)
		}
	}
	return live, restart
}

type keyValue struct{ key, value string }

// values returns every setting of c as canonical text, in table order; a
// spec is reported as protocol.request.* or protocol.result.*. For a nil c
// every value is a marker no real value equals.
func (c *Config) values() []keyValue {
	out := make([]keyValue, len(keys))
	for i, k := range keys {
		name := k.name
		if p, ok := strings.CutSuffix(name, ".fields"); ok {
			name = p + ".*"
		}
		out[i] = keyValue{name, "\x00nil"}
		if c != nil {
			out[i].value = k.v.text(c)
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

// reads reports whether daemon ("receiver" or "sender") uses key: its own
// section, log.*, journal.*, admin.*, shutdown_timeout and the dialect, of
// whose specs the one it works with (the sender's result spec is the
// request spec unless configured, and its canonical text tells either
// change).
func reads(daemon, key string) bool {
	switch {
	case strings.HasPrefix(key, "log."), strings.HasPrefix(key, "journal."), strings.HasPrefix(key, "admin."), key == "shutdown_timeout":
		return true
	case daemon == "receiver":
		return strings.HasPrefix(key, "receiver.") || strings.HasPrefix(key, "protocol.") && !strings.HasPrefix(key, "protocol.result.")
	case daemon == "sender":
		return strings.HasPrefix(key, "sender.") || strings.HasPrefix(key, "protocol.") && !strings.HasPrefix(key, "protocol.request.")
	}
	return false
}

// ReloadDiff is LiveDiff for one daemon ("receiver" or "sender"): of the
// keys it reads that differ between c and old, live are those it applies on
// reload (LiveIn) and restart those that need a restart. The daemons log
// both on a reload, restart against the config they started with.
func (c *Config) ReloadDiff(old *Config, daemon string) (live, restart []string) {
	a, b := c.values(), old.values()
	for i, kv := range a {
		if kv.value == b[i].value || !reads(daemon, kv.key) {
			continue
		}
		if LiveIn(daemon, strings.Replace(kv.key, ".*", ".fields", 1)) {
			live = append(live, kv.key)
		} else {
			restart = append(restart, kv.key)
		}
	}
	return live, restart
}
