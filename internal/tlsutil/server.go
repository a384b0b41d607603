package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the receiver's TLS: Config hands out a tls.Config whose
// certificate, client CA and client names are those of the last
// successful load. Its methods are safe for concurrent use.
type Server struct {
	mu    sync.Mutex // serialises Reload
	cur   atomic.Pointer[serverState]
	outer *tls.Config
}

type serverState struct {
	files ServerFiles
	m     *material
	cfg   *tls.Config
}

// NewServer loads f; it returns an error naming the key and file when the
// pair or the CA does not load.
func NewServer(f ServerFiles) (*Server, error) {
	st, err := loadServer(f)
	if err != nil {
		return nil, err
	}
	s := &Server{}
	s.cur.Store(st)
	s.outer = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().cfg, nil
		},
	}
	return s, nil
}

func loadServer(f ServerFiles) (*serverState, error) {
	m, err := load("receiver.tls.cert", f.Cert, "receiver.tls.key", f.Key, "receiver.tls.client_ca", f.ClientCA, "server", "client_ca")
	if err != nil {
		return nil, err
	}
	if m.cert == nil {
		return nil, errors.New("receiver.tls.cert: required for TLS")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert}}
	if m.pool != nil {
		cfg.ClientCAs = m.pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if len(f.ClientNames) > 0 {
			names := slices.Clone(f.ClientNames)
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return checkName(names, cs) }
		}
	}
	f.ClientNames = slices.Clone(f.ClientNames)
	return &serverState{files: f, m: m, cfg: cfg}, nil
}

// Config returns the tls.Config to serve with; each handshake uses the
// files of the last successful load. Do not modify it.
func (s *Server) Config() *tls.Config { return s.outer }

// Settings returns the files and names in use.
func (s *Server) Settings() ServerFiles {
	f := s.cur.Load().files
	f.ClientNames = slices.Clone(f.ClientNames)
	return f
}

// Files returns the paths in use, to watch.
func (s *Server) Files() []string {
	f := s.cur.Load().files
	return nonEmpty(f.Cert, f.Key, f.ClientCA)
}

// Reload loads f (new paths, or the same files with new contents). On
// success the next handshake uses it and Reload returns what changed
// (nil: nothing); connections already open are not touched. On error the
// last good files stay in use.
func (s *Server) Reload(f ServerFiles) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := loadServer(f)
	if err != nil {
		return nil, err
	}
	old := s.cur.Load()
	ch := st.m.changes(old.m, "server", "client_ca")
	if !slices.Equal(st.files.ClientNames, old.files.ClientNames) {
		ch = append(ch, "client_names ["+strings.Join(old.files.ClientNames, ",")+"] -> ["+strings.Join(st.files.ClientNames, ",")+"]")
	}
	if st.files.Cert != old.files.Cert || st.files.Key != old.files.Key || st.files.ClientCA != old.files.ClientCA {
		ch = append(ch, "files "+strings.Join(nonEmpty(st.files.Cert, st.files.Key, st.files.ClientCA), ","))
	}
	s.cur.Store(st)
	return ch, nil
}

// Expiry returns when the certificates in use expire.
func (s *Server) Expiry() []Expiry { return slices.Clone(s.cur.Load().m.exp) }

// Warnings returns what to warn about now (see KeyPermWarning, WarnBefore).
func (s *Server) Warnings(now time.Time) []string { return s.cur.Load().m.warnings(now) }

// NameError is the handshake error for a client certificate whose
// identity is not in receiver.tls.client_names.
type NameError struct {
	CN  string
	DNS []string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("client certificate %s is not in receiver.tls.client_names", e.Name())
}

// Name is the refused identity as logged: its DNS names, else its CN.
func (e *NameError) Name() string {
	if len(e.DNS) > 0 {
		return strings.Join(e.DNS, ",")
	}
	return e.CN
}

// checkName accepts a peer with one of its DNS SANs in names, or, for a
// certificate without DNS SANs, with its CN in names (compared without
// case; as RFC 6125 does, a CN is not looked at when there are SANs).
func checkName(names []string, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	in := func(n string) bool {
		return slices.ContainsFunc(names, func(a string) bool { return strings.EqualFold(a, n) })
	}
	for _, d := range leaf.DNSNames {
		if in(d) {
			return nil
		}
	}
	if len(leaf.DNSNames) == 0 && in(leaf.Subject.CommonName) {
		return nil
	}
	return &NameError{CN: leaf.Subject.CommonName, DNS: slices.Clone(leaf.DNSNames)}
}
