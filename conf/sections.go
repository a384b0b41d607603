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
	return first(c.problems())
}

// Validate checks the receiver.* values (see Config.Validate); the
// duplicate key is checked against the spec where one is known (Load, and
// receiver.New against the spec it is given).
func (r Receiver) Validate() error {
	c := &Config{Receiver: r}
	return first(append(checkKeys(c, prefix("receiver.")), c.judge(receiverRules)...))
}

// Validate checks the sender.* values (see Config.Validate). An empty
// sender.remote is valid here: RequireSender tells whether the sender can
// run.
func (s Sender) Validate() error {
	c := &Config{Sender: s}
	return first(append(checkKeys(c, prefix("sender.")), c.judge(senderRules)...))
}

// Validate checks the log.* values (see Config.Validate).
func (g Log) Validate() error {
	return first(checkKeys(&Config{Log: g}, prefix("log.")))
}

// Validate checks the journal.* values (see Config.Validate): the journal
// may not share a directory with the data the daemons move (the sender
// would send its files from the spool).
func (j Journal) Validate(c *Config) error {
	cj := *c
	cj.Journal = j
	return first(append(checkKeys(&Config{Journal: j}, prefix("journal.")), cj.judge(journalRules)...))
}

// problem is a bad value, with the keys whose values it was judged on: a
// problem over a key that already failed is not reported (Load), since the
// rule saw the default instead of what was written.
type problem struct {
	*Error
	keys []string
}

// rule ties keys together; bad returns what is expected of the first of
// keys, which the error names, or nil.
type rule struct {
	keys []string
	bad  func(c *Config) *Error
}

var receiverRules = []rule{
	{[]string{"receiver.amqp.url", "receiver.sink"}, func(c *Config) *Error {
		if r := c.Receiver; r.Sink == SinkAMQP && len(r.AMQP.URL) == 0 {
			return &Error{Want: "required with receiver.sink=amqp: comma-separated amqp:// or amqps:// URLs"}
		}
		return nil
	}},
	{[]string{"receiver.proxy_trusted", "receiver.proxy_protocol"}, func(c *Config) *Error {
		if r := c.Receiver; r.ProxyProtocol && len(r.ProxyTrusted) == 0 {
			return &Error{Want: "required with receiver.proxy_protocol=on: comma-separated CIDRs of the load balancers"}
		}
		return nil
	}},
	{[]string{"receiver.dedup_key", "receiver.dedup_window"}, func(c *Config) *Error {
		if r := c.Receiver; len(r.DedupKey) == 0 && r.DedupWindow > 0 {
			return &Error{Want: "at least one field of the request spec, e.g. org_code,process_no (or receiver.dedup_window=0s)"}
		}
		return nil
	}},
	{[]string{"receiver.tls.client_names", "receiver.tls.client_ca"}, func(c *Config) *Error {
		if r := c.Receiver; len(r.TLS.ClientNames) > 0 && r.TLS.ClientCA == "" {
			return &Error{Value: strings.Join(r.TLS.ClientNames, ","), Want: "set only with receiver.tls.client_ca (names are checked on client certificates)"}
		}
		return nil
	}},
	{[]string{"receiver.tls.key", "receiver.tls.cert"}, func(c *Config) *Error {
		if r := c.Receiver; r.TLS.Cert != "" && r.TLS.Key == "" {
			return &Error{Want: "set together with receiver.tls.cert"}
		}
		return nil
	}},
	{[]string{"receiver.tls.cert", "receiver.tls.key", "receiver.tls.client_ca"}, func(c *Config) *Error {
		switch r := c.Receiver; {
		case r.TLS.Key != "" && r.TLS.Cert == "":
			return &Error{Want: "set together with receiver.tls.key"}
		case r.TLS.ClientCA != "" && r.TLS.Cert == "":
			return &Error{Want: "required with receiver.tls.client_ca (mutual TLS needs TLS)"}
		}
		return nil
	}},
}

