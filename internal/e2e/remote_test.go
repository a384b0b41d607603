package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/protocol"
)

// TestRemote: each Action does what it says, on pipelined messages, and
// the Remote counts what it read, answered and accepted.
func TestRemote(t *testing.T) {
	release := make(chan struct{})
	r := StartRemote(t, func(m Msg) Action {
		switch m.ProcessNo() {
		case "000000002":
			return Action{Code: protocol.CodeInvalid, ProcessNo: "999999999"}
		case "000000003":
			return Action{Garbage: []byte("garbage\n")}
		case "000000004":
			return Action{Wait: release, Delay: 10 * time.Millisecond, Code: protocol.CodeOK}
		case "000000005":
			return Action{Close: true}
		case "000000006":
			return Action{Reset: true}
		}
		return Answer(protocol.CodeOK)
	})
	msg := func(n int) []byte { return testMsg(t, n) }
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var all []byte
	for n := 1; n <= 5; n++ { // pipelined: all written before any reply is read
		all = append(all, msg(n)...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"|000000001|", "|999999999|"} {
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, want) {
			t.Fatalf("reply %q %v, want one with %s", line, err, want)
		}
	}
	if line, err := br.ReadString('\n'); line != "garbage\n" || err != nil {
		t.Fatalf("got %q %v, want garbage", line, err)
	}
	WaitFor(t, 10*time.Second, "5 lines read ahead, the 4th held", func() bool { return r.MaxAhead() >= 2 && len(r.Read()) == 5 && len(r.Messages()) == 4 && r.Busy() == 1 })
	close(release)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "|000000004|") || !strings.HasSuffix(line, "|200\n") {
		t.Fatalf("reply %q %v, want 200 for the held line", line, err)
	}
	if b, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("after the drop: %q %v, want EOF", b, err)
	}

	c2, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c2.Write(msg(6)); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the reset: %v, want ECONNRESET", err)
	}
	if got := r.Delivered(); len(got) != 2 || r.Accepted() != 2 {
		t.Fatalf("delivered %q on %d connections, want lines 1 and 4 on 2", got, r.Accepted())
	}
	if open, busy := r.Max(); open < 1 || busy != 1 {
		t.Fatalf("max open %d, busy %d; want at least 1, 1", open, busy)
	}
}

// TestOnePerReadRemote: a Remote that reads one message per read answers
// the first of two messages written at once and drops the second; a
// message written after that reply is read and answered.
func TestOnePerReadRemote(t *testing.T) {
	r := StartOnePerReadRemote(t, nil)
	msg := func(n int) []byte { return testMsg(t, n) }
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	reply := func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	if _, err := c.Write(append(msg(1), msg(2)...)); err != nil {
		t.Fatal(err)
	}
	if got := reply(); !strings.Contains(got, "|000000001|") {
		t.Fatalf("reply %q, want one to message 1", got)
	}
	if _, err := c.Write(msg(3)); err != nil {
		t.Fatal(err)
	}
	if got := reply(); !strings.Contains(got, "|000000003|") {
		t.Fatalf("reply %q, want one to message 3 (message 2 dropped)", got)
	}
	if got := len(r.Delivered()); got != 2 {
		t.Fatalf("%d messages answered, want 2", got)
	}
}

// testMsg is a framed message of the default spec with process_no n.
func testMsg(t *testing.T, n int) []byte {
	t.Helper()
	b, err := protocol.DefaultDialect().AppendResult(nil, fmt.Appendf(nil, "REQ|%09d|20261121093000|ORG01|SV01|K|p|", n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
