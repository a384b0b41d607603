// Package broker is spoolgate's one home for RabbitMQ (docs/PROTOCOL.md
// §8), with github.com/rabbitmq/amqp091-go: dialling the nodes of a
// cluster in order, declaring the durable queues with the arguments the
// config asks for, reading their depths, and a Publisher whose Publish
// returns only once the broker has confirmed every message (the
// receiver's amqp sink, the sender's failed queue). The receiver and the
// sender build on it; it knows nothing of either.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DialTimeout bounds the TCP connect and AMQP handshake to one node.
const DialTimeout = 5 * time.Second

// Queue is a durable queue as spoolgate declares it.
type Queue struct {
	Name         string
	Type         string // x-queue-type: "quorum" or "classic"
	SingleActive bool   // x-single-active-consumer
}

// args are the queue's x-arguments.
func (q Queue) args() amqp.Table {
	t := amqp.Table{"x-queue-type": q.Type}
	if q.SingleActive {
		t["x-single-active-consumer"] = true
	}
	return t
}

// Dial connects to the first of urls that answers, in order, and returns
// the connection and the URL it reached, its password hidden (for logs).
// name is the connection's name in the broker's management views. The
// error lists why each node failed, without credentials.
func Dial(urls []string, name string) (*amqp.Connection, string, error) {
	var errs []string
	for _, u := range urls {
		c, err := amqp.DialConfig(u, amqp.Config{
			Heartbeat:  10 * time.Second,
			Locale:     "en_US",
			Dial:       amqp.DefaultDial(DialTimeout),
			Properties: amqp.Table{"connection_name": name},
		})
		if err == nil {
			return c, RedactURL(u), nil
		}
		errs = append(errs, RedactURL(u)+": "+redactErr(err, u))
	}
	return nil, "", fmt.Errorf("no RabbitMQ node reachable: %s", strings.Join(errs, "; "))
}

// RedactURL returns u with the password of its user info replaced by
// xxxxx, for logs and errors; a URL that does not parse but holds an @ is
// hidden whole.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") {
			return "(hidden: it holds credentials)"
		}
		return u
	}
	return p.Redacted()
}

// redactErr is err's text without the password of u, should a library
// ever quote the URL.
func redactErr(err error, u string) string {
	s := err.Error()
	if p, perr := amqp.ParseURI(u); perr == nil && p.Password != "" {
		s = strings.ReplaceAll(s, p.Password, "xxxxx")
	}
	return s
}

// Declare declares q durable with its arguments. A queue that exists with
// other arguments (another type, say) is an error that says which and
// what to do; the channel is closed by the broker then, as AMQP does.
func Declare(ch *amqp.Channel, q Queue) error {
	_, err := ch.QueueDeclare(q.Name, true, false, false, false, q.args())
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return &queueArgsError{fmt.Sprintf("queue %q exists with other arguments than spoolgate declares (durable, x-queue-type=%s, single active consumer %v): %s; "+
			"delete it or set the queue type to match", q.Name, q.Type, q.SingleActive, ae.Reason)}
	}
	if err != nil {
		return fmt.Errorf("declare queue %q: %w", q.Name, err)
	}
	return nil
}

// ErrQueueArguments is matched (errors.Is) by Declare's error for a queue
// that exists with other arguments: no retry cures it, so a daemon stops
// at start on it.
var ErrQueueArguments = errors.New("queue exists with other arguments")

// queueArgsError is Declare's error for ErrQueueArguments; its text says
// which queue and which arguments.
type queueArgsError struct{ msg string }

func (e *queueArgsError) Error() string        { return e.msg }
func (e *queueArgsError) Is(target error) bool { return target == ErrQueueArguments }

// Depth is what a passive declare tells of a queue.
type Depth struct {
	Queue     string
	Messages  int // ready to be delivered (not counting the unacked)
	Consumers int
}

// Depths reads the depths of the named queues through the first node that
// answers (a passive declare: nothing is created). A queue that does not
// exist is reported with Messages -1.
func Depths(ctx context.Context, urls []string, names ...string) ([]Depth, error) {
	c, _, err := Dial(urls, "spoolgate status")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := make([]Depth, 0, len(names))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		ch, err := c.Channel()
		if err != nil {
			return out, err
		}
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		var ae *amqp.Error
		switch {
		case errors.As(err, &ae) && ae.Code == amqp.NotFound:
			out = append(out, Depth{Queue: name, Messages: -1})
			continue // the broker closed the channel
		case err != nil:
			return out, fmt.Errorf("queue %q: %w", name, err)
		}
		out = append(out, Depth{Queue: name, Messages: q.Messages, Consumers: q.Consumers})
		ch.Close()
	}
	return out, nil
}

// Temporary reports whether err is a failure to reach or keep the broker
// (retry later) rather than a refusal of what was asked.
func Temporary(err error) bool {
	var ne net.Error
	var ae *amqp.Error
	switch {
	case errors.Is(err, amqp.ErrClosed), errors.As(err, &ne):
		return true
	case errors.As(err, &ae):
		return ae.Recover || ae.Code == amqp.ConnectionForced
	}
	return false
}

// Missing returns, for `spoolgate check`, the named queues that do not
// exist on the first node of urls that answers (Depths), each as
// "queue NAME"; the error is Depths'.
func Missing(ctx context.Context, urls []string, names ...string) ([]string, error) {
	ds, err := Depths(ctx, urls, names...)
	var missing []string
	for _, d := range ds {
		if d.Messages < 0 {
			missing = append(missing, "queue "+d.Queue)
		}
	}
	return missing, err
}
