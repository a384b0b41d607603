package receiver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/protocol"
)

// Sink is where the Server hands the lines it accepts, as nsq's
// BackendQueue is for a topic: the Server answers 200 only for lines the
// Sink reports durable, so a Sink decides what "stored" means. OpenSink
// opens the one receiver.sink names: the request-file Store (store.go)
// or the AMQPSink (amqpsink.go); a test may hand another to the Server
// through Options.Sink. A Server closes its Sink at the end of Shutdown.
//
// What only some sinks can do is an optional capability, declared below
// (PeerSink, WhereSink, DirSink, HistorySink): a Sink has one by having
// its method.
// The Server finds them once, when it gets its Sink (sinkOf); nothing
// else asks a Sink's type.
type Sink interface {
	// AppendBatch stores lines (messages without their framing) in order
	// and returns once all of them are durable (nil) or none is
	// acknowledged (an error). lines must not change until it returns.
	// Safe for concurrent use.
	AppendBatch(lines [][]byte) error
	// Healthy returns nil while the Sink can store lines; readiness
	// follows it.
	Healthy() error
	// Close stores the lines already handed over and releases the Sink.
	Close() error
}

// A PeerSink records where and when each line came from (the amqp sink
// puts both in headers). The Server hands its batches to AppendFrom
// instead of AppendBatch when its Sink is one.
type PeerSink interface {
	// AppendFrom is AppendBatch for lines read from peer (its address,
	// host:port), line i at received[i].
	AppendFrom(peer string, received []time.Time, lines [][]byte) error
}

// Where is where a Sink put a line, for the journal: a request file (its
// base name as written, .part included in rename mode) and the line's
// number in it from 1, or a broker queue and the message's id; and when
// it was made durable (before the file's publication: trace resolves a
// .part's lines to the publication after them).
type Where struct {
	File  string
	Line  int
	Queue string
	MsgID string
	At    time.Time
}

// A WhereSink says where it put each line. The Server hands its batches
// to AppendWhere, with where, while the journal is on.
type WhereSink interface {
	// AppendWhere is AppendFrom that, when it returns nil, has set
	// where[i] for lines[i] (where may be nil: nothing is set).
	AppendWhere(peer string, received []time.Time, lines [][]byte, where []Where) error
}

// A DirSink writes into a directory: readiness also checks that the
// directory is writable.
type DirSink interface {
	Dir() string
}

// A HistorySink gives back the lines it stored, so that the duplicate
// window survives a restart. Without it the window starts empty.
type HistorySink interface {
	// Lines calls fn for every line stored from since on, oldest first,
	// with the time it counts as stored. It is called before serving;
	// line is valid only during the call.
	Lines(since time.Time, fn func(at time.Time, line []byte)) error
}

var (
	_ interface {
		Sink
		WhereSink
		DirSink
		HistorySink
	} = (*Store)(nil)
	_ interface {
		Sink
		PeerSink
		WhereSink
	} = (*AMQPSink)(nil)
)

// sink is the Server's Sink with its capabilities, found once by sinkOf.
type sink struct {
	Sink
	peer    PeerSink    // nil: batches go to AppendBatch
	where   WhereSink   // nil: where is not known (not journaled)
	dir     string      // "": no directory to check for readiness
	history HistorySink // nil: the duplicate window starts empty
}

// sinkOf finds the capabilities of s.
func sinkOf(s Sink) sink {
	k := sink{Sink: s}
	k.peer, _ = s.(PeerSink)
	k.where, _ = s.(WhereSink)
	if d, ok := s.(DirSink); ok {
		k.dir = d.Dir()
	}
	k.history, _ = s.(HistorySink)
	return k
}

// append stores lines read from peer, line i at received[i], and when
// where is not nil and the sink can tell, says where each went: see
// AppendBatch, PeerSink and WhereSink.
func (k *sink) append(peer string, received []time.Time, lines [][]byte, where []Where) error {
	if where != nil && k.where != nil {
		return k.where.AppendWhere(peer, received, lines, where)
	}
	if k.peer != nil {
		return k.peer.AppendFrom(peer, received, lines)
	}
	return k.AppendBatch(lines)
}

