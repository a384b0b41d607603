package scripts

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"spoolgate/internal/e2e"
)

// pkgVersion is the version the tests package; any valid one will do.
const pkgVersion = "9.8.7"

var (
	pkgOnce          sync.Once
	pkgRPM, pkgDEB   string
	pkgErr           error
	pkgOut, revision string
)

// packages runs scripts/package.sh once per test binary and returns the
// paths of the rpm and the deb.
func packages(t *testing.T) (rpm, deb string) {
	t.Helper()
	pkgOnce.Do(func() {
		dist := filepath.Join(filepath.Dir(binDir), "dist")
		cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts/package.sh"), pkgVersion)
		cmd.Env = cleanEnv("DIST="+dist, "ARCH=amd64")
		out, err := cmd.CombinedOutput()
		pkgOut = string(out)
		if err != nil {
			pkgErr = err
			return
		}
		pkgRPM = filepath.Join(dist, "spoolgate-"+pkgVersion+"-1.x86_64.rpm")
		pkgDEB = filepath.Join(dist, "spoolgate_"+pkgVersion+"_amd64.deb")
		rev, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output()
		if err == nil {
			revision = strings.TrimSpace(string(rev))
		}
	})
	if pkgErr != nil {
		t.Fatalf("scripts/package.sh %s: %v\n%s", pkgVersion, pkgErr, pkgOut)
	}
	for _, p := range []string{pkgRPM, pkgDEB} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("package.sh did not write %s: %v\n%s", p, err, pkgOut)
		}
	}
	return pkgRPM, pkgDEB
}

