package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"spoolgate/conf"
	"spoolgate/sender"
)

// ErrNoAdmin reports a daemon whose admin address is empty, so whether it
// runs cannot be asked.
var ErrNoAdmin = errors.New("admin_listen is empty")

// AskStatus decodes the /api/status of the daemon ("receiver", "sender")
// at its admin address addr into v; is tells whether v is that daemon's.
// A wildcard listen address is asked on the loopback. The error says why
// there is no answer; it wraps ErrNoAdmin when addr is empty. It is safe
// for concurrent use.
func AskStatus(daemon, addr string, v any, is func() bool) error {
	if addr == "" {
		return fmt.Errorf("%s.%w", daemon, ErrNoAdmin)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := cl.Get("http://" + net.JoinHostPort(host, port) + "/api/status")
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return fmt.Errorf("no answer at %s: %v", addr, oe.Err)
		}
		return fmt.Errorf("no answer at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/api/status answered %s", addr, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil || !is() {
		return fmt.Errorf("%s is not a spoolgate-%s's admin address", addr, daemon)
	}
	return nil
}

// Daemon is what Survey found of one daemon of an instance.
type Daemon struct {
	Admin string `json:"admin"` // its admin address; "" none
	// Expected: it should run here. The receiver always, the sender when
	// sender.remote is set (as spoolgate status without -daemons).
	Expected bool   `json:"expected"`
	Running  bool   `json:"running"` // its admin address answered
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	Error    string `json:"error,omitempty"` // why it is not known to run
	NoAdmin  bool   `json:"-"`               // Admin is empty: whether it runs cannot be asked
}

// Down reports an expected daemon that does not answer.
func (d Daemon) Down() bool { return d.Expected && !d.Running && !d.NoAdmin }

// State is the daemon's state in a word or two: up, not ready, down, off
// (not expected and not running) or not asked (no admin address).
func (d Daemon) State() string {
	switch {
	case d.Running && d.Ready:
		return "up"
	case d.Running:
		return "not ready"
	case d.NoAdmin:
		return "not asked"
	case d.Expected:
		return "down"
	}
	return "off"
}

// Summary is the state of one instance: its daemons, and its sender's
// backlog, oldest pending age and failed files, from the running sender
// or else from the spool's directories.
type Summary struct {
	Instance    Instance `json:"-"`
	Name        string   `json:"name"` // "" the unnamed instance
	Config      string   `json:"config"`
	ConfigError string   `json:"config_error,omitempty"` // the config does not load: nothing else is known
	Receiver    Daemon   `json:"receiver"`
	Sender      Daemon   `json:"sender"`
	// From says where Backlog, OldestPendingSeconds and Failed come from:
	// "sender" (its admin address), "directories" (the spool's), "queues"
	// (sender.source=amqp: the broker's counts, no age), or "" (not known:
	// the sender does not answer and its source cannot be read).
	From                 string  `json:"from"`
	Backlog              int     `json:"backlog"` // files not yet delivered: pending and in flight
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	Failed               int     `json:"failed"`
	// LastError is why a daemon is down or not ready, else the sender's
	// last failed attempt; "" none.
	LastError string `json:"last_error,omitempty"`
}

// Down lists the daemons of s that are down ("receiver", "sender").
func (s Summary) Down() []string {
	var out []string
	if s.Receiver.Down() {
		out = append(out, "receiver")
	}
	if s.Sender.Down() {
		out = append(out, "sender")
	}
	return out
}

// Unloaded is the Summary of an instance whose config does not load.
func Unloaded(inst Instance, err error) Summary {
	return Summary{Instance: inst, Name: inst.Name, Config: inst.Path, ConfigError: err.Error()}
}

// receiverView and senderView are the parts of the daemons' /api/status
// that Survey reads.
type receiverView struct {
	Daemon   string `json:"daemon"`
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready"`
}

type senderView struct {
	receiverView
	Pending              int                `json:"pending"`
	InFlight             int                `json:"in_flight"`
	OldestPendingSeconds float64            `json:"oldest_pending_seconds"`
	Failed               int                `json:"failed"`
	LastError            *sender.ErrorEvent `json:"last_error"`
}

// Survey asks the daemons of inst, whose config is cfg, at their admin
// addresses, and reads the sender's directories when it does not answer
// (the spool source). It waits at most a few seconds per address. It is
// safe for concurrent use.
func Survey(inst Instance, cfg *conf.Config, now time.Time) Summary {
	s := Summary{Instance: inst, Name: inst.Name, Config: inst.Path,
		Receiver: Daemon{Admin: cfg.Receiver.AdminListen, Expected: true},
		Sender:   Daemon{Admin: cfg.Sender.AdminListen, Expected: cfg.RequireSender() == nil}}
	var rv receiverView
	if err := AskStatus("receiver", cfg.Receiver.AdminListen, &rv, func() bool { return rv.Daemon == "receiver" }); err != nil {
		s.Receiver.Error, s.Receiver.NoAdmin = err.Error(), errors.Is(err, ErrNoAdmin)
	} else {
		s.Receiver.Running, s.Receiver.Ready, s.Receiver.NotReady = true, rv.Ready, rv.NotReady
	}
	var sv senderView
	if err := AskStatus("sender", cfg.Sender.AdminListen, &sv, func() bool { return sv.Daemon == "sender" }); err != nil {
		s.Sender.Error, s.Sender.NoAdmin = err.Error(), errors.Is(err, ErrNoAdmin)
	} else {
		s.Sender.Running, s.Sender.Ready, s.Sender.NotReady = true, sv.Ready, sv.NotReady
		s.From, s.Backlog, s.OldestPendingSeconds, s.Failed = "sender", sv.Pending+sv.InFlight, sv.OldestPendingSeconds, sv.Failed
	}
	if !s.Sender.Running {
		if err := s.readSource(cfg, now); err != nil && s.Sender.Expected {
			s.LastError = err.Error()
		}
	}
	s.LastError = lastError(s, sv.LastError)
	return s
}

// readSource fills the backlog and failed count of s from the sender's
// source itself, for a sender that does not answer: the spool's
// directories (with the oldest pending age), or the results and failed
// queues as the broker counts them.
func (s *Summary) readSource(cfg *conf.Config, now time.Time) error {
	if cfg.Sender.Source == conf.SourceAMQP {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		qs, err := sender.ReadQueues(ctx, cfg.Sender)
		if err != nil || len(qs) != 2 {
			return fmt.Errorf("the sender's queues: %w", err)
		}
		s.From, s.Backlog, s.Failed = "queues", qs[0].Messages, qs[1].Messages
		return nil
	}
	st, err := sender.ReadStatus(cfg.Sender, now)
	if err != nil {
		return err
	}
	s.From, s.Backlog, s.OldestPendingSeconds, s.Failed = "directories", st.Pending+st.InFlight, st.OldestPendingSeconds, st.Failed
	return nil
}

// lastError is the Summary's LastError: why a daemon is down or not ready
// (after what reading the directories left), else the sender's last
// failed attempt.
func lastError(s Summary, last *sender.ErrorEvent) string {
	var why []string
	for _, d := range []struct {
		name string
		d    Daemon
	}{{"receiver", s.Receiver}, {"sender", s.Sender}} {
		switch {
		case d.d.Down():
			why = append(why, d.name+": "+d.d.Error)
		case d.d.Running && !d.d.Ready:
			why = append(why, d.name+" not ready: "+d.d.NotReady)
		}
	}
	if s.LastError != "" {
		why = append(why, s.LastError)
	}
	if len(why) == 0 && last != nil && s.Sender.Running {
		why = append(why, last.At.Local().Format("2006-01-02 15:04:05")+" "+last.Remote+" "+last.Text)
	}
	return strings.Join(why, "; ")
}

// SurveyAll surveys the instances insts at once: it loads each one's
// config with load, one after the other (load may change the process's
// environment), then asks them all concurrently. An instance whose config
// does not load is Unloaded. The summaries are in the order of insts.
func SurveyAll(insts []Instance, load func(Instance) (*conf.Config, error), now time.Time) []Summary {
	cfgs := make([]*conf.Config, len(insts))
	sums := make([]Summary, len(insts))
	for i, inst := range insts {
		cfg, err := load(inst)
		if err != nil {
			sums[i] = Unloaded(inst, err)
			continue
		}
		cfgs[i] = cfg
	}
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		if cfg == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[i] = Survey(insts[i], cfg, now)
		}()
	}
	wg.Wait()
	return sums
}
