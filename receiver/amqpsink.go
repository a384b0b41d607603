package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/conf"
	"spoolgate/internal/broker"
	"spoolgate/internal/logging"
	"spoolgate/protocol"
)

// The message the amqp sink publishes for each accepted line
// (docs/PROTOCOL.md §8, "Requests queue").
const (
	amqpAppID = "spoolgate-receiver"
	// HeaderPeer is the header holding the peer's address (host:port, the
	// PROXY header's source behind a balancer).
	HeaderPeer = "peer"
	// HeaderReceivedAt is the header holding the time the message was
	// read, RFC 3339 with milliseconds and the local offset.
	HeaderReceivedAt = "received_at"
	receivedAtLayout = "2006-01-02T15:04:05.000Z07:00"
)

// ErrSinkClosed is AppendBatch's error once Close has begun.
var ErrSinkClosed = errors.New("sink closed")

// failure reasons of the amqp sink, the label of
// spoolgate_receiver_amqp_failures_total.
var amqpReasons = []string{"unavailable", "nack", "returned", "confirm_timeout", "closed"}

// AMQPSink is the Sink of receiver.sink=amqp: it publishes each line to
// the durable queue receiver.amqp.queue through a broker.Publisher in
// confirm mode and returns from AppendBatch only once the broker has
// confirmed every line of the batch (persistent, so on disk; on a majority
// of the nodes for a quorum queue): the promise of a 200. Batches of many
// connections are in flight on the one channel at once, so the confirm
// stream is this sink's group commit.
//
// A nack, a return (no such queue), a confirm that does not come within
// receiver.amqp.confirm_timeout, or no connection fails the batch (500),
// counted by reason. While the broker is unreachable AppendBatch fails at
// once and Healthy says why (readiness fails); the publisher reconnects
// with backoff by itself.
//
// The duplicate window is in memory only for this sink: it is no
// HistorySink (the queue's messages are the consumer's, not to be read
// back), so after a restart a message repeated from before it is
// published again, with the same message_id, which is what a consumer
// de-duplicates by.
//
// Its methods are safe for concurrent use.
type AMQPSink struct {
	pub     *broker.Publisher
	d       *protocol.Dialect
	keyIdx  []int  // fields of the message_id, in receiver.dedup_key order
	ctype   string // the content_type: text/plain in the wire's charset
	queue   string
	log     *slog.Logger
	failLog *logging.Sampler

	m           *amqpMetrics
	unconfirmed atomic.Int64

	mu       sync.RWMutex // closed, and Add on inflight
	closed   bool
	inflight sync.WaitGroup
}

// openAMQP opens the sink of receiver.sink=amqp (OpenSink): the
// AMQPSink, connected when a node answers. A queue that exists with other
// arguments is a configuration error (exit 2); a broker that cannot be
// reached is not: the receiver starts, answers 500 and is not ready until
// the sink's reconnects reach a node.
func openAMQP(o SinkOptions) (Sink, error) {
	c := o.Config
	urls := make([]string, len(c.AMQP.URL))
	for i, u := range c.AMQP.URL {
		urls[i] = broker.RedactURL(u)
	}
	o.Logger.Info("sink: RabbitMQ; the duplicate window is in memory only", "amqp_url", strings.Join(urls, ","), "queue", c.AMQP.Queue,
		"queue_type", c.AMQP.QueueType, "confirm_timeout", c.AMQP.ConfirmTimeout)
	s, err := NewAMQPSink(o)
	if err != nil {
		return nil, err
	}
	if err := s.Connect(); err != nil {
		if errors.Is(err, broker.ErrQueueArguments) {
			_ = s.Close()
			return nil, &conf.Error{Key: "receiver.amqp.queue_type", Value: string(c.AMQP.QueueType),
				Want: "the arguments of the existing queue: " + err.Error()}
		}
		o.Logger.Warn("RabbitMQ not reachable at start: serving, answering 500 and not ready until a node answers (retrying with backoff)", "err", err)
	}
	return s, nil
}

// amqpNeeds: the amqp sink stores into the queue of receiver.amqp.url.
func amqpNeeds(c conf.Receiver) SinkNeeds {
	return SinkNeeds{Remote: &NeededRemote{
		Key:  "receiver.amqp.url",
		Down: "the receiver starts, answers 500 and reconnects until a node answers",
		Reach: func(ctx context.Context) ([]string, error) {
			return broker.Missing(ctx, c.AMQP.URL, c.AMQP.Queue)
		},
	}}
}

