package console

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"spoolgate/internal/daemon"
	"spoolgate/receiver"
)

// ReceiverState is what the receiver's page shows of a running receiver;
// a *receiver.Server is one. Its methods are called from the console's
// handlers and sampler at once: they must be safe for concurrent use.
type ReceiverState interface {
	// Status returns the receiver's state at now.
	Status(now time.Time) receiver.Status
	// Counts returns the replies 200, 400 and 500 since start, for the
	// per-minute chart.
	Counts() [3]uint64
}

// Receiver is the console of a receiver (read-only). Create it with
// NewReceiver; its handlers are safe for concurrent use.
type Receiver struct {
	s    ReceiverState
	log  *slog.Logger
	hist History
	host Host
}

// WithHost makes the page show the overview of the host's instances h,
// and returns c. Call it before serving.
func (c *Receiver) WithHost(h Host) *Receiver {
	c.host = h
	return c
}

// NewReceiver returns the console of s; log defaults to a discard logger.
func NewReceiver(s ReceiverState, log *slog.Logger) *Receiver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{s: s, log: log}
}

// Run samples the counters for the per-minute chart until ctx is done.
func (c *Receiver) Run(ctx context.Context) { c.hist.Run(ctx, c.s.Counts) }

// Routes are the console's admin routes: GET / and GET /api/status.
func (c *Receiver) Routes() []daemon.Route { return routes(c.index, c.status) }

// ReceiverStatus is the JSON of the receiver's GET /api/status (field
// names documented in the README's runbook).
type ReceiverStatus struct {
	Daemon string    `json:"daemon"`
	Time   time.Time `json:"time"`
	receiver.Status
	History Series `json:"history"` // replies by code per minute: 200, 400, 500
}

func (c *Receiver) collect(now time.Time) ReceiverStatus {
	c.hist.Observe(now, c.s.Counts()) // the current minute up to now
	return ReceiverStatus{Daemon: "receiver", Time: now, Status: c.s.Status(now),
		History: c.hist.PerMinute(now, []string{"200", "400", "500"})}
}

func (c *Receiver) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, c.collect(time.Now()))
}

type receiverPage struct {
	common
	ReceiverStatus
}

func (c *Receiver) index(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	cm := newCommon(r, "receiver", now)
	cm.Instances = overview(c.host, r, now, cm.Lang, cm.L)
	render(w, "receiver", receiverPage{common: cm, ReceiverStatus: c.collect(now)}, c.log)
}
