package sender

// The messages of the results and failed queues (docs/PROTOCOL.md §8
// "Results queue"): the queues as declared, the failure headers, and a
// message as it goes to the failed queue and back.

import (
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/conf"
	"spoolgate/internal/broker"
)

// Failure headers of a message in the failed queue.
const (
	HeaderReason   = "reason"    // why: the reply, the error, or why the line is invalid
	HeaderCode     = "code"      // the last reply code, 0 when none
	HeaderAttempts = "attempts"  // attempts made, 0 for a line never sent
	HeaderRemote   = "remote"    // address of the last attempt, empty when never sent
	HeaderFailedAt = "failed_at" // RFC 3339, UTC
)

// failureHeaders are the headers the sender sets on a failed message;
// requeue keeps them as x-spoolgate-last-<name>.
var failureHeaders = []string{HeaderReason, HeaderCode, HeaderAttempts, HeaderRemote, HeaderFailedAt}

// LastPrefix is what requeue puts before the failure headers it keeps: a
// requeued message carries x-spoolgate-last-reason, -code, -attempts,
// -remote and -failed_at of its last failure, and no failure headers.
const LastPrefix = "x-spoolgate-last-"

// ResultsQueue is sender.amqp.queue as the sender declares it.
func ResultsQueue(c conf.Sender) broker.Queue {
	return broker.Queue{Name: c.AMQP.Queue, Type: string(c.AMQP.QueueType), SingleActive: c.AMQP.SingleActive}
}

// FailedQueue is sender.amqp.failed_queue as the sender declares it.
func FailedQueue(c conf.Sender) broker.Queue {
	return broker.Queue{Name: c.AMQP.FailedQueue, Type: string(c.AMQP.QueueType)}
}

// failedMessage is what goes to the failed queue for delivery d: its body
// and properties, its headers and the failure headers.
func failedMessage(d amqp.Delivery, r lineResult, now time.Time) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		h[k] = v
	}
	h[HeaderReason] = r.reason
	h[HeaderCode] = int32(r.code)
	h[HeaderAttempts] = int32(r.attempts)
	h[HeaderRemote] = r.remote
	h[HeaderFailedAt] = now.UTC().Format(time.RFC3339)
	return publishingOf(d, h)
}

// publishingOf is d as a message to publish again, with headers h.
func publishingOf(d amqp.Delivery, h amqp.Table) amqp.Publishing {
	ct := d.ContentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     ct,
		ContentEncoding: d.ContentEncoding,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// requeued is a failed message as it goes back to the results queue: its
// failure headers become x-spoolgate-last-*, the publisher's sequence
// header is dropped.
func requeued(d amqp.Delivery) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		if strings.HasPrefix(k, "spoolgate-seq") {
			continue
		}
		h[k] = v
	}
	for _, k := range failureHeaders {
		if v, ok := h[k]; ok {
			h[LastPrefix+k] = v
			delete(h, k)
		}
	}
	return publishingOf(d, h)
}
