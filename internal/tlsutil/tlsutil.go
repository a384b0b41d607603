// Package tlsutil is the one home of spoolgate's TLS configuration: the
// receiver's server side and the sender's client side load their PEM files
// here, reload them without touching live connections (the tls.Config they
// hand out reads the files' current state at each handshake through
// GetConfigForClient and GetClientCertificate), report when each
// certificate expires, warn about keys others can read, and tell a remote's
// rejection of our client certificate from other errors.
package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WarnBefore is how long before a certificate expires that it is warned
// about (log, `spoolgate check`).
const WarnBefore = 30 * 24 * time.Hour

// Expiry says when one certificate in use expires. Role names what it is:
// "server" (receiver.tls.cert), "client_ca" (receiver.tls.client_ca),
// "client" (sender.tls.cert) or "ca" (sender.tls.ca); for a CA bundle it
// is the certificate that expires first.
type Expiry struct {
	Role     string
	Key      string // the config key of the file
	Path     string
	Subject  string
	NotAfter time.Time
}

// ServerFiles are the receiver.tls.* settings.
type ServerFiles struct {
	Cert, Key, ClientCA string
	ClientNames         []string // empty: every certificate ClientCA signed
}

// ClientFiles are the sender.tls.* settings.
type ClientFiles struct {
	CA, Cert, Key, ServerName string
}

// material is what one load of the files produced; it is never modified.
type material struct {
	cert    *tls.Certificate // nil: none (a client without a certificate)
	leaf    *x509.Certificate
	pool    *x509.CertPool // nil: system roots (client) or no mTLS (server)
	cas     []*x509.Certificate
	raw     [3][]byte // cert, key and CA file contents, to see a change
	exp     []Expiry
	keyPath string
}

// load reads the certificate and key pair (both empty: none) and the CA
// bundle (empty: none). Keys name the config keys in errors.
func load(certKey, cert, keyKey, key, caKey, ca, certRole, caRole string) (*material, error) {
	m := &material{keyPath: key}
	if cert != "" || key != "" {
		cb, err := os.ReadFile(cert)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certKey, err)
		}
		kb, err := os.ReadFile(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyKey, err)
		}
		pair, err := tls.X509KeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("%s/%s %s, %s: %w", certKey, keyKey[strings.LastIndexByte(keyKey, '.')+1:], cert, key, err)
		}
		m.cert, m.leaf = &pair, pair.Leaf
		m.raw[0], m.raw[1] = cb, kb
		m.exp = append(m.exp, Expiry{Role: certRole, Key: certKey, Path: cert, Subject: m.leaf.Subject.String(), NotAfter: m.leaf.NotAfter})
	}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caKey, err)
		}
		cas, err := ParseCerts(b)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", caKey, ca, err)
		}
		m.pool = x509.NewCertPool()
		first := cas[0]
		for _, c := range cas {
			m.pool.AddCert(c)
			if c.NotAfter.Before(first.NotAfter) {
				first = c
			}
		}
		m.cas, m.raw[2] = cas, b
		m.exp = append(m.exp, Expiry{Role: caRole, Key: caKey, Path: ca, Subject: first.Subject.String(), NotAfter: first.NotAfter})
	}
	return m, nil
}

// ParseCerts returns the certificates of a PEM bundle; an error when it
// holds none or one does not parse. conf uses it to validate the files the
// daemons will load.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block found")
	}
	return out, nil
}

// changes describes what differs from old to m, for the reload log; empty
// when nothing does.
func (m *material) changes(old *material, certRole, caRole string) []string {
	var out []string
	switch {
	case old == nil:
	case !bytes.Equal(m.raw[0], old.raw[0]) || !bytes.Equal(m.raw[1], old.raw[1]):
		out = append(out, certRole+" certificate "+describe(old.leaf)+" -> "+describe(m.leaf))
	}
	if old != nil && !bytes.Equal(m.raw[2], old.raw[2]) {
		out = append(out, fmt.Sprintf("%s %d -> %d certificates", caRole, len(old.cas), len(m.cas)))
	}
	return out
}

func describe(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("serial %s (%s, until %s)", c.SerialNumber, c.Subject.CommonName, c.NotAfter.UTC().Format(time.DateOnly))
}

