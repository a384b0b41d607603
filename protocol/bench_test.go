package protocol

import (
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

func BenchmarkAppendReply(b *testing.B) {
	buf := make([]byte, 0, 64)
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReply(buf[:0], []byte("000000123"), at, CodeOK)
	}
}
