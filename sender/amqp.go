package sender

// The results queue as the source (sender.source=amqp, docs/PROTOCOL.md
// §8 "Results queue"): instead of watching the spool, the sender consumes
// sender.amqp.queue with manual acknowledgements. A delivery's body is one
// line as a spool file holds it (without the length field; one trailing
// LF is ignored), sent with sendLine, so framing, validation, retries,
// backoff and the circuit are the spool's:
//
//   - 200: the delivery is acked;
//   - 400, an invalid line, or its retries used up: it is published to
//     sender.amqp.failed_queue (persistent, confirmed) with the headers
//     reason, code, attempts, remote and failed_at, then acked. Until the
//     broker confirms that publish the delivery is held and the publish
//     retried with backoff; a drain or a lost channel gives it back to
//     the queue instead. So a line is never acked unless it
//     was delivered or is in the failed queue; it may be in both, or sent
//     twice, after a crash or a lost connection (at least once);
//   - the remote unreachable (the circuit opens): no delivery fails; the
//     session ends, what is held and prefetched goes back to the queue,
//     and consuming resumes when the circuit closes. With single_active
//     the queue's next consumer (another host) takes over meanwhile;
//   - a drain (SIGTERM): the sends in flight finish (at most
//     shutdown_timeout), everything else goes back to the queue.
//
// Giving back is never a nack with requeue, which puts the message at the
// back of a quorum queue: the delivery is left unacked and the session
// closes its channel, which puts it back in front (queue order kept).
// A reload that changes the prefetch consumes again with it (session).
//
// At most sender.workers lines are sent at once (one, in queue order, with
// sender.amqp.single_active); the prefetch is workers × window. The broker
// lost: the sender reconnects with backoff (250 ms doubling to 5 s),
// trying the nodes in order, and /readyz says why it is not consuming.
// The spool directories are neither created nor watched.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/internal/broker"
	"spoolgate/internal/journal"
)

// Reconnect backoff of the consumer.
const (
	amqpBackoff    = 250 * time.Millisecond
	amqpBackoffMax = 5 * time.Second
)

var (
	errCircuitOpen = errors.New("remote unreachable (circuit open)")
	errDraining    = errors.New("draining")
	errReconsume   = errors.New("consuming again with the reloaded prefetch")
)

// amqpSource is the results queue as the sender's source: the consumer
// side. Its fields are set by New; run is called once, by Run.
type amqpSource struct {
	s       *Sender
	urls    []string
	queue   broker.Queue
	failedQ broker.Queue
	tag     string // consumer tag
	name    string // connection name
	slots   *limiter
	failed  *broker.Publisher

	down    atomic.Pointer[error] // why not consuming; nil while consuming
	alarmed atomic.Bool           // the broker's unavailability was logged
	sending atomic.Int64          // deliveries handed to a worker
	opened  chan struct{}         // a signal: the circuit opened
	// a signal: the tunables were reloaded (the prefetch may change)
	reloaded chan struct{}
}

func newAMQPSource(s *Sender) *amqpSource {
	c := s.cfg.AMQP
	host, _ := os.Hostname()
	a := &amqpSource{
		s:        s,
		urls:     c.URL,
		queue:    ResultsQueue(s.cfg),
		failedQ:  FailedQueue(s.cfg),
		tag:      fmt.Sprintf("spoolgate-sender %s %d", host, os.Getpid()),
		name:     "spoolgate-sender " + host,
		slots:    s.slots,
		opened:   make(chan struct{}, 1),
		reloaded: make(chan struct{}, 1),
	}
	if c.SingleActive {
		a.slots = newLimiter(1) // queue order: one line at a time
	}
	err := errors.New("not connected to RabbitMQ yet")
	a.down.Store(&err)
	return a
}

// ready is nil while consuming, else why not.
func (a *amqpSource) ready() error {
	if e := a.down.Load(); e != nil {
		return *e
	}
	return nil
}

// setDown records why the sender is not consuming; it logs the first
// broker failure after a success at error, the rest at debug. A pause for
// the circuit is not logged here (the circuit logs itself).
func (a *amqpSource) setDown(err error) {
	err = fmt.Errorf("not consuming from RabbitMQ: %w", err)
	a.down.Store(&err)
	switch {
	case errors.Is(err, errCircuitOpen):
	case !a.alarmed.Swap(true):
		a.s.log.Error("RabbitMQ unavailable: not consuming; reconnecting with backoff", "err", err)
	default:
		a.s.log.Debug("RabbitMQ still unavailable", "err", err)
	}
}

