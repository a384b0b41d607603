package conf

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// The README's config reference is generated from conf.properties, so the
// two cannot drift: this test fails when they differ, and rewrites the
// README's block when run with SPOOLGATE_UPDATE_README=1.
const (
	refBegin = "<!-- config-reference: generated from conf/conf.properties by conf/readme_test.go; SPOOLGATE_UPDATE_README=1 go test ./conf regenerates it -->"
	refEnd   = "<!-- end of config-reference -->"
)

// configReference renders every key of conf.properties with its default and
// its comment as a Markdown table.
func configReference(t *testing.T) string {
	t.Helper()
	f, err := os.Open("conf.properties")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n|-----|---------|---------|\n")
	var comment string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			comment = ""
		case strings.HasPrefix(line, "#"):
			comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		default:
			key, val, _ := strings.Cut(line, "=")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			if strings.HasPrefix(key, "protocol.request.field.") {
				continue // one row for the whole spec
			}
			if key == "protocol.request.fields" {
				comment = "the request spec (see \"The wire spec\"); `protocol.request.field.NAME` gives each field's rule, `protocol.result.*` the same for what the sender sends"
			}
			def := "`" + val + "`"
			if val == "" {
				def = "(empty)"
			}
			b.WriteString("| `" + key + "` | " + strings.ReplaceAll(def, "|", `\|`) + " | " + strings.ReplaceAll(comment, "|", `\|`) + " |\n")
			comment = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestREADMEConfigReference(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, refBegin), strings.Index(s, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no config reference block (%q … %q)", refBegin, refEnd)
	}
	want := refBegin + "\n\n" + configReference(t) + "\n" + refEnd
	if got := s[i : j+len(refEnd)]; got != want {
		if os.Getenv("SPOOLGATE_UPDATE_README") == "1" {
			if err := os.WriteFile("../README.md", []byte(s[:i]+want+s[j+len(refEnd):]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("README.md's config reference differs from conf/conf.properties: run SPOOLGATE_UPDATE_README=1 go test ./conf -run README")
	}
}

// TestREADMEPartnerExample holds the worked example of the README's "Your
// partner's format" to conf/testdata/good_dialect_euckr_fixed.properties:
// the same settings, and the dialect line the README quotes.
func TestREADMEPartnerExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## Your partner's format")
	if i < 0 {
		t.Fatal(`README.md has no "Your partner's format"`)
	}
	s = s[i:]
	j := strings.Index(s, "In `conf.properties`:\n\n")
	if j < 0 {
		t.Fatal("no example block")
	}
	var block strings.Builder
	for line := range strings.Lines(s[j+len("In `conf.properties`:\n\n"):]) {
		if !strings.HasPrefix(line, "    ") {
			break
		}
		block.WriteString(strings.TrimPrefix(line, "    "))
	}
	got, err := Load(write(t, "conf.properties", block.String()))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load("testdata/good_dialect_euckr_fixed.properties")
	if err != nil {
		t.Fatal(err)
	}
	if live, restart := got.LiveDiff(want); live != nil || restart != nil {
		t.Errorf("the README's example differs from good_dialect_euckr_fixed.properties in %v %v", live, restart)
	}
	quoted := strings.Join(strings.Fields(s[:strings.Index(s, "`conf/testdata/good_dialect_euckr_fixed.properties`")]), " ")
	if !strings.Contains(quoted, "`dialect: "+got.Protocol.Dialect.String()+"`") {
		t.Errorf("the README does not quote the dialect line %q", got.Protocol.Dialect)
	}
}
