package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// amqpConfig is testConfig with receiver.sink=amqp publishing to queue
// through urls.
func amqpConfig(t testing.TB, queue string, urls ...string) conf.Receiver {
	c := testConfig(t)
	c.Sink = conf.SinkAMQP
	c.AMQP.URL = urls
	c.AMQP.Queue = queue
	c.AMQP.QueueType = conf.QueueQuorum
	c.AMQP.ConfirmTimeout = 5 * time.Second
	c.IdleTimeout = time.Minute // a test reads the queue or runs rabbitmqctl between messages
	return c
}

// startAMQP starts a Server on the amqp sink of cfg, connected, and
// returns it with the sink's metrics.
func startAMQP(t testing.TB, cfg conf.Receiver) (*testServer, *AMQPSink, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	sink, err := NewAMQPSink(SinkOptions{Config: cfg, Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Connect(); err != nil {
		sink.Close()
		t.Fatal(err)
	}
	return startServer(t, Options{Config: cfg, Sink: sink}), sink, reg
}

// TestAMQPSink: what a consumer of the requests queue reads
// (docs/PROTOCOL.md §8): each accepted message once, as received without
// its LF, in order, persistent, with message_id = the dedup key, the
// content type, the app id, the peer and the receive time; a 400 and a
// duplicate are not published. A deleted queue answers 500 (returned,
// counted) and is declared again, so the resend is stored. After Shutdown
// the sink refuses batches.
func TestAMQPSink(t *testing.T) {
	n := e2e.RabbitShared(t)
	const queue = "t.sink.format"
	ts, sink, reg := startAMQP(t, amqpConfig(t, queue, n.URL))

	c := dial(t, ts.addr)
	br := bufio.NewReader(c)
	first := req(t, "000000001", "first")
	before := time.Now()
	if r := roundTrip(t, c, br, first); r.Code != 200 {
		t.Fatalf("first: %d", r.Code)
	}
	if r := roundTrip(t, c, br, first); r.Code != 200 { // a duplicate: 200, not published
		t.Fatalf("duplicate: %d", r.Code)
	}
	if r := roundTrip(t, c, br, frame("REQ|bad")); r.Code != 400 {
		t.Fatalf("invalid: %d", r.Code)
	}
	// A pipelined burst: one batch, one publish, confirmed together.
	var burst []byte
	var want []string
	for i := range 50 {
		m := req(t, fmt.Sprintf("1%08d", i), "burst")
		burst = append(burst, m...)
		want = append(want, strings.TrimSuffix(string(m), "\n"))
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		if r, err := protocol.DefaultDialect().ParseReply(line); err != nil || r.Code != 200 {
			t.Fatalf("burst %d: %q %v", i, line, err)
		}
	}

	got := e2e.QueueMessages(t, n.URL, queue)
	if len(got) != 51 {
		t.Fatalf("%d messages in the queue, want 51", len(got))
	}
	d := got[0]
	if string(d.Body) != strings.TrimSuffix(string(first), "\n") {
		t.Errorf("body %q, want the message without its LF", d.Body)
	}
	if d.MessageId != "ORG01|000000001" {
		t.Errorf("message_id %q, want ORG01|000000001 (dedup_key org_code,process_no)", d.MessageId)
	}
	if d.ContentType != "text/plain; charset=utf-8" || d.DeliveryMode != amqp.Persistent || d.AppId != "spoolgate-receiver" {
		t.Errorf("content_type %q, delivery_mode %d, app_id %q", d.ContentType, d.DeliveryMode, d.AppId)
	}
	if p := d.Headers[HeaderPeer]; p != c.LocalAddr().String() {
		t.Errorf("peer header %v, want %s", p, c.LocalAddr())
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d.Headers[HeaderReceivedAt]))
	if err != nil || at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("received_at %v (%v), want between %v and now", d.Headers[HeaderReceivedAt], err, before)
	}
	if d.Timestamp.Unix() < before.Unix()-1 {
		t.Errorf("timestamp %v", d.Timestamp)
	}
	for i, d := range got[1:] {
		if string(d.Body) != want[i] {
			t.Fatalf("message %d: %q, want %q (queue order is arrival order)", i+1, d.Body, want[i])
		}
	}

	// Deleted under the receiver: returned (500, counted), declared again.
	if out, err := n.Ctl("delete_queue", queue); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	again := req(t, "000000002", "after delete")
	if r := roundTrip(t, c, br, again); r.Code != 500 {
		t.Fatalf("to a deleted queue: %d, want 500", r.Code)
	}
	if v := metric(t, reg, "spoolgate_receiver_amqp_failures_total", "reason=returned"); v != 1 {
		t.Errorf("returned failures %v, want 1", v)
	}
	if r := roundTrip(t, c, br, again); r.Code != 200 {
		t.Fatalf("resend after the queue was declared again: %d", r.Code)
	}
	if got := e2e.QueueMessages(t, n.URL, queue); len(got) != 1 || string(got[0].Body) != strings.TrimSuffix(string(again), "\n") {
		t.Fatalf("after the redeclare the queue holds %d messages", len(got))
	}
	if v := metric(t, ts.reg, "spoolgate_receiver_messages_total", "code=200"); v != 53 {
		t.Errorf("200s %v, want 53", v)
	}
	c.Close()
	ts.stop(t)
	if err := sink.AppendBatch([][]byte{[]byte("x")}); !errors.Is(err, ErrSinkClosed) {
		t.Errorf("after Shutdown: %v, want ErrSinkClosed", err)
	}
}

