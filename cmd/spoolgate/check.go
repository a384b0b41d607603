package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"spoolgate/conf"
	"spoolgate/internal/broker"
	"spoolgate/receiver"
)

const checkDoc = `Tests the configuration as nginx -t does: the syntax and every value (what
the daemons refuse at start: unknown keys, bad values, TLS files that do not
load, two listen addresses on one port), then this host: the directories
exist or can be created and are writable by the user running the check, the
listen and admin addresses can be bound (an address held by the running
daemon is a note), sender.remote is set when the sender runs here, and with
receiver.sink=amqp or sender.source=amqp a RabbitMQ node of the URLs answers
(a warning when none does: the daemon starts, not ready, and reconnects).

With -syntax only the configuration is tested, not this host (a tree staged
under DESTDIR, a config for another host). Once the configuration loads,
the first line on stdout is the dialect of the wire it sets (protocol.*),
e.g. "dialect: euc-kr, fixed width (request 97 bytes, reply 31), framing
length (4 ascii bytes counting the rest); …".

Problems go to stderr, one line each, and make the exit code 2; warnings
("warning: ...", stderr) and notes ("note: ...", stdout) do not.`

// runCheck is `spoolgate check`: exit 0 when the daemons named by -daemons
// can start with this config on this host, 2 on any problem. With -all it
// checks every instance of the config directory (checkall.go).
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "[-config PATH | -all] [-daemons receiver,sender] [-syntax]", checkDoc, stderr)
	path := configFlag(fs)
	daemons := fs.String("daemons", "receiver,sender", "the daemons that run on this host: receiver, sender or receiver,sender")
	syntax := fs.Bool("syntax", false, "test the configuration only, not this host")
	all := fs.Bool("all", false, "every instance in the config directory ($"+conf.EnvConfigDir+", default "+conf.DefaultConfigDir+
		"), each as with -config, and the instances against each other (ports, directories)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spoolgate check: unexpected argument %q (the config file is given with -config)\n", fs.Arg(0))
		return 2
	}
	on, err := parseDaemons(*daemons)
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate check:", err)
		return 2
	}
	if *all {
		if *path != "" {
			fmt.Fprintln(stderr, "spoolgate check: give -all or -config, not both")
			return 2
		}
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "daemons" })
		return checkAll(on, given, *syntax, stdout, stderr)
	}
	_, r := checkConfig(*path, on, *syntax, "", stdout)
	return r.print(conf.Path(*path), "", stdout, stderr)
}

// checkConfig loads the config at path (readConfig) and checks it: the
// configuration, and this host unless syntax. It prints the dialect line
// after prefix on stdout and returns the config (nil when it does not
// load) and what was found.
func checkConfig(path string, on daemons, syntax bool, prefix string, stdout io.Writer) (*conf.Config, *report) {
	r := &report{}
	cfg, warning, err := readConfig(path)
	if warning != "" {
		r.warn("%s", warning)
	}
	switch probs := conf.Problems(err); {
	case err == nil:
		fmt.Fprintln(stdout, prefix+"dialect: "+cfg.Protocol.Dialect.String())
		for _, w := range cfg.Warnings() {
			r.warn("%s", w)
		}
		for _, c := range configChecks {
			c(cfg, on, r)
		}
		if syntax {
			if err := cfg.RequireSender(); err != nil && on.sender {
				r.note("the sender will not start until it is set: %v", err)
			}
			break
		}
		for _, c := range checks {
			c(cfg, on, r)
		}
	case len(probs) == 0:
		r.problem("%v", err)
	default:
		for _, p := range probs {
			r.problem("%v", p)
		}
	}
	if err != nil {
		cfg = nil
	}
	return cfg, r
}

