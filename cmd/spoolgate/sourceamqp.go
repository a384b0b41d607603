package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"spoolgate/cmd/internal/console"
	"spoolgate/conf"
	"spoolgate/internal/broker"
	"spoolgate/sender"
)

// brokerTimeout bounds what status and requeue ask of RabbitMQ.
const brokerTimeout = 30 * time.Second

// The results queue as the sender's source in the operator's tool
// (sender.source=amqp): the results and failed queues.

// amqpTool is the tool's view of the results and failed queues.
type amqpTool struct{ cfg *conf.Config }

// status is `spoolgate status` with sender.source=amqp: the running
// sender's state (when it answers at sender.admin_listen) and the depths
// of the results and failed queues (sender.ReadQueues). Exit 1 when the
// broker cannot be asked; runStatus adds the daemons that do not answer.
func (t amqpTool) status(r *statusRun) int {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	qs, qerr := sender.ReadQueues(ctx, t.cfg.Sender)
	if r.asJSON {
		return t.statusJSON(r, qs, qerr)
	}
	t.printStatus(r, qs, qerr)
	if qerr != nil {
		return 1
	}
	return 0
}

// statusJSON is status -json: the running sender's state, or why none,
// and the queues.
func (t amqpTool) statusJSON(r *statusRun, qs []sender.QueueDepth, qerr error) int {
	out := struct {
		Source     string `json:"source"`
		NotRunning string `json:"not_running,omitempty"`
		*console.SenderStatus
		Broker      string              `json:"broker"`
		Queues      []sender.QueueDepth `json:"queues"`
		QueuesError string              `json:"queues_error,omitempty"`
		Daemons     []daemonState       `json:"daemons"`
		Down        []string            `json:"down"`
	}{Source: "sender", SenderStatus: r.live, Broker: redacted(t.cfg.Sender.AMQP.URL), Queues: qs, Daemons: r.ds, Down: downNames(r.ds)}
	if r.live == nil {
		out.Source, out.NotRunning = "broker", r.liveErr.Error()
	}
	if qerr != nil {
		out.QueuesError = qerr.Error()
	}
	if err := writeJSON(r.stdout, out); err != nil {
		fmt.Fprintln(r.stderr, "spoolgate status:", err)
		return 1
	}
	if qerr != nil {
		return 1
	}
	return 0
}

// printStatus prints the daemons, the running sender's state and the
// queues (and on stderr why they could not be read).
func (t amqpTool) printStatus(r *statusRun, qs []sender.QueueDepth, qerr error) {
	w, live := r.stdout, r.live
	for _, d := range r.ds[:len(r.ds)-1] {
		printDaemon(w, d, t.cfg.Receiver.AdminListen)
	}
	if live != nil {
		printLiveState(w, t.cfg, live, time.Now())
	} else {
		fmt.Fprintf(w, "sender:         not running (%v)\n", r.liveErr)
	}
	fmt.Fprintf(w, "source:         amqp (%s)\n", redacted(t.cfg.Sender.AMQP.URL))
	for _, q := range qs {
		label := q.Role + " queue:"
		switch {
		case !q.Exists:
			fmt.Fprintf(w, "%-15s %s  (not declared yet)\n", label, q.Queue)
		case q.Role == "results":
			fmt.Fprintf(w, "%-15s %s  %d ready, %d consumer(s)\n", label, q.Queue, q.Messages, q.Consumers)
		default:
			fmt.Fprintf(w, "%-15s %s  %d\n", label, q.Queue, q.Messages)
		}
	}
	if qerr != nil {
		fmt.Fprintf(w, "queues:         unknown: %v\n", qerr)
		fmt.Fprintln(r.stderr, "spoolgate status:", qerr)
	}
	if live != nil {
		fmt.Fprintf(w, "in flight:      %d\n", live.InFlight)
		fmt.Fprintf(w, "since start:    %d delivered, %d rejected, %d failed\n", live.Delivered, live.Rejected, live.Failed)
	}
	if r.byAge {
		fmt.Fprintln(w, "\n-age: not applicable with sender.source=amqp (no spool files)")
	}
}

// redacted is the URLs without their passwords.
func redacted(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = broker.RedactURL(u)
	}
	return strings.Join(out, ",")
}

// requeue is `spoolgate requeue -all` with sender.source=amqp: the failed
// queue back to the results queue. Names are refused (exit 2).
func (t amqpTool) requeue(names []string, all, asJSON bool, stdout, stderr io.Writer) int {
	c := t.cfg.Sender
	if !all {
		fmt.Fprintf(stderr, "spoolgate requeue: with sender.source=amqp give -all: it moves %s back to %s (there are no failed files)\n",
			c.AMQP.FailedQueue, c.AMQP.Queue)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*brokerTimeout)
	defer cancel()
	n, err := sender.RequeueAMQP(ctx, c)
	if asJSON {
		out := struct {
			From  string `json:"from"`
			To    string `json:"to"`
			Moved int    `json:"moved"`
			Error string `json:"error,omitempty"`
		}{From: c.AMQP.FailedQueue, To: c.AMQP.Queue, Moved: n}
		if err != nil {
			out.Error = err.Error()
		}
		if werr := writeJSON(stdout, out); werr != nil {
			return 1
		}
	} else {
		fmt.Fprintf(stdout, "requeued %d messages from %s to %s\n", n, c.AMQP.FailedQueue, c.AMQP.Queue)
	}
	if err != nil {
		if !asJSON {
			fmt.Fprintln(stderr, "spoolgate requeue:", err)
		}
		return 1
	}
	return 0
}

// failed lists, as with the spool, the files in failed_dir: with
// sender.source=amqp the failed lines are in the failed queue (status
// shows its depth), and failed_dir holds only what a spool run left.
func (t amqpTool) failed(asJSON bool, stdout, stderr io.Writer) int {
	return spoolTool(t).failed(asJSON, stdout, stderr)
}
