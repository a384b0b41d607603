package conf

import (
	"errors"
	"strings"

	"spoolgate/protocol"
)

// keys are the fixed keys of SPEC §5 in its order, with their defaults as
// they would be written in the file. The field rules
// protocol.{request,result}.field.NAME come on top (see ruleKey).
var keys = []struct{ name, def string }{
	{"receiver.listen", "0.0.0.0:9010"},
	{"receiver.data_dir", "/var/spool/spoolgate/request"},
	{"receiver.publish", "rename"},
	{"receiver.fsync", "always"},
	{"receiver.max_conns", "512"},
	{"receiver.max_conns_per_ip", "64"},
	{"receiver.max_message_bytes", "9999"},
	{"receiver.read_timeout", "10s"},
	{"receiver.idle_timeout", "60s"},
	{"receiver.write_timeout", "5s"},
	{"receiver.allow", ""},
	{"receiver.proxy_protocol", "off"},
	{"receiver.proxy_trusted", ""},
	{"receiver.dedup_window", "10m"},
	{"receiver.dedup_key", "org_code,process_no"},
	{"receiver.tls.cert", ""},
	{"receiver.tls.key", ""},
	{"receiver.tls.client_ca", ""},
	{"receiver.tls.client_names", ""},
	{"receiver.tls.handshake_timeout", "5s"},
	{"receiver.admin_listen", "127.0.0.1:9011"},
	{"sender.remote", ""},
	{"sender.spool_dir", "/var/spool/spoolgate/outbox"},
	{"sender.failed_dir", "/var/spool/spoolgate/failed"},
	{"sender.sent_dir", ""},
	{"sender.workers", "8"},
	{"sender.timeout", "5s"},
	{"sender.retries", "3"},
	{"sender.window", "1"},
	{"sender.connect_timeout", "3s"},
	{"sender.retry_backoff", "1s"},
	{"sender.retry_backoff_max", "60s"},
	{"sender.keepalive", "true"},
	{"sender.scan_interval", "5s"},
	{"sender.settle", "1s"},
	{"sender.tls.ca", ""},
	{"sender.tls.cert", ""},
	{"sender.tls.key", ""},
	{"sender.tls.server_name", ""},
	{"sender.admin_listen", "127.0.0.1:9012"},
	{"log.dir", "/var/log/spoolgate"},
	{"log.level", "info"},
	{"log.format", "text"},
	{"log.max_size_mb", "100"},
	{"log.max_backups", "30"},
	{"log.max_age_days", "30"},
	{"log.compress", "true"},
	{"log.rotate_daily", "true"},
	{"shutdown_timeout", "30s"},
	{"admin.pprof", "false"},
	{"admin.token", ""},             // empty: the web console is read-only
	{"protocol.request.fields", ""}, // empty: the default spec of SPEC §1
	{"protocol.result.fields", ""},  // empty: the request spec
}

var keySet = func() map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k.name] = true
	}
	return m
}()

// ruleKey splits protocol.<dir>.field.<name> into dir and name.
func ruleKey(key string) (dir, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, "protocol.")
	if !ok {
		return "", "", false
	}
	dir, name, ok = strings.Cut(rest, ".field.")
	if !ok || (dir != "request" && dir != "result") || !validName(name) {
		return "", "", false
	}
	return dir, name, true
}

// validName reports whether s is a field name: a lower-case letter, then
// lower-case letters, digits and '_'. Keys are lower case in viper, so a
// field name must be too.
func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func knownKey(key string) bool {
	if keySet[key] {
		return true
	}
	_, _, ok := ruleKey(key)
	return ok
}

// unknownKeyWant explains an unknown key, suggesting the nearest known key.
func unknownKeyWant(key string) string {
	best, bestD := "", 4
	for _, k := range keys {
		if d := editDistance(key, k.name); d < bestD {
			best, bestD = k.name, d
		}
	}
	if best != "" {
		return "unknown key (did you mean " + best + "?)"
	}
	return "unknown key"
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// protocol builds both specs. The request spec is built first since
// receiver.dedup_key refers to it.
func (l *loader) protocol(c *Config) {
	c.Protocol.Request = l.spec("request")
	if c.Protocol.Request == nil {
		c.Protocol.Request = protocol.DefaultRequestSpec()
	}
	c.Protocol.Result = l.spec("result")
	if c.Protocol.Result == nil {
		c.Protocol.Result = c.Protocol.Request
	}
}

// spec builds the spec of protocol.<dir>.*, or returns nil when
// protocol.<dir>.fields is not set (or on error).
func (l *loader) spec(dir string) *protocol.Spec {
	fieldsKey := "protocol." + dir + ".fields"
	prefix := "protocol." + dir + ".field."
	raw := l.get(fieldsKey)
	names := list(raw)
	if len(names) == 0 {
		for _, k := range l.fileKeys() {
			if strings.HasPrefix(k, prefix) {
				l.fail(k, l.set[k], "needs "+fieldsKey+" to list the fields in order")
				return nil
			}
		}
		return nil
	}
	inList := make(map[string]bool, len(names))
	for _, n := range names {
		if !validName(n) {
			l.fail(fieldsKey, raw, "comma-separated field names of a-z, 0-9 and _ (bad "+`"`+n+`")`)
			return nil
		}
		inList[n] = true
	}
	for _, k := range l.fileKeys() {
		if d, n, ok := ruleKey(k); ok && d == dir && !inList[n] {
			l.fail(k, l.set[k], n+" is not in "+fieldsKey)
			return nil
		}
	}
	rules := make(map[string]string, len(names))
	for _, n := range names {
		k := prefix + n
		if l.useEnv {
			l.bindEnv(k)
		}
		if !l.isSet(k) {
			l.fail(k, "", "a rule for field "+n+", e.g. text 0..100")
			return nil
		}
		rules[n] = l.get(k)
	}
	s, err := protocol.NewSpec(names, rules)
	if err != nil {
		var re *protocol.RuleError
		switch {
		case errors.As(err, &re) && re.Field != "":
			l.fail(prefix+re.Field, rules[re.Field], re.Want)
		case errors.As(err, &re):
			l.fail(fieldsKey, raw, re.Want)
		default:
			l.fail(fieldsKey, raw, err.Error())
		}
		return nil
	}
	return s
}

// fileKeys returns the keys the file sets, in file order.
func (l *loader) fileKeys() []string {
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.key
	}
	return out
}
