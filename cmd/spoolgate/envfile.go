package main

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"spoolgate/conf"
)

// The environment file: systemd gives its variables to the daemons
// (EnvironmentFile=), startup.sh sources it. The tool reads it too, so
// that status, failed, requeue and check see the config the daemons run
// with: SPOOLGATE_CONFIG and the SPOOLGATE_<KEY> overrides set there.

// envFiles are where the packages and install.sh put the environment file:
// Debian's, then RHEL's.
var envFiles = []string{"/etc/default/spoolgate", "/etc/sysconfig/spoolgate"}

// envFilePath returns the environment file: $SPOOLGATE_DEFAULTS when set
// (as in startup.sh), else the first of envFiles that exists, else "".
func envFilePath() string {
	if p := os.Getenv("SPOOLGATE_DEFAULTS"); p != "" {
		return p
	}
	for _, p := range envFiles {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// readEnvFile parses an environment file as systemd reads one: NAME=value
// lines, '#' and ';' comments, a value in single or double quotes taken
// without them. Lines that are not assignments are skipped (an "export "
// before the name, which a shell would take, is allowed).
func readEnvFile(data []byte) [][2]string {
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, value, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || !envName(name) {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			if u, err := strconv.Unquote(value); err == nil {
				value = u
			} else {
				value = value[1 : len(value)-1]
			}
		} else if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
			value = value[1 : len(value)-1]
		}
		out = append(out, [2]string{name, value})
	}
	return out
}

// envName reports whether s is a shell variable name.
func envName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

// applyEnvFile sets the SPOOLGATE_* variables of the environment file that
// this process's environment does not set (what is set wins, as in
// startup.sh). It returns a warning when the file exists but cannot be
// read (it is 0640 root:spoolgate: root and group spoolgate read it), else
// "".
func applyEnvFile() string {
	path := envFilePath()
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return "cannot read the environment file " + path + " (" + errno(err).Error() + "): its SPOOLGATE_CONFIG and overrides, " +
			"which the daemons get, are not applied here (run as root or as a member of group spoolgate)"
	}
	for _, kv := range readEnvFile(data) {
		if !strings.HasPrefix(kv[0], "SPOOLGATE_") {
			continue
		}
		// An empty SPOOLGATE_CONFIG is no file (conf.Path, env.sh); an
		// empty override of a key is a value (log.dir empty: stderr).
		if v, set := os.LookupEnv(kv[0]); !set || (v == "" && kv[0] == conf.EnvConfig) {
			_ = os.Setenv(kv[0], kv[1])
		}
	}
	return ""
}
