package conf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"spoolgate/internal/logging"
	"spoolgate/protocol"
)

func TestMain(m *testing.M) {
	// The tests set what they need; nothing from the caller's environment.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), "SPOOLGATE_") && name != "SPOOLGATE_UPDATE_README" {
			os.Unsetenv(name)
		}
	}
	goleak.VerifyTestMain(m)
}

// write writes a config file into a temp dir and returns its path.
func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestShippedFilesLoad(t *testing.T) {
	files, err := filepath.Glob("*.properties")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("shipped files %v, want conf.properties and local.properties", files)
	}
	good, err := filepath.Glob("testdata/good_*.properties")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, good...) {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConfPropertiesIsTheDefault proves conf.properties writes out exactly
// the built-in defaults.
func TestConfPropertiesIsTheDefault(t *testing.T) {
	c, err := Load("conf.properties")
	if err != nil {
		t.Fatal(err)
	}
	if live, restart := c.LiveDiff(Default()); live != nil || restart != nil {
		t.Errorf("conf.properties differs from the defaults: %v %v", live, restart)
	}
}

// TestConfPropertiesListsEveryKey checks that conf.properties has every key
// in the order of the key table, each with a comment line above it.
func TestConfPropertiesListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("conf.properties")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	prev := ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			key, _, _ := strings.Cut(line, " ")
			if _, _, isRule := ruleKey(key); !isRule {
				got = append(got, key)
				if !strings.HasPrefix(prev, "#") {
					t.Errorf("%s has no comment line above it", key)
				}
			}
		}
		prev = line
	}
	var want []string
	for _, k := range keys {
		if k.name != "protocol.result.fields" { // commented out: the request spec
			want = append(want, k.name)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys in conf.properties:\n%v\nwant\n%v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	r, s, g := c.Receiver, c.Sender, c.Log
	checks := []struct {
		name      string
		got, want any
	}{
		{"receiver.listen", r.Listen, "0.0.0.0:9010"},
		{"receiver.data_dir", r.DataDir, "/var/spool/spoolgate/request"},
		{"receiver.publish", r.Publish, PublishRename},
		{"receiver.fsync", r.Fsync, FsyncAlways},
		{"receiver.max_conns", r.MaxConns, 512},
		{"receiver.max_message_bytes", r.MaxMessageBytes, 9999},
		{"receiver.read_timeout", r.ReadTimeout, 10 * time.Second},
		{"receiver.idle_timeout", r.IdleTimeout, 60 * time.Second},
		{"receiver.write_timeout", r.WriteTimeout, 5 * time.Second},
		{"receiver.allow", len(r.Allow), 0},
		{"receiver.proxy_protocol", r.ProxyProtocol, false},
		{"receiver.proxy_trusted", len(r.ProxyTrusted), 0},
		{"receiver.dedup_window", r.DedupWindow, 10 * time.Minute},
		{"receiver.dedup_key", r.DedupKey, []string{"org_code", "process_no"}},
		{"receiver.tls", r.TLS.Cert + r.TLS.Key + r.TLS.ClientCA, ""},
		{"receiver.admin_listen", r.AdminListen, "127.0.0.1:9011"},
		{"sender.remote", len(s.Remote), 0},
		{"sender.spool_dir", s.SpoolDir, "/var/spool/spoolgate/outbox"},
		{"sender.failed_dir", s.FailedDir, "/var/spool/spoolgate/failed"},
		{"sender.sent_dir", s.SentDir, ""},
		{"sender.workers", s.Workers, 8},
		{"sender.timeout", s.Timeout, 5 * time.Second},
		{"sender.retries", s.Retries, 3},
		{"sender.window", s.Window, Window(1)},
		{"sender.connect_timeout", s.ConnectTimeout, 3 * time.Second},
		{"sender.retry_backoff", s.RetryBackoff, time.Second},
		{"sender.retry_backoff_max", s.RetryBackoffMax, 60 * time.Second},
		{"sender.keepalive", s.Keepalive, true},
		{"sender.scan_interval", s.ScanInterval, 5 * time.Second},
		{"sender.settle", s.Settle, time.Second},
		{"sender.tls", s.TLS.CA + s.TLS.Cert + s.TLS.Key + s.TLS.ServerName, ""},
		{"sender.admin_listen", s.AdminListen, "127.0.0.1:9012"},
		{"log.dir", g.Dir, "/var/log/spoolgate"},
		{"log.level", g.Level, "info"},
		{"log.format", g.Format, "text"},
		{"log.max_size_mb", g.MaxSizeMB, 100},
		{"log.max_backups", g.MaxBackups, 30},
		{"log.max_age_days", g.MaxAgeDays, 30},
		{"log.compress", g.Compress, true},
		{"log.rotate_daily", g.RotateDaily, true},
		{"log.mask", len(g.Mask), 0},
		{"log.mask_rrn", g.MaskRRN, true},
		{"journal.dir", c.Journal.Dir, "/var/log/spoolgate/journal"},
		{"journal.keep", c.Journal.Keep, 400 * Day},
		{"sender.sent_keep", s.SentKeep, time.Duration(0)},
		{"shutdown_timeout", c.ShutdownTimeout, 30 * time.Second},
		{"admin.pprof", c.AdminPprof, false},
		{"protocol.request", c.Protocol.Request, protocol.DefaultRequestSpec()},
		{"protocol.result", c.Protocol.Result, protocol.DefaultRequestSpec()},
		{"protocol.charset", c.Protocol.Charset, protocol.CharsetUTF8},
		{"protocol.layout", c.Protocol.Layout, protocol.LayoutDelimited},
		{"protocol.separator", c.Protocol.Separator, "|"},
		{"protocol.framing", c.Protocol.Framing, protocol.FramingLF},
		{"protocol.length", [3]any{c.Protocol.Length.Format, c.Protocol.Length.Bytes, c.Protocol.Length.Counts}, [3]any{protocol.LengthASCII, 4, protocol.CountsRest}},
		{"protocol.reply.fields", c.Protocol.Reply.Names(), []string{"length", "type", "process_no", "replied_at", "code"}},
		{"protocol.reply.code", c.Protocol.Codes, struct{ OK, Invalid, Unavailable string }{"200", "400", "500"}},
		{"protocol.echo", c.Protocol.Echo, struct{ Field, Value string }{}},
		{"dialect", c.Protocol.Dialect.String(), protocol.DefaultDialect().String()},
		{"sender.heartbeat", [2]any{s.Heartbeat, s.HeartbeatMessage}, [2]any{time.Duration(0), ""}},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("%v, want %v", ck.got, ck.want)
			}
		})
	}
}

