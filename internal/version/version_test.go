package version

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// set sets the linker variables for one test.
func set(t *testing.T, v, r string) {
	oldV, oldR := Version, Revision
	Version, Revision = v, r
	t.Cleanup(func() { Version, Revision = oldV, oldR })
}

func TestGet(t *testing.T) {
	t.Run("linked", func(t *testing.T) {
		set(t, "1.2.0", "0123456789abcdef0123456789abcdef01234567")
		i := Get()
		if i.Version != "1.2.0" || i.Revision != Revision || i.Modified || i.GoVersion != runtime.Version() {
			t.Errorf("Get() = %+v", i)
		}
		want := "1.2.0 (revision 0123456789ab, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
		if got := i.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		var b bytes.Buffer
		Print(&b, "spoolgate")
		if b.String() != "spoolgate "+want+"\n" {
			t.Errorf("Print: %q", b.String())
		}
	})
	t.Run("plain build", func(t *testing.T) {
		set(t, "", "")
		i := Get()
		// A test binary has no VCS stamp and the module version "(devel)".
		if i.Version == "" || i.Version == "(devel)" || i.Revision == "" {
			t.Errorf("Get() = %+v: want a version and a revision even without -X", i)
		}
	})
}

func TestCollector(t *testing.T) {
	set(t, "1.2.0", "abc")
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("bank-b"))
	want := `# HELP spoolgate_build_info Build of the running spoolgate daemon: always 1; the labels say the instance, the version, the commit and the Go version.
# TYPE spoolgate_build_info gauge
spoolgate_build_info{goversion="` + runtime.Version() + `",revision="abc",spoolgate_instance="bank-b",version="1.2.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spoolgate_build_info"); err != nil {
		t.Error(err)
	}
}
