package protocol

import (
	"bytes"
	"testing"
)

// TestFieldSpan: on a valid message every span is the field Parse gives;
// on a cut or invalid line the fields that are there are found.
func TestFieldSpan(t *testing.T) {
	s := DefaultRequestSpec()
	m, err := s.Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Fields() {
		a, b, ok := s.FieldSpan([]byte(example), i)
		if !ok || example[a:b] != string(m.FieldAt(i)) {
			t.Errorf("field %d: span %d..%d %v, want %q", i, a, b, ok, m.FieldAt(i))
		}
	}
	tests := []struct {
		line string
		i    int
		want string
		ok   bool
	}{
		{"0078|REQ|0000", 2, "0000", true},                        // cut inside the field
		{"0078|REQ|", 2, "", true},                                // cut right at its start
		{"0078|REQ", 2, "", false},                                // ends before it
		{"x|y|z|a|b|c|d|p|f|extra|more", 8, "f|extra|more", true}, // the last field runs to the end
		{"", 0, "", true},
		{"a|b", -1, "", false},
		{"a|b", 9, "", false},
	}
	for _, tt := range tests {
		a, b, ok := s.FieldSpan([]byte(tt.line), tt.i)
		if ok != tt.ok || (ok && tt.line[a:b] != tt.want) {
			t.Errorf("FieldSpan(%q, %d) = %d..%d %v, want %q %v", tt.line, tt.i, a, b, ok, tt.want, tt.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.FieldSpan([]byte(example), 7) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestFieldSpanDialects: in every test dialect a field's span is where
// Parse found it (in the fixed layout with its padding), and a message cut
// inside a field gives the part of it that is there.
func TestFieldSpanDialects(t *testing.T) {
	for _, td := range testDialects() {
		t.Run(td.name, func(t *testing.T) {
			d := mustDialect(t, td.cfg)
			spec := d.Request()
			line := build(d, spec, sample(t, d, td, 7))
			m, err := spec.Parse(line)
			if err != nil {
				t.Fatal(err)
			}
			for i := range spec.Fields() {
				a, b, ok := spec.FieldSpan(line, i)
				got := line[a:b]
				if d.w.fixed && spec.fields[i].Rule.padded() {
					got = bytes.TrimRight(got, " ")
				}
				if !ok || !bytes.Equal(got, m.FieldAt(i)) || (d.w.fixed && b-a != spec.fields[i].width) {
					t.Errorf("field %d: span %d..%d %v: %q, Parse: %q", i, a, b, ok, line[a:b], m.FieldAt(i))
				}
			}
			last := len(spec.Fields()) - 1
			a, _, _ := spec.FieldSpan(line, last)
			cut := line[:a+1]
			if a2, b2, ok := spec.FieldSpan(cut, last); !ok || a2 != a || b2 != a+1 {
				t.Errorf("cut inside the last field: %d..%d %v, want %d..%d", a2, b2, ok, a, a+1)
			}
			if _, _, ok := spec.FieldSpan(line[:a], last); ok && d.w.fixed {
				t.Errorf("a line that ends before the field found it")
			}
		})
	}
}
