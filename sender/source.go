package sender

import (
	"context"

	"spoolgate/conf"
)

// A source is where the sender takes the lines it sends: the spool
// directory (spoolSource, spool.go) or the results queue (amqpSource,
// amqp.go). New picks it from sender.source (newSource); Run, Ready,
// Reload and Snapshot ask it, and nothing else tells the sources apart. A
// source sends through the Sender's shared parts: its client, circuit,
// worker slots, metrics and counts.
type source interface {
	// run makes the source ready to take work, calls started once it does
	// (with what the "sender started" line says of it), then sends until
	// ctx is done and drains: it takes no new work, lets the sends in
	// flight finish (hard cuts their attempts off) and puts back what is
	// not done. An error: it could not start.
	run(ctx, hard context.Context, started func(attrs ...any)) error
	// ready is nil while the source takes work, else why not (Ready).
	ready() error
	// reload applies the tunables reloaded (Reload).
	reload()
	// inFlight counts the work being sent now (Snapshot).
	inFlight() int
}

// newSource returns the source sender.source names.
func newSource(s *Sender) source {
	if s.cfg.Source == conf.SourceAMQP {
		return newAMQPSource(s)
	}
	return newSpoolSource(s)
}
