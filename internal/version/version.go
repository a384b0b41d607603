// Package version is the one home of spoolgate's version: what -version
// prints, what the start-up log line says and what the
// spoolgate_build_info gauge exports.
//
// scripts/package.sh sets Version and Revision at link time:
//
//	go build -ldflags "-X spoolgate/internal/version.Version=1.2.0 -X spoolgate/internal/version.Revision=$(git rev-parse HEAD)"
//
// A plain go build leaves them empty; Get then takes what the Go toolchain
// recorded in the binary (the module version it derives from the VCS, and
// vcs.revision), so a developer's build still says which commit it is.
package version

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker (-X); empty in a plain go build.
var (
	Version  string
	Revision string
)

// Info describes the running binary.
type Info struct {
	Version   string // "1.2.0", else the module version Go derived, else "dev"
	Revision  string // the full commit hash, else "unknown"
	Modified  bool   // built from a work tree with uncommitted changes (plain builds only)
	GoVersion string // runtime.Version(), e.g. "go1.26.8"
	Platform  string // GOOS/GOARCH
}

// Get returns the running binary's Info. It is safe for concurrent use.
func Get() Info {
	i := Info{Version: Version, Revision: Revision, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Revision == "" {
					i.Revision = s.Value
				}
			case "vcs.modified":
				i.Modified = Revision == "" && s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Revision == "" {
		i.Revision = "unknown"
	}
	return i
}

// ShortRevision is the first 12 characters of the revision, with
// "-modified" when the work tree had uncommitted changes.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified {
		r += "-modified"
	}
	return r
}

// String is the line -version prints after the program's name:
// "1.2.0 (revision 0123456789ab, go1.26.8, linux/amd64)".
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s, %s)", i.Version, i.ShortRevision(), i.GoVersion, i.Platform)
}

// Print writes "PROG VERSION (revision …, GOVERSION, PLATFORM)", the
// output of every binary's -version.
func Print(w io.Writer, prog string) {
	fmt.Fprintf(w, "%s %s\n", prog, Get())
}

// Collector returns the spoolgate_build_info gauge: always 1, with the
// labels spoolgate_instance (the instance's name, conf.Config.Instance;
// empty for the unnamed one), version, revision (the full commit hash)
// and goversion, so a dashboard can show which build runs where and
// group a host's instances by name. The name's label is not "instance":
// Prometheus gives every target an instance label (its address) and
// would store a scraped one as exported_instance.
func Collector(instance string) prometheus.Collector {
	i := Get()
	rev := i.Revision
	if i.Modified {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "spoolgate_build_info",
		Help:        "Build of the running spoolgate daemon: always 1; the labels say the instance, the version, the commit and the Go version.",
		ConstLabels: prometheus.Labels{"spoolgate_instance": instance, "version": i.Version, "revision": rev, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
