package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A Publisher publishes persistent, mandatory messages to one durable
// queue (through the default exchange) on a channel in confirm mode.
// Publish returns nil only once the broker has confirmed every message of
// its batch: for a persistent message that means written to disk (on a
// majority of the nodes for a quorum queue), the promise of a 200.
// Batches from many goroutines are in flight on the channel at once: the
// confirm stream is the group commit.
//
// The connection is made at the first Publish (or by Connect) and again
// after a failure, to the nodes in order; while it is down, Publish fails
// at once and Healthy says why, and a goroutine reconnects with backoff.
type Publisher struct {
	urls    []string
	name    string
	q       Queue
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex // publishes on ch and (re)connects
	conn    *amqp.Connection
	ch      *amqp.Channel
	gen     uint64           // of conn/ch; a failed batch drops only its own generation
	returns chan amqp.Return // buffered: the broker's return precedes its ack, so it is here when the ack is
	seq     uint64           // numbers each message (header spoolgateSeq), to match returns

	retMu    sync.Mutex
	returned map[uint64]string // seq → why, drained from returns

	down    atomic.Pointer[error] // why there is no connection now; nil when connected
	closed  atomic.Bool
	kick    chan struct{} // wakes the reconnector
	stop    chan struct{}
	stopped chan struct{}
}

// spoolgateSeq is the header that numbers a message within its
// publisher's life; a return carries it back.
const spoolgateSeq = "spoolgate-seq"

// Errors of Publish.
var (
	ErrNack           = errors.New("the broker refused the message (nack)")
	ErrConfirmTimeout = errors.New("no publisher confirm within the timeout")
	ErrReturned       = errors.New("the broker could not route the message to its queue (returned)")
	ErrClosed         = errors.New("publisher closed")
)

// NewPublisher returns a Publisher of q through urls; it connects at
// Connect or the first Publish. timeout bounds the wait for confirms.
func NewPublisher(urls []string, name string, q Queue, timeout time.Duration, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{
		urls: urls, name: name, q: q, timeout: timeout, log: log,
		returned: make(map[uint64]string),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	err := errors.New("not connected yet")
	p.down.Store(&err)
	go p.reconnector()
	return p
}

// Connect connects now (and declares the queue); the error is why not. A
// queue that exists with other arguments is an error no retry cures: the
// daemons stop at start on it.
func (p *Publisher) Connect() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.channel()
	return err
}

// Healthy is nil while connected, else why not.
func (p *Publisher) Healthy() error {
	if e := p.down.Load(); e != nil {
		return *e
	}
	return nil
}

// channel returns the open channel, connecting first if there is none.
// Called with mu held.
func (p *Publisher) channel() (*amqp.Channel, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	p.dropLocked(nil)
	conn, where, err := Dial(p.urls, p.name)
	if err != nil {
		p.setDown(err)
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = Declare(ch, p.q)
	}
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		err = fmt.Errorf("%s: %w", where, err)
		p.setDown(err)
		return nil, err
	}
	p.conn, p.ch = conn, ch
	p.gen++
	p.returns = ch.NotifyReturn(make(chan amqp.Return, 4096))
	gen := p.gen
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	chCloses := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		var e *amqp.Error
		select {
		case e = <-closes:
		case e = <-chCloses:
		case <-p.stop:
			return
		}
		p.mu.Lock()
		if p.gen == gen {
			why := error(amqp.ErrClosed)
			if e != nil {
				why = e
			}
			p.dropLocked(why)
		}
		p.mu.Unlock()
	}()
	p.down.Store(nil)
	p.log.Info("connected to RabbitMQ", "node", where, "queue", p.q.Name, "type", p.q.Type)
	return ch, nil
}

