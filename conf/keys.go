package conf

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"spoolgate/protocol"
)

// keys are the fixed keys in the order of conf.properties: each is declared here
// once, with its default as it would be written in the file, which daemon
// applies it on reload without a restart, how its value is decoded and
// checked (and rendered for LiveDiff), and the one-line doc that
// conf.properties carries above it (TestKeyDocs). The field rules
// protocol.{request,result,reply}.field.NAME come on top (see ruleKey);
// loader.protocol decodes the protocol.* keys into the dialect.
var keys = []key{
	{"receiver.listen", "0.0.0.0:9010", restart,
		listenV(func(c *Config) *string { return &c.Receiver.Listen }, false),
		"TCP address to listen on (ignored under systemd socket activation)."},
	{"receiver.data_dir", "/var/spool/spoolgate/request", restart,
		dirV(func(c *Config) *string { return &c.Receiver.DataDir }, true),
		"Directory of the request files <yyyyMMddHHmm>_request.txt."},
	{"receiver.publish", "rename", restart,
		enumV(func(c *Config) *Publish { return &c.Receiver.Publish }, PublishRename, PublishAppend),
		"rename: write <name>.part, publish complete minutes; append: write <name> directly."},
	{"receiver.fsync", "always", restart,
		enumV(func(c *Config) *Fsync { return &c.Receiver.Fsync }, FsyncAlways, FsyncNever),
		"always: reply 200 only once the line is on stable storage; never: leave it to the OS."},
	{"receiver.sink", "files", restart,
		enumV(func(c *Config) *Sink { return &c.Receiver.Sink }, SinkFiles, SinkAMQP),
		"files: accepted messages go to request files in receiver.data_dir; amqp: they are published to RabbitMQ (receiver.amqp.*), 200 only after the broker's confirm."},
	{"receiver.amqp.url", "", restart,
		amqpV(func(c *Config) *[]string { return &c.Receiver.AMQP.URL }),
		"Comma-separated amqp:// or amqps:// URLs of the cluster's nodes, tried in order (required with receiver.sink=amqp). Put credentials in the environment file as SPOOLGATE_RECEIVER_AMQP_URL."},
	{"receiver.amqp.queue", "spoolgate.requests", restart,
		queueV(func(c *Config) *string { return &c.Receiver.AMQP.Queue }),
		"Durable queue the accepted messages are published to (declared at start)."},
	{"receiver.amqp.queue_type", "quorum", restart,
		enumV(func(c *Config) *QueueType { return &c.Receiver.AMQP.QueueType }, QueueQuorum, QueueClassic),
		"quorum (replicated over a majority of nodes) or classic (one node's disk)."},
	{"receiver.amqp.confirm_timeout", "5s", restart,
		durV(func(c *Config) *time.Duration { return &c.Receiver.AMQP.ConfirmTimeout }, true),
		"Wait for the broker's publisher confirm; none within it: 500."},
	{"receiver.max_conns", "512", liveReceiver,
		intV(func(c *Config) *int { return &c.Receiver.MaxConns }, 1, -1),
		"Connections served at once, counted from their first message; as many more (at least 64) may wait for theirs, then the busiest address loses its oldest."},
	{"receiver.max_conns_per_ip", "64", liveReceiver,
		intV(func(c *Config) *int { return &c.Receiver.MaxConnsPerIP }, 0, -1),
		"Connections open at once from one address (waiting or served); more are closed at once; 0: no limit."},
	{"receiver.max_message_bytes", "9999", restart,
		intV(func(c *Config) *int { return &c.Receiver.MaxMessageBytes }, 16, protocol.MaxMessageBytes),
		"Longest message in bytes: under framing lf with its LF, under framing length without its header (16 to 9999)."},
	{"receiver.read_timeout", "10s", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.Receiver.ReadTimeout }, true),
		"Time to finish a message once its first byte arrived."},
	{"receiver.idle_timeout", "60s", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.Receiver.IdleTimeout }, true),
		"Time between messages on a kept-alive connection."},
	{"receiver.write_timeout", "5s", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.Receiver.WriteTimeout }, true),
		"Time to write a reply."},
	{"receiver.allow", "", liveReceiver,
		cidrV(func(c *Config) *[]netip.Prefix { return &c.Receiver.Allow }),
		"Comma-separated CIDRs allowed to connect (a bare IP is one host); empty allows all."},
	{"receiver.proxy_protocol", "off", restart,
		onOffV(func(c *Config) *bool { return &c.Receiver.ProxyProtocol }),
		"off, or on behind an L4 load balancer: connections from receiver.proxy_trusted must start with a PROXY header (v1 or v2), whose address is the peer's for allow, logs and metrics."},
	{"receiver.proxy_trusted", "", liveReceiver,
		cidrV(func(c *Config) *[]netip.Prefix { return &c.Receiver.ProxyTrusted }),
		"Comma-separated CIDRs of the load balancers (required with receiver.proxy_protocol=on; changes live); a PROXY header from any other address is refused."},
	{"receiver.dedup_window", "10m", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.Receiver.DedupWindow }, false),
		"Answer a repeated message 200 without storing it again within this window; 0s turns it off."},
	{"receiver.dedup_key", "org_code,process_no", restart,
		fieldOf(func(c *Config) *[]string { return &c.Receiver.DedupKey }, (*loader).dedupKey),
		"Fields of the request spec that identify a message for deduplication."},
	{"receiver.tls.cert", "", liveReceiver,
		fileV(func(c *Config) *string { return &c.Receiver.TLS.Cert }),
		"TLS certificate (PEM); empty: plain TCP. Set together with receiver.tls.key, its private key. TLS files reload on SIGHUP and on change."},
	{"receiver.tls.key", "", liveReceiver,
		fileV(func(c *Config) *string { return &c.Receiver.TLS.Key }),
		"TLS private key (PEM)."},
	{"receiver.tls.client_ca", "", liveReceiver,
		fileV(func(c *Config) *string { return &c.Receiver.TLS.ClientCA }),
		"CA bundle (PEM) for client certificates; set: mutual TLS is required."},
	{"receiver.tls.client_names", "", liveReceiver,
		listV(func(c *Config) *[]string { return &c.Receiver.TLS.ClientNames }),
		"Comma-separated client identities mutual TLS serves (a DNS SAN, else the CN); empty: any certificate signed by receiver.tls.client_ca."},
	{"receiver.tls.handshake_timeout", "5s", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.Receiver.TLS.HandshakeTimeout }, true),
		"Time for a client to complete the TLS handshake."},
	{"receiver.admin_listen", "127.0.0.1:9011", restart,
		listenV(func(c *Config) *string { return &c.Receiver.AdminListen }, true),
		"Address of /healthz, /readyz, /metrics; empty disables. Not the port of receiver.listen."},
	{"sender.remote", "", restart,
		fieldOf(func(c *Config) *[]string { return &c.Sender.Remote }, (*loader).remote),
		"host:port of the remote receiver (required to run the sender); a comma-separated list is tried in order."},
	{"sender.spool_dir", "/var/spool/spoolgate/outbox", restart,
		dirV(func(c *Config) *string { return &c.Sender.SpoolDir }, true),
		"Drop-in directory: rename complete files in (names starting with . or ending in .tmp/.part are skipped)."},
	{"sender.failed_dir", "/var/spool/spoolgate/failed", restart,
		dirV(func(c *Config) *string { return &c.Sender.FailedDir }, true),
		"Where lines that could not be delivered go, each with a .reason file."},
	{"sender.sent_dir", "", restart,
		dirV(func(c *Config) *string { return &c.Sender.SentDir }, false),
		"Archive of delivered files; empty: delete them."},
	{"sender.sent_keep", "0d", restart,
		daysV(func(c *Config) *time.Duration { return &c.Sender.SentKeep }, 0),
		"Delivered files in sender.sent_dir older than this are removed (d counts days, e.g. 90d); 0d keeps them forever."},
	{"sender.source", "spool", restart,
		enumV(func(c *Config) *Source { return &c.Sender.Source }, SourceSpool, SourceAMQP),
		"spool: send the files dropped into sender.spool_dir; amqp: send the messages of sender.amqp.queue, acked after the remote's 200."},
	{"sender.amqp.url", "", restart,
		amqpV(func(c *Config) *[]string { return &c.Sender.AMQP.URL }),
		"Comma-separated amqp:// or amqps:// URLs of the cluster's nodes, tried in order (required with sender.source=amqp). Put credentials in the environment file as SPOOLGATE_SENDER_AMQP_URL."},
	{"sender.amqp.queue", "spoolgate.results", restart,
		queueV(func(c *Config) *string { return &c.Sender.AMQP.Queue }),
		"Durable queue of result lines to send, one line per message (without the length field)."},
	{"sender.amqp.failed_queue", "spoolgate.results.failed", restart,
		queueV(func(c *Config) *string { return &c.Sender.AMQP.FailedQueue }),
		"Where rejected lines and lines whose retries ran out are published, with reason, code, attempts, remote and failed_at headers."},
	{"sender.amqp.queue_type", "quorum", restart,
		enumV(func(c *Config) *QueueType { return &c.Sender.AMQP.QueueType }, QueueQuorum, QueueClassic),
		"quorum or classic, for both queues of the sender."},
	{"sender.amqp.single_active", "false", restart,
		boolV(func(c *Config) *bool { return &c.Sender.AMQP.SingleActive }),
		"true: declare sender.amqp.queue with x-single-active-consumer, so of several senders one sends at a time, in queue order, and another takes over when it stops."},
	{"sender.workers", "8", liveSender,
		intV(func(c *Config) *int { return &c.Sender.Workers }, 1, -1),
		"Sends in flight at most (K)."},
	{"sender.timeout", "5s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.Timeout }, true),
		"Wait for a reply per attempt (N)."},
	{"sender.retries", "3", liveSender,
		intV(func(c *Config) *int { return &c.Sender.Retries }, 0, -1),
		"Retries after the first attempt (M)."},
	{"sender.window", "1", liveSender,
		windowV(func(c *Config) *Window { return &c.Sender.Window }),
		"Lines of one file written on a connection before their replies are read (1: one line, one reply, then the next, over lanes with sender.line_order parallel). Raise it (e.g. 32) only when the remote answers pipelined messages in order, as spoolgate-receiver does; auto: the sender sizes it per remote (from 2 up to twice the bandwidth-delay product, at most 1024; 1 for good for a remote that leaves pipelined lines unanswered). A crash resends at most twice this many lines per file (100 + 2 × sender.workers at 1)."},
	{"sender.line_order", "parallel", liveSender,
		enumV(func(c *Config) *LineOrder { return &c.Sender.LineOrder }, LineOrderParallel, LineOrderStrict),
		"parallel: at window 1 the lines of one file go out over up to sender.workers connections at once, one line on each, and may arrive out of order (files still start oldest first); strict: one connection per file, each line after the previous one's reply."},
	{"sender.connect_timeout", "3s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.ConnectTimeout }, true),
		"TCP/TLS connect timeout."},
	{"sender.retry_backoff", "1s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.RetryBackoff }, true),
		"First backoff between retries; doubles (jittered) up to sender.retry_backoff_max."},
	{"sender.retry_backoff_max", "60s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.RetryBackoffMax }, true),
		"Longest backoff; probes of an unreachable remote wait at most this and 4 s (a remote that comes back is noticed within 5 s)."},
	{"sender.keepalive", "true", restart,
		boolV(func(c *Config) *bool { return &c.Sender.Keepalive }),
		"Reuse connections between messages."},
	{"sender.heartbeat", "0s", restart,
		durV(func(c *Config) *time.Duration { return &c.Sender.Heartbeat }, false),
		"Send sender.heartbeat.message on a kept-alive connection idle this long; an echo not answered ok within sender.timeout closes the connection; 0s: off."},
	{"sender.heartbeat.message", "", restart,
		fieldOf(func(c *Config) *string { return &c.Sender.HeartbeatMessage }, (*loader).heartbeatMessage),
		"The echo telegram the heartbeat sends, one line as a spool file holds it (protocol.echo.field holding protocol.echo.value; under layout fixed padded to its width); required with sender.heartbeat."},
	{"sender.scan_interval", "5s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.ScanInterval }, true),
		"Full rescan of the spool besides fsnotify events."},
	{"sender.settle", "1s", liveSender,
		durV(func(c *Config) *time.Duration { return &c.Sender.Settle }, false),
		"A file must be unchanged this long before it is sent."},
	{"sender.tls.ca", "", liveSender,
		fileV(func(c *Config) *string { return &c.Sender.TLS.CA }),
		"CA bundle (PEM) to verify the remote; all sender.tls.* empty: plain TCP."},
	{"sender.tls.cert", "", liveSender,
		fileV(func(c *Config) *string { return &c.Sender.TLS.Cert }),
		"Client certificate (PEM) for mutual TLS. Set together with sender.tls.key."},
	{"sender.tls.key", "", liveSender,
		fileV(func(c *Config) *string { return &c.Sender.TLS.Key }),
		"Client private key (PEM)."},
	{"sender.tls.server_name", "", liveSender,
		strV(func(c *Config) *string { return &c.Sender.TLS.ServerName }),
		"Server name to verify; empty: the host of sender.remote."},
	{"sender.admin_listen", "127.0.0.1:9012", restart,
		listenV(func(c *Config) *string { return &c.Sender.AdminListen }, true),
		"Address of /healthz, /readyz, /metrics; empty disables. Not a port of the receiver."},
	{"log.dir", "/var/log/spoolgate", restart,
		dirV(func(c *Config) *string { return &c.Log.Dir }, false),
		"receiver.log and sender.log go here; empty: stderr."},
	{"log.level", "info", liveReceiver | liveSender,
		fieldOf(func(c *Config) *string { return &c.Log.Level }, (*loader).level),
		"debug, info, warn (or warning) or error (changes live on reload)."},
	{"log.format", "text", restart,
		enumV(func(c *Config) *string { return &c.Log.Format }, "text", "json"),
		"text (2026-11-21 09:30:00,123 - INFO - [file.go:42] message) or json."},
	{"log.max_size_mb", "100", restart,
		intV(func(c *Config) *int { return &c.Log.MaxSizeMB }, 1, -1),
		"Rotate when the file reaches this size in MB."},
	{"log.max_backups", "30", restart,
		intV(func(c *Config) *int { return &c.Log.MaxBackups }, 0, -1),
		"Rotated files to keep; 0 keeps all."},
	{"log.max_age_days", "30", restart,
		intV(func(c *Config) *int { return &c.Log.MaxAgeDays }, 0, -1),
		"Days to keep rotated files; 0 keeps them regardless of age."},
	{"log.compress", "true", restart,
		boolV(func(c *Config) *bool { return &c.Log.Compress }),
		"gzip rotated files."},
	{"log.rotate_daily", "true", restart,
		boolV(func(c *Config) *bool { return &c.Log.RotateDaily }),
		"Also rotate at local midnight."},
	{"log.mask", "", restart,
		fieldOf(func(c *Config) *[]string { return &c.Log.Mask }, (*loader).mask),
		"Comma-separated fields of the request or result spec shown as * in logs, the console, .reason files and trace (the journal keeps a keyed hash of them, so spoolgate trace still finds a value); never in request or spool files."},
	{"log.mask_rrn", "true", restart,
		boolV(func(c *Config) *bool { return &c.Log.MaskRRN }),
		"Also show as * anything shaped like a resident registration number: 6 digits, an optional -, 7 digits whose first is 1-8 (not inside a longer run of digits)."},
	{"journal.dir", "${log.dir}/journal", restart,
		fieldOf(func(c *Config) *string { return &c.Journal.Dir }, (*loader).journalDir),
		"One line per message outcome, one file per day and daemon, gzipped once its day is over; spoolgate trace reads it. ${log.dir} at the start is log.dir (log.dir empty: no journal); empty: off."},
	{"journal.keep", "400d", restart,
		daysV(func(c *Config) *time.Duration { return &c.Journal.Keep }, Day),
		"A day's journal files are removed once the day is older than this (d counts days); 0d keeps them forever."},
	{"shutdown_timeout", "30s", liveReceiver,
		durV(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, true),
		"Graceful drain on SIGTERM before the daemon gives up and exits."},
	{"admin.pprof", "false", restart,
		boolV(func(c *Config) *bool { return &c.AdminPprof }),
		"Serve /debug/pprof on the admin addresses."},
	{"admin.token", "", restart,
		secretV{fieldOf(func(c *Config) *string { return &c.AdminToken }, (*loader).token)},
		"Secret that enables the web console's actions (requeue failed files); empty: the console is read-only. At least 16 characters; set it in the environment file as SPOOLGATE_ADMIN_TOKEN rather than here."},
	{"admin.hosts", "", restart,
		fieldOf(func(c *Config) *[]string { return &c.AdminHosts }, (*loader).hosts),
		"Comma-separated host names (e.g. a DNS alias) by which a browser or a scraper may reach the admin addresses, besides IP addresses, localhost, this host's name and the host of the admin_listen keys; a request with any other Host header is refused (421), so a DNS-rebinding web page cannot read the console."},
	{"protocol.charset", "utf-8", restart,
		enumV(func(c *Config) *protocol.Charset { return &c.Protocol.Charset }, protocol.Charsets...),
		"utf-8, euc-kr or cp949 (cp949 is euc-kr and the other modern Hangul): text fields are checked in it and const texts sent in it; widths and lengths count its bytes; nothing is ever transcoded."},
	{"protocol.layout", "delimited", restart,
		enumV(func(c *Config) *protocol.Layout { return &c.Protocol.Layout }, protocol.LayoutDelimited, protocol.LayoutFixed),
		"delimited: fields joined by protocol.separator; fixed: each field at its width (digits N: N, const: its bytes, time: its layout, class and text: MAX), right-padded with spaces."},
	{"protocol.separator", "|", restart,
		fieldOf(func(c *Config) *string { return &c.Protocol.Separator }, (*loader).separator),
		"Layout delimited: one printable ASCII byte, not a letter, digit or space (so it is never part of a character in any charset)."},
	{"protocol.framing", "lf", restart,
		enumV(func(c *Config) *protocol.Framing { return &c.Protocol.Framing }, protocol.FramingLF, protocol.FramingLength),
		"lf: a first field length 4 and LF at the end; length: a header (protocol.length.*) before each message and reply, no LF, no length field."},
	{"protocol.length.format", "ascii", restart,
		enumV(func(c *Config) *protocol.LengthFormat { return &c.Protocol.Length.Format }, protocol.LengthASCII, protocol.LengthBinary),
		"Framing length: ascii (zero-padded decimal digits) or binary (an unsigned big-endian integer)."},
	{"protocol.length.bytes", "4", restart,
		intV(func(c *Config) *int { return &c.Protocol.Length.Bytes }, 1, 8),
		"Framing length: the header's bytes, ascii 1 to 8, binary 2 or 4."},
	{"protocol.length.counts", "rest", restart,
		enumV(func(c *Config) *protocol.LengthCounts { return &c.Protocol.Length.Counts }, protocol.CountsRest, protocol.CountsAll),
		"Framing length: rest (the header counts the bytes after it) or all (the header's own bytes too)."},
	{"protocol.request.fields", "", restart,
		specV(func(c *Config) **protocol.Spec { return &c.Protocol.Request }),
		""},
	{"protocol.result.fields", "", restart,
		specV(func(c *Config) **protocol.Spec { return &c.Protocol.Result }),
		""},
	{"protocol.reply.fields", "", restart,
		specV(func(c *Config) **protocol.Spec { return &c.Protocol.Reply }),
		"The reply's fields in order; empty: length,type,process_no,replied_at,code (without length under framing length). Must include code."},
	{"protocol.reply.code.ok", "200", restart,
		fieldOf(func(c *Config) *string { return &c.Protocol.Codes.OK }, (*loader).code),
		"The code field's value for a message valid and stored (spoolgate's 200)."},
	{"protocol.reply.code.invalid", "400", restart,
		fieldOf(func(c *Config) *string { return &c.Protocol.Codes.Invalid }, (*loader).code),
		"The code field's value for a message that violates the spec: not stored, not to be sent again as is (spoolgate's 400)."},
	{"protocol.reply.code.unavailable", "500", restart,
		fieldOf(func(c *Config) *string { return &c.Protocol.Codes.Unavailable }, (*loader).code),
		"The code field's value for a valid message not stored now: to be sent again later (spoolgate's 500)."},
	{"protocol.echo.field", "", restart,
		strV(func(c *Config) *string { return &c.Protocol.Echo.Field }),
		"The request field that marks the link-test (echo) telegram; empty: none. An echo is answered ok, never stored or de-duplicated."},
	{"protocol.echo.value", "", restart,
		strV(func(c *Config) *string { return &c.Protocol.Echo.Value }),
		"The value of protocol.echo.field that marks the echo telegram (in the config's UTF-8; sent in protocol.charset)."},
}