var senderRules = []rule{
	{[]string{"sender.amqp.url", "sender.source"}, func(c *Config) *Error {
		if s := c.Sender; s.Source == SourceAMQP && len(s.AMQP.URL) == 0 {
			return &Error{Want: "required with sender.source=amqp: comma-separated amqp:// or amqps:// URLs"}
		}
		return nil
	}},
	{[]string{"sender.amqp.failed_queue", "sender.amqp.queue", "sender.source"}, func(c *Config) *Error {
		if s := c.Sender; s.Source == SourceAMQP && s.AMQP.Queue == s.AMQP.FailedQueue {
			return &Error{Value: s.AMQP.FailedQueue, Want: "a queue other than sender.amqp.queue"}
		}
		return nil
	}},
	{[]string{"sender.failed_dir", "sender.spool_dir"}, func(c *Config) *Error {
		if s := c.Sender; s.FailedDir == s.SpoolDir {
			return &Error{Value: s.FailedDir, Want: "a directory other than sender.spool_dir"}
		}
		return nil
	}},
	{[]string{"sender.sent_dir", "sender.spool_dir", "sender.failed_dir"}, func(c *Config) *Error {
		switch s := c.Sender; {
		case s.SentDir != "" && s.SentDir == s.SpoolDir:
			return &Error{Value: s.SentDir, Want: "a directory other than sender.spool_dir"}
		case s.SentDir != "" && s.SentDir == s.FailedDir:
			return &Error{Value: s.SentDir, Want: "a directory other than sender.failed_dir"}
		}
		return nil
	}},
	{[]string{"sender.heartbeat.message", "sender.heartbeat"}, func(c *Config) *Error {
		if s := c.Sender; s.Heartbeat > 0 && s.HeartbeatMessage == "" {
			return &Error{Want: "required with sender.heartbeat > 0: the echo telegram as a spool line"}
		}
		return nil
	}},
	{[]string{"sender.heartbeat", "sender.keepalive"}, func(c *Config) *Error {
		if s := c.Sender; s.Heartbeat > 0 && !s.Keepalive {
			return &Error{Value: s.Heartbeat.String(), Want: "0s with sender.keepalive=false: only a kept-alive connection is ever idle"}
		}
		return nil
	}},
	{[]string{"sender.retry_backoff", "sender.retry_backoff_max"}, func(c *Config) *Error {
		if s := c.Sender; s.RetryBackoff > s.RetryBackoffMax {
			return &Error{Value: s.RetryBackoff.String(), Want: "at most sender.retry_backoff_max (" + s.RetryBackoffMax.String() + ")"}
		}
		return nil
	}},
	{[]string{"sender.tls.key", "sender.tls.cert"}, func(c *Config) *Error {
		if s := c.Sender; s.TLS.Cert != "" && s.TLS.Key == "" {
			return &Error{Want: "set together with sender.tls.cert"}
		}
		return nil
	}},
	{[]string{"sender.tls.cert", "sender.tls.key"}, func(c *Config) *Error {
		if s := c.Sender; s.TLS.Key != "" && s.TLS.Cert == "" {
			return &Error{Want: "set together with sender.tls.key"}
		}
		return nil
	}},
}

var journalRules = []rule{
	{[]string{"journal.dir", "receiver.data_dir", "sender.spool_dir", "sender.failed_dir", "sender.sent_dir"}, func(c *Config) *Error {
		j := c.Journal
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
				return &Error{Value: j.Dir, Want: "a directory other than " + d.key}
			}
		}
		return nil
	}},
}

var configRules = []rule{
	{[]string{"sender.spool_dir", "receiver.data_dir"}, func(c *Config) *Error {
		if c.Sender.SpoolDir == c.Receiver.DataDir {
			return &Error{Value: c.Sender.SpoolDir, Want: "a directory other than receiver.data_dir"}
		}
		return nil
	}},
	{[]string{"receiver.max_message_bytes", "protocol.request.fields", "protocol.framing"}, func(c *Config) *Error {
		d := c.Protocol.Dialect
		if d == nil || d.Request().Width() == 0 {
			return nil
		}
		n := d.Request().Width()
		if d.Framing() == protocol.FramingLF {
			n++ // the LF
		}
		if n > c.Receiver.MaxMessageBytes {
			return &Error{Value: strconv.Itoa(c.Receiver.MaxMessageBytes),
				Want: fmt.Sprintf("at least %d: every request of the fixed layout is that long (protocol.request.fields)", n)}
		}
		return nil
	}},
}

// problems returns every problem of c: each table key out of its bounds,
// then each rule broken, receiver's, sender's, then those across daemons.
func (c *Config) problems() []problem {
	out := checkKeys(c, func(string) bool { return true })
	for _, rules := range [][]rule{receiverRules, senderRules, journalRules, configRules} {
		out = append(out, c.judge(rules)...)
	}
	return out
}

// judge returns the problems of the rules c breaks.
func (c *Config) judge(rules []rule) []problem {
	var out []problem
	for _, r := range rules {
		if e := r.bad(c); e != nil {
			e.Key = r.keys[0]
			out = append(out, problem{e, r.keys})
		}
	}
	return out
}

func first(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	return ps[0].Error
}

func prefix(p string) func(string) bool {
	return func(name string) bool { return strings.HasPrefix(name, p) }
}

// checkKeys checks the typed value of every table key that in selects
// against the bounds of its entry.
func checkKeys(c *Config, in func(string) bool) []problem {
	var out []problem
	for _, k := range keys {
		if !in(k.name) {
			continue
		}
		if got, want := k.v.check(c); want != "" {
			out = append(out, problem{&Error{Key: k.name, Value: got, Want: want}, []string{k.name}})
		}
	}
	return out
}
