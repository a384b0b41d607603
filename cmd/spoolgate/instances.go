package main

import (
	"os"
	"strings"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
)

// The instances of this host (docs/PROTOCOL.md §10): check -all, status
// -all, trace -all and init list them with host.List over the config
// directory, and load each with the environment its daemons get.

// hostInstances lists the instances of conf.ConfigDir().
func hostInstances() ([]host.Instance, error) { return host.List(conf.ConfigDir()) }

// toolEnv is the SPOOLGATE_* environment the tool was started with. A
// command over every instance loads each with it (load), so that what the
// environment file gives the unnamed instance (readConfig) is not applied
// to the next one: a named instance's units read no environment file.
type toolEnv map[string]string

// saveEnv returns the SPOOLGATE_* variables of the environment now.
func saveEnv() toolEnv {
	env := toolEnv{}
	for _, kv := range os.Environ() {
		if name, value, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SPOOLGATE_") {
			env[name] = value
		}
	}
	return env
}

// restore makes the SPOOLGATE_* variables those of env again.
func (env toolEnv) restore() {
	for name := range saveEnv() {
		if _, ok := env[name]; !ok {
			_ = os.Unsetenv(name)
		}
	}
	for name, value := range env {
		_ = os.Setenv(name, value)
	}
}

// load restores env and reads the instance's config as its daemons do
// (readConfig: the environment file for the unnamed one only). The
// variables stay set until the next restore, for the checks that read
// them.
func (env toolEnv) load(inst host.Instance) (*conf.Config, string, error) {
	env.restore()
	return readConfig(inst.Path)
}