var keySet = func() map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k.name] = true
	}
	return m
}()

// ruleKey splits protocol.<dir>.field.<name> into dir (request, result,
// reply) and name.
func ruleKey(key string) (dir, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, "protocol.")
	if !ok {
		return "", "", false
	}
	dir, name, ok = strings.Cut(rest, ".field.")
	if !ok || (dir != "request" && dir != "result" && dir != "reply") || !validName(name) {
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

// protocol builds the dialect: the protocol.* keys are decoded first (the
// table loop decodes them again, to the same values), then the specs'
// field lists and rules are read, then protocol.NewDialect checks them
// together. It runs before the table loop since receiver.dedup_key and
// sender.heartbeat.message refer to the dialect. After an error the
// default dialect stands in, so that later keys can still be decoded.
func (l *loader) protocol(c *Config) {
	for _, k := range keys {
		if strings.HasPrefix(k.name, "protocol.") && !strings.HasSuffix(k.name, ".fields") {
			k.v.load(l, k.name, c)
		}
	}
	p := &c.Protocol
	cfg := protocol.DialectConfig{
		Charset: p.Charset, Layout: p.Layout, Separator: p.Separator, Framing: p.Framing,
		LengthFormat: p.Length.Format, LengthBytes: p.Length.Bytes, LengthCounts: p.Length.Counts,
		Request: l.specConfig("request", nil),
		Result:  l.specConfig("result", nil),
		Reply:   l.specConfig("reply", protocol.DefaultReplyNames(p.Framing)),
		CodeOK:  p.Codes.OK, CodeInvalid: p.Codes.Invalid, CodeUnavailable: p.Codes.Unavailable,
		EchoField: p.Echo.Field, EchoValue: p.Echo.Value,
	}
	d := protocol.DefaultDialect()
	l.dialectFailed = l.anyFailedIn("protocol.")
	if !l.dialectFailed {
		nd, err := protocol.NewDialect(cfg)
		var de *protocol.DialectError
		switch {
		case errors.As(err, &de):
			l.fail("protocol."+de.Key, de.Value, de.Want)
		case err != nil:
			l.fail("protocol.request.fields", l.get("protocol.request.fields"), err.Error())
		default:
			d = nd
		}
		l.dialectFailed = err != nil
	}
	p.Dialect, p.Request, p.Result, p.Reply = d, d.Request(), d.Result(), d.Reply()
}

// specConfig reads protocol.<dir>.fields and the rules of the fields it
// lists. Names is nil when the list is not set (the default spec). For
// request and result (defaults nil) every listed field needs a rule and
// rules need the list; for the reply, rules may be left out (the dialect
// has defaults) and, when the list is not set, given for the fields of
// defaults.
func (l *loader) specConfig(dir string, defaults []string) protocol.SpecConfig {
	fieldsKey := "protocol." + dir + ".fields"
	prefix := "protocol." + dir + ".field."
	raw := l.get(fieldsKey)
	names := list(raw)
	listed := names
	if len(names) == 0 {
		if defaults == nil {
			for _, k := range l.fileKeys() {
				if strings.HasPrefix(k, prefix) {
					l.fail(k, l.set[k], "needs "+fieldsKey+" to list the fields in order")
					return protocol.SpecConfig{}
				}
			}
			return protocol.SpecConfig{}
		}
		listed = defaults
	}
	inList := make(map[string]bool, len(listed))
	for _, n := range listed {
		if !validName(n) {
			l.fail(fieldsKey, raw, "comma-separated field names of a-z, 0-9 and _ (bad "+`"`+n+`")`)
			return protocol.SpecConfig{}
		}
		inList[n] = true
	}
	for _, k := range l.fileKeys() {
		if d, n, ok := ruleKey(k); ok && d == dir && !inList[n] {
			want := n + " is not in " + fieldsKey
			if len(names) == 0 {
				want += " (empty: " + strings.Join(listed, ",") + ")"
			}
			l.fail(k, l.set[k], want)
			return protocol.SpecConfig{}
		}
	}
	rules := make(map[string]string, len(listed))
	for _, n := range listed {
		k := prefix + n
		if l.useEnv {
			l.bindEnv(k)
		}
		if !l.isSet(k) {
			if defaults == nil {
				l.fail(k, "", "a rule for field "+n+", e.g. text 0..100")
				return protocol.SpecConfig{}
			}
			continue
		}
		rules[n] = l.get(k)
	}
	if len(names) == 0 {
		names = nil
	}
	return protocol.SpecConfig{Names: names, Rules: rules}
}

// separator reads protocol.separator; an empty value is refused rather
// than taken as the default, unless the layout (decoded before it) is
// fixed, which has no separator.
func (l *loader) separator(key string, c *Config) string {
	v := l.get(key)
	if v == "" && c.Protocol.Layout != protocol.LayoutFixed {
		l.fail(key, v, "one printable ASCII byte, not a letter, digit or space, e.g. |")
		return "|"
	}
	return v
}

// code reads a protocol.reply.code.*: not empty (the dialect checks it
// against the code field's rule).
func (l *loader) code(key string, _ *Config) string {
	v := l.get(key)
	if v == "" {
		l.fail(key, v, "the value of the reply's code field for this outcome, e.g. 0000")
	}
	return v
}

// heartbeatMessage reads sender.heartbeat.message: when set, the dialect's
// echo telegram as a spool line (protocol.Dialect.Heartbeat).
func (l *loader) heartbeatMessage(key string, c *Config) string {
	v := l.get(key)
	if v == "" || c.Protocol.Dialect == nil || l.dialectFailed {
		return v
	}
	if _, err := c.Protocol.Dialect.Heartbeat(v); err != nil {
		l.fail(key, v, "the echo telegram as a spool line: "+err.Error())
	}
	return v
}

// fileKeys returns the keys the file sets, in file order.
func (l *loader) fileKeys() []string {
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.key
	}
	return out
}
