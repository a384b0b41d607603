package scripts

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
)

// repoRoot is the checkout; binDir holds spoolgate, spoolgate-receiver and
// spoolgate-sender, built once by TestMain exactly as run-local.sh builds
// them (so its build is a cache hit).
var repoRoot, binDir string

func TestMain(m *testing.M) {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	repoRoot = root
	e2e.Main(m, func(dir string) error {
		binDir = filepath.Join(dir, "bin")
		return e2e.Build(root, binDir+string(os.PathSeparator), false, "./cmd/...")
	})
}

// program returns the path of a built binary.
func program(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s was not built (does cmd/%s exist?): %v", name, name, err)
	}
	return p
}

// ---- helpers: processes, logs, polling, HTTP --------------------------------

// lineLog passes each whole line a process writes to t.Log, after its
// name. It is the tee of an e2e.Log, which serialises its writes.
type lineLog struct {
	t       *testing.T
	name    string
	partial []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.t.Logf("%s: %s", l.name, l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// daemonCmd runs a daemon with config and none of the test's SPOOLGATE_*
// variables.
func daemonCmd(t *testing.T, name, config string) *exec.Cmd {
	cmd := exec.Command(program(t, name), "-config", config)
	cmd.Env = cleanEnv()
	return cmd
}

// startProc starts cmd, logging its lines to the test's log under name; it
// is killed at the end of the test if still running.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *e2e.Proc {
	t.Helper()
	return e2e.Start(t, name, cmd, &lineLog{t: t, name: name})
}

// ready reports whether GET /readyz on addr answers 200.
func ready(addr string) bool {
	code, _, err := e2e.HTTPGet("http://" + addr + "/readyz")
	return err == nil && code == http.StatusOK
}

// cleanEnv is the test's environment without SPOOLGATE_* and RUN_LOCAL_*
// variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SPOOLGATE_") || strings.HasPrefix(kv, "RUN_LOCAL_") || strings.HasPrefix(kv, "LISTEN_") ||
			strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "DESTDIR=") || strings.HasPrefix(kv, "PREFIX=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// script runs a script of this directory and returns its combined output
// and exit code.
func script(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, "scripts", name)}, args...)...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Logf("%s %s: %s", name, strings.Join(args, " "), l)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return string(out), 0
}

