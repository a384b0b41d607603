package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/internal/broker"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// The sender with sender.source=amqp against a real rabbitmq-server node
// (e2e.RabbitShared; skipped when it is not installed).

var queueSeq atomic.Int64

// amqpEnv is a sender of the results queue of its own on node.
type amqpEnv struct {
	*env
	url, queue, failedQ string
	single              bool
}

// newAMQPEnv prepares a sender consuming a new queue (named after the test,
// unique within the run) on node, sending to remote. A second sender of
// the same queue is made with also.
func newAMQPEnv(t *testing.T, node *e2e.RabbitNode, remote string, props map[string]string) *amqpEnv {
	t.Helper()
	q := fmt.Sprintf("t.%s.%d.%d", strings.ReplaceAll(t.Name(), "/", "."), time.Now().UnixNano(), queueSeq.Add(1))
	return amqpEnvOf(t, node.URL, q, remote, props)
}

func amqpEnvOf(t *testing.T, url, queue, remote string, props map[string]string) *amqpEnv {
	p := map[string]string{
		"sender.source":            "amqp",
		"sender.amqp.url":          url,
		"sender.amqp.queue":        queue,
		"sender.amqp.failed_queue": queue + ".failed",
	}
	for k, v := range props {
		p[k] = v
	}
	e := &amqpEnv{env: newEnv(t, remote, p), url: url, queue: queue, failedQ: queue + ".failed", single: p["sender.amqp.single_active"] == "true"}
	return e
}

// also is another sender (own directories and admin address) of the same
// queues.
func (e *amqpEnv) also(t *testing.T, props map[string]string) *amqpEnv {
	p := map[string]string{}
	for k, v := range e.props {
		if strings.HasPrefix(k, "sender.amqp.") || k == "sender.source" {
			p[k] = v
		}
	}
	for k, v := range props {
		p[k] = v
	}
	return amqpEnvOf(t, e.url, e.queue, e.props["sender.remote"], p)
}

// start starts the sender and waits until it consumes (/readyz 200).
func (e *amqpEnv) start(t *testing.T) *e2e.Proc {
	t.Helper()
	p := start(t, senderBin, "-config", e.conf)
	e2e.WaitFor(t, 30*time.Second, "sender consuming", func() bool {
		if p.Exited() {
			t.Fatalf("sender exited: %v", p.Err())
		}
		return e.ready() == 200
	})
	return p
}

// publish puts bodies into the results queue, confirmed, with message_id
// m<i>.
func (e *amqpEnv) publish(t *testing.T, bodies []string) {
	t.Helper()
	p := broker.NewPublisher([]string{e.url}, "test", broker.Queue{Name: e.queue, Type: "quorum", SingleActive: e.single}, 30*time.Second, nil)
	defer p.Close()
	for off := 0; off < len(bodies); off += 500 {
		var msgs []amqp.Publishing
		for i := off; i < min(off+500, len(bodies)); i++ {
			msgs = append(msgs, amqp.Publishing{MessageId: fmt.Sprintf("m%d", i), ContentType: "text/plain; charset=utf-8", Body: []byte(bodies[i])})
		}
		if err := p.Publish(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
}

// depth returns the ready messages and consumers of queue (-1: missing).
func (e *amqpEnv) depth(t *testing.T, queue string) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := broker.Depths(ctx, []string{e.url}, queue)
	if err != nil {
		t.Fatal(err)
	}
	return d[0].Messages, d[0].Consumers
}

// takeAll reads and acks every message of queue.
func (e *amqpEnv) takeAll(t *testing.T, queue string) []amqp.Delivery {
	t.Helper()
	c, _, err := broker.Dial([]string{e.url}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

func bodies(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = body(from + i)
	}
	return out
}

// distinct counts the distinct process_nos in got.
func distinct(got []string) int {
	seen := map[string]bool{}
	for _, m := range got {
		seen[processNo(m)] = true
	}
	return len(seen)
}

// TestAMQPDrainKillRestart: 5,000 messages in the results queue reach a
// real spoolgate-receiver; kill -9 of the sender mid-drain and a restart
// deliver every one at least once, at most prefetch (workers × window)
// twice, with none in the failed queue and none left in the results
// queue; SIGTERM then exits 0.
func TestAMQPDrainKillRestart(t *testing.T) {
	const n, workers = 5000, 8
	node := e2e.RabbitShared(t)
	r := startSink(t, "")
	e := newAMQPEnv(t, node, r.addr(), map[string]string{"sender.workers": fmt.Sprint(workers)})
	e.publish(t, bodies(0, n))
	p := e.start(t)
	e2e.WaitFor(t, 90*time.Second, "half delivered", func() bool { return len(r.messages(t)) >= n/2 })
	p.Signal(t, syscall.SIGKILL)
	p.ExitCode(t, 10*time.Second)
	t.Logf("killed with %d stored", len(r.messages(t)))
	p = e.start(t)
	e2e.WaitFor(t, 90*time.Second, "all delivered", func() bool { return distinct(r.messages(t)) == n })
	e2e.WaitFor(t, 30*time.Second, "results queue empty", func() bool { ready, _ := e.depth(t, e.queue); return ready == 0 })
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.Log)
	}
	dups := e2e.StoredOnce(t, r.messages(t), n)
	t.Logf("%d duplicates", dups)
	if dups > workers {
		t.Fatalf("%d duplicates, want at most the prefetch %d", dups, workers)
	}
	if ready, _ := e.depth(t, e.queue); ready != 0 {
		t.Fatalf("%d messages left in the results queue after the drain", ready)
	}
	if failed, _ := e.depth(t, e.failedQ); failed != 0 {
		t.Fatalf("%d messages in the failed queue", failed)
	}
	if got := count(t, e.spool); got != 0 {
		t.Fatalf("spool has %d files", got)
	}
}

