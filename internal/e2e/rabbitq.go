package e2e

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueMessages takes every message in queue through the node at url (a
// passive declare counts them, a consumer with auto-ack reads that many)
// and returns them in queue order; the queue is empty afterwards unless
// more arrived meanwhile. It fails the test if the queue does not exist
// or the messages do not all arrive within a minute.
func QueueMessages(t testing.TB, url, queue string) []amqp.Delivery {
	t.Helper()
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("read queue %s: %v", queue, err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("read queue %s: %v", queue, err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("read queue %s: %v", queue, err)
	}
	if q.Messages == 0 {
		return nil
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatalf("read queue %s: qos: %v", queue, err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("read queue %s: consume: %v", queue, err)
	}
	out := make([]amqp.Delivery, 0, q.Messages)
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for len(out) < q.Messages {
		select {
		case d, ok := <-ds:
			if !ok {
				t.Fatalf("read queue %s: the consumer ended after %d of %d messages", queue, len(out), q.Messages)
			}
			out = append(out, d)
		case <-deadline.C:
			t.Fatalf("read queue %s: %d of %d messages within a minute", queue, len(out), q.Messages)
		}
	}
	return out
}
