package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
	"spoolgate/receiver"
)

// mtlsReceiver runs a receiver.Server with mutual TLS (client CA ca) on
// 127.0.0.1 and returns its address and data dir.
func mtlsReceiver(t *testing.T, ca *tlstest.CA) (addr, data string) {
	t.Helper()
	srvLeaf := ca.Issue(t, "server", tlstest.Opts{})
	c := conf.Default().Receiver
	c.DataDir = t.TempDir()
	c.TLS.Cert, c.TLS.Key, c.TLS.ClientCA = srvLeaf.CertFile, srvLeaf.KeyFile, ca.File
	srv, err := receiver.New(receiver.Options{Config: c, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), SummaryEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String(), c.DataDir
}

// storedCount counts the lines in the request files of data.
func storedCount(t *testing.T, data string) int {
	t.Helper()
	des, _ := os.ReadDir(data)
	n := 0
	for _, de := range des {
		if strings.Contains(de.Name(), "_request.txt") {
			b, _ := os.ReadFile(filepath.Join(data, de.Name()))
			n += strings.Count(string(b), "\n")
		}
	}
	return n
}

// TestRejectedClientCert: a remote that rejects our client certificate
// (expired, from another CA, none sent: with TLS 1.3 the alert comes on
// the first read) opens the circuit like a refused connect: the files
// stay in the spool, none fails for 10 s, /readyz and the log say why;
// once the certificate is fixed (the files replaced, or the config
// reloaded) everything is delivered.
func TestRejectedClientCert(t *testing.T) {
	ca, other := tlstest.NewCA(t, "partner"), tlstest.NewCA(t, "other")
	for _, tc := range []struct {
		name string
		bad  func(t *testing.T) *tlstest.Leaf // nil: no certificate
		why  string
	}{
		{"expired", func(t *testing.T) *tlstest.Leaf {
			return ca.Issue(t, "client", tlstest.Opts{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		}, "expired"},
		{"another CA", func(t *testing.T) *tlstest.Leaf {
			return other.Issue(t, "client", tlstest.Opts{Client: true})
		}, "unknown ca"},
		{"none", nil, "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, data := mtlsReceiver(t, ca)
			props := map[string]string{"sender.tls.ca": ca.File}
			var bad *tlstest.Leaf
			if tc.bad != nil {
				bad = tc.bad(t)
				props["sender.tls.cert"], props["sender.tls.key"] = bad.CertFile, bad.KeyFile
			}
			e := newEnv(t, addr, props)
			p := e.startSender(t)
			makeSpool(t, e.spool, 3)
			want := "the remote rejects our client certificate: " + tc.why
			e2e.WaitFor(t, 20*time.Second, "/readyz says why", func() bool {
				code, body, _ := e2e.HTTPGet("http://" + e.admin + "/readyz")
				return code == 503 && strings.Contains(body, want)
			})
			// "circuit open: ..." or, when a busy machine's first dial timed
			// out, "circuit still open: ..." once a probe hears the alert.
			// The log line follows the state change /readyz reports.
			e2e.WaitFor(t, 20*time.Second, "the log to say "+want, func() bool { return p.Log.Contains("open: " + want) })
			until := time.Now().Add(10 * time.Second)
			e2e.WaitFor(t, 30*time.Second, "10 s with the circuit open and nothing failed", func() bool {
				_, metrics, _ := e2e.HTTPGet("http://" + e.admin + "/metrics")
				if f := count(t, e.failed); f != 0 {
					t.Fatalf("%d files in failed_dir", f)
				}
				if !strings.Contains(metrics, "spoolgate_sender_circuit_open 1") {
					t.Fatalf("circuit not open:\n%s", grep(metrics, "spoolgate_sender_circuit"))
				}
				if strings.Contains(metrics, `spoolgate_sender_messages_total{outcome="failed"} `) &&
					!strings.Contains(metrics, `spoolgate_sender_messages_total{outcome="failed"} 0`) {
					t.Fatalf("failed messages:\n%s", grep(metrics, "spoolgate_sender_messages_total"))
				}
				if n := count(t, e.spool) + count(t, filepath.Join(e.spool, ".inflight")); n != 3 {
					t.Fatalf("%d files in the spool, want 3", n)
				}
				return time.Now().After(until)
			})
			if n := storedCount(t, data); n != 0 {
				t.Fatalf("%d stored with a rejected certificate", n)
			}

			good := ca.Issue(t, "client", tlstest.Opts{Client: true})
			if bad != nil {
				good.Install(t, bad.CertFile, bad.KeyFile) // the file watch reloads
			} else {
				e.props["sender.tls.cert"], e.props["sender.tls.key"] = good.CertFile, good.KeyFile
				e.write(t) // the config reload applies the new keys
			}
			e2e.WaitFor(t, 30*time.Second, "delivered once the certificate is fixed", func() bool {
				return storedCount(t, data) == 3 && count(t, e.spool) == 0
			})
			if f := count(t, e.failed); f != 0 {
				t.Fatalf("%d files in failed_dir", f)
			}
			e2e.WaitFor(t, 10*time.Second, "ready", func() bool { return e.ready() == 200 })
			if !p.Log.Contains("tls reloaded") || !p.Log.Contains(fmt.Sprint("serial ", good.Serial)) {
				t.Fatal("the reload did not log the new certificate")
			}
		})
	}
}
