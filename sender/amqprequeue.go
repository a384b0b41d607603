package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/conf"
	"spoolgate/internal/broker"
)

// QueueDepth is one queue of sender.source=amqp as the operator's tool
// shows it (`spoolgate status`).
type QueueDepth struct {
	Role      string `json:"role"` // results or failed
	Queue     string `json:"queue"`
	Exists    bool   `json:"exists"`
	Messages  int    `json:"messages"` // ready, not counting those delivered and not yet acked
	Consumers int    `json:"consumers"`
}

// ReadQueues returns the results and failed queues of c, in that order, as
// the broker counts them (a passive declare: nothing is created). The
// error says why the broker could not be asked; the queues read before it
// are returned. It is safe while senders run.
func ReadQueues(ctx context.Context, c conf.Sender) ([]QueueDepth, error) {
	ds, err := broker.Depths(ctx, c.AMQP.URL, c.AMQP.Queue, c.AMQP.FailedQueue)
	qs := make([]QueueDepth, 0, len(ds))
	for i, d := range ds {
		role := "results"
		if i == 1 {
			role = "failed"
		}
		qs = append(qs, QueueDepth{Role: role, Queue: d.Queue, Exists: d.Messages >= 0, Messages: max(d.Messages, 0), Consumers: d.Consumers})
	}
	return qs, err
}

// requeueBatch is how many failed messages are moved per publisher
// confirm.
const requeueBatch = 100

// RequeueAMQP moves the messages of sender.amqp.failed_queue back to
// sender.amqp.queue (for `spoolgate requeue -all` with sender.source=amqp):
// at most as many as the failed queue held when it started, in batches,
// each published to the results queue and confirmed by the broker before
// its originals are acked. It returns how many were moved. On an error the
// batch in hand is given back to the failed queue, unless its publish may
// have been confirmed: a message may then be in both queues, never in
// neither. It is safe while senders run.
func RequeueAMQP(ctx context.Context, c conf.Sender) (int, error) {
	conn, _, err := broker.Dial(c.AMQP.URL, "spoolgate requeue")
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	fq := FailedQueue(c)
	if err := broker.Declare(ch, fq); err != nil {
		return 0, err
	}
	q, err := ch.QueueDeclarePassive(fq.Name, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("queue %q: %w", fq.Name, err)
	}
	n := q.Messages
	if n == 0 {
		return 0, nil
	}
	pub := broker.NewPublisher(c.AMQP.URL, "spoolgate requeue", ResultsQueue(c), 10*time.Second, nil)
	defer pub.Close()
	if err := pub.Connect(); err != nil {
		return 0, err
	}
	moved := 0
	for moved < n {
		var batch []amqp.Publishing
		var last uint64
		for len(batch) < requeueBatch && moved+len(batch) < n {
			d, ok, err := ch.Get(fq.Name, false)
			if err != nil {
				return moved, fmt.Errorf("get from %q: %w", fq.Name, err) // the channel is gone: the broker requeues the batch
			}
			if !ok {
				break
			}
			batch = append(batch, requeued(d))
			last = d.DeliveryTag
		}
		if len(batch) == 0 {
			break
		}
		if err := pub.Publish(ctx, batch); err != nil {
			_ = ch.Nack(last, true, true)
			return moved, fmt.Errorf("publish to %q: %w (%d messages left in %q)", c.AMQP.Queue, err, len(batch), fq.Name)
		}
		if err := ch.Ack(last, true); err != nil {
			return moved, fmt.Errorf("ack in %q: %w (%d messages are now in both queues)", fq.Name, err, len(batch))
		}
		moved += len(batch)
	}
	if err := ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return moved, fmt.Errorf("close channel: %w (the last acks may not have reached the broker: some messages may be in both queues)", err)
	}
	return moved, nil
}
