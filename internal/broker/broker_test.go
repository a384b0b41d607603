package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m, nil) }

func msgs(n int) []amqp.Publishing {
	out := make([]amqp.Publishing, n)
	for i := range out {
		out[i] = amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte(fmt.Sprintf("line %d", i))}
	}
	return out
}

// TestPublisher: a batch is confirmed and readable; a queue declared with
// another type is refused with the reason; a deleted queue turns the
// confirm into ErrReturned, not a success.
func TestPublisher(t *testing.T) {
	n := e2e.RabbitShared(t)
	q := Queue{Name: "t.publisher", Type: conf.QueueQuorum}
	p := NewPublisher([]string{"amqp://guest:guest@127.0.0.1:1/", n.URL}, "test", q, 5*time.Second, nil)
	defer p.Close()
	if err := p.Publish(context.Background(), msgs(100)); err != nil {
		t.Fatal(err)
	}
	if err := p.Healthy(); err != nil {
		t.Fatal(err)
	}
	d, err := Depths(context.Background(), []string{n.URL}, q.Name, "t.nosuch")
	if err != nil {
		t.Fatal(err)
	}
	if d[0].Messages != 100 || d[1].Messages != -1 {
		t.Errorf("depths %+v", d)
	}

	classic := NewPublisher([]string{n.URL}, "test", Queue{Name: q.Name, Type: conf.QueueClassic}, 5*time.Second, nil)
	defer classic.Close()
	if err := classic.Connect(); err == nil || !strings.Contains(err.Error(), "exists with other arguments") {
		t.Errorf("declare with another type: %v", err)
	}

	if out, err := n.Ctl("delete_queue", q.Name); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	err = p.Publish(context.Background(), msgs(3))
	if !errors.Is(err, ErrReturned) {
		t.Errorf("publish to a deleted queue: %v, want ErrReturned", err)
	}
}

// TestPublisherBrokerDown: with the node stopped Publish fails and Healthy
// says why; after it starts again Healthy comes back without traffic.
func TestPublisherBrokerDown(t *testing.T) {
	n := e2e.StartRabbit(t)
	p := NewPublisher([]string{n.URL}, "test", Queue{Name: "t.down", Type: conf.QueueQuorum}, 2*time.Second, nil)
	defer p.Close()
	if err := p.Publish(context.Background(), msgs(1)); err != nil {
		t.Fatal(err)
	}
	if out, err := n.Ctl("stop_app"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e2e.WaitFor(t, 30*time.Second, "publish to fail", func() bool {
		return p.Publish(context.Background(), msgs(1)) != nil
	})
	if p.Healthy() == nil {
		t.Error("healthy while the broker is stopped")
	}
	if out, err := n.Ctl("start_app"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e2e.WaitFor(t, 60*time.Second, "healthy again", func() bool { return p.Healthy() == nil })
	if err := p.Publish(context.Background(), msgs(1)); err != nil {
		t.Fatal(err)
	}
}
