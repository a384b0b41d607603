package receiver

import (
	"errors"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/tlsutil"
)

// TLS (docs/PROTOCOL.md §3): the files, their reload, and the refusal
// of a failed handshake. The handshake itself runs in serveConn, under
// receiver.tls.handshake_timeout.

// handshakeRefusal names the cause and attributes of a failed handshake.
func handshakeRefusal(err error) (cause, msg string, attrs []any) {
	var ne *tlsutil.NameError
	if errors.As(err, &ne) {
		return refusedClientNames, "connection refused: client certificate name not in receiver.tls.client_names", []any{"name", ne.Name(), "cn", ne.CN}
	}
	return refusedHandshake, "tls handshake failed", []any{"err", err}
}

func serverFiles(c conf.Receiver) tlsutil.ServerFiles {
	return tlsutil.ServerFiles{Cert: c.TLS.Cert, Key: c.TLS.Key, ClientCA: c.TLS.ClientCA, ClientNames: c.TLS.ClientNames}
}

// newTLS loads the TLS files of c (nil when TLS is off); newMetrics
// exports their expiry, tlsWarnings logs what needs attention.
func newTLS(c conf.Receiver) (*tlsutil.Server, error) {
	if c.TLS.Cert == "" && c.TLS.Key == "" {
		return nil, nil
	}
	return tlsutil.NewServer(serverFiles(c))
}

func (s *Server) tlsWarnings() {
	if s.tls == nil {
		return
	}
	for _, w := range s.tls.Warnings(time.Now()) {
		s.log.Warn("tls: " + w)
	}
}

// reloadTLS loads the TLS files f; a pair that does not load is rejected
// with an error and the running one stays. It logs what was applied.
func (s *Server) reloadTLS(f tlsutil.ServerFiles) {
	if s.tls == nil {
		if f.Cert != "" {
			s.log.Warn("configuration change needs a restart to take effect: TLS was off at start", "key", "receiver.tls.cert")
		}
		return
	}
	if f.Cert == "" {
		s.log.Warn("configuration change needs a restart to take effect: turning TLS off", "key", "receiver.tls.cert")
		return
	}
	ch, err := s.tls.Reload(f)
	if tlsutil.LogReload(s.log, ch, err, "tls reloaded: new connections use it, open ones keep theirs") {
		s.tlsWarnings()
	}
}

// ReloadTLS loads the TLS files in use again (after they changed on
// disk); see Reload for the rest.
func (s *Server) ReloadTLS() {
	if s.tls != nil {
		s.reloadTLS(s.tls.Settings())
	}
}

// TLSFiles returns the TLS files in use, to watch; nil without TLS.
func (s *Server) TLSFiles() []string {
	if s.tls == nil {
		return nil
	}
	return s.tls.Files()
}