// run consumes until ctx is done, then drains. It returns an error only
// when it cannot start: a queue declared with other arguments (or another
// refusal of the broker that no retry cures) at the first connection.
func (a *amqpSource) run(ctx, hard context.Context, started func(attrs ...any)) error {
	s := a.s
	a.failed = broker.NewPublisher(a.urls, a.name+" failed", a.failedQ, max(5*time.Second, s.live.Load().timeout), s.log)
	defer a.failed.Close()
	setOpen := s.circuit.setOpen // no prober runs yet: safe to wrap
	s.circuit.setOpen = func(open bool) {
		setOpen(open)
		if open {
			select {
			case a.opened <- struct{}{}:
			default:
			}
		}
	}
	started("source", "amqp", "queue", a.queue.Name, "failed_queue", a.failedQ.Name, "queue_type", a.queue.Type,
		"single_active", a.queue.SingleActive)
	return a.consume(ctx, hard)
}

// inFlight counts the deliveries being sent.
func (a *amqpSource) inFlight() int { return int(a.sending.Load()) }

// consume connects, consumes and reconnects until ctx is done.
func (a *amqpSource) consume(ctx, hard context.Context) error {
	wait := amqpBackoff
	first := true
	for ctx.Err() == nil {
		if err := a.s.circuit.wait(ctx); err != nil {
			break
		}
		select { // a signal from before the circuit closed
		case <-a.opened:
		default:
		}
		if open, _, _ := a.s.circuit.isOpen(); open { // opened again meanwhile
			continue
		}
		conn, ch, where, err := a.connect()
		if err != nil {
			var fe fatalError
			if first && errors.As(err, &fe) {
				return fe.err
			}
			a.setDown(err)
			if !sleep(ctx, jitter(wait)) {
				break
			}
			wait = min(2*wait, amqpBackoffMax)
			continue
		}
		first, wait = false, amqpBackoff
		err = a.session(ctx, hard, conn, ch, where)
		switch {
		case errors.Is(err, errDraining), errors.Is(err, errReconsume):
		case errors.Is(err, errCircuitOpen):
			a.setDown(err)
		default:
			a.setDown(err)
			if !sleep(ctx, jitter(wait)) {
				return nil
			}
			wait = min(2*wait, amqpBackoffMax)
		}
	}
	return nil
}

// fatalError is a refusal at connect that no retry cures.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }

// connect dials the first node that answers, declares both queues and sets
// the prefetch.
func (a *amqpSource) connect() (*amqp.Connection, *amqp.Channel, string, error) {
	conn, where, err := broker.Dial(a.urls, a.name)
	if err != nil {
		return nil, nil, "", err
	}
	ch, err := conn.Channel()
	if err == nil {
		if err = broker.Declare(ch, a.queue); err == nil {
			err = broker.Declare(ch, a.failedQ)
		}
		if err != nil && !broker.Temporary(err) {
			err = fatalError{err}
		}
	}
	if err == nil {
		err = ch.Qos(a.prefetch(), 0, false)
	}
	if err != nil {
		conn.Close()
		if fe := (fatalError{}); errors.As(err, &fe) {
			return nil, nil, "", fatalError{fmt.Errorf("%s: %w", where, fe.err)}
		}
		return nil, nil, "", fmt.Errorf("%s: %w", where, err)
	}
	_ = a.failed.Connect() // the publisher reconnects itself; a failure shows when a line fails
	return conn, ch, where, nil
}

// prefetch is the consumer's prefetch for the tunables in use:
// workers × window, or window with single_active (one line at a time).
func (a *amqpSource) prefetch() int {
	t := a.s.live.Load()
	if a.queue.SingleActive {
		return min(max(t.window, 1), math.MaxUint16)
	}
	return min(t.workers*max(t.window, 1), math.MaxUint16)
}

// reload tells the session that the tunables changed (Sender.Reload): the
// prefetch may change.
func (a *amqpSource) reload() {
	select {
	case a.reloaded <- struct{}{}:
	default:
	}
}

