package tlsutil

import (
	"errors"
	"net"
	"reflect"
)

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