// requestLines returns the lines of every request file in dir (published
// or still open), in no particular order.
func requestLines(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, de := range des {
		if !strings.Contains(de.Name(), "_request.txt") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// processNo returns field 3 of a stored request line.
func processNo(line string) string {
	f := strings.Split(line, "|")
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// baseConfig is a config for both daemons with everything under dir and
// fresh loopback ports.
type testConfig struct {
	path                     string
	listen, rAdmin, sAdmin   string
	data, spool, failed, log string
}

func newConfig(t *testing.T, dir string, extra ...string) *testConfig {
	t.Helper()
	c := &testConfig{
		path:   filepath.Join(dir, "conf.properties"),
		listen: e2e.FreeAddr(t), rAdmin: e2e.FreeAddr(t), sAdmin: e2e.FreeAddr(t),
		data: filepath.Join(dir, "request"), spool: filepath.Join(dir, "outbox"), failed: filepath.Join(dir, "failed"),
	}
	c.write(t, extra...)
	return c
}

func (c *testConfig) text(extra ...string) string {
	lines := []string{
		"receiver.listen = " + c.listen,
		"receiver.admin_listen = " + c.rAdmin,
		"receiver.data_dir = " + c.data,
		"sender.remote = " + c.listen,
		"sender.admin_listen = " + c.sAdmin,
		"sender.spool_dir = " + c.spool,
		"sender.failed_dir = " + c.failed,
		"sender.settle = 100ms",
		"sender.scan_interval = 1s",
		"log.dir =",
		"shutdown_timeout = 10s",
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

func (c *testConfig) write(t *testing.T, extra ...string) { e2e.WriteFile(t, c.path, c.text(extra...)) }

// dropResult puts one result line into the spool the way producers must.
func dropResult(t *testing.T, spool string, pno int) {
	t.Helper()
	line := fmt.Sprintf("REQ|%09d|%s|ORG01|SV01|OPS-%d|from the spool|\n", pno, time.Now().Format("20060102150405"), pno)
	if err := os.MkdirAll(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	e2e.WriteFile(t, filepath.Join(spool, fmt.Sprintf("result-%09d.txt", pno)), line)
}

// ---- systemd units ----------------------------------------------------------

// unitKeys parses a systemd unit file into "Section.Key" -> values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", path, line)
			}
			k = section + "." + strings.TrimSpace(k)
			keys[k] = append(keys[k], strings.TrimSpace(v))
		}
	}
	return keys
}

func TestSystemdUnits(t *testing.T) {
	def := conf.Default()
	unitDir := filepath.Join(repoRoot, "scripts", "systemd")
	_, port, err := net.SplitHostPort(def.Receiver.Listen)
	if err != nil {
		t.Fatal(err)
	}
	common := map[string]string{
		"Service.Type":                     "notify",
		"Service.Restart":                  "on-failure",
		"Service.User":                     "spoolgate",
		"Service.NoNewPrivileges":          "yes",
		"Service.ProtectSystem":            "strict",
		"Service.ProtectHome":              "yes",
		"Service.PrivateTmp":               "yes",
		"Service.ExecReload":               "/bin/kill -HUP $MAINPID",
		"Service.RestartPreventExitStatus": "2",
		"Service.UMask":                    "0027",
	}
	for _, tc := range []struct {
		unit      string
		want      map[string]string
		writeable []string
	}{
		{
			unit: "spoolgate-receiver.service",
			want: map[string]string{
				"Service.ExecStart":             "/usr/bin/spoolgate-receiver",
				"Unit.Requires":                 "spoolgate-receiver.socket",
				"Service.CapabilityBoundingSet": "",
				"Service.AmbientCapabilities":   "",
			},
			writeable: []string{def.Receiver.DataDir, def.Log.Dir},
		},
		{
			unit: "spoolgate-sender.service",
			want: map[string]string{
				"Service.ExecStart": "/usr/bin/spoolgate-sender",
				// A read lease tells whether a spool file's writer still
				// holds it open (sender/files.go).
				"Service.CapabilityBoundingSet": "CAP_LEASE",
				"Service.AmbientCapabilities":   "CAP_LEASE",
			},
			writeable: []string{def.Sender.SpoolDir, def.Sender.FailedDir, def.Log.Dir},
		},
		{
			unit: "spoolgate-receiver.socket",
			want: map[string]string{
				"Socket.ListenStream": port,
				"Socket.Service":      "spoolgate-receiver.service",
				"Install.WantedBy":    "sockets.target",
			},
		},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			keys := unitKeys(t, filepath.Join(unitDir, tc.unit))
			want := tc.want
			if strings.HasSuffix(tc.unit, ".service") {
				want = map[string]string{}
				for k, v := range common {
					want[k] = v
				}
				for k, v := range tc.want {
					want[k] = v
				}
			}
			for k, v := range want {
				if got := keys[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.writeable != nil {
				// The deb's environment file, then the rpm's; both optional.
				if got, want := keys["Service.EnvironmentFile"], []string{"-/etc/default/spoolgate", "-/etc/sysconfig/spoolgate"}; !slices.Equal(got, want) {
					t.Errorf("EnvironmentFile = %q, want %q", got, want)
				}
				got := strings.Fields(strings.Join(keys["Service.ReadWritePaths"], " "))
				if !slices.Equal(got, tc.writeable) {
					t.Errorf("ReadWritePaths = %q, want exactly the default dirs %q", got, tc.writeable)
				}
				stop, err := time.ParseDuration(strings.Join(keys["Service.TimeoutStopSec"], ""))
				if err != nil || stop <= def.ShutdownTimeout {
					t.Errorf("TimeoutStopSec = %q: must be a duration above shutdown_timeout %v", keys["Service.TimeoutStopSec"], def.ShutdownTimeout)
				}
			}
			if _, ok := keys["Unit.PartOf"]; ok && strings.HasSuffix(tc.unit, ".socket") {
				t.Errorf("the socket must not be PartOf the service: a service restart would close the port")
			}
		})
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed: skipping the systemd verification of the unit files (apt-get install systemd)")
		}
		program(t, "spoolgate-receiver")
		program(t, "spoolgate-sender")
		verifyUnits(t, sa, unitDir, binDir)
	})

	t.Run("systemd-analyze security", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed: skipping the sandbox rating of the units (apt-get install systemd)")
		}
		units := unitCopies(t, unitDir, binDir)
		for _, u := range []string{"spoolgate-receiver.service", "spoolgate-sender.service"} {
			if score := exposure(t, sa, filepath.Join(units, u)); score > maxExposure {
				t.Errorf("%s: systemd-analyze security rates it %.1f, want %.1f or lower", u, score, maxExposure)
			}
		}
	})
}

// maxExposure is the highest "overall exposure level" systemd-analyze
// security may give a shipped service (10 is unprotected, 6.6 was ours
// before the sandbox of issue 15).
const maxExposure = 2.5

// unitCopies copies the unit files of dir into a temporary directory with
// ExecStart pointing into bin (verify checks that the programs exist), and
// returns that directory.
func unitCopies(t *testing.T, dir, bin string) string {
	t.Helper()
	out := t.TempDir()
	copyUnits(t, dir, bin, out, plainUnits)
	return out
}

