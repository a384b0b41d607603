package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/broker"
	"spoolgate/internal/console"
	"spoolgate/sender"
)

// brokerTimeout bounds what status and requeue ask of RabbitMQ.
const brokerTimeout = 30 * time.Second

// queueDepth is one queue in `spoolgate status -json` with
// sender.source=amqp.
type queueDepth struct {
	Role      string `json:"role"` // results or failed
	Queue     string `json:"queue"`
	Exists    bool   `json:"exists"`
	Messages  int    `json:"messages"` // ready, not counting those delivered and not yet acked
	Consumers int    `json:"consumers"`
}

// statusAMQP is `spoolgate status` with sender.source=amqp: the running
// sender's state (when it answers at sender.admin_listen) and the depths
// of the results and failed queues (a passive declare: nothing is
// created). Exit 1 when the broker cannot be asked; runStatus adds the
// daemons that do not answer (states).
func statusAMQP(cfg *conf.Config, states []daemonState, live *console.SenderStatus, liveErr error, asJSON, byAge bool, stdout, stderr io.Writer) int {
	now := time.Now()
	c := cfg.Sender
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	ds, derr := broker.Depths(ctx, c.AMQP.URL, c.AMQP.Queue, c.AMQP.FailedQueue)
	var qs []queueDepth
	for i, d := range ds {
		role := "results"
		if i == 1 {
			role = "failed"
		}
		qs = append(qs, queueDepth{Role: role, Queue: d.Queue, Exists: d.Messages >= 0, Messages: max(d.Messages, 0), Consumers: d.Consumers})
	}
	code := 0
	if derr != nil {
		code = 1
	}
	if asJSON {
		out := struct {
			Source     string `json:"source"`
			NotRunning string `json:"not_running,omitempty"`
			*console.SenderStatus
			Broker      string        `json:"broker"`
			Queues      []queueDepth  `json:"queues"`
			QueuesError string        `json:"queues_error,omitempty"`
			Daemons     []daemonState `json:"daemons"`
			Down        []string      `json:"down"`
		}{Source: "sender", SenderStatus: live, Broker: redacted(c.AMQP.URL), Queues: qs, Daemons: states, Down: downNames(states)}
		if live == nil {
			out.Source, out.NotRunning = "broker", liveErr.Error()
		}
		if derr != nil {
			out.QueuesError = derr.Error()
		}
		if err := writeJSON(stdout, out); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
		return code
	}
	for _, d := range states[:len(states)-1] {
		printDaemon(stdout, d, cfg.Receiver.AdminListen)
	}
	if live != nil {
		printLiveState(stdout, cfg, live, now)
	} else {
		fmt.Fprintf(stdout, "sender:         not running (%v)\n", liveErr)
	}
	fmt.Fprintf(stdout, "source:         amqp (%s)\n", redacted(c.AMQP.URL))
	for _, q := range qs {
		label := q.Role + " queue:"
		switch {
		case !q.Exists:
			fmt.Fprintf(stdout, "%-15s %s  (not declared yet)\n", label, q.Queue)
		case q.Role == "results":
			fmt.Fprintf(stdout, "%-15s %s  %d ready, %d consumer(s)\n", label, q.Queue, q.Messages, q.Consumers)
		default:
			fmt.Fprintf(stdout, "%-15s %s  %d\n", label, q.Queue, q.Messages)
		}
	}
	if derr != nil {
		fmt.Fprintf(stdout, "queues:         unknown: %v\n", derr)
		fmt.Fprintln(stderr, "spoolgate status:", derr)
	}
	if live != nil {
		fmt.Fprintf(stdout, "in flight:      %d\n", live.InFlight)
		fmt.Fprintf(stdout, "since start:    %d delivered, %d rejected, %d failed\n", live.Delivered, live.Rejected, live.Failed)
	}
	if byAge {
		fmt.Fprintln(stdout, "\n-age: not applicable with sender.source=amqp (no spool files)")
	}
	return code
}

// redacted is the URLs without their passwords.
func redacted(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = conf.RedactURL(u)
	}
	return strings.Join(out, ",")
}

// requeueAMQP is `spoolgate requeue -all` with sender.source=amqp.
func requeueAMQP(cfg *conf.Config, all, asJSON bool, stdout, stderr io.Writer) int {
	c := cfg.Sender
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
