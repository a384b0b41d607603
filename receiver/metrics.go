package receiver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/internal/tlsutil"
	"spoolgate/protocol"
)

// metrics are the receiver's Prometheus series (README "Operations
// runbook"); every series of the package is declared in this file (the
// amqp sink's in amqpMetrics). The per-code counters are resolved once so
// the hot path does no label lookup.
type metrics struct {
	messages     *prometheus.CounterVec
	byCode       [3]prometheus.Counter // 200, 400, 500
	rejects      *prometheus.CounterVec
	duplicates   prometheus.Counter
	echoes       prometheus.Counter
	connections  prometheus.Gauge
	denied       prometheus.Counter
	storeSeconds prometheus.Histogram
	syncBatch    prometheus.Histogram
	// proxy.go: receiver.proxy_protocol=on
	proxyHealthChecks prometheus.Counter
	proxyRefused      *prometheus.CounterVec
	// admission.go: connections closed before a message was served
	refused *prometheus.CounterVec
}

// newMetrics registers the Server's series on reg, and the expiry of the
// TLS certificate when ts is not nil.
func newMetrics(reg prometheus.Registerer, ts *tlsutil.Server) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spoolgate_receiver_messages_total",
			Help: "Messages answered, by reply code.",
		}, []string{"code"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spoolgate_receiver_rejects_total",
			Help: "Messages answered 400, by the rule they broke.",
		}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_receiver_duplicates_total",
			Help: "Messages answered 200 without storing them again (within receiver.dedup_window).",
		}),
		echoes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_receiver_echoes_total",
			Help: "Echo (link-test) telegrams answered ok, neither stored nor de-duplicated (protocol.echo.field and .value); also counted in messages_total{code=\"200\"}.",
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spoolgate_receiver_connections",
			Help: "Connections being served.",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_receiver_denied_connections_total",
			Help: "Connections closed without a reply because the peer is outside receiver.allow.",
		}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spoolgate_receiver_store_seconds",
			Help:    "Time from a message being complete to it being durable.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100µs .. ~6s
		}),
		syncBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spoolgate_receiver_sync_batch",
			Help:    "Lines made durable by one write and fsync (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		proxyHealthChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spoolgate_receiver_proxy_health_checks_total",
			Help: "Health checks of a trusted load balancer (a PROXY LOCAL header, or a close before any byte), closed quietly.",
		}),
		proxyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spoolgate_receiver_proxy_refused_total",
			Help: "Connections closed without a reply for their PROXY header: untrusted (a header from outside receiver.proxy_trusted), malformed, missing, timeout.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spoolgate_receiver_refused_connections_total",
			Help: "Connections closed before a message was served, by cause: allow, per_ip, handshake, client_names, evicted.",
		}, []string{"cause"}),
	}
	cs := []prometheus.Collector{m.messages, m.rejects, m.duplicates, m.echoes, m.connections, m.denied, m.storeSeconds, m.syncBatch, m.proxyHealthChecks, m.proxyRefused, m.refused}
	if ts != nil {
		cs = append(cs, tlsutil.ExpiryCollector(ts.Expiry))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, cause := range proxyCauses {
		m.proxyRefused.WithLabelValues(cause) // exported as 0 from the start
	}
	for _, cause := range []string{refusedAllow, refusedPerIP, refusedHandshake, refusedClientNames, refusedEvicted} {
		m.refused.WithLabelValues(cause)
	}
	for i, code := range []string{"200", "400", "500"} {
		m.byCode[i] = m.messages.WithLabelValues(code)
	}
	return m, nil
}

// amqpMetrics are the series of the amqp sink (amqpsink.go): its failures
// by reason (resolved once), and the gauges of its unconfirmed messages
// and its connection, read from the sink when scraped.
type amqpMetrics struct {
	failures map[string]prometheus.Counter // by reason: amqpReasons
}

// newAMQPMetrics registers the amqp sink's series on reg; unconfirmed and
// connected give the gauges' values.
func newAMQPMetrics(reg prometheus.Registerer, unconfirmed, connected func() float64) (*amqpMetrics, error) {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolgate_receiver_amqp_failures_total",
		Help: "Messages answered 500 because RabbitMQ did not confirm them, by reason: unavailable (no connection), nack, returned (no such queue), confirm_timeout, closed (shutting down).",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{failures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spoolgate_receiver_amqp_unconfirmed",
			Help: "Messages published to RabbitMQ whose confirm is awaited.",
		}, unconfirmed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spoolgate_receiver_amqp_connected",
			Help: "1 while the receiver has a connection to RabbitMQ (receiver.sink=amqp), else 0.",
		}, connected),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m := &amqpMetrics{failures: make(map[string]prometheus.Counter, len(amqpReasons))}
	for _, r := range amqpReasons {
		m.failures[r] = failures.WithLabelValues(r) // exported as 0 from the start
	}
	return m, nil
}

// codeIndex maps a reply code to its slot in byCode and the summary counts.
func codeIndex(code int) int {
	switch code {
	case protocol.CodeOK:
		return 0
	case protocol.CodeInvalid:
		return 1
	default:
		return 2
	}
}
