package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/internal/broker"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// Adversarial review of sender.source=amqp (issue 14). These tests show
// defects found in review (and checks found sound); those of defects not
// fixed yet run only with SPOOLGATE_REVIEW=1 so that the suite stays
// green until the fixes land. Those fixed, and the checks found sound,
// always run. Still gated: TestReviewAMQPRequeueBrokerKilled (the
// broker, 3.10.8, can lose a quorum queue declared just before a kill -9
// of its node):
//
//	SPOOLGATE_REVIEW=1 go test -race -count=1 -run 'TestReviewAMQP' -v ./cmd/spoolgate-sender
func reviewOnly(t *testing.T) {
	if os.Getenv("SPOOLGATE_REVIEW") == "" {
		t.Skip("a review finding: set SPOOLGATE_REVIEW=1 to run")
	}
}

// TestReviewAMQPFailedQueueDeleted: the failed queue deleted while the
// sender runs (an operator "purging" it by deleting it): a line the remote
// rejects should still land in the failed queue (declared again), not be
// held forever by a worker retrying a publish that the broker returns;
// and the lines behind it should keep flowing.
func TestReviewAMQPFailedQueueDeleted(t *testing.T) {
	node := e2e.RabbitShared(t)
	f := serveFake(t, listen(t), func(f *fakeRemote) {
		f.answer = func(line []byte) int {
			if strings.Contains(string(line), "|000000002|") {
				return protocol.CodeInvalid
			}
			return protocol.CodeOK
		}
	})
	e := newAMQPEnv(t, node, f.addr(), map[string]string{"sender.workers": "1"})
	p := e.start(t)
	if out, err := node.Ctl("delete_queue", e.failedQ); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e.publish(t, []string{body(1), body(2), body(3)})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := e.depth(t, e.failedQ); n == 1 && len(f.messages(t)) == 2 {
			p.Signal(t, syscall.SIGTERM)
			p.ExitCode(t, 20*time.Second)
			return
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	n, _ := e.depth(t, e.failedQ)
	ready, _ := e.depth(t, e.queue)
	t.Fatalf("30 s after a 400 with the failed queue deleted: failed queue depth %d (-1: missing), %d ready in the results queue, "+
		"delivered %d of the 2 good lines; log:\n%s", n, ready, len(f.messages(t)), grep(p.Log.String(), "failed queue"))
}

// TestReviewAMQPSingleActiveDrainOrder: single_active promises queue
// order. With sender.window=4 the prefetch is 4: on a drain the sender
// nacked the 3 prefetched deliveries at once but the one being sent only
// when its send was cut off, so the queue held m1 m2 m3 m0 m4 ...
// afterwards: the next active sender sent m1 before m0. Fixed: nothing is
// nacked; the channel's close gives back what is held, in front.
func TestReviewAMQPSingleActiveDrainOrder(t *testing.T) {
	for _, w := range []string{"1", "4"} {
		t.Run("window="+w, func(t *testing.T) { singleActiveDrainOrder(t, w) })
	}
}

func singleActiveDrainOrder(t *testing.T, window string) {
	const n = 10
	node := e2e.RabbitShared(t)
	f := serveFake(t, listen(t), func(f *fakeRemote) { f.answer = func([]byte) int { return 0 } }) // holds every message
	e := newAMQPEnv(t, node, f.addr(), map[string]string{
		"sender.amqp.single_active": "true", "sender.window": window, "shutdown_timeout": "1s", "sender.timeout": "30s",
	})
	p := e.start(t)
	e.publish(t, bodies(0, n))
	e2e.WaitFor(t, 30*time.Second, "the first message held by the remote", func() bool { return len(f.Read()) == 1 })
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Log)
	}
	e2e.WaitFor(t, 20*time.Second, "all back in the results queue", func() bool { ready, _ := e.depth(t, e.queue); return ready == n })
	order := consumeIDs(t, e.url, e.queue, n) // basic.get is refused on a single-active quorum queue
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("m%d", i)
	}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("queue order after the drain: %v, want %v", order, want)
	}
}

