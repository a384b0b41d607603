package protocol

import "testing"

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