// SinkOptions say how to open a Sink (OpenSink).
type SinkOptions struct {
	// Config holds the receiver.* keys: Sink picks the sink, whose own
	// keys it then reads; DedupKey names the fields of the amqp
	// message_id.
	Config conf.Receiver
	// Dialect is the wire; nil means protocol.DefaultDialect(). The amqp
	// sink takes the message_id's fields from its request spec.
	Dialect *protocol.Dialect
	// Clock defaults to time.Now; it names request files.
	Clock func() time.Time
	// Logger defaults to a discard logger.
	Logger *slog.Logger
	// Registerer receives the sink's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// OnSync, when not nil, is called after each sync that made lines
	// durable, with their number (spoolgate_receiver_sync_batch). A sink
	// that does not sync never calls it.
	OnSync func(lines int)
	// OnPublish, when not nil, is called with the base names of a .part
	// request file and the name it got, after each publish (rename mode;
	// the repair at start too): the journal records it.
	OnPublish func(part, final string)

	storeHooks storeHooks // tests
}

// sinkKind is one value of receiver.sink: how to open its sink, and what
// that sink needs of the host (for `spoolgate check`, without opening it).
type sinkKind struct {
	open  func(SinkOptions) (Sink, error)
	needs func(conf.Receiver) SinkNeeds
}

// sinkKinds are the sinks by the value of receiver.sink. A new sink is an
// entry here, its own file (its Sink, open and needs) and its keys in
// conf/keys.go.
var sinkKinds = map[conf.Sink]sinkKind{
	conf.SinkFiles: {openFiles, filesNeeds},
	conf.SinkAMQP:  {openAMQP, amqpNeeds},
}

func kindOf(s conf.Sink) (sinkKind, error) {
	k, ok := sinkKinds[s]
	if !ok { // conf refuses every other value
		return sinkKind{}, fmt.Errorf("receiver.sink %q: no such sink", s)
	}
	return k, nil
}

// OpenSink opens the sink receiver.sink names (o.Config.Sink): the
// request-file Store in receiver.data_dir (locked and repaired), or the
// AMQPSink, connected when a node answers (one that does not keeps it
// trying in the background). It fails when the sink cannot be used: the
// data dir is locked by another receiver (an error wrapping
// fsutil.ErrLocked) or cannot be repaired; the queue exists with other
// arguments (a *conf.Error on receiver.amqp.queue_type); a
// receiver.dedup_key field is not in the spec.
func OpenSink(o SinkOptions) (Sink, error) {
	k, err := kindOf(o.Config.Sink)
	if err != nil {
		return nil, err
	}
	if o.Dialect == nil {
		o.Dialect = protocol.DefaultDialect()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.OnSync == nil {
		o.OnSync = func(int) {}
	}
	return k.open(o)
}

// SinkNeeds is what the sink of a configuration needs of this host, found
// without opening it (NeedsOf): `spoolgate check` tests it.
type SinkNeeds struct {
	// Dirs are the directories the sink writes, each with its key.
	Dirs []NeededDir
	// Remote is the service the sink stores into, nil when none.
	Remote *NeededRemote
}

// NeededDir is a directory a sink writes, and the key that sets it.
type NeededDir struct{ Key, Path string }

// NeededRemote is a service a sink stores into (a broker).
type NeededRemote struct {
	// Key is the key that names it (receiver.amqp.url).
	Key string
	// Down says what the receiver does while it cannot be reached.
	Down string
	// Reach tries it within ctx: the error says why it cannot be
	// reached; missing names what it lacks that the receiver creates at
	// start (a queue).
	Reach func(ctx context.Context) (missing []string, err error)
}

// NeedsOf returns what the sink of c (receiver.sink) needs of this host.
func NeedsOf(c conf.Receiver) SinkNeeds {
	k, err := kindOf(c.Sink)
	if err != nil {
		return SinkNeeds{}
	}
	return k.needs(c)
}
