package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/internal/e2e"
)

// amqpKeys are the config lines of receiver.sink=amqp into queue at url.
func amqpKeys(url, queue string) []string {
	return []string{"receiver.sink = amqp", "receiver.amqp.url = " + url, "receiver.amqp.queue = " + queue}
}

// queueBodies reads queue at url and counts its messages by body.
func queueBodies(t *testing.T, url, queue string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range e2e.QueueMessages(t, url, queue) {
		out[string(d.Body)]++
	}
	return out
}

// loadFor runs 16 clients of load until 500 messages are acknowledged,
// then stop is called (a signal to the receiver); it returns the
// acknowledged messages once the clients have ended.
func loadFor(t *testing.T, p *proc, stop func()) [][]byte {
	t.Helper()
	done := make(chan struct{})
	acked := make(chan []byte, 1<<16)
	wg := load(p.addr, 16, done, acked)
	var once sync.Once
	end := func() { once.Do(func() { close(done); wg.Wait(); close(acked) }) }
	t.Cleanup(end)
	e2e.WaitFor(t, 30*time.Second, "500 acknowledged messages", func() bool { return len(acked) >= 500 })
	stop()
	end()
	var out [][]byte
	for m := range acked {
		out = append(out, m)
	}
	return out
}

// checkOnce fails the test for an acknowledged message that is not in the
// queue exactly once (load sends each message once).
func checkOnce(t *testing.T, acked [][]byte, in map[string]int) {
	t.Helper()
	bad := 0
	for _, m := range acked {
		if n := in[strings.TrimSuffix(string(m), "\n")]; n != 1 {
			bad++
			if bad <= 10 {
				t.Errorf("acknowledged message %q is %d times in the queue, want once", m, n)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d acknowledged messages not in the queue exactly once", bad, len(acked))
	}
}

// TestAMQPSIGKILLUnderLoad: with receiver.sink=amqp, every message
// answered 200 before a kill -9 under load from 16 clients is in the
// queue exactly once (a 200 follows the broker's confirm); the restarted
// receiver is ready and stores again.
func TestAMQPSIGKILLUnderLoad(t *testing.T) {
	n := e2e.RabbitShared(t)
	const queue = "t.recv.kill"
	path := config(t, t.TempDir(), amqpKeys(n.URL, queue)...)
	p := start(t, path, nil)
	e2e.WaitFor(t, 30*time.Second, "receiver ready", func() bool { return ready(p) })
	acked := loadFor(t, p, func() { p.Signal(t, syscall.SIGKILL) })
	p.ExitCode(t, 10*time.Second)
	in := queueBodies(t, n.URL, queue)
	checkOnce(t, acked, in)
	t.Logf("%d messages acknowledged before SIGKILL, %d in the queue", len(acked), len(in))

	p2 := start(t, path, nil)
	e2e.WaitFor(t, 30*time.Second, "restarted receiver ready", func() bool { return ready(p2) })
	m := msg(t, "999999999", "after restart")
	if code := sendOne(t, p2.addr, m); code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	if in := queueBodies(t, n.URL, queue); in[strings.TrimSuffix(string(m), "\n")] != 1 || len(in) != 1 {
		t.Fatalf("after restart the queue holds %v", in)
	}
}

// TestAMQPSIGTERMUnderLoad: a drain under load waits for the confirms of
// the messages in flight: exit 0, no message answered 500 for the
// shutdown, every acknowledged one in the queue exactly once.
func TestAMQPSIGTERMUnderLoad(t *testing.T) {
	n := e2e.RabbitShared(t)
	const queue = "t.recv.term"
	p := start(t, config(t, t.TempDir(), amqpKeys(n.URL, queue)...), nil)
	e2e.WaitFor(t, 30*time.Second, "receiver ready", func() bool { return ready(p) })
	acked := loadFor(t, p, func() { p.Signal(t, syscall.SIGTERM) })
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	log := p.Log.String()
	if strings.Contains(log, "not stored in RabbitMQ") || !strings.Contains(log, "spoolgate-receiver stopped") {
		t.Errorf("the drain failed messages or did not end cleanly")
	}
	in := queueBodies(t, n.URL, queue)
	checkOnce(t, acked, in)
	t.Logf("%d acknowledged, %d in the queue", len(acked), len(in))
}

// TestAMQPQueueMismatch: a queue that exists with other arguments (a
// classic queue where the config says quorum) stops start-up: exit 2 and
// one line on stderr naming the key, the queue and the arguments.
func TestAMQPQueueMismatch(t *testing.T) {
	n := e2e.RabbitShared(t)
	const queue = "t.recv.mismatch"
	c, err := amqp.Dial(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := config(t, dir, append(amqpKeys(n.URL, queue), "log.dir = "+filepath.Join(dir, "log"))...)
	p := e2e.Start(t, "receiver", exec.Command(bin, "-config", path), nil)
	if code := p.ExitCode(t, 30*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2; output:\n%s", code, p.Log)
	}
	out := p.Log.String()
	for _, want := range []string{"receiver.amqp.queue_type", `queue "` + queue + `"`, "x-queue-type=quorum", "current is 'classic'"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Count(out, "\n") != 1 || strings.Contains(out, "guest:guest") {
		t.Errorf("want one line without the password, got %q", out)
	}
	t.Logf("%s", out)
}

// TestAMQPUnreachableAtStart: a broker that cannot be reached does not
// stop start-up: the receiver listens, /readyz answers 503 saying why, a
// message is answered 500, and the URL's password is in no log line.
func TestAMQPUnreachableAtStart(t *testing.T) {
	url := "amqp://spool:s3cretpass@" + e2e.FreeAddr(t) + "/"
	p := start(t, config(t, t.TempDir(), amqpKeys(url, "t.recv.none")...), nil)
	if p.addr == "" {
		t.Fatalf("receiver did not start:\n%s", p.Log)
	}
	// The log's "listening on" comes just before Serve counts the
	// listener, so /readyz may say "not listening" for a moment first.
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last /readyz: %s", last)
		}
	})
	e2e.WaitFor(t, 10*time.Second, "/readyz to answer 503 naming rabbitmq", func() bool {
		code, body, err := e2e.HTTPGet("http://" + p.admin + "/readyz")
		last = fmt.Sprintf("%d %q %v", code, body, err)
		return err == nil && code == 503 && strings.Contains(body, "rabbitmq")
	})
	if code := sendOne(t, p.addr, msg(t, "000000001", "no broker")); code != 500 {
		t.Errorf("without a broker: %d, want 500", code)
	}
	if got := scrape(t, p, `spoolgate_receiver_amqp_failures_total{reason="unavailable"}`); got != 1 {
		t.Errorf("unavailable failures %v, want 1", got)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if strings.Contains(p.Log.String(), "s3cretpass") {
		t.Error("the password is in the log")
	}
	if !strings.Contains(p.Log.String(), "not reachable at start") {
		t.Error("no line saying the broker was not reachable at start")
	}
}
