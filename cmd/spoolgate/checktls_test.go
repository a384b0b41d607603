package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/tlsutil/tlstest"
)

// TestCheckTLSWarnings: `spoolgate check` warns (exit 0) about a
// certificate that expires within 30 days and a key others can read, and
// says nothing about a sound pair.
func TestCheckTLSWarnings(t *testing.T) {
	ca := tlstest.NewCA(t, "partner")
	soon := ca.Issue(t, "server", tlstest.Opts{NotAfter: time.Now().Add(20 * 24 * time.Hour)})
	if err := os.Chmod(soon.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	sound := ca.Issue(t, "client", tlstest.Opts{Client: true})
	dir := hostDir(t)
	p := writeConf(t, dir, with(hostConf(t, dir), "receiver.tls.cert = "+soon.CertFile, "receiver.tls.key = "+soon.KeyFile,
		"sender.tls.ca = "+ca.File, "sender.tls.cert = "+sound.CertFile, "sender.tls.key = "+sound.KeyFile)...)
	code, out, errs := spoolgate(t, "", "check", "-config", p)
	t.Logf("stdout:\n%sstderr:\n%s", out, errs)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"warning: receiver.tls.cert " + soon.CertFile + " (CN=server) expires in 19 days",
		"warning: private key " + soon.KeyFile + " is readable by others (mode 0644)",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("no %q", want)
		}
	}
	if n := strings.Count(errs, "warning:"); n != 2 {
		t.Errorf("%d warnings, want 2", n)
	}
}
