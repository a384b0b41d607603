package protocol

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

// A 100-byte message: the example with a longer payload.
var bench100 = []byte(with(7, "hello world payload, forty one bytes long"))

func BenchmarkParse(b *testing.B) {
	spec := DefaultRequestSpec()
	if len(bench100)+1 != 100 {
		b.Fatalf("bench message is %d bytes", len(bench100)+1)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(bench100) + 1))
	for b.Loop() {
		if _, err := spec.Parse(bench100); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	spec := DefaultRequestSpec()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := spec.Encode("REQ", "000000123", "20261121093000", "ORG01", "SV01", "CUST-000123", "hello world payload, forty one bytes long", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDialects are the default dialect and EUC-KR fixed width behind a
// 4-digit ASCII header counting the rest (docs/PROTOCOL.md §1's examples),
// each with a message of about 100 bytes on the wire: the default's
// bench100, and 97 bytes of EUC-KR (a Korean name and a payload of 20
// Hangul syllables) behind its 4-byte header.
func benchDialects(b *testing.B) []struct {
	name string
	d    *Dialect
	msg  []byte
} {
	euc := mustDialect(b, testDialects()[3].cfg)
	vals := euc.Request().SampleValues(123, testAt)
	vals[valIndex(euc, "name")] = wireText(b, euc, "홍길동")
	vals[valIndex(euc, "payload")] = wireText(b, euc, strings.Repeat("가나다라마바사아자차", 2))
	msg := build(euc, euc.Request(), vals)
	if _, err := euc.Parse(msg); err != nil || len(msg)+4 != 101 {
		b.Fatalf("bench message %q: %v", msg, err)
	}
	return []struct {
		name string
		d    *Dialect
		msg  []byte
	}{{"default", DefaultDialect(), bench100}, {"euc-kr-fixed", euc, msg}}
}

// BenchmarkDialectParse is Parse alone in each dialect.
func BenchmarkDialectParse(b *testing.B) {
	for _, bd := range benchDialects(b) {
		b.Run(bd.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bd.msg)))
			for b.Loop() {
				if _, err := bd.d.Parse(bd.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDialectPipelined is the protocol's share of the receiver's
// pipelined path, per message: 64 framed messages in one read buffer,
// each read by the dialect's reader, parsed, its duplicate key taken, its
// echo checked and its reply appended.
func BenchmarkDialectPipelined(b *testing.B) {
	const batch = 64
	for _, bd := range benchDialects(b) {
		b.Run(bd.name, func(b *testing.B) {
			d := bd.d
			framed, err := d.Frame(nil, bd.msg)
			if err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat(framed, batch)
			idx, err := d.KeyIndexes([]string{"org_code", "process_no"})
			if err != nil {
				b.Fatal(err)
			}
			in := bytes.NewReader(data)
			br := bufio.NewReaderSize(in, len(data))
			r := d.NewReader(br, MaxMessageBytes)
			key := make([]byte, 0, 128)
			out := make([]byte, 0, 64*batch)
			at := time.Now()
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				in.Reset(data)
				br.Reset(in)
				out = out[:0]
				for range batch {
					line, err := r.ReadMessage()
					if err != nil {
						b.Fatal(err)
					}
					m, err := d.Parse(line)
					if err != nil {
						b.Fatal(err)
					}
					key = m.AppendKey(key[:0], idx, 0)
					if d.IsEcho(line) {
						b.Fatal("echo")
					}
					out = d.AppendReply(out, line, CodeOK, at)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
		})
	}
}

// BenchmarkDialectAppendReply is the default dialect's reply.
func BenchmarkDialectAppendReply(b *testing.B) {
	buf := make([]byte, 0, 64)
	at := time.Now()
	d := DefaultDialect()
	line := []byte(example)
	b.ReportAllocs()
	for b.Loop() {
		buf = d.AppendReply(buf[:0], line, CodeOK, at)
	}
}