// session consumes on ch until ctx is done (errDraining), the circuit
// opens (errCircuitOpen), a reload changes the prefetch with single_active
// (errReconsume) or the channel is lost (its error). It settles the sends
// in flight, then closes the channel: what it still holds unacked (being
// sent when cut off, or prefetched) goes back to the queue in front, in
// queue order. It never nacks with requeue: on a quorum queue that puts
// the message at the back.
func (a *amqpSource) session(ctx, hard context.Context, conn *amqp.Connection, ch *amqp.Channel, where string) error {
	defer conn.Close()
	deliveries, err := ch.Consume(a.queue.Name, a.tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("%s: consume %q: %w", where, a.queue.Name, err)
	}
	ss := &amqpSession{a: a, conn: conn, ch: ch, where: where, tag: a.tag, prefetch: a.prefetch(), feeds: []<-chan amqp.Delivery{deliveries}}
	a.down.Store(nil)
	a.alarmed.Store(false)
	a.s.log.Info("consuming from RabbitMQ", "node", where, "queue", a.queue.Name, "single_active", a.queue.SingleActive, "prefetch", ss.prefetch)
	ss.sess, ss.stop = context.WithCancelCause(ctx)
	defer ss.stop(nil)
	ss.alive, ss.kill = context.WithCancelCause(hard)
	defer ss.kill(nil)
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	chCloses := ch.NotifyClose(make(chan *amqp.Error, 1))
	over := make(chan struct{})
	ss.watched = make(chan struct{})
	go ss.watch(closes, chCloses, over)
	ss.take(hard)
	cause := ss.cause(ctx)
	ss.end(cause)
	close(over)
	<-ss.watched
	return cause
}

// amqpSession is one session of consuming from the results queue: its
// connection and channel, its consumers, and the sends it started.
type amqpSession struct {
	a        *amqpSource
	conn     *amqp.Connection
	ch       *amqp.Channel
	where    string // the node
	tag      string // the consumer tag in use
	prefetch int
	// feeds are the delivery channels of this session's consumers, oldest
	// first: a reload without single_active starts a consumer with the new
	// prefetch and cancels the old one, whose deliveries are sent first
	// (they are ahead in the queue).
	feeds []<-chan amqp.Delivery
	gen   int // consumers started again

	// sess stops taking deliveries and new attempts; alive ends what
	// needs the channel (holding a line for the failed queue).
	sess    context.Context
	stop    context.CancelCauseFunc
	alive   context.Context
	kill    context.CancelCauseFunc
	workers sync.WaitGroup
	watched chan struct{} // closed when watch returns
}

// watch ends the session when the circuit opens or the connection
// (closes) or channel (chCloses) is lost, until over is closed.
func (ss *amqpSession) watch(closes, chCloses <-chan *amqp.Error, over <-chan struct{}) {
	defer close(ss.watched)
	var e *amqp.Error
watch:
	for {
		select {
		case e = <-closes:
			break watch
		case e = <-chCloses:
			break watch
		case <-ss.a.opened:
			ss.stop(errCircuitOpen)
		case <-over:
			return
		}
	}
	why := error(amqp.ErrClosed)
	if e != nil {
		why = e
	}
	why = fmt.Errorf("%s: connection lost: %w", ss.where, why)
	ss.kill(why)
	ss.stop(why)
}

// take hands each delivery to a worker, at most as many at once as the
// source's slots allow, until the session stops or its deliveries end.
func (ss *amqpSession) take(hard context.Context) {
	a, s := ss.a, ss.a.s
	for {
		if err := a.slots.acquire(ss.sess); err != nil {
			return
		}
		var d amqp.Delivery
		ok := false
		select {
		case d, ok = <-ss.feeds[0]:
		case <-ss.sess.Done():
		case <-a.reloaded:
			a.slots.release()
			ss.reconsume()
			continue
		}
		if !ok && ss.sess.Err() == nil && len(ss.feeds) > 1 { // a consumer cancelled for a reload, emptied
			ss.feeds = ss.feeds[1:]
			a.slots.release()
			continue
		}
		if !ok {
			a.slots.release()
			if ss.sess.Err() == nil {
				select { // a lost channel closes deliveries first: let the watcher say why
				case <-ss.watched:
				case <-time.After(time.Second):
				}
			}
			return
		}
		s.m.inflight.Inc()
		a.sending.Add(1)
		ss.workers.Go(func() {
			a.handle(ss.sess, ss.alive, hard, d)
			a.sending.Add(-1)
			s.m.inflight.Dec()
			a.slots.release()
		})
	}
}

// reconsume takes a reload: with a new prefetch it consumes again with
// it (a new consumer beside the old one; with single_active, a new
// session).
func (ss *amqpSession) reconsume() {
	a := ss.a
	p := a.prefetch()
	if p == ss.prefetch {
		return
	}
	if a.queue.SingleActive { // a second consumer could let another host's go first
		ss.stop(errReconsume)
		return
	}
	ss.gen++
	next := fmt.Sprintf("%s #%d", a.tag, ss.gen)
	var nd <-chan amqp.Delivery
	err := ss.ch.Qos(p, 0, false) // for the consumers started after it
	if err == nil {
		nd, err = ss.ch.Consume(a.queue.Name, next, false, false, false, false, nil)
	}
	if err == nil {
		err = ss.ch.Cancel(ss.tag, false)
		ss.feeds = append(ss.feeds, nd)
		ss.tag, ss.prefetch = next, p
	}
	if err != nil {
		ss.stop(fmt.Errorf("%s: consume again with prefetch %d: %w", ss.where, p, err))
		return
	}
	a.s.log.Info("consuming again with the new prefetch", "queue", a.queue.Name, "prefetch", p)
}