// TestReviewAMQPReloadWorkers: sender.workers is a live key; raised from
// 1 to 3 by a reload, 3 deliveries should be in flight against a remote
// that holds them (as TestHotReloadWorkers shows for the spool). The
// consumer's prefetch (workers × window) was set once per connection, so
// the broker kept handing out 1. Fixed: a reload that changes the prefetch
// consumes again with it.
func TestReviewAMQPReloadWorkers(t *testing.T) {
	node := e2e.RabbitShared(t)
	release := make(chan struct{})
	r := e2e.StartRemote(t, func(e2e.Msg) e2e.Action { return e2e.Action{Wait: release, Code: protocol.CodeOK} })
	var once bool
	releaseOnce := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(releaseOnce)
	e := newAMQPEnv(t, node, r.Addr(), map[string]string{"sender.workers": "1", "sender.timeout": "60s"})
	p := e.start(t)
	e.publish(t, bodies(0, 6))
	e2e.WaitFor(t, 20*time.Second, "1 send in flight", func() bool { return r.Busy() == 1 })
	e.props["sender.workers"] = "3"
	e.write(t)
	e2e.WaitFor(t, 20*time.Second, "the reload logged", func() bool { return p.Log.Count("sender reloaded") > 0 })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && r.Busy() < 3 {
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	busy := r.Busy()
	ready, _ := e.depth(t, e.queue)
	releaseOnce()
	e2e.WaitFor(t, 30*time.Second, "all delivered", func() bool {
		return e.metric(t, `spoolgate_sender_messages_total{outcome="delivered"}`) == 6
	})
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 20*time.Second)
	if busy != 3 {
		t.Fatalf("20 s after workers 1 → 3: %d send(s) in flight, %d ready in the queue; want 3 in flight", busy, ready)
	}
}