func TestLocalProperties(t *testing.T) {
	c, err := Load("local.properties")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireSender(); err != nil {
		t.Fatal(err)
	}
	got := []string{c.Receiver.Listen, c.Receiver.AdminListen, strings.Join(c.Sender.Remote, ","), c.Sender.AdminListen,
		c.Receiver.DataDir, c.Sender.SpoolDir, c.Sender.FailedDir, c.Sender.SentDir, c.Log.Dir}
	want := []string{"127.0.0.1:9010", "127.0.0.1:9011", "127.0.0.1:9010", "127.0.0.1:9012",
		"var/request", "var/outbox", "var/failed", "var/sent", ""}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if c.Sender.Settle != 200*time.Millisecond || c.Sender.ScanInterval != 2*time.Second {
		t.Errorf("settle %v scan_interval %v", c.Sender.Settle, c.Sender.ScanInterval)
	}
}

func TestGoodCustom(t *testing.T) {
	c, err := Load("testdata/good_custom.properties")
	if err != nil {
		t.Fatal(err)
	}
	r, s, g := c.Receiver, c.Sender, c.Log
	allow := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.5/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8"),
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mixed-case key, ':' separator", r.Listen, "[::]:9443"},
		{"allow", r.Allow, allow},
		{"'=' without blanks", r.Publish, PublishAppend},
		{"blank separator", r.Fsync, FsyncNever},
		{"dedup", [2]any{r.DedupWindow, r.DedupKey}, [2]any{time.Hour, []string{"org", "ref"}}},
		{"tls", [3]string{r.TLS.Cert, r.TLS.Key, r.TLS.ClientCA}, [3]string{"testdata/tls/cert.pem", "testdata/tls/key.pem", "testdata/tls/ca.pem"}},
		{"admin off", r.AdminListen, ""},
		{"continued line", s.Remote, []string{"primary.example:9010", "10.9.9.9:9010"}},
		{"sent_dir", s.SentDir, "/srv/sent"},
		{"sender tls", [2]string{s.TLS.CA, s.TLS.ServerName}, [2]string{"testdata/tls/ca.pem", "gate.example"}},
		{"backoff", [2]time.Duration{s.RetryBackoff, s.RetryBackoffMax}, [2]time.Duration{250 * time.Millisecond, 250 * time.Millisecond}},
		{"settle 0s", s.Settle, time.Duration(0)},
		{"window auto, line order", [2]any{s.Window, s.LineOrder}, [2]any{WindowAuto, LineOrderStrict}},
		{"log", g, Log{Options: logging.Options{Dir: "", Level: "debug", Format: "json", MaxSizeMB: 100, MaxBackups: 0, MaxAgeDays: 30, Compress: false, RotateDaily: true},
			Mask: []string{"body", "status"}, MaskRRN: false}},
		{"journal", c.Journal, Journal{Dir: "/srv/journal", Keep: 36 * time.Hour}},
		{"sent_keep", s.SentKeep, 90 * Day},
		{"pprof", c.AdminPprof, true},
		{"request fields", c.Protocol.Request.Names(), []string{"length", "kind", "org", "ref", "body"}},
		{"result fields", c.Protocol.Result.Names(), []string{"length", "kind", "ref", "status"}},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("%v, want %v", ck.got, ck.want)
			}
		})
	}
	// The specs work: a request of the custom spec parses.
	msg, err := c.Protocol.Request.Encode("ORD", "ABC", "000000000042", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Protocol.Request.Parse(msg[:len(msg)-1]); err != nil {
		t.Errorf("parse %q: %v", msg, err)
	}
}

