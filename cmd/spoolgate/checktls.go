package main

import (
	"time"

	"spoolgate/conf"
	"spoolgate/internal/tlsutil"
)

// checkTLS warns, for the daemons that run here, about what their TLS
// files need soon: a certificate that expires within 30 days (or has
// expired), a private key others can read. A file that does not load is
// the config check's problem.
func checkTLS(cfg *conf.Config, on daemons, r *report) {
	for _, w := range tlsWarnings(cfg, on, time.Now()) {
		r.warn("%s", w)
	}
}

func tlsWarnings(cfg *conf.Config, on daemons, now time.Time) []string {
	var out []string
	if t := cfg.Receiver.TLS; on.receiver && t.Cert != "" {
		if s, err := tlsutil.NewServer(tlsutil.ServerFiles{Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA}); err == nil {
			out = append(out, s.Warnings(now)...)
		}
	}
	if t := cfg.Sender.TLS; on.sender && (t.CA != "" || t.Cert != "") {
		if c, err := tlsutil.NewClient(tlsutil.ClientFiles{CA: t.CA, Cert: t.Cert, Key: t.Key}); err == nil {
			out = append(out, c.Warnings(now)...)
		}
	}
	return out
}
