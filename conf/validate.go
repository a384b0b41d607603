package conf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"spoolgate/internal/tlsutil"
)

// This file holds the checks that look beyond one value: the TLS files
// must load as the daemons load them, and the listen addresses must not
// collide. What start-up would refuse, Load refuses, so `spoolgate check`
// and the daemons agree and both exit 2.

// keyPair checks that the certificate at certKey parses and that the key
// at keyKey is its private key. Both files were found readable already;
// nothing is checked when either is unset or an earlier key failed.
func (l *loader) keyPair(certKey, keyKey string) {
	certFile, keyFile := l.get(certKey), l.get(keyKey)
	if l.anyFailed(certKey, keyKey) || certFile == "" || keyFile == "" {
		return
	}
	certPEM, ok := l.readTLS(certKey, certFile)
	if !ok {
		return
	}
	if want := certProblem(certPEM); want != "" {
		l.fail(certKey, certFile, want)
		return
	}
	keyPEM, ok := l.readTLS(keyKey, keyFile)
	if !ok {
		return
	}
	// The certificate parsed, so what X509KeyPair refuses is the key: no
	// PEM key, a key that does not parse, or not the certificate's key.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		l.fail(keyKey, keyFile, "the PEM private key of "+certKey+" ("+err.Error()+")")
	}
}

// caFile checks that the file at key holds at least one PEM certificate.
func (l *loader) caFile(key string) {
	file := l.get(key)
	if l.failed[key] || file == "" {
		return
	}
	data, ok := l.readTLS(key, file)
	if ok && !x509.NewCertPool().AppendCertsFromPEM(data) {
		l.fail(key, file, "a file of PEM CA certificates (none found)")
	}
}

func (l *loader) readTLS(key, file string) ([]byte, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		l.fail(key, file, "a readable file ("+err.Error()+")")
		return nil, false
	}
	return data, true
}

// certProblem returns what is wrong with a PEM certificate chain, or "".
// It parses the chain as the daemons do (tlsutil.ParseCerts).
func certProblem(data []byte) string {
	if _, err := tlsutil.ParseCerts(data); err != nil {
		return "a PEM certificate (" + err.Error() + ")"
	}
	return ""
}

// distinctPorts fails when two of the listen addresses would take the same
// port: receiver.listen, receiver.admin_listen and sender.admin_listen are
// read from one file by daemons that run on one host, and the second bind
// would fail at start (exit 1, restarted in a loop by systemd).
func (l *loader) distinctPorts(c *Config) {
	addrs := []struct{ key, addr string }{
		{"receiver.listen", c.Receiver.Listen},
		{"receiver.admin_listen", c.Receiver.AdminListen},
		{"sender.admin_listen", c.Sender.AdminListen},
	}
	for i := range addrs {
		for j := range i {
			if l.anyFailed(addrs[i].key, addrs[j].key) || !samePort(addrs[j].addr, addrs[i].addr) {
				continue
			}
			bad, other := addrs[i], addrs[j]
			if !l.isSet(bad.key) && l.isSet(other.key) {
				bad, other = other, bad // name the key the file (or environment) set
			}
			l.fail(bad.key, bad.addr, "an address other than "+other.key+" ("+other.addr+
				"): both listen on this host and cannot share a port")
		}
	}
}

// samePort reports whether listeners on a and b collide: the same port
// (not 0, which picks a free one) and the same host, or a wildcard host
// that covers the other. An empty address (admin off) collides with none.
func samePort(a, b string) bool {
	ha, pa, erra := net.SplitHostPort(a)
	hb, pb, errb := net.SplitHostPort(b)
	if erra != nil || errb != nil {
		return false
	}
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if na != nb || na == 0 {
		return false
	}
	ha, hb = strings.ToLower(ha), strings.ToLower(hb)
	return ha == hb || covers(ha, hb) || covers(hb, ha) || localhostIs(ha, hb) || localhostIs(hb, ha)
}

// localhostIs reports whether name is localhost and ip a loopback address
// it resolves to (Go's resolver and /etc/hosts give 127.0.0.1 and ::1), so
// localhost:9011 and 127.0.0.1:9011 are seen as one port without a lookup.
func localhostIs(name, ip string) bool {
	a, err := netip.ParseAddr(ip)
	return name == "localhost" && err == nil && (a == netip.MustParseAddr("127.0.0.1") || a == netip.IPv6Loopback())
}

// covers reports whether a listener on host wild also takes host's port:
// "" and "::" (dual stack) take every address, 0.0.0.0 every IPv4 one.
func covers(wild, host string) bool {
	switch wild {
	case "", "::":
		return true
	case "0.0.0.0":
		ip := net.ParseIP(host)
		return ip == nil || ip.To4() != nil // a name may resolve to IPv4
	}
	return false
}

// level reads log.level: debug, info, warn or error; "warning", the name
// the log lines show, is taken as warn.
func (l *loader) level(key string, _ *Config) string {
	if strings.EqualFold(l.get(key), "warning") {
		return "warn"
	}
	return l.oneOf(key, "debug", "info", "warn", "error")
}
