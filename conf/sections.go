package conf

import (
	"fmt"
	"strconv"
	"strings"

	"spoolgate/protocol"
)

// Validate checks the values of a Config built in code, as Load checks a
// file: every value within the bounds its table entry declares, and the
// rules that tie keys together. It returns an *Error naming the first key
// that is wrong (File is empty: no file was read). Load calls it, so the
// daemons need not check again what a loaded Config already satisfies.
func (c *Config) Validate() error {
	if err := c.Receiver.Validate(); err != nil {
		return err
	}
	if err := c.Sender.Validate(); err != nil {
		return err
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if err := c.Journal.Validate(c); err != nil {
		return err
	}
	if err := checkKeys(c, func(name string) bool { return !strings.Contains(name, ".") }); err != nil {
		return err
	}
	if c.Sender.SpoolDir == c.Receiver.DataDir {
		return &Error{Key: "sender.spool_dir", Value: c.Sender.SpoolDir, Want: "a directory other than receiver.data_dir"}
	}
	if d := c.Protocol.Dialect; d != nil && d.Request().Width() > 0 {
		n := d.Request().Width()
		if d.Framing() == protocol.FramingLF {
			n++ // the LF
		}
		if n > c.Receiver.MaxMessageBytes {
			return &Error{Key: "receiver.max_message_bytes", Value: strconv.Itoa(c.Receiver.MaxMessageBytes),
				Want: fmt.Sprintf("at least %d: every request of the fixed layout is that long (protocol.request.fields)", n)}
		}
	}
	return nil
}

// Validate checks the receiver.* values (see Config.Validate); the
// duplicate key is checked against the spec where one is known (Load, and
// receiver.New against the spec it is given).
func (r Receiver) Validate() error {
	if err := checkKeys(&Config{Receiver: r}, prefix("receiver.")); err != nil {
		return err
	}
	switch {
	case r.Sink == SinkAMQP && len(r.AMQP.URL) == 0:
		return &Error{Key: "receiver.amqp.url", Want: "required with receiver.sink=amqp: comma-separated amqp:// or amqps:// URLs"}
	case r.ProxyProtocol && len(r.ProxyTrusted) == 0:
		return &Error{Key: "receiver.proxy_trusted", Want: "required with receiver.proxy_protocol=on: comma-separated CIDRs of the load balancers"}
	case len(r.DedupKey) == 0 && r.DedupWindow > 0:
		return &Error{Key: "receiver.dedup_key", Want: "at least one field of the request spec, e.g. org_code,process_no (or receiver.dedup_window=0s)"}
	case len(r.TLS.ClientNames) > 0 && r.TLS.ClientCA == "":
		return &Error{Key: "receiver.tls.client_names", Value: strings.Join(r.TLS.ClientNames, ","), Want: "set only with receiver.tls.client_ca (names are checked on client certificates)"}
	case r.TLS.Cert != "" && r.TLS.Key == "":
		return &Error{Key: "receiver.tls.key", Want: "set together with receiver.tls.cert"}
	case r.TLS.Key != "" && r.TLS.Cert == "":
		return &Error{Key: "receiver.tls.cert", Want: "set together with receiver.tls.key"}
	case r.TLS.ClientCA != "" && r.TLS.Cert == "":
		return &Error{Key: "receiver.tls.cert", Want: "required with receiver.tls.client_ca (mutual TLS needs TLS)"}
	}
	return nil
}

// Validate checks the sender.* values (see Config.Validate). An empty
// sender.remote is valid here: RequireSender tells whether the sender can
// run.
func (s Sender) Validate() error {
	if err := checkKeys(&Config{Sender: s}, prefix("sender.")); err != nil {
		return err
	}
	switch {
	case s.Source == SourceAMQP && len(s.AMQP.URL) == 0:
		return &Error{Key: "sender.amqp.url", Want: "required with sender.source=amqp: comma-separated amqp:// or amqps:// URLs"}
	case s.Source == SourceAMQP && s.AMQP.Queue == s.AMQP.FailedQueue:
		return &Error{Key: "sender.amqp.failed_queue", Value: s.AMQP.FailedQueue, Want: "a queue other than sender.amqp.queue"}
	case s.FailedDir == s.SpoolDir:
		return &Error{Key: "sender.failed_dir", Value: s.FailedDir, Want: "a directory other than sender.spool_dir"}
	case s.SentDir != "" && s.SentDir == s.SpoolDir:
		return &Error{Key: "sender.sent_dir", Value: s.SentDir, Want: "a directory other than sender.spool_dir"}
	case s.SentDir != "" && s.SentDir == s.FailedDir:
		return &Error{Key: "sender.sent_dir", Value: s.SentDir, Want: "a directory other than sender.failed_dir"}
	case s.Heartbeat > 0 && s.HeartbeatMessage == "":
		return &Error{Key: "sender.heartbeat.message", Want: "required with sender.heartbeat > 0: the echo telegram as a spool line"}
	case s.Heartbeat > 0 && !s.Keepalive:
		return &Error{Key: "sender.heartbeat", Value: s.Heartbeat.String(), Want: "0s with sender.keepalive=false: only a kept-alive connection is ever idle"}
	case s.RetryBackoff > s.RetryBackoffMax:
		return &Error{Key: "sender.retry_backoff", Value: s.RetryBackoff.String(), Want: "at most sender.retry_backoff_max (" + s.RetryBackoffMax.String() + ")"}
	case s.TLS.Cert != "" && s.TLS.Key == "":
		return &Error{Key: "sender.tls.key", Want: "set together with sender.tls.cert"}
	case s.TLS.Key != "" && s.TLS.Cert == "":
		return &Error{Key: "sender.tls.cert", Want: "set together with sender.tls.key"}
	}
	return nil
}

// Validate checks the log.* values (see Config.Validate).
func (g Log) Validate() error {
	return checkKeys(&Config{Log: g}, prefix("log."))
}

// Validate checks the journal.* values (see Config.Validate): the journal
// may not share a directory with the data the daemons move (the sender
// would send its files from the spool).
func (j Journal) Validate(c *Config) error {
	if err := checkKeys(&Config{Journal: j}, prefix("journal.")); err != nil {
		return err
	}
	if j.Dir == "" {
		return nil
	}
	for _, d := range []struct{ key, dir string }{
		{"receiver.data_dir", c.Receiver.DataDir},
		{"sender.spool_dir", c.Sender.SpoolDir},
		{"sender.failed_dir", c.Sender.FailedDir},
		{"sender.sent_dir", c.Sender.SentDir},
	} {
		if j.Dir == d.dir {
			return &Error{Key: "journal.dir", Value: j.Dir, Want: "a directory other than " + d.key}
		}
	}
	return nil
}

func prefix(p string) func(string) bool {
	return func(name string) bool { return strings.HasPrefix(name, p) }
}

// checkKeys checks the typed value of every table key that in selects
// against the bounds of its entry.
func checkKeys(c *Config, in func(string) bool) error {
	for _, k := range keys {
		if !in(k.name) {
			continue
		}
		if got, want := k.v.check(c); want != "" {
			return &Error{Key: k.name, Value: got, Want: want}
		}
	}
	return nil
}
