package tlsutil

import (
	"log/slog"
	"strings"
)

// LogReload logs the outcome of a Server.Reload or Client.Reload, the same
// way for both daemons: rejected (error: the files in use stay), unchanged
// (debug), or applied (info: msg, with what changed). It reports whether
// the new files are in use.
func LogReload(log *slog.Logger, changed []string, err error, msg string) bool {
	switch {
	case err != nil:
		log.Error("tls reload rejected: the certificates in use stay", "err", err)
		return false
	case len(changed) == 0:
		log.Debug("tls files unchanged")
		return false
	}
	log.Info(msg, "applied", strings.Join(changed, "; "))
	return true
}
