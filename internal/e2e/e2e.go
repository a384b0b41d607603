// Package e2e is the plumbing the end-to-end tests share: building the
// binaries in TestMain, running a daemon with its log captured, waiting
// with a deadline, free loopback ports, atomic file writes and plain HTTP
// GETs, a scriptable fake remote (Remote) and a simulated partner link
// (Link, toxiproxy). Only tests import it; it holds no domain logic.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Main is a TestMain for packages whose tests run built binaries: it makes
// a temporary directory, calls build with it, runs the tests with goleak
// checking for leaked goroutines, stops the shared RabbitMQ node if one
// was started (RabbitShared), removes the directory and exits. build may
// be nil. When
// the directory cannot be made or build fails, Main prints the error and
// exits 1 without running the tests.
func Main(m *testing.M, build func(dir string) error) {
	dir, err := os.MkdirTemp("", "spoolgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if build == nil {
		build = func(string) error { return nil }
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	StopRabbits() // before the leak check: their waiters are goroutines too
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build runs "go build -o out pkgs..." in dir ("" for the current
// directory), with -race when race is set. out is a file, or a directory
// when it ends in a path separator. The error carries the compiler's output.
func Build(dir, out string, race bool, pkgs ...string) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// Log collects what a process writes so that a test can search it while
// the process runs. Its methods are safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

// Write keeps p and passes it on to the Log's tee, if it has one; writes to
// the tee are serialised. It returns the tee's result, else len(p), nil.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.tee != nil {
		return l.tee.Write(p)
	}
	return len(p), nil
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count returns how many times s occurs in the log so far.
func (l *Log) Count(s string) int { return strings.Count(l.String(), s) }

// Contains reports whether s occurs in the log so far.
func (l *Log) Contains(s string) bool { return strings.Contains(l.String(), s) }

// Proc is a process started by Start. Its methods are safe for concurrent
// use.
type Proc struct {
	Cmd *exec.Cmd // the started command; Cmd.Process.Pid is its pid
	Log *Log      // its stdout and stderr

	name string
	done chan struct{} // closed when Wait has returned
	err  error         // Wait's result, set before done is closed
}

// Start starts cmd with its stdout and stderr going to a Log that also
// copies to tee (nil for none), and kills the process when the test ends
// if it still runs, so no goroutine of Start outlives the test. name is the
// process's name in failure messages. Start fails the test if cmd cannot
// start.
func Start(t testing.TB, name string, cmd *exec.Cmd, tee io.Writer) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, Log: &Log{tee: tee}, name: name, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the error of waiting for the process once it has ended (an
// *exec.ExitError for a non-zero exit), and nil while it runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Kill kills the process unless it has ended and waits until it has. It
// may be called more than once.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// Signal sends sig to the process; it fails the test if that fails.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// ExitCode waits up to within for the process to end and returns its exit
// code. It fails the test if the process still runs by then or if waiting
// for it failed other than by a non-zero exit.
func (p *Proc) ExitCode(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v", p.name, within)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait for %s: %v", p.name, p.err)
	}
	return 0
}

// WaitFor polls cond every 10 ms until it returns true, and fails the test,
// naming what it waited for, if d passes first.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// FreeAddr returns a loopback address that nothing listened on when it
// was checked; another process may take it before the test uses it. The
// port is below the kernel's ephemeral range (FreePort), so the outgoing
// connections of tests running beside this one cannot take it meanwhile.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// FreePort returns a port of 127.0.0.1 that could be bound when checked,
// chosen at random from 20000 up to the start of the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768 by default): a port the
// kernel hands out for port 0, or to an outgoing connection, may be taken
// again by another test's connection before a daemon binds it.
func FreePort() (int, error) {
	lo, hi := 20000, ephemeralStart()
	if hi-lo < 1000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port from %d to %d: %w", lo, hi-1, err)
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// WriteFile writes data to path through path+".tmp" and a rename, as
// editors and configuration tools do, so that a watcher never sees a
// half-written file. It fails the test on error.
func WriteFile(t testing.TB, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// httpClient keeps no idle connections, so no transport goroutine outlives
// a request.
var httpClient = &http.Client{
	Timeout:   3 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// HTTPGet returns the status code and body of a GET of url. On error the
// code is 0 unless the response arrived and only reading its body failed.
// It is safe for concurrent use.
func HTTPGet(url string) (code int, body string, err error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// ActivationSocket listens on a free loopback port, as a systemd socket
// unit would, and returns its address and a dup of its file descriptor to
// pass to a daemon (as fd 3). Both are closed when the test ends.
func ActivationSocket(t testing.TB) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ln.Addr().String(), f
}
