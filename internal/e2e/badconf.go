package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// BadConfig is a config path that the daemons and `spoolgate check` must
// refuse at once with exit code 2 and a line on stderr containing Want.
type BadConfig struct {
	Name string
	Path string // for -config
	Want string
}

// BadConfigs returns the configs start-up must refuse (issue 10 defect
// 6), written under a temp dir of t: a missing file, a FIFO (which would
// block a reader), /dev/zero (which never ends), a file over 1 MiB, a TLS
// key that is not the certificate's, receiver.listen equal to
// receiver.admin_listen, and broken RabbitMQ settings (issue 14). base are the lines of a config that the binary
// under test accepts ("key = value"); each case overrides what it needs,
// so its one fault is the only one.
func BadConfigs(t testing.TB, base ...string) []BadConfig {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, extra ...string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		WriteFile(t, p, strings.Join(merge(base, extra), "\n")+"\n")
		return p
	}
	fifo := filepath.Join(dir, "fifo.properties")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.properties")
	WriteFile(t, big, strings.Join(base, "\n")+"\n"+strings.Repeat("# padding\n", (1<<20)/10+1))
	tlsDir := testdataTLS(t)
	addr := FreeAddr(t)
	missing := filepath.Join(dir, "missing.properties")
	return []BadConfig{
		{"missing file", missing, missing + ": cannot read the config file: no such file or directory"},
		{"fifo", fifo, fifo + ": the config file must be a regular file, not a named pipe (FIFO)"},
		{"dev zero", "/dev/zero", "/dev/zero: the config file must be a regular file, not a character device"},
		{"over 1 MiB", big, big + ": the config file is larger than 1 MiB"},
		{"tls key of another certificate", write("tls.properties",
			"receiver.tls.cert = "+filepath.Join(tlsDir, "cert.pem"), "receiver.tls.key = "+filepath.Join(tlsDir, "other_key.pem")),
			"receiver.tls.key = \"" + filepath.Join(tlsDir, "other_key.pem") + "\": the PEM private key of receiver.tls.cert (tls: private key does not match public key)"},
		{"listen is admin_listen", write("ports.properties", "receiver.listen = "+addr, "receiver.admin_listen = "+addr),
			"an address other than receiver.listen (" + addr + "): both listen on this host and cannot share a port"},
		{"unparsable amqp url", write("amqpurl.properties", "receiver.sink = amqp", "receiver.amqp.url = amqp://guest:s3cret@[::1"),
			`receiver.amqp.url = "(hidden: it holds credentials)": comma-separated amqp:// or amqps:// URLs, e.g. amqp://user:password@10.0.0.5:5672/vhost (it does not parse as a URL; `}, // not the parser's text: it quotes the password
		{"amqp sink without url", write("amqpnourl.properties", "receiver.sink = amqp"),
			`receiver.amqp.url = "": required with receiver.sink=amqp`},
		{"unknown queue type", write("qtype.properties", "sender.amqp.queue_type = lazy"),
			`sender.amqp.queue_type = "lazy": one of quorum, classic`},
	}
}

// merge returns base with the keys of extra replaced by extra's lines.
func merge(base, extra []string) []string {
	key := func(l string) string { k, _, _ := strings.Cut(l, "="); return strings.TrimSpace(k) }
	var out []string
	for _, b := range base {
		keep := true
		for _, e := range extra {
			keep = keep && key(b) != key(e)
		}
		if keep {
			out = append(out, b)
		}
	}
	return append(out, extra...)
}

// testdataTLS returns the absolute path of conf/testdata/tls, the real
// certificate and keys conf's tests use.
func testdataTLS(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "conf", "testdata", "tls")
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err != nil {
		t.Fatal(err)
	}
	return dir
}
