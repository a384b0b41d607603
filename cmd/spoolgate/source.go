package main

import (
	"io"
	"time"

	"spoolgate/cmd/internal/console"
	"spoolgate/conf"
)

// A toolSource is what the operator's tool reads and does for the
// sender's source (sender.source): the spool's directories (spoolTool,
// sourcespool.go) or the results and failed queues (amqpTool,
// sourceamqp.go). sourceOf picks it once from the config, as sender.New
// picks the running sender's source; status, requeue and failed ask it,
// and nothing else in the tool tells the sources apart.
type toolSource interface {
	// status prints what the source holds beside the running sender's
	// state (r); its exit code (runStatus adds the daemons down).
	status(r *statusRun) int
	// requeue moves failed work back to be sent: the named failed files,
	// or every one with all; its exit code.
	requeue(names []string, all, asJSON bool, stdout, stderr io.Writer) int
	// failed lists the failed work and what to do with it; its exit code.
	failed(asJSON bool, stdout, stderr io.Writer) int
}

// sourceOf returns the tool's view of the sender's source of cfg.
func sourceOf(cfg *conf.Config) toolSource {
	if cfg.Sender.Source == conf.SourceAMQP {
		return amqpTool{cfg}
	}
	return spoolTool{cfg}
}

// statusRun is one run of spoolgate status: the daemons found (the sender
// last), the running sender's state (live, or why none: liveErr), and how
// to print.
type statusRun struct {
	ds             []daemonState
	live           *console.SenderStatus
	liveErr        error
	now            time.Time
	asJSON, byAge  bool
	stdout, stderr io.Writer
}
