package sender

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/internal/tlsutil"
)

// attemptResult is how one attempt to send a line ended (retry.go
// classifies it); its String is its label of
// spoolgate_sender_attempts_total and the first word of a failure's reason.
type attemptResult int

// Attempt results.
const (
	resultOK          attemptResult = iota // 200 with the process_no echoed
	resultRejected                         // 400
	resultUnavailable                      // 500
	resultTimeout                          // no reply within sender.timeout
	resultConnError                        // reset, closed, write error
	resultBadReply                         // unreadable, unknown code, process_no mismatch
	resultConnect                          // remote refused or unreachable (circuit)
	numResults
)

// attemptLabels are the attempt results' labels: dashboards and alert
// rules (scripts/monitoring) use them.
var attemptLabels = [numResults]string{"ok", "rejected", "unavailable", "timeout", "conn_error", "bad_reply", "connect_error"}

func (r attemptResult) String() string { return attemptLabels[r] }

// metrics are the sender's Prometheus collectors (README "Operations runbook").
type metrics struct {
	inflight prometheus.Gauge
	waiting  prometheus.Gauge // claims parked while their writer holds them open
	circuit  prometheus.Gauge
	send     prometheus.Histogram

	delivered, rejected, failed prometheus.Counter
	attempts                    [numResults]prometheus.Counter

	heartbeats, heartbeatFailures prometheus.Counter // echo telegrams sent on idle connections, and those not answered ok

	collectors []prometheus.Collector
}

// newMetrics declares the sender's collectors; the gauges of the spool
// read q, failed and stuck when scraped, and tc's certificates are watched
// for expiry (nil: plain TCP).
func newMetrics(q *queue, failed *failedIndex, stuck *stuckClaims, tc *tlsutil.Client) *metrics {
	m := &metrics{
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spoolgate_sender_inflight",
			Help: "Worker slots in use, at most sender.workers: each file being sent holds one, and each extra lane a big file sends its lines on (sender.line_order=parallel) one more.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spoolgate_sender_claims_waiting_for_writer",
			Help: "Claims whose writer still holds the file open: they wait without a worker slot (not counted in spoolgate_sender_inflight).",
		}),
		circuit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spoolgate_sender_circuit_open",
			Help: "1 while the remote is unreachable and sends are paused.",
		}),
		send: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spoolgate_sender_send_seconds",
			Help:    "Time from writing a message to reading its reply, attempts that got a reply.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_sender_heartbeats_total",
			Help: "Echo telegrams (sender.heartbeat.message) sent on kept-alive connections idle for sender.heartbeat.",
		}),
		heartbeatFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_sender_heartbeat_failures_total",
			Help: "Echo telegrams not answered ok within sender.timeout: each closed its connection.",
		}),
	}
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolgate_sender_messages_total",
		Help: "Messages by final outcome: delivered (200), rejected (400 or invalid), failed (retries exhausted).",
	}, []string{"outcome"})
	m.delivered = messages.WithLabelValues(lineDelivered.String())
	m.rejected = messages.WithLabelValues(lineRejected.String())
	m.failed = messages.WithLabelValues(lineExhausted.String())
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolgate_sender_attempts_total",
		Help: "Send attempts by result.",
	}, []string{"result"})
	for r := range numResults {
		m.attempts[r] = attempts.WithLabelValues(r.String())
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_pending_files",
		Help: "Files waiting to be sent (in the spool, or claims restored at start-up).",
	}, func() float64 {
		n, _ := q.stats()
		return float64(n)
	})
	oldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_oldest_pending_seconds",
		Help: "Age (by modification time) of the oldest file not yet delivered, pending or in flight; 0 when none.",
	}, func() float64 {
		_, t := q.stats()
		if t == 0 {
			return 0
		}
		return max(0, time.Since(time.Unix(0, t)).Seconds())
	})
	failedFiles := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_failed_files",
		Help: "Files in sender.failed_dir (not counting .reason files).",
	}, func() float64 {
		n, _ := failed.count()
		return float64(n)
	})
	stuckClaims := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_sender_claims_stuck",
		Help: "Claims whose disposal (lines to sender.failed_dir, a file to sender.sent_dir) failed, most often on a full file system, and is retried; /readyz fails meanwhile.",
	}, func() float64 { return float64(stuck.count()) })
	m.collectors = []prometheus.Collector{m.inflight, m.waiting, m.circuit, m.send, messages, attempts, pending, oldest, failedFiles, stuckClaims,
		m.heartbeats, m.heartbeatFailures}
	if tc != nil {
		m.collectors = append(m.collectors, tlsutil.ExpiryCollector(tc.Expiry))
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