// TestGoodDialects: the worked examples of docs/PROTOCOL.md load, and their
// dialects are what the docs say.
func TestGoodDialects(t *testing.T) {
	for file, want := range map[string]string{
		"good_dialect_euckr_fixed":     `euc-kr, fixed width (request 97 bytes, reply 31), framing length (4 ascii bytes counting the rest); request 6 fields, result the request's; reply kind,process_no,replied_at,code; codes ok 0000, invalid 9999, unavailable 9998; echo kind=0800`,
		"good_dialect_binary":          `utf-8, delimited by "|", framing length (2 binary bytes counting the rest); request 8 fields, result the request's; reply type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo`,
		"good_dialect_codes":           `utf-8, delimited by "|", framing lf; request 9 fields, result the request's; reply length,type,process_no,replied_at,code; codes ok 0000, invalid 9999, unavailable 9998; no echo`,
		"good_dialect_euckr_delimited": `euc-kr, delimited by "|", framing lf; request 9 fields, result the request's; reply length,type,process_no,replied_at,code; codes ok 200, invalid 400, unavailable 500; no echo`,
	} {
		t.Run(file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", file+".properties"))
			if err != nil {
				t.Fatal(err)
			}
			d := c.Protocol.Dialect
			if got := d.String(); got != want {
				t.Errorf("dialect\n%s\nwant\n%s", got, want)
			}
			if c.Protocol.Request != d.Request() || c.Protocol.Result != d.Result() || c.Protocol.Reply != d.Reply() {
				t.Error("the specs are not the dialect's")
			}
			if _, err := d.KeyIndexes(c.Receiver.DedupKey); err != nil {
				t.Error(err)
			}
			if c.Sender.Heartbeat > 0 {
				if _, err := d.Heartbeat(c.Sender.HeartbeatMessage); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestSeparatorUnderFixed: the fixed layout has no separator, so whatever
// protocol.separator says (the shipped file lists it) is not looked at.
func TestSeparatorUnderFixed(t *testing.T) {
	body := "protocol.layout = fixed\nprotocol.request.fields = length,kind,ref\nprotocol.request.field.length = length 4\n" +
		"protocol.request.field.kind = const 0200\nprotocol.request.field.ref = digits 9\nreceiver.dedup_key = ref\n"
	for _, sep := range []string{"", "x", "|"} {
		c, err := Load(write(t, "conf.properties", body+"protocol.separator = "+sep+"\n"))
		if err != nil {
			t.Fatalf("separator %q: %v", sep, err)
		}
		if _, err := c.Protocol.Dialect.Parse([]byte("00180200000000123")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDialectReload: a change of the dialect needs a restart, and each
// daemon sees the changes of the keys it reads.
func TestDialectReload(t *testing.T) {
	old := Default()
	c, err := Load(write(t, "conf.properties", "protocol.charset = cp949\nprotocol.reply.field.code = digits 4\n"+
		"protocol.reply.code.ok = 0000\nprotocol.reply.code.invalid = 9999\nprotocol.reply.code.unavailable = 9998\n"))
	if err != nil {
		t.Fatal(err)
	}
	live, restart := c.LiveDiff(old)
	want := []string{"protocol.charset", "protocol.reply.*", "protocol.reply.code.ok", "protocol.reply.code.invalid", "protocol.reply.code.unavailable"}
	if live != nil || !slices.Equal(restart, want) {
		t.Errorf("LiveDiff = %v, %v; want restart %v", live, restart, want)
	}
	for _, daemon := range []string{"receiver", "sender"} {
		if _, restart := c.ReloadDiff(old, daemon); !slices.Equal(restart, want) {
			t.Errorf("%s: ReloadDiff restart %v", daemon, restart)
		}
	}
	for _, key := range []string{"sender.heartbeat", "sender.heartbeat.message"} {
		if _, ok := Variant(key); !ok || IsLive(key) {
			t.Errorf("%s: no variant, or live", key)
		}
	}
}

func TestBadFiles(t *testing.T) {
	tests := []struct{ file, want string }{
		{"bad_duration_bare", `receiver.read_timeout = "5": a duration needs a unit, e.g. 5s`},
		{"bad_duration_zero", `receiver.dedup_window = "0": a duration needs a unit, e.g. 0s`},
		{"bad_duration_negative", `sender.settle = "-1s": a duration >= 0, e.g. 5s`},
		{"bad_duration_timeout_zero", `sender.timeout = "0s": a duration > 0, e.g. 5s`},
		{"bad_duration_garbage", `shutdown_timeout = "soon": a duration like 5s or 250ms`},
		{"bad_unknown_key", `line 2: receiver.lisen: unknown key (did you mean receiver.listen?)`},
		{"bad_unknown_key_far", `line 1: frobnicate: unknown key`},
		{"bad_duplicate_key", `line 3: sender.workers: set twice (first on line 1)`},
		// Secrets (admin.token, the AMQP URLs' passwords) are never printed:
		// a key set twice or misspelt shows no value, a secret's own
		// problems hide it (every secret in testdata holds "s3cret").
		{"bad_secret_token_twice", `line 3: admin.token: set twice (first on line 2)`},
		{"bad_secret_token_misspelt", `line 1: admin.tokn: unknown key (did you mean admin.token?)`},
		{"bad_secret_url_twice", `line 3: sender.amqp.url: set twice (first on line 2)`},
		{"bad_secret_url_misspelt", "line 2: receiver.amqp.uri: unknown key (did you mean receiver.amqp.url?)\n" +
			"line 3: receiver.amqp_url_backup: unknown key"},
		{"bad_secret_escape", `line 2: bad escape in the value of admin.token (hidden): want \uXXXX`},
		// Every problem of a file, one line each (a rule over a key that
		// failed is not judged: sender.retry_backoff against a bad max).
		{"bad_many", "line 4: frobnicate: unknown key\n" +
			`receiver.read_timeout = "5": a duration needs a unit, e.g. 5s` + "\n" +
			`sender.workers = "0": an integer >= 1` + "\n" +
			`sender.retry_backoff_max = "soon": a duration like 5s or 250ms` + "\n" +
			`log.level = "loud": one of debug, info, warn, error`},
		{"bad_cidr", `receiver.allow = "10.0.0.0/8, 10.1.0.0/33": comma-separated CIDRs like 10.0.0.0/8,192.168.1.5 (bad "10.1.0.0/33")`},
		{"bad_cidr_zone", `receiver.allow = "fe80::1%eth0": comma-separated CIDRs like 10.0.0.0/8,192.168.1.5 (bad "fe80::1%eth0")`},
		{"bad_proxy_protocol", `receiver.proxy_protocol = "yes": one of off, on`},
		{"bad_proxy_trusted_missing", `receiver.proxy_trusted = "": required with receiver.proxy_protocol=on: comma-separated CIDRs of the load balancers`},
		{"bad_proxy_trusted", `receiver.proxy_trusted = "10.0.0.5, haproxy1": comma-separated CIDRs like 10.0.0.0/8,192.168.1.5 (bad "haproxy1")`},
		{"bad_workers_zero", `sender.workers = "0": an integer >= 1`},
		{"bad_retries_negative", `sender.retries = "-1": an integer >= 0`},
		{"bad_window_zero", `sender.window = "0": auto, or an integer from 1 to 1024`},
		{"bad_window_large", `sender.window = "5000": auto, or an integer from 1 to 1024`},
		{"bad_max_message_bytes", `receiver.max_message_bytes = "10000": an integer from 16 to 9999`},
		{"bad_max_conns", `receiver.max_conns = "lots": an integer >= 1`},
		{"bad_publish", `receiver.publish = "sometimes": one of rename, append`},
		{"bad_fsync", `receiver.fsync = "sometimes": one of always, never`},
		{"bad_log_level", `log.level = "loud": one of debug, info, warn, error`},
		{"bad_log_format", `log.format = "xml": one of text, json`},
		{"bad_bool", `sender.keepalive = "yes": true or false`},
		{"bad_listen", `receiver.listen = "9010": host:port with a port from 0 to 65535, e.g. 0.0.0.0:9010`},
		{"bad_admin_listen", `receiver.admin_listen = "localhost:99999": host:port with a port from 0 to 65535, e.g. 0.0.0.0:9010`},
		{"bad_remote", `sender.remote = "10.1.2.3:9010,backup.example": comma-separated host:port with a port from 1 to 65535, e.g. 10.1.2.3:9010 (bad "backup.example")`},
		{"bad_remote_port_zero", `sender.remote = "10.1.2.3:0": host:port with a port from 1 to 65535, e.g. 10.1.2.3:9010`},
		{"bad_backoff_order", `sender.retry_backoff = "2m": at most sender.retry_backoff_max (1m0s)`},
		{"bad_tls_half", `receiver.tls.key = "": set together with receiver.tls.cert`},
		{"bad_admin_token_short", `admin.token = "(hidden)": at least 16 characters (got 12), e.g. from: head -c 24 /dev/urandom | base64`},
		{"bad_admin_token_space", `admin.token = "(hidden)": no spaces or control characters`},
		{"bad_tls_client_ca_alone", `receiver.tls.cert = "": required with receiver.tls.client_ca (mutual TLS needs TLS)`},
		{"bad_max_conns_per_ip", `receiver.max_conns_per_ip = "-1": an integer >= 0`},
		{"bad_tls_handshake_timeout", `receiver.tls.handshake_timeout = "5": a duration needs a unit, e.g. 5s`},
		{"bad_tls_client_names_without_ca", `receiver.tls.client_names = "gw1.partner.example": set only with receiver.tls.client_ca (names are checked on client certificates)`},
		{"bad_tls_missing_file", `sender.tls.ca = "testdata/tls/nope.pem": a readable file (no such file or directory)`},
		{"bad_tls_key_mismatch", `receiver.tls.key = "testdata/tls/other_key.pem": the PEM private key of receiver.tls.cert (tls: private key does not match public key)`},
		{"bad_tls_key_is_cert", `sender.tls.key = "testdata/tls/cert.pem": the PEM private key of sender.tls.cert (tls: found a certificate rather than a key in the PEM for the private key)`},
		{"bad_tls_cert_not_pem", `sender.tls.cert = "testdata/tls/not_pem.txt": a PEM certificate (no CERTIFICATE block found)`},
		{"bad_tls_client_ca_not_pem", `receiver.tls.client_ca = "testdata/tls/not_pem.txt": a file of PEM CA certificates (none found)`},
		{"bad_tls_ca_is_key", `sender.tls.ca = "testdata/tls/key.pem": a file of PEM CA certificates (none found)`},
		{"bad_listen_is_admin", `receiver.listen = "127.0.0.1:9011": an address other than receiver.admin_listen (127.0.0.1:9011): both listen on this host and cannot share a port`},
		{"bad_sender_admin_in_listen", `receiver.listen = "0.0.0.0:9012": an address other than sender.admin_listen (127.0.0.1:9012): both listen on this host and cannot share a port`},
		{"bad_admin_wildcard_v6", `receiver.admin_listen = "[::]:9012": an address other than sender.admin_listen (127.0.0.1:9012): both listen on this host and cannot share a port`},
		{"bad_admin_localhost", `sender.admin_listen = "localhost:9011": an address other than receiver.admin_listen (127.0.0.1:9011): both listen on this host and cannot share a port`},
		{"bad_data_dir_empty", `receiver.data_dir = "": a directory path`},
		{"bad_same_dirs", `sender.failed_dir = "/srv/spool/": a directory other than sender.spool_dir`},
		{"bad_spool_is_data_dir", `sender.spool_dir = "/srv/gate": a directory other than receiver.data_dir`},
		{"bad_rule", `protocol.request.field.org_code = "class A-Z0-9 2-10": class needs bytes and a length range, e.g. class A-Z0-9 2..10`},
		{"bad_rule_missing", `protocol.request.field.org_code = "": a rule for field org_code, e.g. text 0..100`},
		{"bad_rule_not_listed", `protocol.request.field.extra = "digits 3": extra is not in protocol.request.fields`},
		{"bad_rule_without_fields", `protocol.request.field.payload = "text 0..100": needs protocol.request.fields to list the fields in order`},
		{"bad_fields_name", `protocol.request.fields = "length,Type": comma-separated field names of a-z, 0-9 and _ (bad "Type")`},
		{"bad_length_not_first", `protocol.result.field.type = "const RES": the first field, and only the first, is the length field: length 4`},
		{"bad_dedup_key", `receiver.dedup_key = "org_code,client_no": client_no is not a field of the request spec (length,type,process_no,sent_at,org_code,service_code,key,payload,filler)`},
		{"bad_dedup_key_empty", `receiver.dedup_key = "": at least one field of the request spec, e.g. org_code,process_no (or receiver.dedup_window=0s)`},
		{"bad_sink", `receiver.sink = "kafka": one of files, amqp`},
		{"bad_amqp_url", `receiver.amqp.url = "http://guest:xxxxx@10.0.0.5:5672/": comma-separated amqp:// or amqps:// URLs, e.g. amqp://user:password@10.0.0.5:5672/vhost (AMQP scheme must be either 'amqp://' or 'amqps://')`},
		{"bad_amqp_url_password", `sender.amqp.url = "(hidden: it holds credentials)": comma-separated amqp:// or amqps:// URLs, e.g. amqp://user:password@10.0.0.5:5672/vhost (it does not parse as a URL; a reserved character such as "?", "#", "@", ":" or "/" in the user name or password must be percent-encoded)`},
		{"bad_amqp_url_missing", `receiver.amqp.url = "": required with receiver.sink=amqp: comma-separated amqp:// or amqps:// URLs`},
		{"bad_amqp_queue_type", `receiver.amqp.queue_type = "stream": one of quorum, classic`},
		{"bad_amqp_queue_empty", `receiver.amqp.queue = "": a queue name of 1 to 255 bytes without control characters`},
		{"bad_source_url_missing", `sender.amqp.url = "": required with sender.source=amqp: comma-separated amqp:// or amqps:// URLs`},
		{"bad_amqp_failed_queue_same", `sender.amqp.failed_queue = "spoolgate.results": a queue other than sender.amqp.queue`},
		{"bad_escape", `line 2: bad escape \u12G4: want \uXXXX`},
		{"bad_admin_hosts", `admin.hosts = "gw1.example.com, gw1:9011": comma-separated host names without a port, e.g. gw1.example.com,gw1 (bad "gw1:9011")`},
		{"bad_protocol_length_field", `protocol.request.field.length = "length 4": no length field under protocol.framing=length: the header carries the length`},
		{"bad_protocol_fixed_zero_width", `protocol.request.field.note = "text 0..0": under protocol.layout=fixed every field needs a width of at least 1 byte (MAX >= 1)`},
		{"bad_protocol_reply_no_code", `protocol.reply.fields = "length,type,process_no": a reply needs a field named code, which carries protocol.reply.code.*`},
		{"bad_protocol_binary_3", `protocol.length.bytes = "3": 2 or 4 with protocol.length.format=binary`},
		{"bad_protocol_separator_letter", `protocol.separator = "x": one printable ASCII byte, not a letter, digit or space, e.g. |`},
		{"bad_protocol_separator_empty", `protocol.separator = "": one printable ASCII byte, not a letter, digit or space, e.g. |`},
		{"bad_protocol_code_rule", `protocol.reply.code.ok = "0000": a code that fits protocol.reply.field.code (the rule of reply field code is digits 3)`},
		{"bad_protocol_code_same", `protocol.reply.code.invalid = "200": a code other than protocol.reply.code.ok (the sender could not tell the outcomes apart)`},
		{"bad_protocol_code_empty", `protocol.reply.code.unavailable = "": the value of the reply's code field for this outcome, e.g. 0000`},
		{"bad_protocol_echo_field", `protocol.echo.field = "ping": a field of the request spec (length,type,process_no,sent_at,org_code,service_code,key,payload,filler)`},
		{"bad_protocol_echo_value", `protocol.echo.value = "ECHO1": a value of protocol.echo.field service_code (the rule of service_code is class A-Z0-9 4..4)`},
		{"bad_protocol_echo_half", `protocol.echo.value = "": set with protocol.echo.field: the value of service_code that marks the echo telegram`},
		{"bad_protocol_charset", `protocol.charset = "latin1": one of utf-8, euc-kr, cp949`},
		{"bad_protocol_const_charset", `protocol.request.field.type = "const 갂": const needs a text the charset euc-kr can carry: a character of "갂" is in cp949 but not in euc-kr`},
		{"bad_protocol_fixed_max_message", `receiver.max_message_bytes = "50": at least 101: every request of the fixed layout is that long (protocol.request.fields)`},
		{"bad_protocol_reply_field", `protocol.reply.field.note = "text 0..5": a reply field is the length, the code, a const, a time, or named like a request field (whose value it echoes); note is none of these`},
		{"bad_protocol_reply_rule_unlisted", `protocol.reply.field.status = "digits 2": status is not in protocol.reply.fields (empty: length,type,process_no,replied_at,code)`},
		{"bad_protocol_header_small", `protocol.length.bytes = "2": a header that can say 120 bytes (protocol.request.fields are that wide); ascii 2 bytes say at most 99`},
		{"bad_heartbeat_message_missing", `sender.heartbeat.message = "": required with sender.heartbeat > 0: the echo telegram as a spool line`},
		{"bad_heartbeat_not_echo", `sender.heartbeat.message = "REQ|000000000|20260101000000|ORG01|SV01|K|ping|x": the echo telegram as a spool line: not the echo telegram: its field filler is "x", protocol.echo.value is "PING"`},
		{"bad_heartbeat_no_echo", `sender.heartbeat.message = "REQ|000000000|20260101000000|ORG01|SV01|K|ping|PING": the echo telegram as a spool line: no echo telegram: protocol.echo.field is not set or not a field of the result spec`},
		{"bad_heartbeat_keepalive", `sender.heartbeat = "5s": 0s with sender.keepalive=false: only a kept-alive connection is ever idle`},
		{"bad_journal_keep_bare", `journal.keep = "400": a duration needs a unit, e.g. 400d`},
		{"bad_journal_keep_short", `journal.keep = "12h": 0d (keep forever) or at least 1d, e.g. 400d`},
		{"bad_journal_keep_garbage", `journal.keep = "1y": a duration like 400d, 36h or 30m`},
		{"bad_sent_keep_negative", `sender.sent_keep = "-1d": a duration >= 0, e.g. 90d`},
		{"bad_journal_dir_var", `journal.dir = "${log.dir}journal": a directory path, or ${log.dir}/NAME for one under log.dir, e.g. ${log.dir}/journal`},
		{"bad_journal_dir_spool", `journal.dir = "/srv/spool/": a directory other than sender.spool_dir`},
		{"bad_log_mask", `log.mask = "payload, rrn": rrn is not a field of the request or result spec (length,type,process_no,sent_at,org_code,service_code,key,payload,filler)`},
		{"bad_log_mask_rrn", `log.mask_rrn = "yes": true or false`},
	}
	files, err := filepath.Glob("testdata/bad_*.properties")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d bad files, %d table cases", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			name := tt.file + ".properties"
			_, err := Load(filepath.Join("testdata", name))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *conf.Error", err, err)
			}
			want := name + ": " + strings.ReplaceAll(tt.want, "\n", "\n"+name+": ")
			if err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if got, want := len(Problems(err)), strings.Count(tt.want, "\n")+1; got != want {
				t.Errorf("Problems: %d, want %d, one a line", got, want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a secret: %s", err)
			}
		})
	}
}

// TestConfigFileKinds: a config path that is missing, not a regular file
// or too big is an *Error (exit 2) naming the whole path, and Load returns
// at once: a FIFO without a writer does not block it, /dev/zero is not read
// until memory runs out.
func TestConfigFileKinds(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.properties")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := write(t, "big.properties", strings.Repeat("# a comment line of 32 bytes...\n", MaxFileBytes/32+1))
	limit := write(t, "limit.properties", "sender.workers = 2\n"+strings.Repeat("#", MaxFileBytes-len("sender.workers = 2\n")))
	link := filepath.Join(dir, "link.properties")
	if err := os.Symlink(limit, link); err != nil {
		t.Fatal(err)
	}
	noRead := write(t, "noread.properties", "")
	if err := os.Chmod(noRead, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string // want "" loads
		notExist         bool
	}{
		{"missing", filepath.Join(dir, "missing.properties"), "cannot read the config file: no such file or directory", true},
		{"missing dir", filepath.Join(dir, "nodir", "conf.properties"), "cannot read the config file: no such file or directory", true},
		{"fifo", fifo, "the config file must be a regular file, not a named pipe (FIFO)", false},
		{"dev zero", "/dev/zero", "the config file must be a regular file, not a character device", false},
		{"directory", dir, "the config file must be a regular file, not a directory", false},
		{"too big", big, fmt.Sprintf("the config file is larger than 1 MiB (%d bytes): is this the right file?", (MaxFileBytes/32+1)*32), false},
		{"exactly 1 MiB", limit, "", false},
		{"symlink to a file", link, "", false},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name, path, want string
			notExist         bool
		}{"unreadable", noRead, "cannot read the config file: permission denied", false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Load(tt.path); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Load did not return within 10s")
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *conf.Error", err, err)
			}
			// A daemon exits 2 on it, not 1: under systemd, 1 restarts it
			// in a loop (internal/daemon's Exit asks BadConfig).
			if bad, ok := err.(interface{ BadConfig() bool }); !ok || !bad.BadConfig() {
				t.Errorf("error %v (%T): not a bad configuration", err, err)
			}
			if want := tt.path + ": " + tt.want; err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if errors.Is(err, os.ErrNotExist) != tt.notExist {
				t.Errorf("errors.Is(err, os.ErrNotExist) = %v", !tt.notExist)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	file := "sender.remote = 10.1.2.3:9010\nreceiver.dedup_window = 5m\nlog.dir = /srv/log\n" +
		"protocol.request.fields = length,type,process_no,org_code\n" +
		"protocol.request.field.length = length 4\nprotocol.request.field.type = const REQ\n" +
		"protocol.request.field.process_no = digits 9\nprotocol.request.field.org_code = class A-Z 2..4\n"
	tests := []struct {
		name  string
		env   map[string]string
		check func(c *Config) any // returns the value looked at
		want  any
		err   string
	}{
		{"no env", nil, func(c *Config) any { return c.Receiver.DedupWindow }, 5 * time.Minute, ""},
		{"overrides the file", map[string]string{"SPOOLGATE_RECEIVER_DEDUP_WINDOW": "1m"},
			func(c *Config) any { return c.Receiver.DedupWindow }, time.Minute, ""},
		{"overrides a default", map[string]string{"SPOOLGATE_SENDER_WORKERS": "2"},
			func(c *Config) any { return c.Sender.Workers }, 2, ""},
		{"remote list", map[string]string{"SPOOLGATE_SENDER_REMOTE": "a.example:1,b.example:2"},
			func(c *Config) any { return c.Sender.Remote }, []string{"a.example:1", "b.example:2"}, ""},
		{"nested key", map[string]string{"SPOOLGATE_SENDER_TLS_SERVER_NAME": "gate.example"},
			func(c *Config) any { return c.Sender.TLS.ServerName }, "gate.example", ""},
		{"top-level key", map[string]string{"SPOOLGATE_SHUTDOWN_TIMEOUT": "2s"},
			func(c *Config) any { return c.ShutdownTimeout }, 2 * time.Second, ""},
		{"empty overrides too", map[string]string{"SPOOLGATE_LOG_DIR": ""},
			func(c *Config) any { return c.Log.Dir }, "", ""},
		{"field rule", map[string]string{"SPOOLGATE_PROTOCOL_REQUEST_FIELD_ORG_CODE": "class A-Z 2..10"},
			func(c *Config) any { return c.Protocol.Request.Fields()[3].Rule.String() }, "class A-Z 2..10", ""},
		{"bad value names the variable", map[string]string{"SPOOLGATE_RECEIVER_READ_TIMEOUT": "5"}, nil, nil,
			`$SPOOLGATE_RECEIVER_READ_TIMEOUT: receiver.read_timeout = "5": a duration needs a unit, e.g. 5s`},
		{"bad rule names the variable", map[string]string{"SPOOLGATE_PROTOCOL_REQUEST_FIELD_TYPE": "const"}, nil, nil,
			`$SPOOLGATE_PROTOCOL_REQUEST_FIELD_TYPE: protocol.request.field.type = "const": const needs a text without | CR LF NUL, e.g. const REQ`},
		{"SPOOLGATE_CONFIG is not a key", map[string]string{"SPOOLGATE_CONFIG": "/elsewhere"},
			func(c *Config) any { return c.Sender.Workers }, 8, ""},
	}
	p := write(t, "conf.properties", file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Load(p)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultIgnoresEnv(t *testing.T) {
	t.Setenv("SPOOLGATE_SENDER_WORKERS", "2")
	if w := Default().Sender.Workers; w != 8 {
		t.Errorf("Default().Sender.Workers = %d, want 8", w)
	}
}

func TestPath(t *testing.T) {
	tests := []struct{ flag, env, want string }{
		{"/a.properties", "/b.properties", "/a.properties"},
		{"", "/b.properties", "/b.properties"},
		{"", "", DefaultPath},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Setenv(EnvConfig, tt.env)
			if got := Path(tt.flag); got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

func TestRequireSender(t *testing.T) {
	c, err := Load("conf.properties")
	if err != nil {
		t.Fatal(err)
	}
	err = c.RequireSender()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *conf.Error", err)
	}
	if want := `conf.properties: sender.remote = "": required: host:port of the remote receiver`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	c, err = Load("testdata/good_minimal.properties")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireSender(); err != nil {
		t.Error(err)
	}
}

func TestLiveDiff(t *testing.T) {
	base := "sender.remote = 10.1.2.3:9010\n"
	tests := []struct {
		name          string
		change        string
		live, restart []string
	}{
		{"same", "", nil, nil},
		{"same value written differently", "receiver.read_timeout = 10000ms\nlog.level = INFO\n", nil, nil},
		{"live", "log.level = debug\nreceiver.max_conns = 10\nreceiver.allow = 10.0.0.0/8\nsender.workers = 2\nsender.window = 32\nsender.retry_backoff = 2s\n",
			[]string{"receiver.max_conns", "receiver.allow", "sender.workers", "sender.window", "sender.retry_backoff", "log.level"}, nil},
		{"proxy", "receiver.proxy_protocol = on\nreceiver.proxy_trusted = 10.0.0.5,10.0.0.6\n",
			[]string{"receiver.proxy_trusted"}, []string{"receiver.proxy_protocol"}},
		{"restart", "receiver.listen = 127.0.0.1:1\nreceiver.fsync = never\nlog.format = json\n",
			nil, []string{"receiver.listen", "receiver.fsync", "log.format"}},
		{"both", "sender.timeout = 1s\nsender.remote = 10.1.2.4:9010\n",
			[]string{"sender.timeout"}, []string{"sender.remote"}},
		{"spec", "protocol.result.fields = length,type\nprotocol.result.field.length = length 4\nprotocol.result.field.type = const RES\n",
			nil, []string{"protocol.result.*"}},
	}
	old, err := Load(write(t, "conf.properties", base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := base
			if strings.Contains(tt.change, "sender.remote") {
				body = ""
			}
			c, err := Load(write(t, "conf.properties", body+tt.change))
			if err != nil {
				t.Fatal(err)
			}
			live, restart := c.LiveDiff(old)
			if !slices.Equal(live, tt.live) || !slices.Equal(restart, tt.restart) {
				t.Errorf("LiveDiff = %v, %v; want %v, %v", live, restart, tt.live, tt.restart)
			}
		})
	}
	if live, restart := old.LiveDiff(nil); len(live)+len(restart) != len(keys) {
		t.Errorf("diff against nil lists %d keys, want %d", len(live)+len(restart), len(keys))
	}
}

func TestErrorOneLine(t *testing.T) {
	_, err := Load(write(t, "x.properties", `we\nird = va\nlue`))
	if err == nil || strings.ContainsAny(err.Error(), "\n\r") {
		t.Fatalf("error %q", err)
	}
	if want := `x.properties: line 1: "we\nird": unknown key`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestEnvWarnings: a SPOOLGATE_* variable that overrides no key is a
// warning (a typo of an override), with the nearest name when one is close;
// the variables of the scripts and the bound overrides are not.
func TestEnvWarnings(t *testing.T) {
	file := "protocol.request.fields = length,type,process_no,org_code\nprotocol.request.field.length = length 4\n" +
		"protocol.request.field.type = const REQ\nprotocol.request.field.process_no = digits 9\nprotocol.request.field.org_code = class A-Z 2..4\n"
	p := write(t, "conf.properties", file)
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"none", nil, nil},
		{"overrides and script variables are fine", map[string]string{
			"SPOOLGATE_SENDER_REMOTE": "10.1.2.3:9010", "SPOOLGATE_LOG_DIR": "", "SPOOLGATE_PROTOCOL_REQUEST_FIELD_TYPE": "const REQ",
			"SPOOLGATE_CONFIG": "/x", "SPOOLGATE_HOME": "/", "SPOOLGATE_BIN": "/b", "SPOOLGATE_RUN_DIR": "/run/x", "SPOOLGATE_USER": "u",
			"SPOOLGATE_DAEMONS": "receiver", "SPOOLGATE_START_TIMEOUT": "5", "SPOOLGATE_DEFAULTS": "/etc/default/spoolgate",
		}, nil},
		{"typo", map[string]string{"SPOOLGATE_SENDER_REMOTEE": "10.1.2.3:9010"},
			[]string{"$SPOOLGATE_SENDER_REMOTEE is set but is no configuration key: ignored (did you mean SPOOLGATE_SENDER_REMOTE?)"}},
		{"lower case", map[string]string{"spoolgate_log_level": "debug"},
			[]string{"$spoolgate_log_level is set but is no configuration key: ignored (did you mean SPOOLGATE_LOG_LEVEL?)"}},
		{"far from any key", map[string]string{"SPOOLGATE_FROBNICATE": "1"},
			[]string{"$SPOOLGATE_FROBNICATE is set but is no configuration key: ignored"}},
		{"rule of an unlisted field", map[string]string{"SPOOLGATE_PROTOCOL_REQUEST_FIELD_PAYLOAD": "text 0..10"},
			[]string{"$SPOOLGATE_PROTOCOL_REQUEST_FIELD_PAYLOAD is set but is no configuration key: ignored"}},
		{"sorted", map[string]string{"SPOOLGATE_B_X": "1", "SPOOLGATE_A_X": "1"}, []string{
			"$SPOOLGATE_A_X is set but is no configuration key: ignored", "$SPOOLGATE_B_X is set but is no configuration key: ignored"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Warnings(), tt.want) {
				t.Errorf("warnings\n%q\nwant\n%q", c.Warnings(), tt.want)
			}
		})
	}
	t.Setenv("SPOOLGATE_FROBNICATE", "1")
	if w := Default().Warnings(); w != nil {
		t.Errorf("Default() reads no environment, warnings %q", w)
	}
}

// TestLogLevelWarning: "warning", as the log lines name the level, is
// accepted as warn, in any case.
func TestLogLevelWarning(t *testing.T) {
	for _, v := range []string{"warning", "WARNING", "Warn"} {
		c, err := Load(write(t, "conf.properties", "log.level = "+v+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Log.Level != "warn" {
			t.Errorf("log.level = %s: Level %q, want warn", v, c.Log.Level)
		}
	}
}