// attempt is one send of a load client: a message (by process_no), its
// reply code (0: the connection failed) and when it was sent and answered.
type attempt struct {
	pno         string
	code        int
	sent, reply time.Time
}

// amqpLoad is clients keep-alive connections sending unique messages as
// fast as they are answered until stop; a 500 (or a broken connection) is
// retried with the same message after 20 ms, as a sender would.
type amqpLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	attempts []attempt
	ok, fail atomic.Int64
}

func startLoad(t testing.TB, addr string, clients int) *amqpLoad {
	l := &amqpLoad{stop: make(chan struct{})}
	for w := range clients {
		l.wg.Go(func() { l.client(t, addr, w) })
	}
	t.Cleanup(l.end)
	return l
}

func (l *amqpLoad) client(t testing.TB, addr string, w int) {
	var (
		c  net.Conn
		br *bufio.Reader
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	pace := time.NewTimer(0)
	<-pace.C
	for i := 0; ; i++ {
		pno := fmt.Sprintf("%03d%06d", w, i)
		m, err := spec.Encode("REQ", pno, "20261121093000", "ORG01", "SV01", "LOAD", "payload", "")
		if err != nil {
			panic(err)
		}
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			if c == nil {
				if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
					c = nil
					continue
				}
				br = bufio.NewReader(c)
			}
			a := attempt{pno: pno, sent: time.Now()}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err = c.Write(m); err == nil {
				var line []byte
				if line, err = br.ReadBytes('\n'); err == nil {
					var r protocol.Reply
					if r, err = protocol.DefaultDialect().ParseReply(line); err == nil {
						a.code = r.Code
					}
				}
			}
			a.reply = time.Now()
			l.mu.Lock()
			l.attempts = append(l.attempts, a)
			l.mu.Unlock()
			if err != nil {
				c.Close()
				c = nil
			}
			if a.code == 200 {
				l.ok.Add(1)
				break
			}
			l.fail.Add(1)
			pace.Reset(20 * time.Millisecond) // a sender's retry backoff, not synchronisation
			select {
			case <-pace.C:
			case <-l.stop:
				return
			}
		}
	}
}

// end stops the clients and waits for them; later calls do nothing.
func (l *amqpLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// snapshot returns the attempts so far.
func (l *amqpLoad) snapshot() []attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attempt(nil), l.attempts...)
}

