package sender

import (
	"time"

	"spoolgate/conf"
	"spoolgate/internal/tlsutil"
)

// TLS to the remote (sender.tls.*): warnings at start, reloads.

var tlsOff = conf.Sender{}.TLS

func (s *Sender) tlsWarnings() {
	if s.client.tls == nil {
		return
	}
	for _, w := range s.client.tls.Warnings(time.Now()) {
		s.log.Warn("tls: " + w)
	}
}

func (s *Sender) reloadTLS(c conf.Sender) {
	if s.client.tls == nil || c.TLS == tlsOff {
		return // a switch between plain TCP and TLS needs a restart
	}
	s.applyTLS(tlsFilesOf(c))
}

// tlsFilesOf is what Reload applies of sender.tls.*.
func tlsFilesOf(c conf.Sender) tlsutil.ClientFiles {
	return tlsutil.ClientFiles{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key, ServerName: c.TLS.ServerName}
}

func (s *Sender) applyTLS(f tlsutil.ClientFiles) {
	ch, err := s.client.tls.Reload(f)
	if tlsutil.LogReload(s.log, ch, err, "tls reloaded: new connections use it") {
		s.client.closeIdle() // so the next send presents the new certificate
		s.tlsWarnings()
	}
}

// ReloadTLS reads the TLS files in use again (after they changed on disk).
// Safe to call while Run runs.
func (s *Sender) ReloadTLS() {
	if s.client.tls != nil {
		s.applyTLS(s.client.tls.Settings())
	}
}

// TLSFiles returns the TLS files in use, to watch; nil without TLS.
func (s *Sender) TLSFiles() []string {
	if s.client.tls == nil {
		return nil
	}
	return s.client.tls.Files()
}
