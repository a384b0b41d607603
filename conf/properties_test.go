package conf

import (
	"slices"
	"testing"
)

func TestParseProperties(t *testing.T) {
	type kv = [2]string
	tests := []struct {
		name string
		in   string
		want []kv
		err  string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# c\n  ! c\n\n   \n", nil, ""},
		{"separators", "a=1\nb = 2\nc:3\nd : 4\ne 5\nf\t6\n", []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}, {"f", "6"}}, ""},
		{"empty values", "a=\nb\nc =   \n", []kv{{"a", ""}, {"b", ""}, {"c", ""}}, ""},
		{"second separator is value", "a==b\nc = =d\ne::f\n", []kv{{"a", "=b"}, {"c", "=d"}, {"e", ":f"}}, ""},
		{"leading blanks of line", "   a = 1\n", []kv{{"a", "1"}}, ""},
		{"trailing blanks trimmed", "a = 1  \t\n", []kv{{"a", "1"}}, ""},
		{"escaped trailing blank kept", `a = 1\ ` + "\n", []kv{{"a", "1 "}}, ""},
		{"hash inside value", "a = x # not a comment\n", []kv{{"a", "x # not a comment"}}, ""},
		{"keys lower-cased", "Receiver.Listen = X\n", []kv{{"receiver.listen", "X"}}, ""},
		{"continuation", "a = 1,\\\n    2,\\\n  3\nb = 4\n", []kv{{"a", "1,2,3"}, {"b", "4"}}, ""},
		{"continued comment-like line is content", "a = x\\\n  # y\n", []kv{{"a", "x# y"}}, ""},
		{"even backslashes do not continue", "a = x\\\\\nb = y\n", []kv{{"a", `x\`}, {"b", "y"}}, ""},
		{"continuation at EOF", "a = x\\", []kv{{"a", "x"}}, ""},
		{"escapes", `a = t\tn\nr\rf\fu\u00e9x\=\:\#\\` + "\n", []kv{{"a", "t\tn\nr\rf\fu\u00e9x=:#\\"}}, ""},
		{"escaped separator in key", `a\=b = c` + "\n", []kv{{"a=b", "c"}}, ""},
		{"escaped blank in key", `a\ b c` + "\n", []kv{{"a b", "c"}}, ""},
		{"CRLF and CR", "a = 1\r\nb = 2\rc = 3", []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}}, ""},
		{"BOM", "\uFEFFa = 1\n", []kv{{"a", "1"}}, ""},
		{"UTF-8 value", "a = héllo wörld\n", []kv{{"a", "héllo wörld"}}, ""},
		{"short unicode escape", `a = \u12`, nil, `line 1: bad escape \u12: want \uXXXX`},
		{"bad unicode escape", "x = 1\n\n" + `a = \uZZZZ`, nil, `line 3: bad escape \uZZZZ: want \uXXXX`},
		{"surrogate escape", `a = \ud800`, nil, `line 1: bad escape \ud800: want \uXXXX`},
		{"invalid UTF-8", "a = \xff\n", nil, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := parseProperties([]byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []kv
			for _, e := range entries {
				got = append(got, kv{e.key, e.value})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePropertiesLines(t *testing.T) {
	entries, err := parseProperties([]byte("# c\na = 1,\\\n 2\n\nb = 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].line != 2 || entries[1].line != 5 {
		t.Errorf("entries %+v, want lines 2 and 5", entries)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"receiver.lisen", "receiver.listen", 1},
	}
	for _, tt := range tests {
		t.Run(tt.a+"/"+tt.b, func(t *testing.T) {
			if got := editDistance(tt.a, tt.b); got != tt.want {
				t.Errorf("editDistance = %d, want %d", got, tt.want)
			}
		})
	}
}
