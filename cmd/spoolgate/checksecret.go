package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"spoolgate/conf"
)

// checkSecretFiles: a file that holds a secret (admin.token, an AMQP URL
// with a password) must not be readable by every user of the host: the
// config file when it sets one, the environment file (where the README
// tells to put them) when it does. A warning: the daemons work, but any
// local account can take the token or the broker's password.
func checkSecretFiles(cfg *conf.Config, _ daemons, r *report) {
	if cfg.Path != "" {
		var held []string
		if cfg.AdminToken != "" && os.Getenv("SPOOLGATE_ADMIN_TOKEN") == "" {
			held = append(held, "admin.token")
		}
		for _, k := range []struct {
			key  string
			urls []string
		}{{"receiver.amqp.url", cfg.Receiver.AMQP.URL}, {"sender.amqp.url", cfg.Sender.AMQP.URL}} {
			if hasPassword(k.urls) && os.Getenv("SPOOLGATE_"+strings.ToUpper(strings.ReplaceAll(k.key, ".", "_"))) == "" {
				held = append(held, k.key+" (a password)")
			}
		}
		if len(held) > 0 {
			if mode, ok := readableByOthers(cfg.Path); ok {
				r.warn("%s holds %s and every user of this host can read it (mode %04o): chmod 0640 %s and chgrp spoolgate, "+
					"or move the secret to the environment file", cfg.Path, strings.Join(held, ", "), mode, cfg.Path)
			}
		}
	}
	path := envFilePath()
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return // missing, or not ours to read: then not everyone's either
	}
	var held []string
	for _, kv := range readEnvFile(data) {
		switch name, value := kv[0], kv[1]; {
		case name == "SPOOLGATE_ADMIN_TOKEN" && value != "":
			held = append(held, name)
		case strings.HasSuffix(name, "_AMQP_URL") && hasPassword(strings.Split(value, ",")):
			held = append(held, name+" (a password)")
		}
	}
	if len(held) == 0 {
		return
	}
	if mode, ok := readableByOthers(path); ok {
		r.warn("%s holds %s and every user of this host can read it (mode %04o): chmod 0640 %s and chgrp spoolgate "+
			"(0600 when only systemd or root's startup.sh reads it)", path, strings.Join(held, ", "), mode, path)
	}
}

// hasPassword reports whether one of urls carries a password.
func hasPassword(urls []string) bool {
	for _, u := range urls {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			if _, set := p.User.Password(); set {
				return true
			}
		}
	}
	return false
}

// readableByOthers reports whether a user who is neither the owner nor in
// the group of path can read it: the file (symlinks resolved) is readable
// by others and every directory above it can be entered by others. It
// returns the file's permission bits.
func readableByOthers(path string) (os.FileMode, bool) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, false
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return 0, false
	}
	fi, err := os.Stat(real)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return 0, false
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return 0, false
		}
		if dir == filepath.Dir(dir) {
			return fi.Mode().Perm(), true
		}
	}
}