// NewAMQPSink returns the sink of opts.Config.AMQP; it does not connect
// (Connect does, or the first AppendBatch). It fails on a dedup_key field
// that the spec lacks, or when its metrics cannot be registered. Zero
// options take their defaults as in OpenSink.
func NewAMQPSink(opts SinkOptions) (*AMQPSink, error) {
	c := opts.Config
	if opts.Dialect == nil {
		opts.Dialect = protocol.DefaultDialect()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if len(c.AMQP.URL) == 0 {
		return nil, errors.New("amqp sink: no receiver.amqp.url")
	}
	idx, err := opts.Dialect.KeyIndexes(c.DedupKey)
	if err != nil {
		return nil, fmt.Errorf("amqp sink: dedup_key %w", err)
	}
	timeout := c.AMQP.ConfirmTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	host, _ := os.Hostname()
	s := &AMQPSink{
		d:       opts.Dialect,
		keyIdx:  idx,
		ctype:   "text/plain; charset=" + string(opts.Dialect.Charset()),
		queue:   c.AMQP.Queue,
		log:     opts.Logger,
		failLog: logging.NewSampler(rejectLogEvery),
	}
	m, err := newAMQPMetrics(opts.Registerer, func() float64 { return float64(s.unconfirmed.Load()) }, func() float64 {
		if s.Healthy() == nil {
			return 1
		}
		return 0
	})
	if err != nil {
		return nil, err
	}
	s.m = m
	s.pub = broker.NewPublisher(c.AMQP.URL, "spoolgate-receiver@"+host,
		broker.Queue{Name: c.AMQP.Queue, Type: string(c.AMQP.QueueType)}, timeout, opts.Logger)
	return s, nil
}

// Connect connects to the first node that answers and declares the queue;
// the error is why not (the sink then keeps trying in the background). An
// error matching broker.ErrQueueArguments (the queue exists with other
// arguments) is one no retry cures.
func (s *AMQPSink) Connect() error { return s.pub.Connect() }

// AppendBatch is AppendFrom with no peer, received now.
func (s *AMQPSink) AppendBatch(lines [][]byte) error { return s.AppendWhere("", nil, lines, nil) }

// AppendFrom publishes lines in order, each with peer and its receive
// time (received[i]; now when received is short), and returns nil once
// the broker has confirmed all of them, else an error: none of them may
// be answered 200 (some may be in the queue: the peer resends, and a
// consumer de-duplicates by message_id).
func (s *AMQPSink) AppendFrom(peer string, received []time.Time, lines [][]byte) error {
	return s.AppendWhere(peer, received, lines, nil)
}

// AppendWhere is AppendFrom that, when it returns nil, has set where[i]
// (unless where is nil) to the queue and the message_id of lines[i].
func (s *AMQPSink) AppendWhere(peer string, received []time.Time, lines [][]byte, where []Where) error {
	if len(lines) == 0 {
		return nil
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return s.fail("closed", len(lines), ErrSinkClosed)
	}
	s.inflight.Add(1)
	s.mu.RUnlock()
	defer s.inflight.Done()
	if err := s.pub.Healthy(); err != nil {
		// The reconnector brings the connection back; meanwhile fail at
		// once rather than dial for every batch.
		return s.fail("unavailable", len(lines), fmt.Errorf("rabbitmq unavailable: %w", err))
	}
	now := time.Now()
	msgs := make([]amqp.Publishing, len(lines))
	for i, line := range lines {
		at := now
		if i < len(received) {
			at = received[i]
		}
		msgs[i] = amqp.Publishing{
			ContentType:  s.ctype,
			DeliveryMode: amqp.Persistent,
			MessageId:    s.messageID(line),
			Timestamp:    at,
			AppId:        amqpAppID,
			Headers:      amqp.Table{HeaderPeer: peer, HeaderReceivedAt: at.Format(receivedAtLayout)},
			Body:         line,
		}
	}
	s.unconfirmed.Add(int64(len(lines)))
	err := s.pub.Publish(context.Background(), msgs)
	s.unconfirmed.Add(-int64(len(lines)))
	if err == nil {
		at := time.Now()
		for i := range where {
			where[i] = Where{Queue: s.queue, MsgID: msgs[i].MessageId, At: at}
		}
		return nil
	}
	reason := "unavailable"
	switch {
	case errors.Is(err, broker.ErrNack) && s.pub.Healthy() != nil:
		// amqp091 completes the confirms of a lost channel as nacks.
		reason = "unavailable"
	case errors.Is(err, broker.ErrNack):
		reason = "nack"
	case errors.Is(err, broker.ErrReturned):
		reason = "returned" // the queue was deleted by hand: the publisher declares it again
	case errors.Is(err, broker.ErrConfirmTimeout):
		reason = "confirm_timeout"
	case errors.Is(err, broker.ErrClosed):
		reason = "closed"
	}
	return s.fail(reason, len(lines), fmt.Errorf("rabbitmq: %w", err))
}

// fail counts n lines not stored for reason, logs it (once per reason a
// minute at warn) and returns err.
func (s *AMQPSink) fail(reason string, n int, err error) error {
	s.m.failures[reason].Add(float64(n))
	if k, ok := s.failLog.Event(reason, time.Now()); ok {
		s.log.Warn("not stored in RabbitMQ: answered 500 (one line per reason a minute)", "reason", reason, "count", k, "queue", s.queue, "err", err)
	}
	return err
}

// messageID is the receiver.dedup_key fields of line, taken by position
// in the request spec, joined by '|' and decoded to UTF-8 ("ORG01|000000123"
// for the default key), whatever receiver.dedup_window is: the same
// message sent again has the same id.
func (s *AMQPSink) messageID(line []byte) string {
	var stack [128]byte
	key, _ := s.d.Request().AppendRawKey(stack[:0], line, s.keyIdx, '|')
	return s.d.Text(key)
}

// Healthy is nil while connected to a node with the queue declared, else
// why not.
func (s *AMQPSink) Healthy() error {
	if err := s.pub.Healthy(); err != nil {
		return fmt.Errorf("rabbitmq: %w", err)
	}
	return nil
}

// Close refuses new batches, waits for the confirms of those in flight
// (each bounded by receiver.amqp.confirm_timeout), then closes the
// connection. Later calls return nil.
func (s *AMQPSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	return s.pub.Close()
}
