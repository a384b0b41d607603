package main

// The receiver speaking a partner's dialect (docs/PROTOCOL.md §1, §2):
// the worked examples of conf/testdata/good_dialect_*.properties, each
// with a pipelined burst and with one-byte segments, the request files
// compared byte for byte with what was sent; the echo telegram; a kill -9
// under load; and every combination conf refuses, refused by the daemon
// as by spoolgate check.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/protocol"
)

// dialectFile is the path of conf/testdata/NAME.properties.
func dialectFile(name string) string {
	return filepath.Join("..", "..", "conf", "testdata", name+".properties")
}

// dialectOf loads the dialect of conf/testdata/NAME.properties and
// returns it with the file's keys, for config.
func dialectOf(t *testing.T, name string) (*protocol.Dialect, []string) {
	t.Helper()
	cfg, err := conf.Load(dialectFile(name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dialectFile(name))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	return cfg.Protocol.Dialect, keys
}

// wire returns s, UTF-8, in the charset of d.
func wire(t testing.TB, d *protocol.Dialect, s string) string {
	b, err := d.FromUTF8(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dialectCases are the dialects the receiver is tested in, each with the
// values (in the wire's charset) of its request number i: Korean text
// where the charset is EUC-KR.
var dialectCases = []struct {
	name   string
	values func(t testing.TB, d *protocol.Dialect, i int) []string
}{
	{"good_dialect_euckr_fixed", func(t testing.TB, d *protocol.Dialect, i int) []string {
		return []string{"0200", fmt.Sprintf("%09d", i), "20261121093000", "ORG01", wire(t, d, "홍길동"), wire(t, d, fmt.Sprintf("잔액조회 %d", i))}
	}},
	{"good_dialect_binary", func(t testing.TB, d *protocol.Dialect, i int) []string {
		return []string{"REQ", fmt.Sprintf("%09d", i), "20261121093000", "ORG01", "SV01", fmt.Sprintf("K-%d", i), strings.Repeat("p", i%50), ""}
	}},
	{"good_dialect_euckr_delimited", func(t testing.TB, d *protocol.Dialect, i int) []string {
		return []string{"REQ", fmt.Sprintf("%09d", i), "20261121093000", "ORG01", "SV01", "CUST-1", wire(t, d, fmt.Sprintf("한글 본문 %d", i)), ""}
	}},
}

// dialectClient is one connection speaking d.
type dialectClient struct {
	c  net.Conn
	d  *protocol.Dialect
	rd protocol.MessageReader
}

func dialDialect(addr string, d *protocol.Dialect) (*dialectClient, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &dialectClient{c: c, d: d, rd: d.NewReader(bufio.NewReader(c), protocol.MaxMessageBytes)}, nil
}

// reply reads one reply: its code, and an error unless it parses in the
// dialect and carries pno (when pno is not "").
func (c *dialectClient) reply(pno string) (int, error) {
	b, err := c.rd.ReadMessage()
	if err != nil {
		return 0, fmt.Errorf("reply to %s: %w", pno, err)
	}
	r, err := c.d.ParseReply(b)
	if err != nil {
		return 0, err
	}
	if pno != "" && r.ProcessNo != pno {
		return 0, fmt.Errorf("reply %q to %s", c.d.Text(b), pno)
	}
	return r.Code, nil
}

// requestBytes returns every request file of dir, in the order of their
// names (the order they were published), joined.
func requestBytes(t *testing.T, dir string) []byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, e := range ents { // sorted by name
		if strings.Contains(e.Name(), "_request.txt") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

// TestDialects: in each dialect, a burst of 200 requests pipelined in one
// write, then 8 more through a link that passes one byte per segment,
// are each answered ok with their process_no in the dialect's reply; the
// request files hold exactly the messages sent, without their framing, in
// order, byte for byte (no transcoding). In the EUC-KR fixed dialect the
// echo telegram (kind 0800; also one of 13 bytes, as a heartbeat sends
// it) is answered ok, not stored, not de-duplicated, and counted.
func TestDialects(t *testing.T) {
	for _, dc := range dialectCases {
		t.Run(dc.name, func(t *testing.T) {
			d, keys := dialectOf(t, dc.name)
			dir := t.TempDir()
			p := start(t, config(t, dir, keys...), nil)
			if p.addr == "" {
				t.Fatalf("the receiver did not start:\n%s", p.Log)
			}
			var want []byte
			send := func(addr string, from, n int) {
				t.Helper()
				c, err := dialDialect(addr, d)
				if err != nil {
					t.Fatal(err)
				}
				defer c.c.Close()
				var burst []byte
				for i := from; i < from+n; i++ {
					m, err := d.Request().Encode(dc.values(t, d, i)...)
					if err != nil {
						t.Fatal(err)
					}
					burst = append(burst, m...)
					want = append(append(want, d.Unframe(m)...), '\n')
				}
				if _, err := c.c.Write(burst); err != nil {
					t.Fatal(err)
				}
				for i := from; i < from+n; i++ {
					if code, err := c.reply(fmt.Sprintf("%09d", i)); err != nil || code != protocol.CodeOK {
						t.Fatalf("message %d: code %d, %v", i, code, err)
					}
				}
			}
			send(p.addr, 1, 200)
			link := e2e.NewLink(t, p.addr)
			link.Slice(e2e.Up, 1, 0, 20*time.Microsecond)
			send(link.Addr(), 1001, 8)
			if d.Config().EchoField != "" {
				echoes(t, p, d)
			}
			noConnections(t, p)
			p.Signal(t, syscall.SIGTERM)
			if code := p.ExitCode(t, 20*time.Second); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if got := requestBytes(t, filepath.Join(dir, "data")); !bytes.Equal(got, want) {
				t.Fatalf("request files hold %d bytes, want the %d sent:\n%q\nwant\n%q", len(got), len(want), got, want)
			}
		})
	}
}

// echoes sends the echo telegram of d (the EUC-KR fixed example's) three
// times: a whole request with kind 0800, the same again (no duplicate),
// and the 13 bytes a heartbeat sends; each is answered ok and counted.
func echoes(t *testing.T, p *proc, d *protocol.Dialect) {
	t.Helper()
	before := scrape(t, p, "spoolgate_receiver_echoes_total")
	whole, err := d.Request().Encode("0800", "000000077", "20261121093000", "ORG01", "", "")
	if err != nil {
		t.Fatal(err)
	}
	short, err := d.Frame(nil, []byte("0800000000078"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialDialect(p.addr, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.c.Close()
	for _, m := range [][]byte{whole, whole, short} {
		if _, err := c.c.Write(m); err != nil {
			t.Fatal(err)
		}
		pno := "000000077"
		if len(m) < 20 {
			pno = "000000078"
		}
		if code, err := c.reply(pno); err != nil || code != protocol.CodeOK {
			t.Fatalf("echo %q: code %d, %v", m, code, err)
		}
	}
	if n := scrape(t, p, "spoolgate_receiver_echoes_total") - before; n != 3 {
		t.Fatalf("spoolgate_receiver_echoes_total grew by %v, want 3", n)
	}
	if n := scrape(t, p, "spoolgate_receiver_duplicates_total"); n != 0 {
		t.Fatalf("spoolgate_receiver_duplicates_total %v: an echo went to the duplicate window", n)
	}
}

// TestDialectSIGKILLUnderLoad: in the EUC-KR fixed dialect, with
// fsync=always, every message answered ok before a SIGKILL under 16
// keep-alive clients is in a request file once, byte for byte as sent
// (without its header).
func TestDialectSIGKILLUnderLoad(t *testing.T) {
	dc := dialectCases[0]
	d, keys := dialectOf(t, dc.name)
	dir := t.TempDir()
	p := start(t, config(t, dir, append(keys, "receiver.fsync = always")...), nil)
	var (
		mu    sync.Mutex
		acked [][]byte
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 16 {
		wg.Go(func() {
			c, err := dialDialect(p.addr, d)
			if err != nil {
				return
			}
			defer c.c.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := w*1_000_000 + i
				m, err := d.Request().Encode(dc.values(t, d, n)...)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.c.Write(m); err != nil {
					return
				}
				if code, err := c.reply(fmt.Sprintf("%09d", n)); err != nil {
					return
				} else if code == protocol.CodeOK {
					mu.Lock()
					acked = append(acked, slices.Clone(d.Unframe(m)))
					mu.Unlock()
				}
			}
		})
	}
	e2e.WaitFor(t, 30*time.Second, "500 acknowledged messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 500
	})
	p.Signal(t, syscall.SIGKILL)
	p.ExitCode(t, 10*time.Second)
	close(stop)
	wg.Wait()
	lines := requestLines(t, filepath.Join(dir, "data"), false)
	for _, m := range acked {
		if n := lines[string(m)+"\n"]; n != 1 {
			t.Fatalf("acknowledged message stored %d times: %q", n, m)
		}
	}
	t.Logf("%d messages acknowledged before SIGKILL, %d lines stored", len(acked), len(lines))
}

// TestBadDialectExits2: every combination of protocol.* (and of the
// heartbeat) that cannot work stops the receiver at start with exit 2 and
// one line, the one conf.Load gives, naming the key: what spoolgate check
// prints for it (TestCheckDialect).
func TestBadDialectExits2(t *testing.T) {
	bad, err := filepath.Glob(filepath.Join("..", "..", "conf", "testdata", "bad_*.properties"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range bad {
		if !strings.Contains(path, "bad_protocol_") && !strings.Contains(path, "bad_heartbeat_") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, lerr := conf.Load(path)
			if lerr == nil {
				t.Fatalf("%s loads", path)
			}
			p := e2e.Start(t, "receiver", exec.Command(bin, "-config", path), nil)
			if code := p.ExitCode(t, 20*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2; output:\n%s", code, p.Log)
			}
			if out := p.Log.String(); out != lerr.Error()+"\n" {
				t.Fatalf("output %q, want %q", out, lerr.Error()+"\n")
			}
		})
	}
	if n < 20 {
		t.Errorf("%d bad dialect files", n)
	}
}