// checkQueue reads queue through url and fails the test for a message
// answered 200 that is not in it, or in it more than once although it was
// sent only once. It returns how many were acknowledged.
func checkQueue(t *testing.T, url, queue string, attempts []attempt) int {
	t.Helper()
	in := map[string]int{}
	for _, d := range e2e.QueueMessages(t, url, queue) {
		if f := strings.Split(string(d.Body), "|"); len(f) > 2 {
			in[f[2]]++
		}
	}
	sends := map[string]int{}
	acked := map[string]bool{}
	for _, a := range attempts {
		sends[a.pno]++
		if a.code == 200 {
			acked[a.pno] = true
		}
	}
	bad := 0
	for pno := range acked {
		if in[pno] == 0 || (in[pno] > 1 && sends[pno] == 1) {
			bad++
			if bad <= 10 {
				t.Errorf("message %s answered 200 (sent %d times) is %d times in the queue", pno, sends[pno], in[pno])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d acknowledged messages missing or repeated", bad, len(acked))
	}
	return len(acked)
}

// TestAMQPSinkBrokerStopped: the broker's app stopped under load from 16
// clients (rabbitmqctl stop_app), then started: 500s and not ready while
// it is down, no 200 for a message sent and answered while it was down,
// ready and 200s again after, by itself; every message answered 200 is in
// the queue (once unless it was resent).
func TestAMQPSinkBrokerStopped(t *testing.T) {
	n := e2e.StartRabbit(t)
	const queue = "t.sink.stopped"
	cfg := amqpConfig(t, queue, n.URL)
	cfg.AMQP.ConfirmTimeout = 3 * time.Second
	ts, _, reg := startAMQP(t, cfg)
	load := startLoad(t, ts.addr, 16)
	e2e.WaitFor(t, 30*time.Second, "300 messages answered 200", func() bool { return load.ok.Load() >= 300 })

	if out, err := n.Ctl("stop_app"); err != nil {
		t.Fatalf("stop_app: %v\n%s", err, out)
	}
	stopped := time.Now()
	okAtStop, failAtStop := load.ok.Load(), load.fail.Load()
	e2e.WaitFor(t, 30*time.Second, "not ready and 50 answers 500", func() bool {
		return ts.srv.Ready() != nil && load.fail.Load() >= failAtStop+50
	})
	t.Logf("while stopped: readyz %v", ts.srv.Ready())
	restart := time.Now()
	if out, err := n.Ctl("start_app"); err != nil {
		t.Fatalf("start_app: %v\n%s", err, out)
	}
	e2e.WaitFor(t, 60*time.Second, "ready again", func() bool { return ts.srv.Ready() == nil })
	back := time.Now()
	okBack := load.ok.Load()
	e2e.WaitFor(t, 30*time.Second, "300 more answered 200", func() bool { return load.ok.Load() >= okBack+300 })
	load.end()
	ts.stop(t)

	attempts := load.snapshot()
	down500, down200 := 0, 0
	for _, a := range attempts {
		if a.sent.After(stopped) && a.reply.Before(restart) {
			switch a.code {
			case 200:
				down200++
				if down200 <= 5 {
					t.Errorf("message %s answered 200 while the broker was stopped (sent %v after stop_app)", a.pno, a.sent.Sub(stopped))
				}
			case 500:
				down500++
			}
		}
	}
	if down500 == 0 {
		t.Error("no 500 while the broker was stopped")
	}
	if v := metric(t, reg, "spoolgate_receiver_amqp_failures_total"); v < float64(down500) {
		t.Errorf("amqp failures counted %v, fewer than the %d 500s", v, down500)
	}
	acked := checkQueue(t, n.URL, queue, attempts)
	t.Logf("%d acknowledged (%d before stop_app); %d answered 500 and none 200 while stopped; ready %v after start_app",
		acked, okAtStop, down500, back.Sub(restart).Round(time.Millisecond))
}

// TestAMQPSinkClusterFailover: three nodes, a quorum queue, the receiver
// given all three URLs: kill -9 of the node it is connected to (which
// holds the queue's leader) under load from 16 clients. The receiver
// answers 500 only for the moment of the failover, then 200 through a
// survivor, and every message answered 200 is readable from the
// survivors. The failover time (first 500 to the next 200) is logged.
func TestAMQPSinkClusterFailover(t *testing.T) {
	nodes := e2e.StartRabbitCluster(t, 3)
	const queue = "t.sink.cluster"
	cfg := amqpConfig(t, queue, nodes[0].URL, nodes[1].URL, nodes[2].URL)
	ts, _, _ := startAMQP(t, cfg)
	out, err := nodes[1].Ctl("list_queues", "-q", "--no-table-headers", "name", "leader", "members")
	if err != nil {
		t.Fatalf("list_queues: %v\n%s", err, out)
	}
	t.Logf("before the kill: %s", strings.TrimSpace(out))
	if !strings.Contains(out, queue+"\t"+nodes[0].Name) {
		t.Logf("the queue's leader is not on %s, the node the receiver is connected to", nodes[0].Name)
	}
	load := startLoad(t, ts.addr, 16)
	e2e.WaitFor(t, 30*time.Second, "300 messages answered 200", func() bool { return load.ok.Load() >= 300 })

	killed := time.Now()
	nodes[0].Kill()
	okAtKill := load.ok.Load()
	e2e.WaitFor(t, 60*time.Second, "300 answered 200 after the kill", func() bool { return load.ok.Load() >= okAtKill+300 })
	load.end()
	ts.stop(t)

	attempts := load.snapshot()
	var first500, last500, next200 time.Time
	n500 := 0
	var oks []time.Time // replies 200 after the kill
	for _, a := range attempts {
		if a.reply.Before(killed) {
			continue
		}
		if a.code != 200 {
			n500++
			if first500.IsZero() || a.reply.Before(first500) {
				first500 = a.reply
			}
			if a.reply.After(last500) {
				last500 = a.reply
			}
			continue
		}
		oks = append(oks, a.reply)
	}
	slices.SortFunc(oks, func(a, b time.Time) int { return a.Compare(b) })
	gap, prev := time.Duration(0), killed
	for _, at := range oks {
		gap = max(gap, at.Sub(prev))
		prev = at
		if next200.IsZero() && !last500.IsZero() && at.After(last500) {
			next200 = at
		}
	}
	if first500.IsZero() {
		t.Logf("failover: no 500 after the kill; longest time without a 200: %v", gap.Round(time.Millisecond))
	} else {
		failover := next200.Sub(first500)
		t.Logf("failover: %d answers 500 (or broken connections), the first %v after the kill; first 500 to the next 200 after the last 500: %v; longest time without a 200: %v",
			n500, first500.Sub(killed).Round(time.Millisecond), failover.Round(time.Millisecond), gap.Round(time.Millisecond))
		if failover > 30*time.Second {
			t.Errorf("failover took %v", failover)
		}
	}
	out, _ = nodes[1].Ctl("list_queues", "-q", "--no-table-headers", "name", "leader", "messages")
	t.Logf("after the kill: %s", strings.TrimSpace(out))
	acked := checkQueue(t, nodes[1].URL, queue, attempts)
	t.Logf("%d acknowledged, %d before the kill", acked, okAtKill)
}