// print writes what r holds, each line after prefix: the problems and
// warnings on stderr, the notes on stdout, then "PATH: ok" or the count of
// problems; it returns the exit code, 0 or 2.
func (r *report) print(path, prefix string, stdout, stderr io.Writer) int {
	for _, p := range r.problems {
		if !strings.HasPrefix(p, prefix) { // conf's lines start with the file's name
			p = prefix + p
		}
		fmt.Fprintln(stderr, p)
	}
	for _, w := range r.warnings {
		fmt.Fprintln(stderr, prefix+"warning: "+w)
	}
	for _, n := range r.notes {
		fmt.Fprintln(stdout, prefix+"note: "+n)
	}
	switch n := len(r.problems); {
	case n == 1:
		fmt.Fprintf(stdout, "%s: 1 problem\n", path)
		return 2
	case n > 1:
		fmt.Fprintf(stdout, "%s: %d problems\n", path, n)
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

// report collects what check finds beyond the syntax, each a line:
// problems (a daemon would not start or not work: exit 2), warnings (it
// works, but look at it) and notes (for information).
type report struct {
	problems, warnings, notes []string
}

func (r *report) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *report) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// daemons says which daemons run on this host with the config checked.
type daemons struct{ receiver, sender bool }

func parseDaemons(s string) (daemons, error) {
	var on daemons
	for _, d := range strings.Split(s, ",") {
		switch strings.TrimSpace(d) {
		case "receiver":
			on.receiver = true
		case "sender":
			on.sender = true
		default:
			return on, fmt.Errorf("-daemons %q: want receiver, sender or receiver,sender", s)
		}
	}
	return on, nil
}

// configChecks are the tests of a loaded configuration beyond what the
// daemons refuse, made with -syntax too.
var configChecks = []func(cfg *conf.Config, on daemons, r *report){
	checkAdminExposed,
}

// checks are the tests of this host, in the order their lines print. Each
// adds its findings to r; a new test (certificate expiry, key file
// permissions) is one more function here.
var checks = []func(cfg *conf.Config, on daemons, r *report){
	checkRemote,
	checkDirs,
	checkAddrs,
	checkTLS, // checktls.go
	checkBroker,
	checkSecretFiles, // checksecret.go
}

// checkAdminExposed: an admin address on every address of the host (0.0.0.0,
// [::], or no host) serves /metrics, /api/status and the console to every
// host that reaches the port. Without admin.token nothing there asks for a
// secret: a problem. With it (the console's actions need it), a note.
func checkAdminExposed(cfg *conf.Config, on daemons, r *report) {
	type admin struct{ key, addr string }
	var admins []admin
	if on.receiver {
		admins = append(admins, admin{"receiver.admin_listen", cfg.Receiver.AdminListen})
	}
	if on.sender {
		admins = append(admins, admin{"sender.admin_listen", cfg.Sender.AdminListen})
	}
	for _, a := range admins {
		host, _, err := net.SplitHostPort(a.addr)
		if a.addr == "" || err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
			continue
		}
		if cfg.AdminToken == "" {
			r.problem("%s %s: listens on every address of this host and admin.token is not set: any host that reaches the port "+
				"reads the console and /api/status (the receiver's reject samples too); listen on 127.0.0.1 (reach it with ssh -L) "+
				"or on one address of a management network, or set admin.token and firewall the port", a.key, a.addr)
			continue
		}
		r.note("%s %s: listens on every address of this host: /metrics, /api/status and the console are read without "+
			"admin.token by any host that reaches the port; firewall it", a.key, a.addr)
	}
}

// checkBroker: the receiver's sink's remote (receiver.NeedsOf: the amqp
// sink's broker) and, with the amqp source, the sender's broker answer,
// and their queues exist (a missing one is declared at start). A broker
// down is a warning, not a problem: the daemons start without it and
// reconnect.
func checkBroker(cfg *conf.Config, on daemons, r *report) {
	var remotes []receiver.NeededRemote
	if on.receiver {
		if rm := receiver.NeedsOf(cfg.Receiver).Remote; rm != nil {
			remotes = append(remotes, *rm)
		}
	}
	if c := cfg.Sender; on.sender && c.Source == conf.SourceAMQP {
		remotes = append(remotes, receiver.NeededRemote{Key: "sender.amqp.url",
			Down: "the sender starts, not ready, and reconnects until a node answers",
			Reach: func(ctx context.Context) ([]string, error) {
				return broker.Missing(ctx, c.AMQP.URL, c.AMQP.Queue, c.AMQP.FailedQueue)
			}})
	}
	for _, rm := range remotes {
		ctx, cancel := context.WithTimeout(context.Background(), 2*broker.DialTimeout)
		missing, err := rm.Reach(ctx)
		cancel()
		if err != nil {
			r.warn("%s: %v: %s", rm.Key, err, rm.Down)
			continue
		}
		for _, m := range missing {
			r.note("%s does not exist yet: the daemon declares it at start", m)
		}
	}
}

// checkRemote: the sender does not start without sender.remote.
func checkRemote(cfg *conf.Config, on daemons, r *report) {
	if !on.sender {
		return
	}
	if err := cfg.RequireSender(); err != nil {
		r.problem("%v (or -daemons receiver when no sender runs here)", err)
	}
}

// checkDirs: each directory the daemons write exists and is readable and
// writable by this user, or can be created (the daemons create it).
func checkDirs(cfg *conf.Config, on daemons, r *report) {
	type dir struct{ key, path string }
	var dirs []dir
	if on.receiver { // the directories the sink writes (the amqp sink: none)
		for _, d := range receiver.NeedsOf(cfg.Receiver).Dirs {
			dirs = append(dirs, dir{d.Key, d.Path})
		}
	}
	if on.sender && cfg.Sender.Source != conf.SourceAMQP { // the amqp source uses no spool
		dirs = append(dirs, dir{"sender.spool_dir", cfg.Sender.SpoolDir}, dir{"sender.failed_dir", cfg.Sender.FailedDir},
			dir{"sender.sent_dir", cfg.Sender.SentDir})
	}
	dirs = append(dirs, dir{"log.dir", cfg.Log.Dir}, dir{"journal.dir", cfg.Journal.Dir})
	if off := cfg.JournalOff(); off != "" {
		r.note("%s (spoolgate trace finds nothing)", off)
	}
	who := userName()
	for _, d := range dirs {
		if d.path == "" {
			continue
		}
		if msg, bad := dirProblem(d.path, who); bad {
			r.problem("%s %s: %s", d.key, d.path, msg)
		} else if msg != "" {
			r.note("%s %s: %s", d.key, d.path, msg)
		}
	}
	if on.receiver && cfg.Log.Dir != "" {
		logFile(filepath.Join(cfg.Log.Dir, "receiver.log"), who, r)
	}
	if on.sender && cfg.Log.Dir != "" {
		logFile(filepath.Join(cfg.Log.Dir, "sender.log"), who, r)
	}
	if os.Geteuid() == 0 {
		r.note("checked as root, who may write where the daemons' user may not: run it as that user too (sudo -u spoolgate spoolgate check)")
	}
}