// warnings lists what an operator should fix soon: a certificate that
// expires within WarnBefore of now (or has expired), a key file others can
// read.
func (m *material) warnings(now time.Time) []string {
	var out []string
	for _, e := range m.exp {
		left := e.NotAfter.Sub(now)
		switch {
		case left <= 0:
			out = append(out, fmt.Sprintf("%s %s (%s) expired on %s", e.Key, e.Path, e.Subject, e.NotAfter.UTC().Format(time.RFC3339)))
		case left < WarnBefore:
			out = append(out, fmt.Sprintf("%s %s (%s) expires in %d days, on %s", e.Key, e.Path, e.Subject, int(left.Hours()/24), e.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	if m.keyPath != "" {
		if w := KeyPermWarning(m.keyPath); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// KeyPermWarning returns a warning when the key file at path can be read
// (or written) by users other than its owner and group, else "".
func KeyPermWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return fmt.Sprintf("private key %s is readable by others (mode %04o): chmod o-rwx %s", path, perm, path)
	}
	return ""
}

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

// Client is the sender's TLS: Config returns a tls.Config for one dial
// with the CA, server name and client certificate of the last successful
// load. Its methods are safe for concurrent use.
type Client struct {
	mu  sync.Mutex
	cur atomic.Pointer[clientState]
}

type clientState struct {
	files ClientFiles
	m     *material
}

// NewClient loads f; it returns an error naming the key and file when
// the pair or the CA does not load.
func NewClient(f ClientFiles) (*Client, error) {
	st, err := loadClient(f)
	if err != nil {
		return nil, err
	}
	c := &Client{}
	c.cur.Store(st)
	return c, nil
}

func loadClient(f ClientFiles) (*clientState, error) {
	m, err := load("sender.tls.cert", f.Cert, "sender.tls.key", f.Key, "sender.tls.ca", f.CA, "client", "ca")
	if err != nil {
		return nil, err
	}
	return &clientState{files: f, m: m}, nil
}

// Config returns the tls.Config to dial addr (host:port) with: the server
// name is sender.tls.server_name, else addr's host. The client certificate
// is read at the handshake, from the last successful load.
func (c *Client) Config(addr string) *tls.Config {
	st := c.cur.Load()
	name := st.files.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(addr)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: name,
		RootCAs:    st.m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := c.cur.Load().m; m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// Settings returns the files in use.
func (c *Client) Settings() ClientFiles { return c.cur.Load().files }

// Files returns the paths in use, to watch.
func (c *Client) Files() []string {
	f := c.cur.Load().files
	return nonEmpty(f.CA, f.Cert, f.Key)
}

// Reload loads f; on success the next dial uses it and Reload returns what
// changed (nil: nothing). On error the last good files stay in use.
func (c *Client) Reload(f ClientFiles) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := loadClient(f)
	if err != nil {
		return nil, err
	}
	old := c.cur.Load()
	ch := st.m.changes(old.m, "client", "ca")
	if st.files != old.files {
		ch = append(ch, "files "+strings.Join(nonEmpty(f.CA, f.Cert, f.Key), ",")+" server_name "+f.ServerName)
	}
	c.cur.Store(st)
	return ch, nil
}

// Expiry returns when the certificates in use expire.
func (c *Client) Expiry() []Expiry { return slices.Clone(c.cur.Load().m.exp) }

// Warnings returns what to warn about now.
func (c *Client) Warnings(now time.Time) []string { return c.cur.Load().m.warnings(now) }

func nonEmpty(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// TLS alert codes (RFC 8446 §6.2) a remote sends about the certificate we
// presented.
var certAlerts = map[uint8]string{
	42:  "bad certificate",
	43:  "unsupported certificate",
	44:  "revoked",
	45:  "expired",
	46:  "certificate unknown",
	48:  "unknown ca",
	49:  "access denied",
	116: "certificate required (none sent)",
}

// CertRejected reports whether err is a TLS alert from the remote about
// our client certificate, and which one ("expired", "unknown ca", ...).
// With TLS 1.3 such an alert arrives on the first read after a dial that
// succeeded; with TLS 1.2 it ends the dial.
func CertRejected(err error) (string, bool) {
	var oe *net.OpError
	// crypto/tls reports an alert received as *net.OpError{Op: "remote
	// error"} around its unexported alert type, a uint8 code.
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return "", false
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 {
		return "", false
	}
	why, ok := certAlerts[uint8(v.Uint())]
	return why, ok
}

// RejectedError is the error for a remote that rejects our client
// certificate: it says so in plain words.
type RejectedError struct {
	Why string // from CertRejected
	Err error
}

func (e *RejectedError) Error() string {
	return "the remote rejects our client certificate: " + e.Why
}

func (e *RejectedError) Unwrap() error { return e.Err }

// AsRejected wraps err in a *RejectedError when it is a rejection of our
// client certificate (see CertRejected), else returns it unchanged.
func AsRejected(err error) error {
	if why, ok := CertRejected(err); ok {
		return &RejectedError{Why: why, Err: err}
	}
	return err
}
