package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidInstanceName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"acme", true}, {"bank-2", true}, {"0ab", true}, {strings.Repeat("a", MaxInstanceName), true},
		{"", false}, {"conf", false}, {"-acme", false}, {"Acme", false}, {"ac_me", false}, {"ac.me", false},
		{"ac me", false}, {"ac/me", false}, {"한국", false}, {strings.Repeat("a", MaxInstanceName+1), false},
	} {
		if got := ValidInstanceName(tt.name); got != tt.ok {
			t.Errorf("ValidInstanceName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// TestInstance: NAME.properties in the config directory is instance NAME;
// conf.properties and every file elsewhere are the unnamed instance, and
// Load names the instance of the file it reads.
func TestInstance(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvConfigDir, dir)
	other := t.TempDir()
	for _, tt := range []struct{ path, want string }{
		{filepath.Join(dir, "acme.properties"), "acme"},
		{filepath.Join(dir, ".", "acme.properties"), "acme"},
		{filepath.Join(dir, "conf.properties"), ""},
		{filepath.Join(dir, "Acme.properties"), ""},
		{filepath.Join(dir, "acme.conf"), ""},
		{filepath.Join(other, "acme.properties"), ""},
		{"", ""},
	} {
		if got := Instance(tt.path); got != tt.want {
			t.Errorf("Instance(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	p := filepath.Join(dir, "acme.properties")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Instance != "acme" || Default().Instance != "" {
		t.Errorf("Load(%s).Instance = %q, Default().Instance = %q", p, c.Instance, Default().Instance)
	}
	// LoadFile: the file alone, without this process's overrides.
	t.Setenv("SPOOLGATE_SENDER_WORKERS", "3")
	if c, err := LoadFile(p); err != nil || c.Sender.Workers != Default().Sender.Workers || c.Instance != "acme" {
		t.Errorf("LoadFile with SPOOLGATE_SENDER_WORKERS=3: %+v %v, want the default workers", c.Sender, err)
	}
	if c, err := Load(p); err != nil || c.Sender.Workers != 3 {
		t.Errorf("Load with SPOOLGATE_SENDER_WORKERS=3: %v, want 3", err)
	}
	t.Setenv(EnvConfigDir, "")
	if got := ConfigDir(); got != DefaultConfigDir {
		t.Errorf("ConfigDir() = %q with %s empty, want %q", got, EnvConfigDir, DefaultConfigDir)
	}
}
