package receiver

import "time"

// Sink is where the Server hands the lines it accepts, as nsq's
// BackendQueue is for a topic: the Server answers 200 only for lines the
// Sink reports durable, so a Sink decides what "stored" means. The
// request-file Store is one; another (a broker) plugs in through
// Options.Sink. A Server closes its Sink at the end of Shutdown.
type Sink interface {
	// AppendBatch stores lines (messages without their LF) in order and
	// returns once all of them are durable (nil) or none is acknowledged
	// (an error). lines must not change until it returns. Safe for
	// concurrent use.
	AppendBatch(lines [][]byte) error
	// Healthy returns nil while the Sink can store lines; readiness
	// follows it.
	Healthy() error
	// Lines calls fn for every line stored from since on, oldest first,
	// with the time it counts as stored, so that the duplicate window
	// survives a restart. It is called before serving; line is valid only
	// during the call.
	Lines(since time.Time, fn func(at time.Time, line []byte)) error
	// Close stores the lines already handed over and releases the Sink.
	Close() error
}

var _ Sink = (*Store)(nil)

// A PeerSink is a Sink that records where and when each line came from
// (the amqp sink puts both in headers). The Server hands its batches to
// AppendFrom instead of AppendBatch when its Sink is one.
type PeerSink interface {
	Sink
	// AppendFrom is AppendBatch for lines read from peer (its address,
	// host:port), line i at received[i].
	AppendFrom(peer string, received []time.Time, lines [][]byte) error
}

// dirSink is a Sink that writes to a directory: readiness also checks
// that the directory is writable.
type dirSink interface {
	Dir() string
}
