package conf

import (
	"maps"
	"os"
	"slices"
	"strings"
)

// ScriptEnv lists the SPOOLGATE_* environment variables that are not
// configuration keys and so are not reported as typos: SPOOLGATE_CONFIG,
// and those of scripts/env.sh, startup.sh and run-local.sh. A new such
// variable must be added here.
var ScriptEnv = []string{
	EnvConfig,
	EnvConfigDir, // the directory of the instances' configs (instance.go)
	"SPOOLGATE_HOME",
	"SPOOLGATE_BIN",
	"SPOOLGATE_RUN_DIR",
	"SPOOLGATE_USER",
	"SPOOLGATE_DAEMONS",
	"SPOOLGATE_START_TIMEOUT",
	"SPOOLGATE_DEFAULTS",
}

// envWarnings returns one line for every SPOOLGATE_* variable of the
// environment that overrides no key (prefix compared without case), in name
// order: a typo of an override would otherwise be ignored silently. A field
// rule variable counts only for a field its spec lists.
func (l *loader) envWarnings() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(name), "SPOOLGATE_") || l.bound[name] || slices.Contains(ScriptEnv, name) {
			continue
		}
		w := "$" + name + " is set but is no configuration key: ignored"
		if s := l.nearestEnv(name); s != "" {
			w += " (did you mean " + s + "?)"
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// nearestEnv returns the known variable closest to name, or "" when none is
// close: after upper-casing, at most one edit per 4 bytes of the part after
// SPOOLGATE_ (at least 1, at most 3), so SPOOLGATE_A_X suggests nothing.
func (l *loader) nearestEnv(name string) string {
	known := append(slices.Sorted(maps.Keys(l.bound)), ScriptEnv...)
	up := strings.ToUpper(name)
	best, bestD := "", min(max(1, (len(up)-len("SPOOLGATE_"))/4), 3)+1
	for _, k := range known {
		if d := editDistance(up, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}