// cause says why the session ended: errDraining when ctx is done.
func (ss *amqpSession) cause(ctx context.Context) error {
	cause := context.Cause(ss.sess)
	switch {
	case ctx.Err() != nil:
		return errDraining
	case cause != nil && !errors.Is(cause, context.Canceled):
		return cause
	case ss.ch.IsClosed():
		return fmt.Errorf("%s: channel closed", ss.where)
	}
	return fmt.Errorf("%s: the broker cancelled the consumer of %q", ss.where, ss.a.queue.Name)
}

// end stops the session for cause, lets its sends finish and closes its
// channel, which gives back, in front, every delivery not acked.
func (ss *amqpSession) end(cause error) {
	ss.stop(cause)
	// Without single_active the consumer is cancelled, so that other
	// consumers take the rest meanwhile. With it the consumer stays until
	// the channel closes: cancelled, it would let the next consumer (another
	// host) start behind the messages this one still holds.
	if !ss.a.queue.SingleActive {
		cut := time.AfterFunc(5*time.Second, func() { ss.conn.Close() })
		if err := ss.ch.Cancel(ss.tag, false); err != nil {
			ss.conn.Close()
		}
		cut.Stop()
	}
	ss.workers.Wait()
	_ = ss.ch.Close()
	for _, f := range ss.feeds {
		for range f { // closed by the channel's close
		}
	}
}

// handle sends one delivery and settles it.
func (a *amqpSource) handle(sess, alive, hard context.Context, d amqp.Delivery) {
	s := a.s
	wb := s.bufs.Get().(*workBuf)
	defer s.bufs.Put(wb)
	body := bytes.TrimSuffix(d.Body, []byte{'\n'})
	var at time.Time
	if s.tr.on() {
		at = time.Now()
	}
	r := s.sendLine(sess, hard, body, wb)
	switch r.kind {
	case lineDelivered:
		if err := d.Ack(false); err != nil {
			s.log.Warn("delivered, but the ack did not reach RabbitMQ: the line will be sent again", "message_id", d.MessageId, "err", err)
		}
		s.countDelivered(sess, "message "+d.MessageId, 1, r)
		a.journal(journal.Delivered, d.MessageId, body, &r, "", at)
	case lineAborted: // left unacked: the channel's close gives it back in front
		a.journal(journal.PutBack, d.MessageId, body, &r, "", at)
	default:
		a.fail(alive, d, body, r, at)
	}
}

// fail publishes a rejected or exhausted line to the failed queue, then
// acks it. The delivery is held while the publish fails (retried with
// backoff); when alive ends first (a drain's timeout, the channel lost) it
// goes back to the queue.
func (a *amqpSource) fail(alive context.Context, d amqp.Delivery, body []byte, r lineResult, at time.Time) {
	s := a.s
	wait := amqpBackoff
	for logged := false; ; {
		err := a.failed.Publish(alive, []amqp.Publishing{failedMessage(d, r, time.Now())})
		if err == nil {
			break
		}
		if !logged {
			logged = true
			s.log.Error("could not publish a failed line to the failed queue: holding it and retrying",
				"queue", a.failedQ.Name, "message_id", d.MessageId, "err", err)
		}
		if !sleep(alive, jitter(wait)) { // left unacked: the channel's close gives it back in front
			s.log.Warn("failed line given back to the results queue (not in the failed queue)", "message_id", d.MessageId)
			r.reason = "could not be published to the failed queue (" + r.reason + "): given back to be sent again"
			a.journal(journal.PutBack, d.MessageId, body, &r, "", at)
			return
		}
		wait = min(2*wait, amqpBackoffMax)
	}
	if err := d.Ack(false); err != nil {
		s.log.Warn("line in the failed queue, but its ack did not reach RabbitMQ: it will be sent again", "message_id", d.MessageId, "err", err)
	}
	msg := "line rejected: in the failed queue"
	if r.kind == lineRejected {
		s.countRejected()
	} else {
		s.countFailed(1)
		msg = "line failed after retries: in the failed queue"
	}
	s.log.Warn(msg, "queue", a.failedQ.Name, "message_id", d.MessageId, "remote", r.remote, "code", r.code,
		"attempts", r.attempts, "reason", r.reason)
	a.journal(journal.Failed, d.MessageId, body, &r, a.failedQ.Name, at)
}
