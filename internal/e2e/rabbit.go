package e2e

// A real RabbitMQ for the tests (issue 14): Debian's rabbitmq-server,
// started as a node of the test's own on 127.0.0.1, never the machine's
// service.
//
// Each node has its own node name (sg<n>-<pid>@localhost), AMQP port,
// distribution port, data dir (RABBITMQ_MNESIA_BASE), log dir, config file
// and Erlang cookie (HOME/.erlang.cookie), all under a temporary directory;
// its epmd runs in the foreground as a child of the test on a port of its
// own (ERL_EPMD_PORT), shared by the nodes of one cluster. A node starts
// with `rabbitmq-server -detached`; the helper polls
// `rabbitmq-diagnostics -q ping`, then runs `rabbitmqctl await_startup`,
// and stops the node (SIGTERM to the PID in its pid file, SIGKILL after
// 30 s) and its epmd by PID.
//
// To run the same by hand (as root or any user; nothing outside DIR is
// written):
//
//	DIR=$(mktemp -d); cd $DIR; echo '[].' > enabled_plugins
//	printf 'listeners.tcp.default = 127.0.0.1:25672\n' > rabbitmq.conf
//	echo somecookie > .erlang.cookie; chmod 400 .erlang.cookie
//	export HOME=$DIR RABBITMQ_NODENAME=sgt@localhost RABBITMQ_NODE_PORT=25672 \
//	  RABBITMQ_DIST_PORT=25673 ERL_EPMD_PORT=24369 RABBITMQ_MNESIA_BASE=$DIR/mnesia \
//	  RABBITMQ_LOG_BASE=$DIR/log RABBITMQ_CONFIG_FILE=$DIR/rabbitmq \
//	  RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins RABBITMQ_PID_FILE=$DIR/pid \
//	  RABBITMQ_CONF_ENV_FILE=$DIR/none
//	/usr/lib/rabbitmq/bin/rabbitmq-server -detached
//	/usr/lib/rabbitmq/bin/rabbitmq-diagnostics -q ping   # until it answers
//	/usr/lib/rabbitmq/bin/rabbitmqctl await_startup
//	# amqp://guest:guest@127.0.0.1:25672/ ; to stop:
//	/usr/lib/rabbitmq/bin/rabbitmqctl shutdown; pkill -f "epmd.*24369"
//
// RabbitShared is one node for all the tests of a package (started at the
// first call, stopped by Main's cleanup); StartRabbit is a node of one
// test's own, for tests that stop or kill the broker; StartRabbitCluster
// joins several into a cluster.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RabbitBin is where Debian's package puts the node's scripts (those in
// /usr/sbin switch to the rabbitmq user, which cannot read a test's
// directory).
const RabbitBin = "/usr/lib/rabbitmq/bin"

// RabbitSkip is why the tests that need a broker skip when it is missing.
const RabbitSkip = "rabbitmq-server is not installed: apt-get install rabbitmq-server (scripts/test.sh does, as root)"

// RabbitNode is a running rabbitmq-server node of the tests.
type RabbitNode struct {
	Name     string // Erlang node name, sg<n>-<pid>@localhost
	AMQPAddr string // 127.0.0.1:port
	URL      string // amqp://guest:guest@AMQPAddr/ (guest may log in from loopback)
	Dir      string // everything of the node: data, logs, config, cookie

	env  []string
	epmd *epmd
	mu   sync.Mutex
	pid  int // of beam.smp, from the pid file; 0 when stopped
}

type epmd struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

var (
	rabbitSeq    atomic.Int64
	rabbitMu     sync.Mutex
	rabbitShared *RabbitNode
	rabbitErr    error
	rabbitOwned  []*RabbitNode // started outside a test's cleanup: stopped by StopRabbits
	epmds        []*epmd
)

// RabbitAvailable reports whether rabbitmq-server is installed.
func RabbitAvailable() bool {
	_, err := os.Stat(filepath.Join(RabbitBin, "rabbitmq-server"))
	return err == nil
}

// RabbitShared returns the package's shared node, starting it at the first
// call; it skips the test when rabbitmq-server is not installed. Tests that
// share it use queues of their own names. Main stops it after the tests.
func RabbitShared(t testing.TB) *RabbitNode {
	t.Helper()
	if !RabbitAvailable() {
		t.Skip(RabbitSkip)
	}
	rabbitMu.Lock()
	defer rabbitMu.Unlock()
	if rabbitShared == nil && rabbitErr == nil {
		e, err := startEPMD()
		if err == nil {
			epmds = append(epmds, e)
			var n *RabbitNode
			n, err = newRabbit(e, "rabbitcookie")
			if err == nil {
				err = n.Start()
			}
			if n != nil {
				rabbitOwned = append(rabbitOwned, n)
			}
			if err == nil {
				rabbitShared = n
			}
		}
		rabbitErr = err
	}
	if rabbitErr != nil {
		t.Fatalf("start the shared rabbitmq node: %v", rabbitErr)
	}
	return rabbitShared
}

// StartRabbit starts a node of the test's own, stopped when the test ends.
func StartRabbit(t testing.TB) *RabbitNode {
	t.Helper()
	return StartRabbitCluster(t, 1)[0]
}

