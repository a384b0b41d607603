package scripts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"spoolgate/internal/e2e"
)

// The units of the unnamed instance and the templates of the named ones
// (docs/PROTOCOL.md §10, several partners on one host).
var (
	plainUnits    = []string{"spoolgate-receiver.socket", "spoolgate-receiver.service", "spoolgate-sender.service"}
	templateUnits = []string{"spoolgate-receiver@.socket", "spoolgate-receiver@.service", "spoolgate-sender@.service"}
)

// TestSystemdTemplateUnits: the template units are the plain ones for
// instance %i: the same sandbox, type, restart and stop settings; the
// config /etc/spoolgate/%i.properties, no environment file (the unnamed
// instance's overrides are not every partner's), write access to the
// instance's own directories only (where spoolgate init puts them), and
// the socket's port from init's drop-in. An instance made by the real
// spoolgate init verifies and rates 2.5 or lower.
func TestSystemdTemplateUnits(t *testing.T) {
	unitDir := filepath.Join(repoRoot, "scripts", "systemd")
	for _, tc := range []struct {
		template, plain, exec string
		writeable             []string
		want                  map[string]string
	}{
		{"spoolgate-receiver@.service", "spoolgate-receiver.service", "/usr/bin/spoolgate-receiver",
			[]string{"-/var/spool/spoolgate/%i/request", "-/var/log/spoolgate/%i"},
			map[string]string{"Unit.Requires": "spoolgate-receiver@%i.socket", "Unit.After": "spoolgate-receiver@%i.socket network.target",
				"Install.Also": "spoolgate-receiver@%i.socket"}},
		{"spoolgate-sender@.service", "spoolgate-sender.service", "/usr/bin/spoolgate-sender",
			[]string{"-/var/spool/spoolgate/%i/outbox", "-/var/spool/spoolgate/%i/failed", "-/var/log/spoolgate/%i"}, nil},
		{"spoolgate-receiver@.socket", "spoolgate-receiver.socket", "", nil,
			map[string]string{"Socket.Service": "spoolgate-receiver@%i.service"}},
	} {
		t.Run(tc.template, func(t *testing.T) {
			tmpl, plain := unitKeys(t, filepath.Join(unitDir, tc.template)), unitKeys(t, filepath.Join(unitDir, tc.plain))
			own := map[string]bool{"Unit.Description": true, "Service.ExecStart": true, "Service.EnvironmentFile": true,
				"Service.ReadWritePaths": true, "Socket.ListenStream": true}
			for k := range tc.want {
				own[k] = true
			}
			for k, v := range plain {
				if !own[k] && !slices.Equal(tmpl[k], v) {
					t.Errorf("%s = %q, want %q as in %s", k, tmpl[k], v, tc.plain)
				}
			}
			for k, v := range tmpl {
				if _, ok := plain[k]; !ok && !own[k] {
					t.Errorf("%s = %q is not in %s", k, v, tc.plain)
				}
			}
			for k, v := range tc.want {
				if got := tmpl[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(strings.Join(tmpl["Unit.Description"], ""), "%i") {
				t.Errorf("Description = %q: want the instance in it", tmpl["Unit.Description"])
			}
			if _, ok := tmpl["Socket.ListenStream"]; ok {
				t.Errorf("the socket template has a ListenStream: the port is the instance's (init's drop-in)")
			}
			if tc.exec == "" {
				return
			}
			if got, want := tmpl["Service.ExecStart"], []string{tc.exec + " -config /etc/spoolgate/%i.properties"}; !slices.Equal(got, want) {
				t.Errorf("ExecStart = %q, want %q", got, want)
			}
			if got := tmpl["Service.EnvironmentFile"]; got != nil {
				t.Errorf("EnvironmentFile = %q: a named instance reads none (its overrides would be every instance's)", got)
			}
			if got := strings.Fields(strings.Join(tmpl["Service.ReadWritePaths"], " ")); !slices.Equal(got, tc.writeable) {
				t.Errorf("ReadWritePaths = %q, want exactly the instance's directories %q", got, tc.writeable)
			}
		})
	}
	t.Run("an instance verifies", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed: skipping the systemd verification of the template units (apt-get install systemd)")
		}
		verifyInstance(t, sa, unitDir, binDir)
	})
}

// verifyInstance makes instance bank-b with spoolgate init (bin/spoolgate)
// in a temporary config directory, its drop-ins beside copies of the
// template units of dir (their programs taken from bin), runs
// systemd-analyze verify on the instance's units and holds its services
// to maxExposure.
func verifyInstance(t *testing.T, sa, dir, bin string) {
	t.Helper()
	units, host := t.TempDir(), t.TempDir()
	copyUnits(t, dir, bin, units, templateUnits)
	port, err := e2e.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "spoolgate"), "init", "bank-b", "-remote", "10.1.2.3:9010", "-state", filepath.Join(host, "spool"),
		"-logs", filepath.Join(host, "log"), "-systemd", units, "-ports", fmt.Sprint(port-port%10))
	cmd.Env = cleanEnv("SPOOLGATE_CONFIG_DIR=" + filepath.Join(host, "etc"))
	out, err := cmd.CombinedOutput()
	t.Logf("spoolgate init bank-b:\n%s", out)
	if err != nil {
		t.Fatalf("spoolgate init: %v", err)
	}
	for _, d := range []string{"spoolgate-receiver@bank-b.socket.d/listen.conf", "spoolgate-receiver@bank-b.service.d/paths.conf",
		"spoolgate-sender@bank-b.service.d/paths.conf"} {
		if _, err := os.Stat(filepath.Join(units, d)); err != nil {
			t.Errorf("init wrote no drop-in %s: %v", d, err)
		}
	}
	var files []string
	for _, u := range []string{"spoolgate-receiver@bank-b.socket", "spoolgate-receiver@bank-b.service", "spoolgate-sender@bank-b.service"} {
		files = append(files, filepath.Join(units, u))
	}
	verifyFiles(t, sa, files)
	for _, f := range files[1:] {
		if score := exposure(t, sa, f); score > maxExposure {
			t.Errorf("%s: systemd-analyze security rates it %.1f, want %.1f or lower", filepath.Base(f), score, maxExposure)
		}
	}
}
