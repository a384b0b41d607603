package sender

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestFailedAndRequeuedHeaders: a failed line keeps its body, properties
// and headers and gains the failure headers; requeued, those become
// x-spoolgate-last-* and the publisher's sequence header is dropped. (The
// broker round trips are in cmd/spoolgate-sender's TestAMQP* tests.)
func TestFailedAndRequeuedHeaders(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 30, 0, 0, time.FixedZone("KST", 9*3600))
	d := amqp.Delivery{
		MessageId: "m1", CorrelationId: "c1", Timestamp: now, Body: []byte("REQ|x"),
		Headers: amqp.Table{"peer": "10.0.0.1", "spoolgate-seq": int64(7)},
	}
	f := failedMessage(d, lineResult{kind: lineRejected, code: 400, attempts: 1, remote: "10.0.0.2:9010", reason: "rejected by the remote (400)"}, now)
	want := amqp.Table{
		"peer": "10.0.0.1", "spoolgate-seq": int64(7),
		HeaderReason: "rejected by the remote (400)", HeaderCode: int32(400), HeaderAttempts: int32(1),
		HeaderRemote: "10.0.0.2:9010", HeaderFailedAt: "2026-11-21T00:30:00Z",
	}
	if !equalTables(f.Headers, want) || f.MessageId != "m1" || f.CorrelationId != "c1" || string(f.Body) != "REQ|x" ||
		f.ContentType != "text/plain; charset=utf-8" || !f.Timestamp.Equal(now) {
		t.Fatalf("failed message %+v", f)
	}
	back := requeued(amqp.Delivery{MessageId: "m1", Body: f.Body, Headers: f.Headers, ContentType: f.ContentType})
	want = amqp.Table{
		"peer":                    "10.0.0.1",
		LastPrefix + HeaderReason: "rejected by the remote (400)", LastPrefix + HeaderCode: int32(400), LastPrefix + HeaderAttempts: int32(1),
		LastPrefix + HeaderRemote: "10.0.0.2:9010", LastPrefix + HeaderFailedAt: "2026-11-21T00:30:00Z",
	}
	if !equalTables(back.Headers, want) || back.MessageId != "m1" || string(back.Body) != "REQ|x" {
		t.Fatalf("requeued %+v", back)
	}
	if d.Headers[HeaderReason] != nil {
		t.Fatal("failedMessage changed the delivery's headers")
	}
}

func equalTables(a, b amqp.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
