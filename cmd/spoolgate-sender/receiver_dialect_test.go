package main

import (
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// dialectReceiver is spoolgate-receiver in a dialect (publish=append,
// duplicate window off, log at debug: each accepted connection is a log
// line).
type dialectReceiver struct {
	p           *e2e.Proc
	addr, admin string
	data        string
}

// startDialectReceiver starts spoolgate-receiver with props (the protocol.*
// keys, and any receiver.* to set) and waits until it listens.
func startDialectReceiver(t *testing.T, props map[string]string) *dialectReceiver {
	t.Helper()
	dir := t.TempDir()
	r := &dialectReceiver{addr: e2e.FreeAddr(t), admin: e2e.FreeAddr(t), data: filepath.Join(dir, "request")}
	all := map[string]string{
		"receiver.listen":       r.addr,
		"receiver.admin_listen": r.admin,
		"receiver.data_dir":     r.data,
		"receiver.publish":      "append",
		"receiver.fsync":        "never",
		"receiver.dedup_window": "0s",
		"log.dir":               "",
		"log.level":             "debug",
	}
	for k, v := range props {
		all[k] = v
	}
	conf := filepath.Join(dir, "receiver.properties")
	writeProps(t, conf, all)
	r.p = start(t, receiverBin, "-config", conf)
	e2e.WaitFor(t, 20*time.Second, "receiver listening", func() bool {
		if r.p.Exited() {
			t.Fatalf("receiver exited: %v", r.p.Err())
		}
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	e2e.WaitFor(t, 10*time.Second, "the receiver logging that connection", func() bool { return r.accepted() >= 1 })
	return r
}

// stored returns the lines of the request files, in order, without their
// LF.
func (r *dialectReceiver) stored(t *testing.T) []string {
	t.Helper()
	des, err := os.ReadDir(r.data)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if strings.Contains(de.Name(), "_request.txt") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(r.data, n))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.HasSuffix(l, "\n") {
				out = append(out, strings.TrimSuffix(l, "\n"))
			}
		}
	}
	return out
}

// accepted counts the connections the receiver has accepted (its debug
// log's "connection accepted" lines; the probe of startDialectReceiver
// among them).
func (r *dialectReceiver) accepted() int { return r.p.Log.Count("connection accepted") }

