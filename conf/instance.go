package conf

import (
	"os"
	"path/filepath"
	"strings"
)

// Instances (docs/PROTOCOL.md §10, several partners on one host): the
// config directory holds conf.properties, the unnamed instance, and
// NAME.properties for instance NAME, each run by its own units
// (spoolgate-receiver@NAME, spoolgate-sender@NAME).

// EnvConfigDir names the environment variable holding the config
// directory, DefaultConfigDir its default.
const (
	EnvConfigDir     = "SPOOLGATE_CONFIG_DIR"
	DefaultConfigDir = "/etc/spoolgate"
)

// MaxInstanceName is the longest instance name.
const MaxInstanceName = 64

// ConfigDir returns the config directory: $SPOOLGATE_CONFIG_DIR when not
// empty, else DefaultConfigDir.
func ConfigDir() string {
	if d := os.Getenv(EnvConfigDir); d != "" {
		return d
	}
	return DefaultConfigDir
}

// ValidInstanceName reports whether s can name an instance: 1 to
// MaxInstanceName lower-case ASCII letters, digits and '-', not starting
// with '-' (it would read as a flag), and not "conf" (conf.properties is
// the unnamed instance).
func ValidInstanceName(s string) bool {
	if s == "" || len(s) > MaxInstanceName || s[0] == '-' || s == "conf" {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// Instance returns the name of the instance whose config file is path:
// NAME for a file NAME.properties in the config directory (ConfigDir)
// when NAME is a valid instance name, else "" (the unnamed instance:
// conf.properties, or a file elsewhere). The daemons label their
// spoolgate_build_info and name their journal files with it; the
// operator's tool finds the instances the same way.
func Instance(path string) string {
	if path == "" {
		return ""
	}
	name, ok := strings.CutSuffix(filepath.Base(path), ".properties")
	if !ok || !ValidInstanceName(name) {
		return ""
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return ""
	}
	cdir, err := filepath.Abs(ConfigDir())
	if err != nil || dir != cdir {
		return ""
	}
	return name
}

// SamePort reports whether listeners on the addresses a and b would take
// the same port on one host: the same port (not 0) and the same host, or
// a wildcard host (empty, 0.0.0.0, ::) that covers the other. An empty or
// malformed address collides with none.
func SamePort(a, b string) bool { return samePort(a, b) }
