package e2e

// A simulated partner link (a partner is 10-100 ms away over a VPN, not
// on 127.0.0.1): Shopify's toxiproxy between a client and any upstream
// (one of our daemons or a Remote), with latency, bandwidth and faults set
// through toxiproxy's Go client.
//
// Each Link runs a toxiproxy server of its own, as a child process on
// 127.0.0.1, killed when the test ends. Not in-process: toxiproxy's
// pipeline cannot be stopped cleanly. When a toxic ends a connection's
// stream (limit_data's cut, reset_peer, a timeout) while the client still
// writes, the goroutine reading the client and the noop toxic in front of
// the closed one block for ever on unbuffered channel sends, and
// Proxy.Stop, which only closes the connections, does not free them:
// goleak failed each of three runs of such a probe with the server
// in-process. The binary is toxiproxy's cmd/server, a tool of go.mod,
// built once into Go's build cache (`go tool -n`); scripts/bench.sh builds
// the same into its temporary directory.
//
// What toxiproxy does, read in its v2.5.0 source (link.go, toxics/):
//   - each way is a chain of toxics in the order they were added, fed by a
//     goroutine that reads the socket into chunks of up to 32 KiB, each
//     stamped with its arrival time;
//   - latency sleeps each chunk until latency (± a jitter drawn per chunk)
//     after its arrival stamp, in order; a latency toxic behind a
//     bandwidth toxic would count the queueing in front of it as part of
//     the latency, so the Link keeps latency first in the chain;
//   - bandwidth forwards each chunk after len/rate (in pieces of 100 ms of
//     the rate); what waits for it waits in the chain's channels (the one
//     in front of a latency toxic holds 1,024 chunks) and then in the
//     kernel's socket buffers (megabytes on loopback): a writer's writes
//     return long before the bytes pass the link, as on a real link with
//     a deep queue;
//   - blackhole (timeout 0) drops every chunk and closes nothing; removing
//     it closes every connection it held (the toxic's Cleanup closes its
//     stream): a restored link passes new connections, not the held ones;
//   - reset closes the connection at the next chunk that way; the close is
//     a TCP reset (SO_LINGER 0) only on connections opened while the reset
//     toxic was on the link, and a FIN on those already open;
//   - a cut (limit_data) closes the upstream's socket whole, not half: what
//     the upstream answers to the bytes before the cut is lost;
//   - a client whose upstream refuses is accepted and then closed (EOF),
//     not refused;
//   - slicing writes each chunk as pieces of average ± variation bytes
//     with a delay between them, each piece its own write (TCP_NODELAY).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// ToxiproxyServer is the import path of the toxiproxy server the Link runs
// (a tool of go.mod).
const ToxiproxyServer = "github.com/Shopify/toxiproxy/v2/cmd/server"

// Dir is a way through a Link.
type Dir int

const (
	Up   Dir = 1 << iota // from the client to the upstream: the messages (toxiproxy's "upstream" stream)
	Down                 // from the upstream to the client: the replies (toxiproxy's "downstream")
	Both = Up | Down
)

// streams returns toxiproxy's names of the ways in d.
func (d Dir) streams() []string {
	var s []string
	if d&Up != 0 {
		s = append(s, "upstream")
	}
	if d&Down != 0 {
		s = append(s, "downstream")
	}
	return s
}

// Toxic is a kind of toxic a Link sets; its value is toxiproxy's type name.
type Toxic string

const (
	Latency   Toxic = "latency"    // SetLatency
	Bandwidth Toxic = "bandwidth"  // SetBandwidth
	Blackhole Toxic = "timeout"    // Blackhole
	Reset     Toxic = "reset_peer" // Reset
	Slicer    Toxic = "slicer"     // Slice
	Cut       Toxic = "limit_data" // CutAfter
)

// Mbit is one megabit a second in SetBandwidth's unit (kilobytes of 1,000
// bytes a second).
const Mbit = 125

// Link is a simulated network link from Addr to an upstream address. Its
// methods set or remove toxics on every connection through it, those open
// and those to come; they fail the test on error, so call them from the
// test's goroutine. A Link is torn down (its server killed, every
// connection through it closed) when the test ends.
type Link struct {
	t     testing.TB
	proxy *toxiclient.Proxy
	set   map[string]toxiclient.Attributes // the toxics on the link by name
}

var (
	toxiproxyOnce sync.Once
	toxiproxyBin  string
	toxiproxyErr  error
)

// toxiproxyPath builds the server once per test binary (into Go's build
// cache) and returns its path.
func toxiproxyPath() (string, error) {
	toxiproxyOnce.Do(func() {
		out, err := exec.Command("go", "tool", "-n", ToxiproxyServer).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
			toxiproxyErr = fmt.Errorf("go tool -n %s: %w", ToxiproxyServer, err)
			return
		}
		toxiproxyBin = strings.TrimSpace(string(out))
	})
	return toxiproxyBin, toxiproxyErr
}