// copyUnits copies the unit files names of dir into out with ExecStart
// pointing into bin.
func copyUnits(t *testing.T, dir, bin, out string, names []string) {
	t.Helper()
	for _, u := range names {
		b, err := os.ReadFile(filepath.Join(dir, u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/bin/spoolgate"), []byte(filepath.Join(bin, "spoolgate")))
		if err := os.WriteFile(filepath.Join(out, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// verifyUnits runs systemd-analyze verify on the units in dir, their
// programs taken from bin; any complaint about them fails the test.
func verifyUnits(t *testing.T, sa, dir, bin string) {
	t.Helper()
	units := unitCopies(t, dir, bin)
	var files []string
	for _, u := range []string{"spoolgate-receiver.socket", "spoolgate-receiver.service", "spoolgate-sender.service"} {
		files = append(files, filepath.Join(units, u))
	}
	verifyFiles(t, sa, files)
}

// verifyFiles runs systemd-analyze verify on the unit files; any
// complaint about them fails the test.
func verifyFiles(t *testing.T, sa string, files []string) {
	t.Helper()
	out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
	t.Logf("systemd-analyze verify: err=%v\n%s", err, out)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "spoolgate") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil {
		t.Errorf("systemd-analyze verify failed: %v", err)
	}
}

// exposure returns the overall exposure level systemd-analyze security
// --offline=true gives the unit file; it skips the test when this
// systemd-analyze has no offline mode (systemd before 250).
func exposure(t *testing.T, sa, unit string) float64 {
	t.Helper()
	cmd := exec.Command(sa, "security", "--offline=true", "--no-pager", unit)
	cmd.Dir = filepath.Dir(unit)
	out, err := cmd.CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("offline")) && !bytes.Contains(out, []byte("exposure level")) {
		t.Skipf("systemd-analyze security --offline=true is not supported here (systemd 250 or later has it): %s", bytes.TrimSpace(out))
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no exposure level in its output (%v):\n%s", filepath.Base(unit), err, out)
	}
	score, perr := strconv.ParseFloat(string(m[1]), 64)
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("systemd-analyze security %s: %.1f", filepath.Base(unit), score)
	if score > maxExposure {
		t.Logf("%s", out)
	}
	return score
}

// ---- install.sh -------------------------------------------------------------

func TestInstall(t *testing.T) {
	program(t, "spoolgate-receiver")
	dest := t.TempDir()
	install := func(t *testing.T, prefix string, args ...string) string {
		t.Helper()
		out, code := script(t, cleanEnv("DESTDIR="+dest, "PREFIX="+prefix), "install.sh", append([]string{"-bin", binDir}, args...)...)
		if code != 0 {
			t.Fatalf("install.sh %v: exit %d", args, code)
		}
		return out
	}
	read := func(t *testing.T, p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dest, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	same := func(t *testing.T, installed, src string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repoRoot, src))
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, installed); got != string(b) {
			t.Errorf("%s differs from %s", installed, src)
		}
	}
	tree := []struct {
		path string
		mode os.FileMode
	}{
		{"usr/bin/spoolgate", 0o755},
		{"usr/bin/spoolgate-receiver", 0o755},
		{"usr/bin/spoolgate-sender", 0o755},
		{"usr/lib/spoolgate/env.sh", 0o644},
		{"usr/lib/spoolgate/startup.sh", 0o755},
		{"usr/share/doc/spoolgate/README.md", 0o644},
		{"usr/share/doc/spoolgate/LICENSE", 0o644},
		{"usr/share/doc/spoolgate/copyright", 0o644},
		{"usr/share/doc/spoolgate/conf.properties", 0o644},
		{"usr/lib/systemd/system/spoolgate-receiver.socket", 0o644},
		{"usr/lib/systemd/system/spoolgate-receiver.service", 0o644},
		{"usr/lib/systemd/system/spoolgate-sender.service", 0o644},
		{"usr/lib/systemd/system/spoolgate-receiver@.socket", 0o644},
		{"usr/lib/systemd/system/spoolgate-receiver@.service", 0o644},
		{"usr/lib/systemd/system/spoolgate-sender@.service", 0o644},
		{"usr/lib/sysusers.d/spoolgate.conf", 0o644},
		{"usr/lib/tmpfiles.d/spoolgate.conf", 0o644},
		{"etc/spoolgate", os.ModeDir | 0o750},
		{"etc/spoolgate/conf.properties", 0o640},
		{"etc/default/spoolgate", 0o640}, // it may hold secrets (issue 21)
		{"var/spool/spoolgate/request", os.ModeDir | os.ModeSetgid | 0o770},
		{"var/spool/spoolgate/outbox", os.ModeDir | os.ModeSetgid | 0o770},
		{"var/spool/spoolgate/failed", os.ModeDir | os.ModeSetgid | 0o770},
		{"var/log/spoolgate", os.ModeDir | 0o750},
	}
	programs := []string{"usr/bin/spoolgate", "usr/bin/spoolgate-receiver", "usr/bin/spoolgate-sender",
		"usr/lib/spoolgate", "usr/lib/systemd/system/spoolgate-receiver.socket",
		"usr/lib/systemd/system/spoolgate-receiver.service", "usr/lib/systemd/system/spoolgate-sender.service",
		"usr/lib/systemd/system/spoolgate-receiver@.socket", "usr/lib/systemd/system/spoolgate-receiver@.service",
		"usr/lib/systemd/system/spoolgate-sender@.service",
		"usr/lib/sysusers.d/spoolgate.conf", "usr/lib/tmpfiles.d/spoolgate.conf"}

	t.Run("fresh", func(t *testing.T) {
		out := install(t, "/usr")
		if !strings.Contains(out, "not creating user spoolgate") {
			t.Errorf("install.sh under DESTDIR should say it skips the user")
		}
		for _, f := range tree {
			fi, err := os.Stat(filepath.Join(dest, f.path))
			if err != nil {
				t.Errorf("%s: %v", f.path, err)
				continue
			}
			if got := fi.Mode() & (os.ModeDir | os.ModeSetgid | os.ModePerm); got != f.mode {
				t.Errorf("%s: mode %v, want %v", f.path, got, f.mode)
			}
		}
		same(t, "etc/spoolgate/conf.properties", "conf/conf.properties")
		for _, u := range append(plainUnits, templateUnits...) {
			same(t, "usr/lib/systemd/system/"+u, "scripts/systemd/"+u)
		}
		same(t, "usr/lib/spoolgate/startup.sh", "scripts/startup.sh")
		same(t, "usr/lib/sysusers.d/spoolgate.conf", "scripts/systemd/spoolgate.sysusers")
		same(t, "usr/lib/tmpfiles.d/spoolgate.conf", "scripts/systemd/spoolgate.tmpfiles")
		same(t, "etc/default/spoolgate", "scripts/spoolgate.env")
		// -syntax: the paths and ports are the target host's, not this one's.
		check := exec.Command(filepath.Join(dest, "usr/bin/spoolgate"), "check", "-syntax", "-config", filepath.Join(dest, "etc/spoolgate/conf.properties"))
		check.Env = cleanEnv()
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("spoolgate check on the installed conf.properties: %v\n%s", err, out)
		}
	})

	t.Run("env.sh installed layout", func(t *testing.T) {
		cmd := exec.Command("bash", "-c", `. "$1"; printf '%s\n' "$SPOOLGATE_BIN" "$SPOOLGATE_CONFIG" "$SPOOLGATE_RUN_DIR" "$SPOOLGATE_HOME"`,
			"bash", filepath.Join(dest, "usr/lib/spoolgate/env.sh"))
		cmd.Env = cleanEnv("SPOOLGATE_DEFAULTS=" + filepath.Join(dest, "etc/default/spoolgate"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("source env.sh: %v\n%s", err, out)
		}
		want := filepath.Join(dest, "usr/bin") + "\n/etc/spoolgate/conf.properties\n/run/spoolgate\n/\n"
		if string(out) != want {
			t.Errorf("installed env.sh:\n%s\nwant\n%s", out, want)
		}
	})

	t.Run("again keeps the configuration", func(t *testing.T) {
		edited := strings.Replace(read(t, "etc/spoolgate/conf.properties"), "\nsender.remote =\n", "\nsender.remote = 10.1.2.3:9010\n", 1)
		if !strings.Contains(edited, "10.1.2.3") {
			t.Fatal("shipped conf.properties has no empty sender.remote line to edit")
		}
		e2e.WriteFile(t, filepath.Join(dest, "etc/spoolgate/conf.properties"), edited)
		// An older install.sh left it readable by every user: it is kept,
		// and closed to them.
		defaults := "SPOOLGATE_LOG_LEVEL=debug\nSPOOLGATE_ADMIN_TOKEN=s3cret-0123456789abcdef\n"
		e2e.WriteFile(t, filepath.Join(dest, "etc/default/spoolgate"), defaults)
		if err := os.Chmod(filepath.Join(dest, "etc/default/spoolgate"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := install(t, "/usr")
		if fi, err := os.Stat(filepath.Join(dest, "etc/default/spoolgate")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("the kept /etc/default/spoolgate: %v %v, want mode 0640", fi.Mode(), err)
		}
		if got := read(t, "etc/spoolgate/conf.properties"); got != edited {
			t.Errorf("conf.properties was overwritten:\n%s", got)
		}
		if got := read(t, "etc/default/spoolgate"); got != defaults {
			t.Errorf("/etc/default/spoolgate was overwritten:\n%s", got)
		}
		if strings.Contains(out, "WARNING") {
			t.Errorf("the edited config should pass spoolgate check")
		}
		for _, f := range tree {
			if _, err := os.Stat(filepath.Join(dest, f.path)); err != nil {
				t.Errorf("after the second run: %v", err)
			}
		}
	})

	t.Run("uninstall keeps data", func(t *testing.T) {
		data := filepath.Join(dest, "var/spool/spoolgate/request/202611210930_request.txt")
		e2e.WriteFile(t, data, "0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|\n")
		out, code := script(t, cleanEnv("DESTDIR="+dest), "install.sh", "-uninstall")
		if code != 0 {
			t.Fatalf("uninstall: exit %d", code)
		}
		for _, p := range programs {
			if _, err := os.Stat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after -uninstall (%v)", p, err)
			}
		}
		for _, p := range []string{"etc/spoolgate/conf.properties", "etc/default/spoolgate", "var/spool/spoolgate/request/202611210930_request.txt", "var/log/spoolgate"} {
			if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
				t.Errorf("-uninstall removed %s: %v", p, err)
			}
		}
		if !strings.Contains(out, "kept") {
			t.Errorf("-uninstall should say what it kept")
		}
	})

	t.Run("prefix", func(t *testing.T) {
		install(t, "/opt/spoolgate")
		unit := read(t, "usr/lib/systemd/system/spoolgate-receiver.service")
		if !strings.Contains(unit, "ExecStart=/opt/spoolgate/bin/spoolgate-receiver\n") ||
			!strings.Contains(unit, "Documentation=file:/opt/spoolgate/share/doc/spoolgate/README.md\n") {
			t.Errorf("ExecStart or Documentation not moved to the prefix:\n%s", unit)
		}
		if _, err := os.Stat(filepath.Join(dest, "opt/spoolgate/lib/spoolgate/startup.sh")); err != nil {
			t.Error(err)
		}
	})

	// An older install.sh put programs in /usr/local and units in
	// /etc/systemd/system, where they would hide the new units.
	t.Run("older layout removed", func(t *testing.T) {
		old := []string{"usr/local/bin/spoolgate", "usr/local/bin/spoolgate-sender", "usr/local/lib/spoolgate/startup.sh",
			"etc/systemd/system/spoolgate-receiver.service", "etc/systemd/system/spoolgate-receiver.socket"}
		for _, p := range old {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dest, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			e2e.WriteFile(t, filepath.Join(dest, p), "# "+filepath.Base(p)+": from an older install.sh\n")
		}
		mine := filepath.Join(dest, "etc/systemd/system/spoolgate-sender.service")
		e2e.WriteFile(t, mine, "[Service]\nExecStart=/somewhere/else\n") // not ours: kept
		out := install(t, "/usr")
		for _, p := range old {
			if _, err := os.Stat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s of the older layout still there (%v)", p, err)
			}
		}
		if _, err := os.Stat(mine); err != nil {
			t.Errorf("a unit install.sh did not write was removed: %v", err)
		}
		if !strings.Contains(out, "removed /etc/systemd/system/spoolgate-receiver.service") {
			t.Errorf("install.sh does not say what it removed")
		}
	})
}

// ---- startup.sh -------------------------------------------------------------

func TestStartupScript(t *testing.T) {
	program(t, "spoolgate-receiver")
	home := t.TempDir()
	c := newConfig(t, home)
	runDir := filepath.Join(home, "run")
	env := cleanEnv("SPOOLGATE_HOME="+home, "SPOOLGATE_BIN="+binDir, "SPOOLGATE_CONFIG="+c.path,
		"SPOOLGATE_RUN_DIR="+runDir, "SPOOLGATE_USER=", "SPOOLGATE_START_TIMEOUT=30")
	startup := func(t *testing.T, env []string, args ...string) (string, int) {
		t.Helper()
		return script(t, env, "startup.sh", args...)
	}
	pid := func(t *testing.T, d string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(runDir, "spoolgate-"+d+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The daemons are not this process's children; a zombie (nobody reaps
	// it here) counts as gone.
	gone := func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
	}
	var pids []int
	t.Cleanup(func() {
		for _, p := range pids {
			if !gone(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})

	t.Run("status when stopped", func(t *testing.T) {
		out, code := startup(t, env, "status")
		if code != 3 || strings.Count(out, ": stopped") != 2 {
			t.Errorf("status: exit %d, want 3 and both stopped", code)
		}
	})
	t.Run("start", func(t *testing.T) {
		out, code := startup(t, env, "start")
		if code != 0 {
			t.Fatalf("start: exit %d", code)
		}
		pids = append(pids, pid(t, "receiver"), pid(t, "sender"))
		for _, d := range []string{"receiver", "sender"} {
			if !strings.Contains(out, "spoolgate-"+d+": started (pid") || !strings.Contains(out, "ready") {
				t.Errorf("start output lacks spoolgate-%s: started ... ready", d)
			}
		}
		if !ready(c.rAdmin) || !ready(c.sAdmin) {
			t.Errorf("/readyz not 200 after start returned")
		}
	})
	t.Run("start again", func(t *testing.T) {
		out, code := startup(t, env, "start")
		if code != 0 || strings.Count(out, "already running") != 2 {
			t.Errorf("second start: exit %d, want 0 and already running twice", code)
		}
	})
	t.Run("status when running", func(t *testing.T) {
		out, code := startup(t, env, "status")
		if code != 0 || strings.Count(out, "), ready") != 2 {
			t.Errorf("status: exit %d, want 0 and both running and ready", code)
		}
	})
	t.Run("delivers", func(t *testing.T) {
		dropResult(t, c.spool, 4242)
		e2e.WaitFor(t, 15*time.Second, "the spool file in the request files", func() bool {
			return slices.ContainsFunc(requestLines(t, c.data), func(l string) bool { return processNo(l) == "000004242" })
		})
	})
	t.Run("stop", func(t *testing.T) {
		r, s := pid(t, "receiver"), pid(t, "sender")
		out, code := startup(t, env, "stop")
		if code != 0 || strings.Count(out, ": stopped (pid") != 2 {
			t.Errorf("stop: exit %d, want 0 and both stopped", code)
		}
		if !gone(r) || !gone(s) {
			t.Errorf("processes still running after stop")
		}
		for _, d := range []string{"receiver", "sender"} {
			if _, err := os.Stat(filepath.Join(runDir, "spoolgate-"+d+".pid")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file of %s left behind", d)
			}
			b, _ := os.ReadFile(filepath.Join(runDir, "spoolgate-"+d+".out"))
			if !bytes.Contains(b, []byte("draining")) {
				t.Errorf("spoolgate-%s.out: no drain logged: the stop was not graceful", d)
			}
		}
		out, code = startup(t, env, "status")
		if code != 3 {
			t.Errorf("status after stop: exit %d, want 3", code)
		}
	})
	t.Run("stale pid file", func(t *testing.T) {
		// A pid that is alive but not a receiver: this test process.
		if err := os.WriteFile(filepath.Join(runDir, "spoolgate-receiver.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := startup(t, env, "restart", "receiver")
		if code != 0 || !strings.Contains(out, "started (pid") {
			t.Fatalf("restart with a stale pid file: exit %d", code)
		}
		pids = append(pids, pid(t, "receiver"))
		if _, code := startup(t, env, "stop", "receiver"); code != 0 {
			t.Errorf("stop: exit %d", code)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		out, code := startup(t, append(slices.Clip(env), "SPOOLGATE_RECEIVER_READ_TIMEOUT=5"), "start", "receiver")
		if code == 0 || !strings.Contains(out, "receiver.read_timeout") {
			t.Errorf("start with a bad config: exit %d, want non-zero and the error naming the key", code)
		}
	})
	t.Run("stop deadline", func(t *testing.T) {
		// A daemon that ignores SIGTERM is killed after shutdown_timeout+5s.
		bin := t.TempDir()
		fake := "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n"
		if err := os.WriteFile(filepath.Join(bin, "spoolgate-receiver"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		env := append(slices.Clip(env), "SPOOLGATE_BIN="+bin, "SPOOLGATE_RECEIVER_ADMIN_LISTEN=", "SPOOLGATE_SHUTDOWN_TIMEOUT=500ms")
		if _, code := startup(t, env, "start", "receiver"); code != 0 {
			t.Fatalf("start: exit %d", code)
		}
		p := pid(t, "receiver")
		pids = append(pids, p)
		start := time.Now()
		out, code := startup(t, env, "stop", "receiver")
		took := time.Since(start)
		if code != 0 || !strings.Contains(out, "did not stop within 6s: killed") {
			t.Errorf("stop: exit %d, want 0 and the kill reported", code)
		}
		if took < 5*time.Second || took > 15*time.Second {
			t.Errorf("stop took %v, want about shutdown_timeout+5s = 5.5s", took)
		}
		if !gone(p) {
			t.Errorf("the process survived the stop")
		}
	})
}

// ---- run-local.sh -----------------------------------------------------------

func runLocalEnv(t *testing.T, work string) []string {
	return cleanEnv("RUN_LOCAL_DIR="+work,
		"SPOOLGATE_RECEIVER_LISTEN="+e2e.FreeAddr(t), "SPOOLGATE_RECEIVER_ADMIN_LISTEN="+e2e.FreeAddr(t),
		"SPOOLGATE_SENDER_ADMIN_LISTEN="+e2e.FreeAddr(t))
}

func TestRunLocal(t *testing.T) {
	work := t.TempDir()
	env := runLocalEnv(t, work)
	// The sender delivers to wherever the receiver listens.
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SPOOLGATE_RECEIVER_LISTEN="); ok {
			env = append(env, "SPOOLGATE_SENDER_REMOTE="+v)
		}
	}
	daemonsGone := func(t *testing.T) {
		t.Helper()
		for _, d := range []string{"receiver", "sender"} {
			if _, err := os.Stat(filepath.Join(work, "var/run/spoolgate-"+d+".pid")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("spoolgate-%s still has a pid file after run-local.sh ended", d)
			}
		}
	}

	t.Run("once", func(t *testing.T) {
		out, code := script(t, env, "run-local.sh", "-once")
		if code != 0 || !strings.Contains(out, "all 3 samples arrived") {
			t.Fatalf("run-local.sh -once: exit %d", code)
		}
		if got := len(requestLines(t, filepath.Join(work, "var/request"))); got != 3 {
			t.Errorf("%d request lines, want 3", got)
		}
		daemonsGone(t)
	})

	// Again, interactive: a re-run finds bin/, var/ and the request files
	// of the first, and Ctrl-C stops both daemons.
	t.Run("ctrl-c", func(t *testing.T) {
		cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts/run-local.sh"))
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
		cmd.WaitDelay = 5 * time.Second
		p := startProc(t, "run-local.sh", cmd)
		e2e.WaitFor(t, 60*time.Second, "run-local.sh to deliver its samples", func() bool {
			return strings.Contains(p.Log.String(), "(samples arrived 3/3)")
		})
		// The banner names both consoles, and they answer while it runs.
		for _, kv := range env {
			for _, d := range []string{"RECEIVER", "SENDER"} {
				addr, ok := strings.CutPrefix(kv, "SPOOLGATE_"+d+"_ADMIN_LISTEN=")
				if !ok {
					continue
				}
				if !strings.Contains(p.Log.String(), "http://"+addr+"/") {
					t.Errorf("the banner does not name the %s console http://%s/", strings.ToLower(d), addr)
				}
				for _, path := range []string{"/", "/api/status"} {
					if code, _, err := e2e.HTTPGet("http://" + addr + path); code != 200 {
						t.Errorf("%s console %s: %d %v", strings.ToLower(d), path, code, err)
					}
				}
			}
		}
		// Ctrl-C: SIGINT to the whole foreground process group.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.ExitCode(t, 60*time.Second); code != 130 {
			t.Errorf("run-local.sh after Ctrl-C: exit %d, want 130", code)
		}
		if n := p.Log.Count(": stopped (pid"); n != 2 {
			t.Errorf("%d daemons reported stopped, want 2", n)
		}
		if got := len(requestLines(t, filepath.Join(work, "var/request"))); got != 6 {
			t.Errorf("%d request lines after the re-run, want 6", got)
		}
		daemonsGone(t)
	})
}

// TestBenchScript: a small run of scripts/bench.sh prints every row of its
// table with figures, reports no trouble, and leaves nothing behind.
func TestBenchScript(t *testing.T) {
	tmp := t.TempDir()
	env := append(os.Environ(), "TMPDIR="+tmp, "ROUNDS=1", "DURATION=200ms", "IDLE=50", "IDLE_HOLD=1s",
		"DRAIN_ROUNDS=1", "DRAIN_FILES=200", "BIG_DRAIN_FILES=400", "ML_LINES=500", "ML_ROUNDS=1", "PIPE_WINDOW=200", "PIPE_ONE=500",
		"LINK_ROUNDS=1", "LINK_LINES=50", "LINK_BIG_LINES=500", "LINK_FILES=50", "JOURNAL_ROUNDS=1")
	out, code := script(t, env, "bench.sh")
	if code != 0 {
		t.Fatalf("bench.sh exit %d", code)
	}
	if strings.Contains(out, "bench.sh:") {
		t.Fatalf("bench.sh reported trouble:\n%s", out)
	}
	num := `[0-9][0-9.]*`
	for _, row := range []string{
		`this disk: fsyncs/s, one writer \(p50 ms\) +\| +` + num + ` \(` + num + `\)`,
		`fsync ceiling at 16 clients, msg/s .*\| +` + num + ` +\|`,
		`receiver, one connection per message, msg/s \(fsync=always\) +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, keep-alive, msg/s \(fsync=always\) +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, 16 connections pipelining 200, msg/s +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, 500 pipelined on one connection, msg/s +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, EUC-KR fixed width vs default, pipelining, msg/s +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, keep-alive, msg/s, journal on vs off +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver, 16 pipelining 200, msg/s, journal on vs off +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`receiver lines per fsync: bench / pipelining / the sender +\| +` + num + ` / ` + num + ` / ` + num + ` +\|`,
		`receiver peak RSS MB after 50 idle connections +\| +` + num + ` +\|`,
		`sender drain 200 files, workers=16, files/s +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`sender drain 400 files, files/s +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`sender peak RSS MB \(200 / 400 files\) +\| +` + num + ` / ` + num + ` +\|`,
		`sender, 500-line file, window 32 vs 1, lines/s, fsync=always +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`sender, 500-line file, window 32 vs 1, lines/s, fsync=never +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`the same from the sender's start \(\+ settle\), fsync=always +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`the same from the sender's start \(\+ settle\), fsync=never +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link: one client's round trip, p50 ms +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link: receiver keep-alive, 16 clients, msg/s vs 16/RTT +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link: 50-line file, sender defaults, lines/s vs [0-9]+/RTT +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link 10 Mbit/s: 500 lines, window 32, vs bandwidth +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link 10 Mbit/s: 500 lines, window 1024, vs bandwidth +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link 10 Mbit/s: 500 lines, window auto, vs bandwidth +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`link: 50 single-line files, defaults, files/s vs [0-9]+/RTT +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
		`the same from the first delivery \(without start-up, settle\) +\| +` + num + ` +\| +` + num + ` +\| +` + num + ` +\|`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("no row matching %q", row)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("left behind in TMPDIR: %v", ents)
	}
}

// TestREADMEByHand runs the README's "On a new machine" commands that start
// each daemon by hand, as they are written (the go build is TestMain's):
// in a directory with bin/ and conf/, with only the ports moved (and the
// host's environment file kept out). Every command exits 0, the daemons
// start from SPOOLGATE_CONFIG alone, and status and failed, without
// -config, find the running sender through it too (issue 21).
func TestREADMEByHand(t *testing.T) {
	readme := readRepo(t, "README.md")
	begin, end := strings.Index(readme, "<!-- by hand:"), strings.Index(readme, "<!-- end by hand -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no by-hand block")
	}
	var cmds []string
	for _, l := range strings.Split(readme[begin:end], "\n")[1:] {
		if c, _, _ := strings.Cut(strings.TrimSpace(l), "#"); strings.TrimSpace(c) != "" {
			cmds = append(cmds, strings.TrimSpace(c))
		}
	}
	if len(cmds) == 0 || cmds[0] != "go build -o bin/ ./cmd/..." {
		t.Fatalf("the by-hand block does not start with the build: %q", cmds)
	}
	work := t.TempDir()
	for _, l := range [][2]string{{binDir, "bin"}, {filepath.Join(repoRoot, "conf"), "conf"}} {
		if err := os.Symlink(l[0], filepath.Join(work, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	listen, rAdmin, sAdmin := e2e.FreeAddr(t), e2e.FreeAddr(t), e2e.FreeAddr(t)
	env := cleanEnv("SPOOLGATE_DEFAULTS=/dev/null", "SPOOLGATE_RECEIVER_LISTEN="+listen, "SPOOLGATE_SENDER_REMOTE="+listen,
		"SPOOLGATE_RECEIVER_ADMIN_LISTEN="+rAdmin, "SPOOLGATE_SENDER_ADMIN_LISTEN="+sAdmin)
	for _, c := range cmds[1:] {
		if kv, ok := strings.CutPrefix(c, "export "); ok {
			env = append(env, kv)
			continue
		}
		args := strings.Fields(c)
		cmd := exec.Command(filepath.Join(work, args[0]), args[1:]...)
		cmd.Dir, cmd.Env = work, env
		switch args[0] {
		case "bin/spoolgate-receiver", "bin/spoolgate-sender":
			d := strings.TrimPrefix(args[0], "bin/spoolgate-")
			admin := map[string]string{"receiver": rAdmin, "sender": sAdmin}[d]
			p := startProc(t, d, cmd)
			t.Cleanup(func() {
				p.Signal(t, syscall.SIGINT) // Ctrl-C
				if code := p.ExitCode(t, 30*time.Second); code != 0 {
					t.Errorf("%s after Ctrl-C: exit %d", d, code)
				}
			})
			e2e.WaitFor(t, 30*time.Second, d+" ready", func() bool {
				if p.Exited() {
					t.Fatalf("%s exited: %v", d, p.Err())
				}
				return ready(admin)
			})
		default:
			out, err := cmd.CombinedOutput()
			t.Logf("%s:\n%s", c, out)
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if args[0] == "bin/spoolgate" && args[1] == "status" && strings.Contains(string(out), "not running") {
				t.Errorf("%s does not find the running sender through SPOOLGATE_CONFIG", c)
			}
		}
	}
}

// TestCitesProtocol: the code and its tests cite the contract in the
// repository, docs/PROTOCOL.md, not the section of a SPEC file no checkout
// has (issue 21).
func TestCitesProtocol(t *testing.T) {
	err := filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "dist" || d.Name() == "var") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		spec := regexp.MustCompile(`\bSPEC (§|says)`)
		for i, l := range strings.Split(string(b), "\n") {
			if spec.MatchString(l) && !strings.Contains(l, "regexp.MustCompile") {
				rel, _ := filepath.Rel(repoRoot, p)
				t.Errorf("%s:%d cites SPEC, not docs/PROTOCOL.md: %s", rel, i+1, strings.TrimSpace(l))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