// TestAMQPRejected: a line the remote answers 400, a line it answers 500
// until the retries are used up, and a line that is not a valid message
// land in the failed queue with the headers reason, code, attempts,
// remote and failed_at, their body and message_id; the originals are gone
// from the results queue; the valid line is delivered; the rejected and
// failed counters count them.
func TestAMQPRejected(t *testing.T) {
	node := e2e.RabbitShared(t)
	f := serveFake(t, listen(t), func(f *fakeRemote) {
		f.answer = func(line []byte) int {
			switch {
			case strings.Contains(string(line), "|000000002|"):
				return protocol.CodeInvalid
			case strings.Contains(string(line), "|000000003|"):
				return protocol.CodeUnavailable
			}
			return protocol.CodeOK
		}
	})
	jdir := filepath.Join(t.TempDir(), "journal")
	e := newAMQPEnv(t, node, f.addr(), map[string]string{"journal.dir": jdir})
	p := e.start(t)
	start := time.Now().UTC().Add(-time.Second)
	e.publish(t, []string{body(1), body(2), "not|a|message", body(3)})
	e2e.WaitFor(t, 30*time.Second, "three in the failed queue", func() bool { n, _ := e.depth(t, e.failedQ); return n == 3 })
	if ready, _ := e.depth(t, e.queue); ready != 0 {
		t.Fatalf("%d left in the results queue", ready)
	}
	if got := f.messages(t); len(got) != 1 || processNo(got[0]) != "000000001" {
		t.Fatalf("delivered %q", got)
	}
	e2e.WaitFor(t, 10*time.Second, "rejected and failed counted", func() bool {
		return e.metric(t, `spoolgate_sender_messages_total{outcome="rejected"}`) == 2 &&
			e.metric(t, `spoolgate_sender_messages_total{outcome="failed"}`) == 1
	})
	ds := e.takeAll(t, e.failedQ)
	if len(ds) != 3 {
		t.Fatalf("%d in the failed queue", len(ds))
	}
	byID := map[string]amqp.Delivery{}
	for _, d := range ds {
		byID[d.MessageId] = d
	}
	for _, c := range []struct {
		id, body, reason, remote string
		code, attempts           int32
	}{
		{"m1", body(2), "rejected by the remote (400)", f.addr(), 400, 1},
		{"m2", "not|a|message", "invalid, not sent", "", 0, 0},
		{"m3", body(3), "remote unavailable (500) (after 3 attempts)", f.addr(), 500, 3},
	} {
		d, ok := byID[c.id]
		if !ok {
			t.Fatalf("message %s not in the failed queue: %v", c.id, byID)
		}
		h := d.Headers
		if string(d.Body) != c.body || !strings.Contains(fmt.Sprint(h["reason"]), c.reason) || h["code"] != c.code ||
			h["attempts"] != c.attempts || h["remote"] != c.remote || d.DeliveryMode != amqp.Persistent {
			t.Errorf("%s: body %q headers %v mode %d; want body %q reason %q code %d attempts %d remote %q, persistent",
				c.id, d.Body, h, d.DeliveryMode, c.body, c.reason, c.code, c.attempts, c.remote)
		}
		at, err := time.Parse(time.RFC3339, fmt.Sprint(h["failed_at"]))
		if err != nil || at.Before(start.Truncate(time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: failed_at %v (%v)", c.id, h["failed_at"], err)
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The journal: each message's fate with the queue and its message_id.
	files, _ := filepath.Glob(filepath.Join(jdir, "sender-*.log"))
	var journal string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		journal += string(b)
	}
	for _, want := range []string{
		"\tdelivered\tcode=200\tremote=" + f.addr() + "\torg_code=ORG01\tprocess_no=000000001\tqueue=" + e.queue + "\tmsgid=m0\tattempts=1\t",
		"\tfailed\tcode=400\tremote=" + f.addr() + "\torg_code=ORG01\tprocess_no=000000002\tqueue=" + e.queue + "\tmsgid=m1\tattempts=1\t",
		"\tfailed\torg_code=\tprocess_no=a\tqueue=" + e.queue + "\tmsgid=m2\tto=" + e.failedQ + "\treason=invalid, not sent",
		"\tfailed\tcode=500\tremote=" + f.addr() + "\torg_code=ORG01\tprocess_no=000000003\tqueue=" + e.queue + "\tmsgid=m3\tattempts=3\t",
	} {
		if !strings.Contains(journal, want) {
			t.Errorf("journal lacks %q:\n%s", want, journal)
		}
	}
	if n := strings.Count(journal, "\n"); n != 4 {
		t.Errorf("%d journal lines, want 4:\n%s", n, journal)
	}
}

// TestAMQPDrain: SIGTERM while the remote holds every message: the sender
// stops consuming, cuts off the sends in flight at shutdown_timeout and
// gives every delivery back (all in the results queue again, none in the
// failed queue), and exits 0.
func TestAMQPDrain(t *testing.T) {
	const n, workers = 10, 4
	node := e2e.RabbitShared(t)
	f := serveFake(t, listen(t), func(f *fakeRemote) { f.answer = func([]byte) int { return 0 } })
	e := newAMQPEnv(t, node, f.addr(), map[string]string{"sender.workers": fmt.Sprint(workers), "shutdown_timeout": "1s"})
	p := e.start(t)
	e.publish(t, bodies(0, n))
	e2e.WaitFor(t, 30*time.Second, "workers sends held", func() bool { return len(f.Read()) == workers })
	if ready, _ := e.depth(t, e.queue); ready != n-workers {
		t.Fatalf("%d ready while %d are held, want %d (prefetch = workers)", ready, workers, n-workers)
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.ExitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.Log)
	}
	e2e.WaitFor(t, 20*time.Second, "all back in the results queue", func() bool { ready, _ := e.depth(t, e.queue); return ready == n })
	if k, _ := e.depth(t, e.failedQ); k != 0 {
		t.Fatalf("%d in the failed queue", k)
	}
}

// TestAMQPBrokerDown: the broker stopped (rabbitmqctl stop_app): /readyz
// says RabbitMQ is why, and no log line holds the password; started
// again, the sender reconnects by itself and delivers what is published.
// A queue declared with other arguments stops the sender at start with a
// message saying so.
func TestAMQPBrokerDown(t *testing.T) {
	node := e2e.StartRabbit(t)
	f := serveFake(t, listen(t), nil)
	url := strings.Replace(node.URL, "guest:guest@", "spoolgate:s3cr3t-pw@", 1)
	for _, args := range [][]string{{"add_user", "spoolgate", "s3cr3t-pw"}, {"set_permissions", "spoolgate", ".*", ".*", ".*"}} {
		if out, err := node.Ctl(args...); err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	e := amqpEnvOf(t, url, "t.down", f.addr(), nil)
	p := e.start(t)
	if out, err := node.Ctl("stop_app"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var body string
	e2e.WaitFor(t, 30*time.Second, "not ready for RabbitMQ", func() bool {
		_, body, _ = e2e.HTTPGet("http://" + e.admin + "/readyz")
		return strings.Contains(body, "not consuming from RabbitMQ")
	})
	t.Logf("/readyz: %s", body)
	if out, err := node.Ctl("start_app"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	e2e.WaitFor(t, 60*time.Second, "consuming again", func() bool { return e.ready() == 200 })
	e.publish(t, bodies(0, 20))
	e2e.WaitFor(t, 30*time.Second, "delivered after the broker came back", func() bool { return len(f.messages(t)) == 20 })
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 20*time.Second)
	if log := p.Log.String(); strings.Contains(log, "s3cr3t-pw") || strings.Contains(body, "s3cr3t-pw") {
		t.Fatalf("the password is in the log or /readyz:\n%s", log)
	}

	// A results queue of another type than configured.
	e2 := amqpEnvOf(t, url, "t.down", f.addr(), map[string]string{"sender.amqp.queue_type": "classic"})
	p2 := start(t, senderBin, "-config", e2.conf)
	if code := p2.ExitCode(t, 30*time.Second); code == 0 || !strings.Contains(p2.Log.String(), "exists with other arguments") {
		t.Fatalf("a queue of another type: exit %d\n%s", code, p2.Log)
	}
}

// TestAMQPRemoteDown: with the remote down for 10 s the sender stops
// consuming (no consumer, every message back in the queue, /readyz 503
// for the circuit) and fails nothing; once the remote (a real receiver)
// is up, all are delivered and the failed queue is empty.
func TestAMQPRemoteDown(t *testing.T) {
	const n = 50
	node := e2e.RabbitShared(t)
	addr := e2e.FreeAddr(t)
	e := newAMQPEnv(t, node, addr, map[string]string{
		"sender.timeout": "300ms", "sender.retries": "1",
		"sender.retry_backoff": "50ms", "sender.retry_backoff_max": "200ms",
	})
	e.start(t)
	e.publish(t, bodies(0, n))
	e2e.WaitFor(t, 20*time.Second, "circuit open", func() bool {
		_, b, _ := e2e.HTTPGet("http://" + e.admin + "/readyz")
		return strings.Contains(b, "circuit open")
	})
	down := time.Now()
	e2e.WaitFor(t, 20*time.Second, "all back in the queue, no consumer", func() bool {
		ready, consumers := e.depth(t, e.queue)
		return ready == n && consumers == 0
	})
	e2e.WaitFor(t, 20*time.Second, "remote down for 10 s", func() bool {
		if f, _ := e.depth(t, e.failedQ); f != 0 {
			t.Fatalf("%d in the failed queue while the remote is down", f)
		}
		return time.Since(down) > 10*time.Second
	})
	r := startSink(t, addr)
	e2e.WaitFor(t, 60*time.Second, "all delivered", func() bool { return distinct(r.messages(t)) == n })
	e2e.StoredOnce(t, r.messages(t), n)
	if f, _ := e.depth(t, e.failedQ); f != 0 {
		t.Fatalf("%d in the failed queue", f)
	}
	e2e.WaitFor(t, 20*time.Second, "ready again", func() bool { return e.ready() == 200 })
}

// TestAMQPSingleActive: two senders of a queue declared single active
// consumer: only one receives deliveries, in queue order; kill -9 of it
// makes the other take over, and every message is delivered with the
// first copies in queue order.
func TestAMQPSingleActive(t *testing.T) {
	const n = 1000
	node := e2e.RabbitShared(t)
	r := startSink(t, "")
	a := newAMQPEnv(t, node, r.addr(), map[string]string{"sender.amqp.single_active": "true"})
	b := a.also(t, nil)
	pa := a.start(t)
	pb := b.start(t)
	a.publish(t, bodies(0, n))
	e2e.WaitFor(t, 60*time.Second, "a third delivered", func() bool { return len(r.messages(t)) >= n/3 })
	delivered := func(e *amqpEnv) float64 { return e.metric(t, `spoolgate_sender_messages_total{outcome="delivered"}`) }
	da, db := delivered(a), delivered(b)
	passive, pActive := b, pa
	if db > 0 {
		passive, pActive = a, pb
		da, db = db, da
	}
	if da == 0 || db != 0 {
		t.Fatalf("delivered by the senders: %v and %v; want exactly one active", da, db)
	}
	pActive.Signal(t, syscall.SIGKILL)
	pActive.ExitCode(t, 10*time.Second)
	e2e.WaitFor(t, 60*time.Second, "all delivered", func() bool { return distinct(r.messages(t)) == n })
	if delivered(passive) == 0 {
		t.Fatal("the passive sender delivered nothing after the active one died")
	}
	dups := e2e.StoredOnce(t, r.messages(t), n)
	t.Logf("active delivered %v before kill -9; %d duplicates", da, dups)
	last := -1
	seen := map[string]bool{}
	for _, m := range r.messages(t) {
		pno := processNo(m)
		if seen[pno] {
			continue
		}
		seen[pno] = true
		i, _ := strconv.Atoi(pno)
		if i != last+1 {
			t.Fatalf("process_no %d stored after %d: not in queue order", i, last)
		}
		last = i
	}
}

// TestAMQPStatusAndRequeue: lines the remote rejects are in the failed
// queue; `spoolgate status` shows both queues' depths (text and -json);
// `spoolgate requeue -all` moves them back (the failure headers kept as
// x-spoolgate-last-*) and, the remote accepting now, they are delivered.
func TestAMQPStatusAndRequeue(t *testing.T) {
	const n = 5
	node := e2e.RabbitShared(t)
	var accept atomic.Bool
	f := serveFake(t, listen(t), func(f *fakeRemote) {
		f.answer = func([]byte) int {
			if accept.Load() {
				return protocol.CodeOK
			}
			return protocol.CodeInvalid
		}
	})
	e := newAMQPEnv(t, node, f.addr(), nil)
	e.start(t)
	e.publish(t, bodies(0, n))
	e2e.WaitFor(t, 30*time.Second, "all in the failed queue", func() bool { k, _ := e.depth(t, e.failedQ); return k == n })

	out, code := runToolOut(t, "status", "-daemons", "sender", "-config", e.conf)
	if code != 0 || !strings.Contains(out, "results queue:  "+e.queue+"  0 ready, 1 consumer(s)") ||
		!strings.Contains(out, "failed queue:   "+e.failedQ+"  5") || !strings.Contains(out, "source:         amqp (amqp://guest:xxxxx@") ||
		!strings.Contains(out, "5 rejected") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	out, code = runToolOut(t, "status", "-daemons", "sender", "-json", "-config", e.conf)
	var st struct {
		Source string `json:"source"`
		Queues []struct {
			Role     string `json:"role"`
			Messages int    `json:"messages"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || st.Source != "sender" || len(st.Queues) != 2 ||
		st.Queues[0].Messages != 0 || st.Queues[1].Role != "failed" || st.Queues[1].Messages != n {
		t.Fatalf("status -json: exit %d %v\n%s", code, err, out)
	}
	if out, code := runToolOut(t, "requeue", "-config", e.conf, "x"); code != 2 {
		t.Fatalf("requeue FILE with amqp: exit %d\n%s", code, out)
	}

	accept.Store(true)
	out, code = runToolOut(t, "requeue", "-all", "-config", e.conf)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("requeued %d messages from %s to %s", n, e.failedQ, e.queue)) {
		t.Fatalf("requeue: exit %d\n%s", code, out)
	}
	e2e.WaitFor(t, 30*time.Second, "requeued lines delivered", func() bool { return len(f.messages(t)) == n })
	e2e.StoredOnce(t, f.messages(t), n)
	if k, _ := e.depth(t, e.failedQ); k != 0 {
		t.Fatalf("%d still in the failed queue", k)
	}
}

// listen listens on a free loopback port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// runToolOut runs spoolgate with args and returns its output and exit code.
func runToolOut(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(toolBin, args...)
	cmd.Env = append(os.Environ(), "SPOOLGATE_CONFIG=")
	b, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b), code
}

// TestAMQPDrainRate measures how fast the sender drains a backlog of the
// results queue into the receiver (workers=16), to compare with
// TestDrainRate's spool files. It is a measurement, not part of the
// default run:
//
//	SPOOLGATE_AMQP_DRAIN=5000 SPOOLGATE_DRAIN_FILES=5000 go test -run 'DrainRate' -v ./cmd/spoolgate-sender
func TestAMQPDrainRate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SPOOLGATE_AMQP_DRAIN"))
	if n <= 0 {
		t.Skip("set SPOOLGATE_AMQP_DRAIN=5000 to measure")
	}
	node := e2e.RabbitShared(t)
	r := startSink(t, "")
	e := newAMQPEnv(t, node, r.addr(), map[string]string{"sender.workers": "16", "sender.timeout": "5s", "log.level": "warn"})
	e.publish(t, bodies(0, n))
	t0 := time.Now()
	p := e.start(t)
	e2e.WaitFor(t, 30*time.Minute, "queue drained", func() bool {
		time.Sleep(100 * time.Millisecond) // polling interval
		return e.metric(t, `spoolgate_sender_messages_total{outcome="delivered"}`) >= float64(n)
	})
	d := time.Since(t0)
	if got := distinct(r.messages(t)); got != n {
		t.Errorf("%d stored, want %d", got, n)
	}
	t.Logf("drained %d messages in %s: %.0f messages/s, sender CPU %s (%.0f µs/message)", n, d.Round(time.Millisecond),
		float64(n)/d.Seconds(), cpuTime(t, p.Cmd.Process.Pid), float64(cpuTime(t, p.Cmd.Process.Pid).Microseconds())/float64(n))
	p.Signal(t, syscall.SIGTERM)
	p.ExitCode(t, 30*time.Second)
}
