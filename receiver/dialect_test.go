package receiver

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"

	"spoolgate/protocol"
)

// euckrFixed is docs/PROTOCOL.md §1's second example: EUC-KR, fixed
// width, behind a 4-digit ASCII header counting the rest.
func euckrFixed(t testing.TB) *protocol.Dialect {
	t.Helper()
	d, err := protocol.NewDialect(protocol.DialectConfig{
		Charset: protocol.CharsetEUCKR, Layout: protocol.LayoutFixed, Framing: protocol.FramingLength,
		Request: protocol.SpecConfig{
			Names: []string{"kind", "process_no", "sent_at", "org_code", "name", "payload"},
			Rules: map[string]string{"kind": "digits 4", "process_no": "digits 9", "sent_at": "time yyyyMMddHHmmss",
				"org_code": "class A-Z0-9 2..10", "name": "text 0..20", "payload": "text 0..40"},
		},
		Reply: protocol.SpecConfig{Names: []string{"kind", "process_no", "replied_at", "code"},
			Rules: map[string]string{"kind": "const 0210", "code": "digits 4"}},
		CodeOK: "0000", CodeInvalid: "9999", CodeUnavailable: "9998",
		EchoField: "kind", EchoValue: "0800",
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDialectFrameFaults: under framing length, a header that cannot be
// used (not digits; more than receiver.max_message_bytes) is answered
// invalid at once, echoing the process_no of what came after it, counted
// by its reason, and the connection is closed; a message cut at a
// character's edge is invalid, and the reject's sample is shown decoded
// (UTF-8), not as EUC-KR bytes.
func TestDialectFrameFaults(t *testing.T) {
	d := euckrFixed(t)
	cfg := testConfig(t)
	cfg.MaxMessageBytes = 200
	ts := startServer(t, Options{Config: cfg, Dialect: d})
	name, _ := d.FromUTF8("홍길동")
	good, err := d.Request().Encode("0200", "000000005", "20261121093000", "ORG01", string(name), "")
	if err != nil {
		t.Fatal(err)
	}
	cut := append([]byte(nil), good...)
	copy(cut[4+37+18:], []byte{0xC8, ' '}) // name's last 2 bytes: a lead byte, then padding
	for _, tc := range []struct {
		name, send, reason string
		closed             bool
	}{
		{"header not digits", "00x7" + string(good[4:]), "header: not digits", true},
		{"header over the maximum", "0201" + string(good[4:]), "message: too long", true},
		{"character cut", string(cut), "name: text 0..20", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr)
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			rd := d.NewReader(bufio.NewReader(c), 1000)
			b, err := rd.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			r, err := d.ParseReply(b)
			if err != nil || r.Code != protocol.CodeInvalid || r.ProcessNo != "000000005" {
				t.Fatalf("reply %q: %+v %v, want invalid to 000000005", b, r, err)
			}
			if tc.closed {
				if _, err := rd.ReadMessage(); err != io.EOF {
					t.Fatalf("after the reply: %v, want the connection closed", err)
				}
			} else if _, err := c.Write(good); err != nil {
				t.Fatal(err)
			} else if b, err := rd.ReadMessage(); err != nil {
				t.Fatalf("the next message on the connection: %v", err)
			} else if r, err := d.ParseReply(b); err != nil || r.Code != protocol.CodeOK {
				t.Fatalf("the next message on the connection: %+v %v", r, err)
			}
			var sample string
			for _, rr := range ts.srv.Status(time.Now()).Rejects {
				if rr.Reason == tc.reason {
					sample = rr.Sample
				}
			}
			if !strings.Contains(sample, "ORG01") || (tc.name != "character cut" && !strings.Contains(sample, "홍길동")) {
				t.Fatalf("sample of %q: %q, want the message decoded", tc.reason, sample)
			}
		})
	}
}

// TestDialectEcho: the echo telegram is answered ok with its fields
// echoed, counted, never stored, and leaves the duplicate window alone;
// a request of the same process_no after it is stored.
func TestDialectEcho(t *testing.T) {
	d := euckrFixed(t)
	ts := startServer(t, Options{Dialect: d})
	echo, _ := d.Frame(nil, []byte("0800000000009"))
	req, err := d.Request().Encode("0200", "000000009", "20261121093000", "ORG01", "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, ts.addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := d.NewReader(bufio.NewReader(c), 1000)
	for i, m := range [][]byte{echo, echo, req} {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
		b, err := rd.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if r, err := d.ParseReply(b); err != nil || r.Code != protocol.CodeOK || r.ProcessNo != "000000009" {
			t.Fatalf("reply %d %q: %+v %v", i, b, r, err)
		}
	}
	if n := metric(t, ts.reg, "spoolgate_receiver_echoes_total"); n != 2 {
		t.Fatalf("echoes_total %v, want 2", n)
	}
	if n := ts.srv.Counts()[0]; n != 3 {
		t.Fatalf("%d answered 200, want 3 (the echoes count as ok)", n)
	}
	ts.stop(t)
	if got := storedLines(t, ts.dir); len(got) != 1 || got[0] != string(d.Unframe(req))+"\n" {
		t.Fatalf("stored %q, want only the request", got)
	}
}