// dirProblem tests the directory at path for user who. It returns "", false
// when all is well; a note and false when the directory is missing but can
// be created; a problem and true otherwise.
func dirProblem(path, who string) (msg string, bad bool) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.IsDir():
		return "not a directory", true
	case err == nil:
		if err := syscall.Access(path, rwx); err != nil {
			return fmt.Sprintf("not readable and writable by user %s (%v)", who, err), true
		}
		return "", false
	case !missing(err):
		return fmt.Sprintf("cannot be reached by user %s (%v)", who, errno(err)), true
	}
	// Missing: the daemon creates it, with its missing parents, in the
	// nearest directory that exists.
	parent := filepath.Dir(path)
	for {
		fi, err := os.Stat(parent)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Sprintf("does not exist and cannot be created: %s is not a directory", parent), true
		case err == nil:
			if err := syscall.Access(parent, wx); err != nil {
				return fmt.Sprintf("does not exist and cannot be created by user %s: %s is not writable (%v)", who, parent, err), true
			}
			return "does not exist; the daemon creates it in " + parent, false
		case !missing(err):
			return fmt.Sprintf("does not exist and cannot be created by user %s: %s cannot be reached (%v)", who, parent, errno(err)), true
		}
		if parent == filepath.Dir(parent) {
			return "does not exist and no parent directory exists", true
		}
		parent = filepath.Dir(parent)
	}
}

// missing reports whether a Stat error means that the path does not exist:
// ENOENT, or ENOTDIR when a parent is a file (which the walk up finds).
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Modes for access(2).
const (
	rwx = 0x4 | 0x2 | 0x1 // R_OK | W_OK | X_OK
	wx  = 0x2 | 0x1
)

// logFile: an existing log file must be writable (the daemon appends).
func logFile(path, who string, r *report) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	if err := syscall.Access(path, 0x2); err != nil {
		r.problem("log.dir %s: %s is not writable by user %s (%v)", filepath.Dir(path), filepath.Base(path), who, err)
	}
}

// errno returns the system error inside err, for a short message.
func errno(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// userName names the user running the check.
func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// checkAddrs: each listen address of the daemons that run here can be
// bound. One that is in use is a note when the running daemon holds it
// (the check runs beside it, e.g. before a restart), a problem when
// another program does, and a warning when this user cannot see who.
func checkAddrs(cfg *conf.Config, on daemons, r *report) {
	type addr struct{ key, addr, daemon string }
	var addrs []addr
	if on.receiver {
		addrs = append(addrs, addr{"receiver.listen", cfg.Receiver.Listen, "receiver"}, addr{"receiver.admin_listen", cfg.Receiver.AdminListen, "receiver"})
	}
	if on.sender {
		addrs = append(addrs, addr{"sender.admin_listen", cfg.Sender.AdminListen, "sender"})
	}
	for _, a := range addrs {
		if a.addr != "" {
			checkAddr(a.key, a.addr, a.daemon, r)
		}
	}
}

// checkAddr tests one listen address of daemon ("receiver", "sender").
func checkAddr(key, addr, daemon string, r *report) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		_ = ln.Close()
		return
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		hint := ""
		if _, port, _ := net.SplitHostPort(addr); errors.Is(err, syscall.EACCES) && len(port) < 4 {
			hint = ": a port below 1024 needs CAP_NET_BIND_SERVICE"
		}
		r.problem("%s %s: cannot listen there (%v)%s", key, addr, err, hint)
		return
	}
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	holders := listeners(n)
	for _, h := range holders {
		if h.is("spoolgate-" + daemon) {
			r.note("%s %s: in use by the running %s, %s (restart it to apply this config)", key, addr, daemon, h)
			return
		}
	}
	for _, h := range holders {
		if key == "receiver.listen" && h.pid == 1 {
			r.note("%s %s: held by systemd (pid 1) for socket activation (spoolgate-receiver.socket)", key, addr)
			return
		}
	}
	if len(holders) > 0 {
		r.problem("%s %s: in use by %s: the %s cannot listen there", key, addr, holders[0], daemon)
		return
	}
	r.warn("%s %s: in use, by a process user %s cannot see (the running %s?)", key, addr, userName(), daemon)
}