func (p *Publisher) setDown(err error) {
	if old := p.down.Swap(&err); old == nil {
		p.log.Error("RabbitMQ unavailable", "err", err)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// dropLocked closes the connection; why (nil: none to report) becomes
// Healthy's error. Called with mu held.
func (p *Publisher) dropLocked(why error) {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.ch = nil, nil
	}
	if why != nil {
		p.setDown(why)
	}
}

// reconnector connects again with backoff (250 ms doubling to 5 s) while
// the publisher is down, so that readiness comes back without traffic.
func (p *Publisher) reconnector() {
	defer close(p.stopped)
	wait := 250 * time.Millisecond
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		for p.Healthy() != nil {
			t.Reset(wait)
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			p.mu.Lock()
			_, err := p.channel()
			p.mu.Unlock()
			if err == nil {
				wait = 250 * time.Millisecond
				break
			}
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// Publish publishes msgs in order and waits for the broker's confirm of
// each, at most the timeout. It returns nil only when every one was
// acked and none returned; otherwise an error, and none of them may be
// taken as stored (some may be: a resend is the caller's, and the
// consumer de-duplicates by message_id). msgs are persistent and
// mandatory whatever they say; their headers gain spoolgate-seq.
func (p *Publisher) Publish(ctx context.Context, msgs []amqp.Publishing) error {
	p.mu.Lock()
	ch, err := p.channel()
	if err != nil {
		p.mu.Unlock()
		return err
	}
	gen := p.gen
	returns := p.returns
	first := p.seq + 1
	dcs := make([]*amqp.DeferredConfirmation, len(msgs))
	for i := range msgs {
		m := msgs[i]
		p.seq++
		if m.Headers == nil {
			m.Headers = amqp.Table{}
		}
		m.Headers[spoolgateSeq] = int64(p.seq)
		m.DeliveryMode = amqp.Persistent
		dcs[i], err = ch.PublishWithDeferredConfirm("", p.q.Name, true, false, m)
		if err != nil {
			p.dropLocked(err)
			p.mu.Unlock()
			return fmt.Errorf("publish: %w", err)
		}
	}
	last := p.seq
	p.mu.Unlock()

	t := time.NewTimer(p.timeout)
	defer t.Stop()
	for _, dc := range dcs {
		select {
		case <-dc.Done():
		case <-t.C:
			p.fail(gen, ErrConfirmTimeout)
			return ErrConfirmTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stop:
			return ErrClosed
		}
		if !dc.Acked() {
			// A channel that published to a quorum queue while its leader
			// was lost keeps nacking after a new leader is elected
			// (RabbitMQ 3.10): a new connection and channel do not. A
			// channel that closed nacks what it held: its close, with the
			// broker's reason, is the watcher's to report.
			if !ch.IsClosed() {
				p.fail(gen, ErrNack)
			}
			return ErrNack
		}
	}
	if why := p.takeReturned(returns, first, last); why != "" {
		// The queue may have been deleted: drop the connection, so that the
		// next Publish connects again and declares it.
		err := fmt.Errorf("%w: %s", ErrReturned, why)
		p.fail(gen, err)
		return err
	}
	return nil
}

// fail drops the connection of generation gen, if it is still the one.
func (p *Publisher) fail(gen uint64, why error) {
	p.mu.Lock()
	if p.gen == gen {
		p.dropLocked(why)
	}
	p.mu.Unlock()
}

// takeReturned drains the returns received so far and reports (and
// forgets) any of the messages numbered first to last. A return arrives
// before the ack of its message, so once the acks are in, it is in the
// channel's buffer.
func (p *Publisher) takeReturned(returns chan amqp.Return, first, last uint64) string {
	p.retMu.Lock()
	defer p.retMu.Unlock()
drain:
	for {
		select {
		case r, open := <-returns:
			if !open {
				// The channel has closed (amqp091 closes its return
				// listeners): a closed channel would always be ready.
				break drain
			}
			if n, ok := r.Headers[spoolgateSeq].(int64); ok {
				p.returned[uint64(n)] = strconv.Itoa(int(r.ReplyCode)) + " " + r.ReplyText
			}
		default:
			break drain
		}
	}
	why := ""
	for n := first; n <= last && len(p.returned) > 0; n++ {
		if w, ok := p.returned[n]; ok {
			why = w
			delete(p.returned, n)
		}
	}
	return why
}

// Close waits for nothing more: Publish calls in flight fail with
// ErrClosed unless their confirms are in. Callers drain first (wait for
// their Publish calls to return), then Close.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	<-p.stopped
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		err := p.conn.Close()
		p.conn, p.ch = nil, nil
		return err
	}
	return nil
}