// consumeIDs reads the message_ids of the first n messages of queue with
// a consumer (in delivery order) and acks them.
func consumeIDs(t *testing.T, url, queue string, n int) []string {
	t.Helper()
	c, _, err := broker.Dial([]string{url}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	timeout := time.After(20 * time.Second)
	for len(ids) < n {
		select {
		case d := <-ds:
			ids = append(ids, d.MessageId)
		case <-timeout:
			t.Fatalf("only %d of %d messages consumed: %v", len(ids), n, ids)
		}
	}
	return ids
}

// TestReviewAMQPAlarmDrain: a memory alarm on the broker while a line the
// remote rejected is being published to the failed queue: the publish
// cannot be confirmed (held, as documented), but SIGTERM must still end
// the sender within about shutdown_timeout, the line given back to the
// results queue. The Publisher's confirm timeout closes the blocked
// connection with a Close that waits for the broker, holding its mutex.
func TestReviewAMQPAlarmDrain(t *testing.T) {
	node := e2e.StartRabbit(t)
	release := make(chan struct{})
	r := e2e.StartRemote(t, func(e2e.Msg) e2e.Action { return e2e.Action{Wait: release, Code: protocol.CodeInvalid} })
	e := newAMQPEnv(t, node, r.Addr(), map[string]string{"shutdown_timeout": "2s", "sender.workers": "1"})
	p := e.start(t)
	e.publish(t, bodies(0, 1))
	e2e.WaitFor(t, 20*time.Second, "the line at the remote", func() bool { return r.Busy() == 1 })
	if out, err := node.Ctl("set_vm_memory_high_watermark", "absolute", "1000000"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cleared := false
	clear := func() {
		if !cleared {
			cleared = true
			if out, err := node.Ctl("set_vm_memory_high_watermark", "0.4"); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		}
	}
	defer clear()
	e2e.WaitFor(t, 30*time.Second, "memory alarm", func() bool {
		out, _ := node.Ctl("eval", "rabbit_alarm:get_alarms().")
		return out != "[]\n"
	})
	close(release) // 400: to the failed queue, under the alarm
	e2e.WaitFor(t, 20*time.Second, "the 400 answered", func() bool { return r.Busy() == 0 })
	// The failed queue's publisher has met the alarm: blocked by the
	// broker, or its confirm timed out (either logs this once).
	e2e.WaitFor(t, 30*time.Second, "the failed-queue publisher to meet the alarm", func() bool {
		return p.Log.Contains("RabbitMQ unavailable")
	})
	if k, _ := e.depth(t, e.failedQ); k != 0 {
		t.Fatalf("%d in the failed queue under the alarm", k)
	}
	p.Signal(t, syscall.SIGTERM)
	start := time.Now()
	done := make(chan int, 1)
	go func() { done <- p.ExitCode(t, 60*time.Second) }()
	select {
	case code := <-done:
		t.Logf("exit %d %s after SIGTERM", code, time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		clear()
		code := <-done
		t.Fatalf("shutdown_timeout 2s: still running 20 s after SIGTERM during a memory alarm; exit %d %s after SIGTERM once the alarm was cleared\n%s",
			code, time.Since(start).Round(time.Millisecond), grep(p.Log.String(), "failed"))
	}
}

// TestReviewAMQPConnectionLost: the broker closes the sender's
// connections (rabbitmqctl close_all_connections) while the remote holds
// 4 sends: the sender reconnects by itself; every message is delivered at
// least once, none to the failed queue, none left, and the duplicates are
// at most the sends that were in flight.
func TestReviewAMQPConnectionLost(t *testing.T) {
	const n, workers = 20, 4
	node := e2e.RabbitShared(t)
	release := make(chan struct{})
	r := e2e.StartRemote(t, func(m e2e.Msg) e2e.Action { return e2e.Action{Wait: release, Code: protocol.CodeOK} })
	e := newAMQPEnv(t, node, r.Addr(), map[string]string{"sender.workers": fmt.Sprint(workers), "sender.timeout": "30s"})
	p := e.start(t)
	e.publish(t, bodies(0, n))
	e2e.WaitFor(t, 20*time.Second, "workers sends held", func() bool { return r.Busy() == workers })
	if out, err := node.Ctl("close_all_connections", "review test"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e2e.WaitFor(t, 20*time.Second, "the loss logged", func() bool { return p.Log.Count("connection lost") > 0 || p.Log.Count("RabbitMQ unavailable") > 0 })
	close(release)
	e2e.WaitFor(t, 60*time.Second, "all delivered", func() bool { return distinct(r.Delivered()) == n })
	e2e.WaitFor(t, 30*time.Second, "queue empty and consuming", func() bool {
		ready, consumers := e.depth(t, e.queue)
		return ready == 0 && consumers == 1 && e.ready() == 200
	})
	if k, _ := e.depth(t, e.failedQ); k != 0 {
		t.Fatalf("%d in the failed queue", k)
	}
	dups := e2e.StoredOnce(t, r.Delivered(), n)
	t.Logf("%d duplicates", dups)
	if dups > workers {
		t.Fatalf("%d duplicates, want at most %d", dups, workers)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestReviewAMQPOddBodies: bodies that are empty, a lone LF, with a CR,
// CRLF, binary, with an inner LF, or far over the protocol's maximum all
// land in the failed queue byte for byte (none delivered, none lost, the
// sender not stuck), and a good line behind them is delivered.
func TestReviewAMQPOddBodies(t *testing.T) {
	node := e2e.RabbitShared(t)
	f := serveFake(t, listen(t), nil)
	e := newAMQPEnv(t, node, f.addr(), nil)
	p := e.start(t)
	odd := []string{"", "\n", body(1) + "\r", body(2) + "\r\n", "\x00\xff\xfe|\x01", body(3)[:20] + "\n" + body(3)[20:],
		strings.Repeat("x", 1<<20), body(4) + "\n\n"}
	e.publish(t, append(append([]string{}, odd...), body(5)))
	e2e.WaitFor(t, 30*time.Second, "odd ones in the failed queue", func() bool { k, _ := e.depth(t, e.failedQ); return k == len(odd) })
	e2e.WaitFor(t, 10*time.Second, "the good one delivered", func() bool { return len(f.messages(t)) == 1 })
	got := map[string]string{}
	for _, d := range e.takeAll(t, e.failedQ) {
		got[d.MessageId] = string(d.Body)
	}
	for i, b := range odd {
		if got[fmt.Sprintf("m%d", i)] != b {
			t.Errorf("m%d: failed queue body %.40q, want %.40q", i, got[fmt.Sprintf("m%d", i)], b)
		}
	}
	if m := f.messages(t); processNo(m[0]) != "000000005" {
		t.Errorf("delivered %q", m)
	}
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 20*time.Second)
}

// TestReviewAMQPRequeueBrokerKilled: kill -9 of the broker while
// `spoolgate requeue -all` moves 3,000 messages: requeue fails (exit 1);
// after the node is back every message is in the results or the failed
// queue (never in neither), at most one batch (100) in both.
//
// Observed on Debian's rabbitmq-server 3.10.8 (load ~10 on 2 cores): in 4
// of 6 runs the results queue, declared by requeue a second or two before
// the kill, came back as a Ra follower with log index 0 and term 0: the
// confirmed messages moved into it gone (list_queues: 0 messages) and
// basic.get timing out for 90 s. requeue itself kept its promise (what
// it had not confirmed was still in the failed queue); the loss is the
// broker's recovery of a freshly declared quorum queue after kill -9.
func TestReviewAMQPRequeueBrokerKilled(t *testing.T) {
	reviewOnly(t)
	const n = 3000
	node := e2e.StartRabbit(t)
	e := amqpEnvOf(t, node.URL, "t.requeue.kill", "127.0.0.1:1", nil)
	fp := broker.NewPublisher([]string{node.URL}, "test", broker.Queue{Name: e.failedQ, Type: "quorum"}, 60*time.Second, nil)
	for off := 0; off < n; off += 1000 {
		var msgs []amqp.Publishing
		for i := off; i < off+1000; i++ {
			msgs = append(msgs, amqp.Publishing{MessageId: fmt.Sprintf("m%d", i), Body: []byte(body(i))})
		}
		if err := fp.Publish(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	fp.Close()
	cmd := exec.Command(toolBin, "requeue", "-all", "-config", e.conf)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e2e.WaitFor(t, 60*time.Second, "requeue under way", func() bool {
		ready, _ := e.depth(t, e.queue)
		return ready >= 300
	})
	node.Kill()
	err := <-exited
	t.Logf("requeue: %v: %s", err, strings.TrimSpace(out.String()))
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	var results, failed []string
	e2e.WaitFor(t, 50*time.Second, "both queues readable after the restart", func() bool {
		var err1, err2 error
		results, err1 = readIDs(e.url, e.queue)
		if err1 == nil { // only then: readIDs acks what it read
			failed, err2 = readIDs(e.url, e.failedQ)
		}
		if err1 != nil || err2 != nil {
			qs, _ := node.Ctl("eval", `rabbit_quorum_queue:status(<<"/">>, <<"`+e.queue+`">>).`)
			t.Logf("quorum status of %s: %s", e.queue, strings.ReplaceAll(qs, "\n", " "))
			st, _ := node.Ctl("list_queues", "name", "type", "messages", "state", "leader", "online")
			t.Logf("not yet: %.80v; %.80v\nQUEUES %s", err1, err2, strings.ReplaceAll(st, "\n", " | "))
			time.Sleep(2 * time.Second) // polling interval: each try may take a timeout
		}
		return err1 == nil && err2 == nil
	})
	where := map[string]int{}
	for _, id := range results {
		where[id] |= 1
	}
	for _, id := range failed {
		where[id] |= 2
	}
	both := 0
	for i := range n {
		switch where[fmt.Sprintf("m%d", i)] {
		case 0:
			t.Errorf("m%d in neither queue", i)
		case 3:
			both++
		}
	}
	t.Logf("after the kill: %d in results, %d in failed, %d in both", len(results), len(failed), both)
	if len(results)+len(failed) != n+both || both > 100 {
		t.Fatalf("%d + %d messages, %d in both: want %d in all, at most 100 in both", len(results), len(failed), both, n)
	}
}

// readIDs reads the message_ids of every message of queue and acks them
// all at the end (on an error none is acked).
func readIDs(url, queue string) ([]string, error) {
	c, _, err := broker.Dial([]string{url}, "test")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	var ids []string
	var last uint64
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		ids = append(ids, d.MessageId)
		last = d.DeliveryTag
	}
	if last > 0 {
		if err := ch.Ack(last, true); err != nil {
			return nil, err
		}
	}
	return ids, ch.Close()
}

// TestReviewAMQPRemoteResets: the remote behind an L4 balancer whose
// backends are down (docs/PROTOCOL.md §5): the balancer accepts each connection and
// closes it at once. "Nothing goes to the failed queue for an outage" —
// but each closed connection counted as an attempt, so every line used up
// its retries and landed in the failed queue. (The spool source did the
// same with failed files; shown here for the amqp source's promise.)
// Fixed: a new connection closed before a reply byte is unreachable
// (docs/PROTOCOL.md §5); the circuit opens, nothing fails.
func TestReviewAMQPRemoteResets(t *testing.T) {
	const n = 5
	node := e2e.RabbitShared(t)
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	e := newAMQPEnv(t, node, ln.Addr().String(), map[string]string{
		"sender.retries": "2", "sender.retry_backoff": "50ms", "sender.retry_backoff_max": "200ms",
	})
	p := e.start(t)
	e.publish(t, bodies(0, n))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if k, _ := e.depth(t, e.failedQ); k > 0 {
			e2e.WaitFor(t, 10*time.Second, "all failed", func() bool { k, _ := e.depth(t, e.failedQ); return k == n })
			t.Fatalf("the remote's balancer closing every connection: all %d lines in the failed queue within seconds\n%s", n,
				grep(p.Log.String(), "failed after retries"))
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 20*time.Second)
	e2e.WaitFor(t, 20*time.Second, "all back in the results queue", func() bool { ready, _ := e.depth(t, e.queue); return ready == n })
}