// StartRabbitCluster starts size nodes sharing one epmd and cookie and
// joins the others to the first; they are stopped when the test ends.
func StartRabbitCluster(t testing.TB, size int) []*RabbitNode {
	t.Helper()
	if !RabbitAvailable() {
		t.Skip(RabbitSkip)
	}
	e, err := startEPMD()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	nodes := make([]*RabbitNode, size)
	for i := range nodes {
		n, err := newRabbit(e, "clustercookie")
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		t.Cleanup(func() { n.Stop(); os.RemoveAll(n.Dir) })
	}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", nodes[0].Name}, {"start_app"}} {
			if out, err := n.Ctl(args...); err != nil {
				t.Fatalf("%s: rabbitmqctl %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
			}
		}
	}
	return nodes
}

// StopRabbits stops the nodes and epmds started outside a test (the shared
// node); Main calls it after the tests.
func StopRabbits() {
	rabbitMu.Lock()
	defer rabbitMu.Unlock()
	for _, n := range rabbitOwned {
		n.Stop()
		os.RemoveAll(n.Dir)
	}
	for _, e := range epmds {
		e.stop()
	}
	rabbitOwned, epmds, rabbitShared, rabbitErr = nil, nil, nil, nil
}

// startEPMD runs an epmd of the tests' own in the foreground.
func startEPMD() (*epmd, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("epmd", "-port", strconv.Itoa(port), "-address", "127.0.0.1")
	if _, err := exec.LookPath("epmd"); err != nil {
		cmd = exec.Command(firstGlob("/usr/lib/erlang/erts-*/bin/epmd"), "-port", strconv.Itoa(port), "-address", "127.0.0.1")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start epmd: %w", err)
	}
	e := &epmd{port: port, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-e.done:
			return nil, fmt.Errorf("epmd exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("epmd did not listen on %d", port)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	return e, nil
}

func (e *epmd) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Kill()
	<-e.done
}

func firstGlob(pattern string) string {
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return "epmd"
	}
	return m[0]
}

// newRabbit prepares a node's directory, config and environment.
func newRabbit(e *epmd, cookie string) (*RabbitNode, error) {
	dir, err := os.MkdirTemp("", "spoolgate-rabbit-")
	if err != nil {
		return nil, err
	}
	amqpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	distPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := &RabbitNode{
		Name:     fmt.Sprintf("sg%d-%d@localhost", rabbitSeq.Add(1), os.Getpid()),
		AMQPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(amqpPort)),
		Dir:      dir,
		epmd:     e,
	}
	n.URL = "amqp://guest:guest@" + n.AMQPAddr + "/"
	files := map[string]string{
		"enabled_plugins": "[].\n",
		"rabbitmq.conf": "listeners.tcp.default = " + n.AMQPAddr + "\n" +
			"log.file.level = info\n" +
			"log.console = false\n",
		".erlang.cookie": cookie + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(filepath.Join(dir, ".erlang.cookie"), 0o400); err != nil {
		return nil, err
	}
	n.env = append(os.Environ(),
		"HOME="+dir,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(amqpPort),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(e.port),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"), // not /etc's
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
	)
	return n, nil
}

// command is one of the node's scripts with the node's environment.
func (n *RabbitNode) command(ctx context.Context, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(RabbitBin, script), args...)
	cmd.Env = n.env
	cmd.Dir = n.Dir
	return cmd
}

// Ctl runs rabbitmqctl with args against the node and returns its output.
func (n *RabbitNode) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := n.command(ctx, "rabbitmqctl", args...).CombinedOutput()
	return string(out), err
}

// Start starts the node (again, after Stop or Kill: its data is kept) and
// returns once it has booted.
func (n *RabbitNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pidFile := filepath.Join(n.Dir, "pid")
	os.Remove(pidFile)
	if out, err := n.command(context.Background(), "rabbitmq-server", "-detached").CombinedOutput(); err != nil {
		return fmt.Errorf("%s: rabbitmq-server -detached: %v\n%s", n.Name, err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := n.command(ctx, "rabbitmq-diagnostics", "-q", "ping").Run()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer to rabbitmq-diagnostics ping within 2m; its log:\n%s", n.Name, n.logTail())
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := n.command(ctx, "rabbitmqctl", "-q", "await_startup").CombinedOutput(); err != nil {
		return fmt.Errorf("%s: rabbitmqctl await_startup: %v\n%s", n.Name, err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("%s: pid file: %w", n.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: pid file %q: %w", n.Name, b, err)
	}
	n.pid = pid
	return nil
}

// PID returns the PID of the node's Erlang VM, 0 when it is stopped.
func (n *RabbitNode) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pid
}

// Kill kills the node with SIGKILL and waits until it is gone.
func (n *RabbitNode) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pid == 0 {
		return
	}
	syscall.Kill(n.pid, syscall.SIGKILL)
	waitGone(n.pid, 30*time.Second)
	n.pid = 0
}

// Stop stops the node with SIGTERM (the VM shuts down cleanly), then
// SIGKILL if it has not ended within 30 s.
func (n *RabbitNode) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pid == 0 {
		return
	}
	syscall.Kill(n.pid, syscall.SIGTERM)
	if !waitGone(n.pid, 30*time.Second) {
		syscall.Kill(n.pid, syscall.SIGKILL)
		waitGone(n.pid, 10*time.Second)
	}
	n.pid = 0
}

// waitGone polls until pid no longer runs (or is a zombie nobody reaps).
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// logTail is the end of the node's log, for a failure message.
func (n *RabbitNode) logTail() string {
	m, _ := filepath.Glob(filepath.Join(n.Dir, "log", "*.log"))
	var out strings.Builder
	for _, p := range m {
		b, _ := os.ReadFile(p)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		fmt.Fprintf(&out, "== %s\n%s\n", p, b)
	}
	return out.String()
}