// metric reads one series from the receiver's /metrics (0 when absent).
func (r *dialectReceiver) metric(t *testing.T, series string) float64 {
	t.Helper()
	_, body, err := e2e.HTTPGet("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// looserResult returns the protocol.result.* keys of a result spec that is
// d's request spec but for org_code, which admits lower-case letters too:
// a line with a lower-case org_code leaves the sender and is answered
// invalid by a receiver of d.
func looserResult(d *protocol.Dialect) map[string]string {
	props := map[string]string{}
	var names []string
	for _, f := range d.Request().Fields() {
		names = append(names, f.Name)
		rule := f.Rule.String()
		if f.Name == "org_code" {
			rule = "class A-Za-z0-9 2..10"
		}
		props["protocol.result.field."+f.Name] = rule
	}
	props["protocol.result.fields"] = strings.Join(names, ",")
	return props
}

// TestDialectsReceiver: the sender binary and the receiver binary speak
// each dialect of docs/PROTOCOL.md §1's worked examples to each other:
// EUC-KR fixed width behind a 4-digit ASCII header (codes 0000/9999),
// UTF-8 delimited behind a 2-byte binary header, EUC-KR delimited with
// the default framing, the default dialect with the codes 0000/9999; one
// line at a time and through a window of 4. The request files hold every
// line the receiver accepted, byte for byte as the spool file has it
// (with the length field under framing lf); a line the receiver answers
// invalid (its org_code in lower case, which the sender's result spec
// admits) goes to failed_dir with its wire bytes and a UTF-8 .reason
// naming the outcome 400, whatever the partner's code.
func TestDialectsReceiver(t *testing.T) {
	for _, tc := range []struct {
		name, props string
		window      string
	}{
		{"euc-kr fixed, ascii header", "good_dialect_euckr_fixed", "1"},
		{"utf-8 delimited, binary header", "good_dialect_binary", "4"},
		{"euc-kr delimited, lf", "good_dialect_euckr_delimited", "1"},
		{"codes 0000 9999", "good_dialect_codes", "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := testdataProps(t, tc.props)
			d := dialectOf(t, props)
			r := startDialectReceiver(t, props)
			for k, v := range looserResult(d) {
				props[k] = v
			}
			props["sender.window"] = tc.window
			e := newEnv(t, r.addr, props)

			text := map[string]string{"payload": "잔액 조회 결과 정상", "name": "홍길동"}
			var lines, want []string
			for seq := 1; seq <= 12; seq++ {
				l := dialectLine(t, d, seq, text)
				if seq == 5 { // the receiver's request spec refuses it
					l = dialectLine(t, d, seq, map[string]string{"payload": text["payload"], "name": text["name"], "org_code": "org"})
				} else {
					want = append(want, onWire(d, l))
				}
				lines = append(lines, l)
			}
			e2e.WriteFile(t, filepath.Join(e.spool, "mixed.txt"), strings.Join(lines, "\n")+"\n")
			e.startSender(t)
			e2e.WaitFor(t, 30*time.Second, "the file done", func() bool {
				return count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0 && count(t, e.failed) == 2
			})
			// Sorted: at window 1 the lines go over lanes and may be stored
			// in any order (sender.line_order parallel).
			if got := sorted(r.stored(t)); strings.Join(got, "\n") != strings.Join(sorted(want), "\n") {
				t.Errorf("the request files hold\n%q\nwant\n%q", got, want)
			}
			if b, err := os.ReadFile(filepath.Join(e.failed, "mixed.txt.line-5")); err != nil || string(b) != lines[4]+"\n" {
				t.Errorf("failed_dir/mixed.txt.line-5 = %q %v, want the wire bytes %q", b, err, lines[4]+"\n")
			}
			b, err := os.ReadFile(filepath.Join(e.failed, "mixed.txt.line-5.reason"))
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(b) || !strings.Contains(string(b), "code: 400\n") || !strings.Contains(string(b), "reason: rejected by the remote (400)") {
				t.Errorf("mixed.txt.line-5.reason:\n%s", b)
			}
		})
	}
}

// TestHeartbeatReceiver: the echo telegram both ways between the binaries
// in EUC-KR fixed width: the receiver closes connections idle for 2 s
// (receiver.idle_timeout); with sender.heartbeat = 1s the sender's echoes
// keep its one connection (the receiver accepts no other while it is
// idle), the receiver answers each ok and stores none; without the
// heartbeat the receiver closes it and the next line reconnects. A
// receiver that does not know the echo telegram (no protocol.echo.*)
// answers it invalid: the connection is closed, the next line reconnects.
func TestHeartbeatReceiver(t *testing.T) {
	p := testdataProps(t, "good_dialect_euckr_fixed")
	d := dialectOf(t, p)
	recvProps := func(echo bool) map[string]string {
		props := map[string]string{"receiver.idle_timeout": "2s"}
		for k, v := range p {
			if strings.HasPrefix(k, "protocol.") && (echo || !strings.HasPrefix(k, "protocol.echo.")) {
				props[k] = v
			}
		}
		return props
	}
	setup := func(t *testing.T, r *dialectReceiver, heartbeat string) (*env, func(seq int)) {
		t.Helper()
		props := map[string]string{}
		for k, v := range p {
			props[k] = v
		}
		props["sender.workers"], props["sender.heartbeat"], props["sender.timeout"] = "1", heartbeat, "2s"
		e := newEnv(t, r.addr, props)
		e.startSender(t)
		send := func(seq int) {
			t.Helper()
			want := len(r.stored(t)) + 1
			e2e.WriteFile(t, filepath.Join(e.spool, "result.txt"), dialectLine(t, d, seq, map[string]string{"name": "홍길동"})+"\n")
			e2e.WaitFor(t, 20*time.Second, "the line stored", func() bool {
				return len(r.stored(t)) == want && count(t, e.spool) == 0 && count(t, filepath.Join(e.spool, ".inflight")) == 0
			})
		}
		return e, send
	}
	t.Run("answered", func(t *testing.T) {
		r := startDialectReceiver(t, recvProps(true))
		e, send := setup(t, r, "1s")
		before := r.accepted()
		send(1)
		e2e.WaitFor(t, 20*time.Second, "4 echoes answered", func() bool { return r.metric(t, "spoolgate_receiver_echoes_total") >= 4 })
		if n := r.accepted() - before; n != 1 {
			t.Fatalf("the receiver accepted %d connections while the sender was idle, want 1", n)
		}
		if sent, failed := e.metric(t, "spoolgate_sender_heartbeats_total"), e.metric(t, "spoolgate_sender_heartbeat_failures_total"); sent < 4 || failed != 0 {
			t.Fatalf("heartbeats %v, failed %v; want at least 4, 0", sent, failed)
		}
		if got := r.stored(t); len(got) != 1 {
			t.Fatalf("the request files hold %q, want the one line (an echo is never stored)", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		r := startDialectReceiver(t, recvProps(true))
		_, send := setup(t, r, "0s")
		before := r.accepted()
		send(1)
		e2e.WaitFor(t, 20*time.Second, "the receiver closing the idle connection", func() bool {
			return r.metric(t, "spoolgate_receiver_connections") == 0
		})
		send(2)
		if n := r.accepted() - before; n != 2 {
			t.Fatalf("the receiver accepted %d connections, want 2: without the heartbeat the next line reconnects", n)
		}
	})
	t.Run("unknown to the receiver", func(t *testing.T) {
		r := startDialectReceiver(t, recvProps(false))
		e, send := setup(t, r, "1s")
		before := r.accepted()
		send(1)
		e2e.WaitFor(t, 20*time.Second, "a failed heartbeat", func() bool {
			return e.metric(t, "spoolgate_sender_heartbeat_failures_total") >= 1
		})
		send(2)
		if n := r.accepted() - before; n != 2 {
			t.Fatalf("the receiver accepted %d connections, want 2: the next line reconnects", n)
		}
		if n := count(t, e.failed); n != 0 {
			t.Fatalf("%d failed files; a heartbeat charges no line", n)
		}
	})
}