// run runs a command and returns its stdout; a failure fails the test
// with its output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = cleanEnv()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("%s %s (stderr): %s", name, strings.Join(args, " "), strings.TrimSpace(stderr.String()))
	}
	return stdout.String()
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// docFiles are the files the packages (and install.sh) put under
// /usr/share/doc/spoolgate, from what is in the checkout, and the
// directories among them.
func docFiles(t *testing.T) (files, dirs []string) {
	t.Helper()
	const doc = "/usr/share/doc/spoolgate"
	files = []string{doc + "/README.md", doc + "/LICENSE", doc + "/copyright", doc + "/BENCHMARKS.md", doc + "/conf.properties"}
	dirs = []string{doc}
	mds, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, md := range mds {
		files = append(files, doc+"/"+filepath.Base(md))
	}
	for _, d := range []string{"monitoring", "lb"} {
		des, err := os.ReadDir(filepath.Join(repoRoot, "scripts", d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, doc+"/"+d)
		for _, de := range des {
			if de.Type().IsRegular() && !strings.HasSuffix(de.Name(), ".go") {
				files = append(files, doc+"/"+d+"/"+de.Name())
			}
		}
	}
	return files, dirs
}

// packaged is what both packages hold besides the docs and the
// environment file.
var packaged = []string{
	"/etc/spoolgate/conf.properties",
	"/usr/bin/spoolgate",
	"/usr/bin/spoolgate-receiver",
	"/usr/bin/spoolgate-sender",
	"/usr/lib/spoolgate/env.sh",
	"/usr/lib/spoolgate/startup.sh",
	"/usr/lib/systemd/system/spoolgate-receiver.service",
	"/usr/lib/systemd/system/spoolgate-receiver.socket",
	"/usr/lib/systemd/system/spoolgate-sender.service",
	"/usr/lib/systemd/system/spoolgate-receiver@.service",
	"/usr/lib/systemd/system/spoolgate-receiver@.socket",
	"/usr/lib/systemd/system/spoolgate-sender@.service",
	"/usr/lib/sysusers.d/spoolgate.conf",
	"/usr/lib/tmpfiles.d/spoolgate.conf",
}

// maintainer scripts: the package's name for each, and the file it is.
var maintainerScripts = []struct{ rpm, deb, file string }{
	{"preinstall", "preinst", "scripts/package/preinstall.sh"},
	{"postinstall", "postinst", "scripts/package/postinstall.sh"},
	{"preuninstall", "prerm", "scripts/package/preremove.sh"},
	{"postuninstall", "postrm", "scripts/package/postremove.sh"},
}

func readRepo(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkBinary checks that an installed program is the package's build:
// static, stripped, -trimpath, and -version names the version and commit.
func checkBinary(t *testing.T, path string) {
	t.Helper()
	out := run(t, path, "-version")
	want := filepath.Base(path) + " " + pkgVersion + " (revision "
	if revision != "" {
		want += revision[:12]
	}
	if !strings.HasPrefix(out, want) {
		t.Errorf("%s -version = %q, want it to start with %q", path, out, want)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Section(".symtab") != nil {
		t.Errorf("%s is not stripped (has .symtab)", path)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (has an ELF interpreter)", path)
		}
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" || settings["GOARCH"] != "amd64" {
		t.Errorf("%s: build settings %v, want -trimpath, CGO_ENABLED=0, GOARCH=amd64", path, settings)
	}
}

func TestPackageRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed: skipping the checks of the rpm (apt-get install rpm)")
	}
	rpm, _ := packages(t)

	t.Run("files", func(t *testing.T) {
		docs, docDirs := docFiles(t)
		want := append(slices.Clone(packaged), "/etc/sysconfig/spoolgate", "/etc/spoolgate", "/usr/lib/spoolgate")
		want = append(append(want, docs...), docDirs...)
		slices.Sort(want)
		got := lines(run(t, "rpm", "-qpl", rpm))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("rpm -qpl:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("config files", func(t *testing.T) {
		got := lines(run(t, "rpm", "-qpc", rpm))
		if want := []string{"/etc/spoolgate/conf.properties", "/etc/sysconfig/spoolgate"}; !slices.Equal(got, want) {
			t.Errorf("rpm -qpc = %q, want %q", got, want)
		}
		// Flags (c config, n noreplace), modes and owners.
		attrs := map[string]string{}
		for _, l := range lines(run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\n]`, rpm)) {
			name, rest, _ := strings.Cut(l, " ")
			attrs[name] = rest
		}
		for path, want := range map[string]string{
			"/etc/spoolgate/conf.properties": "cn -rw-r----- root:spoolgate",
			"/etc/sysconfig/spoolgate":       "cn -rw-r----- root:spoolgate", // it may hold secrets (issue 21)
			"/etc/spoolgate":                 " drwxr-x--- root:spoolgate",
			"/usr/bin/spoolgate-receiver":    " -rwxr-xr-x root:root",
			"/usr/lib/spoolgate/startup.sh":  " -rwxr-xr-x root:root",
		} {
			if got := attrs[path]; got != want {
				t.Errorf("%s: %q, want %q", path, got, want)
			}
		}
	})

	t.Run("scripts", func(t *testing.T) {
		out := run(t, "rpm", "-qp", "--scripts", rpm)
		for _, s := range maintainerScripts {
			if !strings.Contains(out, s.rpm+" scriptlet (using /bin/sh):\n"+readRepo(t, s.file)) {
				t.Errorf("rpm --scripts: no %s scriptlet, or it is not %s:\n%s", s.rpm, s.file, out)
			}
		}
	})

	// The metadata names the project and its licence (it said
	// spoolgate@localhost, https://localhost/spoolgate, Proprietary), and
	// the package requires what its scriptlets run (it required nothing;
	// issue 21).
	t.Run("metadata", func(t *testing.T) {
		info := run(t, "rpm", "-qp", "--qf", `%{VENDOR}|%{PACKAGER}|%{LICENSE}|%{URL}`, rpm)
		if want := "The spoolgate authors|The spoolgate authors|Apache-2.0|(none)"; info != want {
			t.Errorf("vendor|packager|license|url = %q, want %q", info, want)
		}
		var requires []string
		for _, r := range lines(run(t, "rpm", "-qp", "--requires", rpm)) {
			if !strings.HasPrefix(r, "rpmlib(") {
				requires = append(requires, r)
			}
		}
		slices.Sort(requires)
		if want := []string{"/bin/sh", "coreutils", "grep", "shadow-utils"}; !slices.Equal(requires, want) {
			t.Errorf("rpm --requires = %q, want %q", requires, want)
		}
	})

	// rpm runs the scriptlets chrooted into the new root, which has no
	// shell: --noscripts (TestPackageScripts and the dpkg run exercise the
	// same scripts); --nodeps: the empty root has none of its requires.
	t.Run("rpm --root", func(t *testing.T) {
		root := t.TempDir()
		run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
		run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--noscripts", "--nodeps", rpm)
		if got := strings.TrimSpace(run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-q", "spoolgate")); got != "spoolgate-"+pkgVersion+"-1.x86_64" {
			t.Errorf("rpm -q spoolgate in the root: %q", got)
		}
		for _, p := range []string{"spoolgate", "spoolgate-receiver", "spoolgate-sender"} {
			checkBinary(t, filepath.Join(root, "usr/bin", p))
		}
		for _, u := range append(plainUnits, templateUnits...) {
			if got := readFile(t, filepath.Join(root, "usr/lib/systemd/system", u)); got != readRepo(t, "scripts/systemd/"+u) {
				t.Errorf("installed %s differs from scripts/systemd/%s", u, u)
			}
		}
		if got := readFile(t, filepath.Join(root, "etc/sysconfig/spoolgate")); got != readRepo(t, "scripts/spoolgate.env") {
			t.Errorf("/etc/sysconfig/spoolgate differs from scripts/spoolgate.env")
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dpkgRoot is an empty root for dpkg --root.
func dpkgRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"status", "available"} {
		e2e.WriteFile(t, filepath.Join(admin, f), "")
	}
	return root
}

// passwdID returns the uid and gid of name in root's /etc/passwd.
func passwdID(t *testing.T, root, name string) (uid, gid string) {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 7 && f[0] == name {
			return f[2], f[3]
		}
	}
	t.Fatalf("no user %s in the root's /etc/passwd", name)
	return "", ""
}

func TestPackageDEB(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping the checks of the deb (apt-get install dpkg)", tool)
		}
	}
	_, deb := packages(t)

	t.Run("control", func(t *testing.T) {
		for field, want := range map[string]string{"Package": "spoolgate", "Version": pkgVersion + "-1", "Architecture": "amd64",
			"Maintainer": "The spoolgate authors", "Homepage": "", "Pre-Depends": "passwd"} {
			if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
				t.Errorf("%s: %q, want %q", field, got, want)
			}
		}
		ctrl := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, ctrl)
		if got, want := lines(readFile(t, filepath.Join(ctrl, "conffiles"))), []string{"/etc/default/spoolgate", "/etc/spoolgate/conf.properties"}; !slices.Equal(got, want) {
			t.Errorf("conffiles = %q, want %q", got, want)
		}
		for _, s := range maintainerScripts {
			if got := readFile(t, filepath.Join(ctrl, s.deb)); got != readRepo(t, s.file) {
				t.Errorf("%s is not %s:\n%s", s.deb, s.file, got)
			}
		}
		// The user line the preinst creates is the sysusers.d line.
		var sysusers string
		for _, l := range lines(readRepo(t, "scripts/systemd/spoolgate.sysusers")) {
			if !strings.HasPrefix(l, "#") {
				sysusers = l
			}
		}
		if !strings.Contains(readRepo(t, "scripts/package/preinstall.sh"), "echo '"+sysusers+"'") {
			t.Errorf("preinstall.sh does not create the user of spoolgate.sysusers (%q)", sysusers)
		}
	})

	// The same paths as install.sh: the deb's files against a DESTDIR
	// install's (the spool and log directories come from tmpfiles.d in the
	// packages, so only files are compared).
	t.Run("same paths as install.sh", func(t *testing.T) {
		var inDeb []string
		out := run(t, "dpkg-deb", "-c", deb)
		for _, l := range lines(out) {
			f := strings.Fields(l)
			name := strings.TrimPrefix(f[len(f)-1], ".")
			if !strings.HasSuffix(name, "/") && strings.HasPrefix(f[0], "-") {
				inDeb = append(inDeb, name)
			}
		}
		dest := t.TempDir()
		if out, code := script(t, cleanEnv("DESTDIR="+dest, "ENV_FILE=/etc/default/spoolgate"), "install.sh", "-bin", binDir); code != 0 {
			t.Fatalf("install.sh: exit %d\n%s", code, out)
		}
		var installed []string
		err := filepath.WalkDir(dest, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				installed = append(installed, strings.TrimPrefix(p, dest))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(inDeb)
		slices.Sort(installed)
		if !slices.Equal(inDeb, installed) {
			t.Errorf("the deb holds\n%s\ninstall.sh installs\n%s", strings.Join(inDeb, "\n"), strings.Join(installed, "\n"))
		}
	})

	// dpkg installs into a throwaway root, running the maintainer scripts
	// outside a chroot with DPKG_ROOT set (the root has no shell); the
	// real system is not touched.
	t.Run("dpkg --root", func(t *testing.T) {
		root := dpkgRoot(t)
		// --force-depends: the empty root has no passwd (Pre-Depends).
		dpkg := func(t *testing.T, args ...string) string {
			t.Helper()
			return run(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-confold", "--force-depends"}, args...)...)
		}
		at := func(p string) string { return filepath.Join(root, p) }
		exists := func(t *testing.T, p string, want bool) {
			t.Helper()
			_, err := os.Stat(at(p))
			if got := err == nil; got != want {
				t.Errorf("%s exists: %v, want %v (%v)", p, got, want, err)
			}
		}
		dpkg(t, "-i", deb)
		uid, gid := passwdID(t, root, "spoolgate")
		for _, d := range []struct {
			path, owner string
			mode        os.FileMode
		}{
			{"var/spool/spoolgate/request", uid + ":" + gid, os.ModeDir | os.ModeSetgid | 0o770},
			{"var/spool/spoolgate/outbox", uid + ":" + gid, os.ModeDir | os.ModeSetgid | 0o770},
			{"var/spool/spoolgate/failed", uid + ":" + gid, os.ModeDir | os.ModeSetgid | 0o770},
			{"var/log/spoolgate", uid + ":" + gid, os.ModeDir | 0o750},
		} {
			fi, err := os.Stat(at(d.path))
			if err != nil {
				t.Errorf("%s: %v", d.path, err)
				continue
			}
			if got := fi.Mode() & (os.ModeDir | os.ModeSetgid | os.ModePerm); got != d.mode {
				t.Errorf("%s: mode %v, want %v", d.path, got, d.mode)
			}
			if got := ownerOf(fi); got != d.owner {
				t.Errorf("%s: owner %s, want %s (spoolgate in the root)", d.path, got, d.owner)
			}
		}
		for _, p := range []string{"spoolgate", "spoolgate-receiver", "spoolgate-sender"} {
			checkBinary(t, at("usr/bin/"+p))
		}
		if sa, err := exec.LookPath("systemd-analyze"); err == nil {
			verifyUnits(t, sa, at("usr/lib/systemd/system"), at("usr/bin"))
			for _, u := range []string{"spoolgate-receiver.service", "spoolgate-sender.service"} {
				if score := exposure(t, sa, filepath.Join(unitCopies(t, at("usr/lib/systemd/system"), at("usr/bin")), u)); score > maxExposure {
					t.Errorf("installed %s: exposure %.1f, want %.1f or lower", u, score, maxExposure)
				}
			}
			verifyInstance(t, sa, at("usr/lib/systemd/system"), at("usr/bin"))
		} else {
			t.Log("systemd-analyze not installed: the installed units are not verified (apt-get install systemd)")
		}
		if out, err := exec.Command(at("usr/bin/spoolgate"), "check", "-syntax", "-config", at("etc/spoolgate/conf.properties")).CombinedOutput(); err != nil {
			t.Errorf("spoolgate check on the installed conf.properties: %v\n%s", err, out)
		}

		// The environment file may hold secrets: root and group spoolgate
		// read it, no one else (it was 0644; issue 21).
		// (dpkg --root takes owners by name from this host, which has no
		// spoolgate: the deb's listing says whose they are.)
		if fi, err := os.Stat(at("etc/default/spoolgate")); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o640 {
			t.Errorf("/etc/default/spoolgate: %v, want mode 0640", fi.Mode())
		}
		listing := run(t, "dpkg-deb", "-c", deb)
		for _, want := range []string{`(?m)^-rw-r----- root/spoolgate .* \./etc/default/spoolgate$`, `(?m)^drwxr-xr-x root/root .* \./etc/default/$`} {
			if !regexp.MustCompile(want).MatchString(listing) {
				t.Errorf("dpkg-deb -c has no line %s:\n%s", want, listing)
			}
		}

		// Upgrade (the same version again: preinst upgrade, postinst
		// configure OLD): the edited config and the data stay, and an
		// edited environment file an older package left readable by every
		// user is closed to them.
		edited := strings.Replace(readFile(t, at("etc/spoolgate/conf.properties")), "\nsender.remote =\n", "\nsender.remote = 10.1.2.3:9010\n", 1)
		e2e.WriteFile(t, at("etc/spoolgate/conf.properties"), edited)
		e2e.WriteFile(t, at("var/spool/spoolgate/request/202611210930_request.txt"), "0078|REQ|000000123|20261121093000|ORG01|SV01|CUST-000123|hello world payload|\n")
		envEdited := readFile(t, at("etc/default/spoolgate")) + "SPOOLGATE_ADMIN_TOKEN=s3cret-0123456789abcdef\n"
		e2e.WriteFile(t, at("etc/default/spoolgate"), envEdited)
		if err := os.Chmod(at("etc/default/spoolgate"), 0o644); err != nil {
			t.Fatal(err)
		}
		dpkg(t, "-i", deb)
		if got := readFile(t, at("etc/spoolgate/conf.properties")); got != edited {
			t.Errorf("the upgrade overwrote the edited conf.properties")
		}
		if fi, err := os.Stat(at("etc/default/spoolgate")); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm()&0o007 != 0 || readFile(t, at("etc/default/spoolgate")) != envEdited {
			t.Errorf("after the upgrade /etc/default/spoolgate is %v, want it kept and unreadable by others", fi.Mode())
		}

		// Remove keeps config, data and the user; purge drops the config
		// files (Debian's rule) and keeps data, logs and the user.
		dpkg(t, "--remove", "spoolgate")
		exists(t, "usr/bin/spoolgate-receiver", false)
		exists(t, "usr/lib/systemd/system/spoolgate-receiver.service", false)
		exists(t, "etc/spoolgate/conf.properties", true)
		exists(t, "etc/default/spoolgate", true)
		exists(t, "var/spool/spoolgate/request/202611210930_request.txt", true)
		dpkg(t, "--purge", "spoolgate")
		exists(t, "etc/spoolgate/conf.properties", false)
		exists(t, "var/spool/spoolgate/request/202611210930_request.txt", true)
		exists(t, "var/log/spoolgate", true)
		passwdID(t, root, "spoolgate")
	})
}

// ownerOf returns "uid:gid" of a file.
func ownerOf(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?"
	}
	return strconv.FormatUint(uint64(st.Uid), 10) + ":" + strconv.FormatUint(uint64(st.Gid), 10)
}

// TestPackageScripts runs the maintainer scripts as rpm and dpkg call them
// on a host, with systemctl, systemd-tmpfiles, systemd-sysusers and useradd
// replaced by stand-ins that log their arguments, in a mount namespace
// whose /run is empty or holds /run/systemd/system (booted with systemd).
// It proves what the packages do on install, upgrade and removal without
// touching this machine's services or users.
func TestPackageScripts(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not installed: skipping the maintainer script runs (apt-get install util-linux)")
	}
	if out, err := exec.Command(unshare, "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespace here (unshare -m: %v %s): skipping the maintainer script runs", err, bytes.TrimSpace(out))
	}
	// With /etc/systemd/system on this host, a named instance is enabled
	// there (in a tmpfs of the namespace): removal disables it too.
	withInstance, enabled := false, ""
	if fi, err := os.Stat("/etc/systemd/system"); err == nil && fi.IsDir() {
		withInstance, enabled = true, " spoolgate-receiver@bank-b.socket spoolgate-receiver@bank-b.service spoolgate-sender@bank-b.service"
	}
	// fakes is a PATH directory: the stand-ins, and (when withSystemd is
	// false) only the host tools the scripts need, so that
	// systemd-sysusers and systemd-tmpfiles are missing.
	fakes := func(t *testing.T, withSystemd bool) (dir, logFile string) {
		dir = t.TempDir()
		logFile = filepath.Join(t.TempDir(), "calls")
		fake := "#!/bin/sh\necho \"${0##*/} $*\" >>\"$FAKE_LOG\"\n"
		stand := map[string]string{"systemctl": fake, "useradd": fake}
		if withSystemd {
			stand["systemd-tmpfiles"] = fake
			stand["systemd-sysusers"] = fake + "cat >>\"$FAKE_LOG\"\n"
		}
		for name, text := range stand {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, tool := range []string{"sh", "grep", "getent", "id", "cat", "mkdir", "mount", "chown", "chmod", "ln"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Fatalf("%s: %v", tool, err)
			}
			if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
				t.Fatal(err)
			}
		}
		return dir, logFile
	}
	// run runs a maintainer script and returns the stand-ins' calls and
	// the script's output.
	run := func(t *testing.T, booted, withSystemd bool, script string, args ...string) (calls, out string) {
		t.Helper()
		dir, logFile := fakes(t, withSystemd)
		setup := "mount -t tmpfs tmpfs /run"
		if booted {
			setup += " && mkdir -p /run/systemd/system"
		}
		if withInstance {
			// A named instance enabled (spoolgate init bank-b, then
			// systemctl enable), in a tmpfs over the host's units.
			w := "/etc/systemd/system/multi-user.target.wants/"
			setup += " && mount -t tmpfs tmpfs /etc/systemd/system && mkdir -p " + w + " /etc/systemd/system/sockets.target.wants" +
				" && ln -s /usr/lib/systemd/system/spoolgate-receiver@.socket /etc/systemd/system/sockets.target.wants/spoolgate-receiver@bank-b.socket" +
				" && ln -s /usr/lib/systemd/system/spoolgate-receiver@.service " + w + "spoolgate-receiver@bank-b.service" +
				" && ln -s /usr/lib/systemd/system/spoolgate-sender@.service " + w + "spoolgate-sender@bank-b.service"
		}
		cmd := exec.Command(unshare, append([]string{"-m", filepath.Join(dir, "sh"), "-c", setup + ` && exec sh "$0" "$@"`,
			filepath.Join(repoRoot, "scripts/package", script)}, args...)...)
		cmd.Env = []string{"PATH=" + dir, "FAKE_LOG=" + logFile, "LC_ALL=C"}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", script, args, err, b)
		}
		c, _ := os.ReadFile(logFile)
		return string(c), string(b)
	}
	const (
		reload  = "systemctl daemon-reload\n"
		restart = "systemctl try-restart spoolgate-receiver.service spoolgate-sender.service spoolgate-receiver@*.service spoolgate-sender@*.service\n"
		tmpfile = "systemd-tmpfiles --create spoolgate.conf\n"
	)
	disable := "systemctl disable --now spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service" + enabled + "\n"
	for _, tc := range []struct {
		name, script string
		args         []string
		booted       bool
		calls        string
		out          string // in the output ("" for anything)
	}{
		{"deb install", "postinstall.sh", []string{"configure", ""}, true, tmpfile + reload, "systemctl enable --now"},
		{"rpm install", "postinstall.sh", []string{"1"}, true, tmpfile + reload, "systemctl enable --now"},
		// An upgrade restarts what runs; the socket stays, the port open.
		{"deb upgrade", "postinstall.sh", []string{"configure", "1.0.0-1"}, true, tmpfile + reload + restart, ""},
		{"rpm upgrade", "postinstall.sh", []string{"2"}, true, tmpfile + reload + restart, ""},
		{"upgrade without systemd", "postinstall.sh", []string{"configure", "1.0.0-1"}, false, tmpfile, ""},
		{"deb abort-upgrade", "postinstall.sh", []string{"abort-upgrade", "1.0.0-1"}, true, "", ""},
		{"deb remove", "preremove.sh", []string{"remove"}, true, disable, ""},
		{"rpm erase", "preremove.sh", []string{"0"}, true, disable, ""},
		{"deb upgrade: old prerm", "preremove.sh", []string{"upgrade", "9.8.7-1"}, true, "", ""},
		{"rpm upgrade: old preun", "preremove.sh", []string{"1"}, true, "", ""},
		{"remove without systemd", "preremove.sh", []string{"remove"}, false,
			"systemctl --no-reload disable spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service" + enabled + "\n", ""},
		{"deb purge", "postremove.sh", []string{"purge"}, true, reload, "kept /var/spool/spoolgate"},
		{"rpm erase: postun", "postremove.sh", []string{"0"}, true, reload, "kept /var/spool/spoolgate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, out := run(t, tc.booted, true, tc.script, tc.args...)
			if calls != tc.calls {
				t.Errorf("%s %q called\n%s\nwant\n%s", tc.script, tc.args, calls, tc.calls)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("%s %q printed %q, want %q in it", tc.script, tc.args, out, tc.out)
			}
		})
	}

	// preinstall creates the user unless it exists: with systemd-sysusers
	// (the line of spoolgate.sysusers on its stdin), else with useradd.
	t.Run("preinstall", func(t *testing.T) {
		if exec.Command("id", "spoolgate").Run() == nil {
			t.Skip("this machine has a user spoolgate: preinstall would (rightly) create none")
		}
		calls, _ := run(t, true, true, "preinstall.sh", "install")
		want := "systemd-sysusers --replace=/usr/lib/sysusers.d/spoolgate.conf -\n" +
			`u spoolgate - "spoolgate gateway" /var/spool/spoolgate /usr/sbin/nologin` + "\n"
		if calls != want {
			t.Errorf("with systemd-sysusers: %q, want %q", calls, want)
		}
		calls, _ = run(t, false, false, "preinstall.sh", "1")
		want = "useradd --system --user-group --home-dir /var/spool/spoolgate --no-create-home --shell /usr/sbin/nologin --comment spoolgate gateway spoolgate\n"
		if calls != want {
			t.Errorf("without systemd-sysusers: %q, want %q", calls, want)
		}
	})
}

// TestCopyright: the project's licence is in the repository (Apache-2.0,
// the packages' licence), and the copyright file the packages ship names
// every Go module linked into the programs with its licence, so that it
// cannot fall behind go.mod (issue 21).
func TestCopyright(t *testing.T) {
	if l := readRepo(t, "LICENSE"); !strings.Contains(l, "Apache License") || !strings.Contains(l, "Version 2.0, January 2004") {
		t.Error("LICENSE is not the Apache License 2.0")
	}
	copyright := readRepo(t, "scripts/package/copyright")
	if !strings.Contains(copyright, "Copyright: The spoolgate authors\nLicense: Apache-2.0\n") {
		t.Error("the copyright file does not give the project's copyright and licence")
	}
	seen := map[string]bool{}
	for _, p := range []string{"spoolgate", "spoolgate-receiver", "spoolgate-sender"} {
		bi, err := buildinfo.ReadFile(program(t, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range bi.Deps {
			if !seen[d.Path] {
				seen[d.Path] = true
				if !regexp.MustCompile(`(?m)^ ` + regexp.QuoteMeta(d.Path) + ` +\S`).MatchString(copyright) {
					t.Errorf("scripts/package/copyright does not name %s, linked into %s, with its licence", d.Path, p)
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no module found in the programs' build info")
	}
}
