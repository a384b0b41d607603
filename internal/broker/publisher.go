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
	gen     uint64      // of conn/ch; a failed batch drops only its own generation
	book    *returnBook // the returns of ch
	seq     uint64      // numbers each message (header spoolgateSeq), to match returns
	blocked atomic.Bool // the broker blocks this connection's publishes (a resource alarm)

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
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
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
	p.book = newReturnBook(ch)
	p.blocked.Store(false)
	gen := p.gen
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	go p.watchBlocked(gen, blocks)
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
		// A blocked broker (a resource alarm) reads nothing, so it never
		// answers the close: do not wait for it longer than a second.
		p.conn.CloseDeadline(time.Now().Add(closeWait))
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
	if p.blocked.Load() {
		p.mu.Unlock()
		return p.Healthy()
	}
	gen := p.gen
	book := p.book
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
	if why := book.take(first, last); why != "" {
		// The queue may have been deleted: declare it again, so that the
		// next Publish (the peer's resend, the sender's retry) finds it. A
		// queue that now exists with other arguments closes the channel:
		// the connection is dropped and Healthy says why.
		err := fmt.Errorf("%w: %s", ErrReturned, why)
		p.mu.Lock()
		if p.gen == gen && p.ch != nil {
			if derr := Declare(p.ch, p.q); derr != nil {
				p.dropLocked(derr)
			}
		}
		p.mu.Unlock()
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

// watchBlocked follows the broker's connection.blocked and unblocked for
// generation gen: while blocked, Healthy says why and Publish fails at
// once (its messages would wait in the socket until the confirm timeout).
func (p *Publisher) watchBlocked(gen uint64, blocks chan amqp.Blocking) {
	for b := range blocks {
		p.mu.Lock()
		if p.gen == gen && p.conn != nil {
			p.blocked.Store(b.Active)
			if b.Active {
				p.setDown(fmt.Errorf("RabbitMQ blocks publishing (a resource alarm on the broker: %s)", b.Reason))
			} else {
				p.down.Store(nil)
				p.log.Info("RabbitMQ publishing unblocked", "queue", p.q.Name)
			}
		}
		p.mu.Unlock()
	}
}

// A returnBook records the returns of one channel. The channel hands
// each return to its goroutine over an unbuffered channel before it reads
// the next frame, so a return that comes before its message's ack (as
// the broker sends them) has been received, and then recorded, before the
// ack is seen; a query the goroutine answers after that sees it.
type returnBook struct {
	returns  chan amqp.Return
	queries  chan returnQuery
	done     chan struct{} // closed when the channel's returns end
	mu       sync.Mutex
	returned map[uint64]string // seq → why
}

type returnQuery struct {
	first, last uint64
	why         chan string
}

func newReturnBook(ch *amqp.Channel) *returnBook {
	b := &returnBook{
		returns:  ch.NotifyReturn(make(chan amqp.Return)),
		queries:  make(chan returnQuery),
		done:     make(chan struct{}),
		returned: make(map[uint64]string),
	}
	go b.run()
	return b
}

func (b *returnBook) run() {
	defer close(b.done)
	for {
		select {
		case r, open := <-b.returns:
			if !open { // the channel closed: amqp091 closes its listeners
				return
			}
			if n, ok := r.Headers[spoolgateSeq].(int64); ok {
				b.mu.Lock()
				b.returned[uint64(n)] = strconv.Itoa(int(r.ReplyCode)) + " " + r.ReplyText
				b.mu.Unlock()
			}
		case q := <-b.queries:
			q.why <- b.lookup(q.first, q.last)
		}
	}
}

// lookup reports (and forgets) a return of the messages numbered first to
// last.
func (b *returnBook) lookup(first, last uint64) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	why := ""
	for n := first; n <= last && len(b.returned) > 0; n++ {
		if w, ok := b.returned[n]; ok {
			why = w
			delete(b.returned, n)
		}
	}
	return why
}

// take reports whether any of the messages numbered first to last came
// back returned; called once their acks are in.
func (b *returnBook) take(first, last uint64) string {
	q := returnQuery{first, last, make(chan string, 1)}
	select {
	case b.queries <- q:
		return <-q.why
	case <-b.done:
		return b.lookup(first, last) // the goroutine has ended: all it received is recorded
	}
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
		// Bounded as in dropLocked: a broker blocked by an alarm never
		// answers the close, and a drain must not wait for it.
		err := p.conn.CloseDeadline(time.Now().Add(closeWait))
		p.conn, p.ch = nil, nil
		return err
	}
	return nil
}

// closeWait is how long a close waits for the broker's close-ok.
const closeWait = time.Second