// NewLink starts a toxiproxy server on 127.0.0.1 and a link through it to
// upstream, with no toxic: bytes pass as they come. upstream need not
// listen yet (the link dials it for each connection). It fails the test if
// the server does not start.
func NewLink(t testing.TB, upstream string) *Link {
	t.Helper()
	bin, err := toxiproxyPath()
	if err != nil {
		t.Fatal(err)
	}
	// Runs after the server is killed (cleanups run last first): the
	// client keeps its connections to the server in http's default
	// transport, whose goroutines goleak would see.
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var lastLog string
	for range 3 { // the API port may be taken between FreePort and the bind
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
		cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
		p := Start(t, "toxiproxy", cmd, nil)
		api := toxiclient.NewClient("127.0.0.1:" + strconv.Itoa(port))
		var proxy *toxiclient.Proxy
		WaitFor(t, 20*time.Second, "toxiproxy to serve its API", func() bool {
			if p.Exited() {
				return true
			}
			proxy, err = api.CreateProxy("link", "127.0.0.1:0", upstream)
			return err == nil
		})
		if proxy != nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("toxiproxy log:\n%s", p.Log)
				}
			})
			return &Link{t: t, proxy: proxy, set: map[string]toxiclient.Attributes{}}
		}
		p.Kill()
		lastLog = p.Log.String()
	}
	t.Fatalf("toxiproxy did not start:\n%s", lastLog)
	return nil
}

// Addr is the address to dial to go through the link.
func (l *Link) Addr() string { return l.proxy.Listen }

// attrs turns a toxic of toxiproxy's toxics package into the attributes
// its API takes.
func attrs(toxic toxics.Toxic) toxiclient.Attributes {
	b, err := json.Marshal(toxic)
	if err != nil {
		panic(err) // plain structs of numbers
	}
	var a toxiclient.Attributes
	if err := json.Unmarshal(b, &a); err != nil {
		panic(err)
	}
	return a
}

func toxicName(kind Toxic, stream string) string { return string(kind) + "_" + stream }

// put sets the toxic kind with attributes a on the ways in d: a new one
// goes at the end of the chain; one already there is updated in place.
func (l *Link) put(kind Toxic, d Dir, a toxiclient.Attributes) {
	l.t.Helper()
	for _, s := range d.streams() {
		name := toxicName(kind, s)
		var err error
		if _, ok := l.set[name]; ok {
			_, err = l.proxy.UpdateToxic(name, 1, a)
		} else {
			_, err = l.proxy.AddToxic(name, string(kind), s, 1, a)
		}
		if err != nil {
			l.t.Fatalf("link: set %s: %v", name, err)
		}
		l.set[name] = a
	}
}

// SetLatency delays what goes the ways in d by latency ± jitter (a new
// draw for each chunk toxiproxy reads; chunks stay in order). A round trip
// through a link with latency L both ways takes at least 2L.
func (l *Link) SetLatency(d Dir, latency, jitter time.Duration) {
	l.t.Helper()
	a := attrs(&toxics.LatencyToxic{Latency: latency.Milliseconds(), Jitter: jitter.Milliseconds()})
	for _, s := range d.streams() {
		bw := toxicName(Bandwidth, s)
		ba, capped := l.set[bw]
		_, has := l.set[toxicName(Latency, s)]
		if capped && !has { // latency goes in front of the cap: take the cap off and put it back after
			l.remove(bw)
		}
		l.put(Latency, dirOf(s), a)
		if capped && !has {
			l.put(Bandwidth, dirOf(s), ba)
		}
	}
}

// SetBandwidth caps the ways in d at kBps kilobytes (1,000 bytes) a
// second: 10*Mbit is 10 Mbit/s.
func (l *Link) SetBandwidth(d Dir, kBps int) {
	l.t.Helper()
	l.put(Bandwidth, d, attrs(&toxics.BandwidthToxic{Rate: int64(kBps)}))
}

// Blackhole makes the ways in d pass no byte: what is written that way
// is dropped, no connection is closed or reset. Remove(Blackhole) closes
// the connections it held.
func (l *Link) Blackhole(d Dir) {
	l.t.Helper()
	l.put(Blackhole, d, attrs(&toxics.TimeoutToxic{Timeout: 0}))
}

// Reset closes each connection at its next chunk going a way in d: with a
// TCP reset to both ends for a connection opened after the call, with a
// FIN for one already open (toxiproxy sets SO_LINGER 0 when a connection
// starts).
func (l *Link) Reset(d Dir) {
	l.t.Helper()
	l.put(Reset, d, attrs(&toxics.ResetToxic{Timeout: 0}))
}

// Slice writes what goes the ways in d in pieces of avg ± variation bytes
// (variation < avg), with delay between the pieces: avg 5, variation 3
// gives pieces of 1 to 8 bytes.
func (l *Link) Slice(d Dir, avg, variation int, delay time.Duration) {
	l.t.Helper()
	l.put(Slicer, d, attrs(&toxics.SlicerToxic{AverageSize: avg, SizeVariation: variation, Delay: int(delay.Microseconds())}))
}

// CutAfter passes n more bytes of each connection going a way in d, then
// closes the connection (a FIN to the far end): a link cut in the middle
// of whatever crosses it then. The count starts when the toxic is set (for
// a connection opened later, when it opens).
func (l *Link) CutAfter(d Dir, n int) {
	l.t.Helper()
	l.put(Cut, d, attrs(&toxics.LimitDataToxic{Bytes: int64(n)}))
}

// Remove takes the toxic kind off both ways; it does nothing where it is
// not set.
func (l *Link) Remove(kind Toxic) {
	l.t.Helper()
	for _, s := range Both.streams() {
		if _, ok := l.set[toxicName(kind, s)]; ok {
			l.remove(toxicName(kind, s))
		}
	}
}

func (l *Link) remove(name string) {
	l.t.Helper()
	if err := l.proxy.RemoveToxic(name); err != nil {
		l.t.Fatalf("link: remove %s: %v", name, err)
	}
	delete(l.set, name)
}

func dirOf(stream string) Dir {
	if stream == "upstream" {
		return Up
	}
	return Down
}
