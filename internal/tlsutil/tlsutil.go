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
	"os"
	"strings"
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
