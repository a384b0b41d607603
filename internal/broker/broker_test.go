package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
	q := Queue{Name: "t.publisher", Type: "quorum"}
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

	classic := NewPublisher([]string{n.URL}, "test", Queue{Name: q.Name, Type: "classic"}, 5*time.Second, nil)
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
	p := NewPublisher([]string{n.URL}, "test", Queue{Name: "t.down", Type: "quorum"}, 2*time.Second, nil)
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

// BenchmarkPublishConfirm is the broker's confirm latency as the amqp sink
// sees it with keep-alive clients: one persistent message per Publish, one
// Publish at a time (ns/op is the round trip to the confirm), on a quorum
// and a classic queue of the package's node. With C clients each waiting
// for its reply, C / (ns/op) bounds the sink's rate whatever the receiver
// does; the -16clients runs are 16 publishers at once (the bench row's 16
// keep-alive clients without the receiver): the broker's own ceiling.
func BenchmarkPublishConfirm(b *testing.B) {
	n := e2e.RabbitShared(b)
	for _, qt := range []string{"quorum", "classic"} {
		b.Run(qt, func(b *testing.B) {
			p := NewPublisher([]string{n.URL}, "bench", Queue{Name: "b.confirm." + qt, Type: qt}, 5*time.Second, nil)
			defer p.Close()
			if err := p.Connect(); err != nil {
				b.Fatal(err)
			}
			one := msgs(1)
			b.ResetTimer()
			for range b.N {
				if err := p.Publish(context.Background(), one); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			n.Ctl("delete_queue", "b.confirm."+string(qt))
		})
		b.Run(string(qt)+"-16clients", func(b *testing.B) {
			p := NewPublisher([]string{n.URL}, "bench", Queue{Name: "b.confirm16." + string(qt), Type: qt}, 5*time.Second, nil)
			defer p.Close()
			if err := p.Connect(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 goroutines, each waiting for its confirm
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				one := msgs(1)
				for pb.Next() {
					if err := p.Publish(context.Background(), one); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			n.Ctl("delete_queue", "b.confirm16."+string(qt))
		})
	}
}
