package protocol

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

// BenchmarkPipelinedLegacy is BenchmarkDialectPipelined's default row
// with the package-level functions the receiver used before the dialect
// (NewReader, Spec.Parse, Spec.ProcessNo, AppendReply), and without the
// duplicate key and the echo check: it compiles against the commit before
// the dialect too, for an A/B of the same work in one run.
func BenchmarkPipelinedLegacy(b *testing.B) {
	const batch = 64
	spec := DefaultRequestSpec()
	framed := append(append([]byte(nil), bench100...), '\n')
	data := bytes.Repeat(framed, batch)
	in := bytes.NewReader(data)
	br := bufio.NewReaderSize(in, len(data))
	r := NewReader(br, MaxMessageBytes)
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
			m, err := spec.Parse(line)
			if err != nil {
				b.Fatal(err)
			}
			out = AppendReply(out, spec.ProcessNo(m.Line()), at, CodeOK)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
}
