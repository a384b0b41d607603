package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
	"spoolgate/internal/fsutil"
)

const initDoc = `Writes the config of a new instance NAME, one more partner on this host
(docs/PROTOCOL.md §10): $SPOOLGATE_CONFIG_DIR/NAME.properties (default
/etc/spoolgate), the shipped conf.properties with the instance's own lines:

  receiver.listen        -listen, else 0.0.0.0 and a free port
  receiver.admin_listen  127.0.0.1 and the next port
  sender.admin_listen    127.0.0.1 and the one after
  sender.remote          -remote (the sender does not start until it is set)
  receiver.data_dir, sender.spool_dir, sender.failed_dir
                         STATE/NAME/request, outbox, failed
  log.dir                LOGS/NAME (the journal in LOGS/NAME/journal)

The ports are the first block of ten from -ports (9020, 9030, …) whose
ports no other instance's config uses and that are free on this host. The
directories are created (as root: owned by user spoolgate, 2770, as the
packages create the unnamed instance's). Under systemd the port of the
socket unit goes into a drop-in (-systemd DIR/spoolgate-receiver@NAME.socket.d/
listen.conf), and directories other than the template units' into
paths.conf drop-ins of both services.

NAME is lower-case letters, digits and '-'. A NAME that exists, a port or
a directory of another instance, or a value that does not load is refused:
exit 2. Then it prints the systemctl line that starts the instance.`

// Defaults of spoolgate init: the template units' directories.
const (
	initState = "/var/spool/spoolgate"
	initLogs  = "/var/log/spoolgate"
	initPorts = 9020 // the unnamed instance has 9010, 9011 and 9012
	unitDir   = "/etc/systemd/system"
)

// runInit is spoolgate init NAME: the config, directories and unit
// drop-ins of a new instance. Exit 0 when written, 2 for bad usage, a
// name that exists or a config that would not work beside the others, 1
// when a file or directory cannot be written.
func runInit(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("init", "NAME [-listen ADDR] [-remote HOST:PORT] [-state DIR] [-logs DIR] [-ports FIRST] [-systemd DIR]", initDoc, stderr)
	o := initOptions{}
	fs.StringVar(&o.listen, "listen", "", "receiver.listen, HOST:PORT (default 0.0.0.0 and a free port that no other instance uses)")
	fs.StringVar(&o.remote, "remote", "", "sender.remote: the partner's HOST:PORT, a comma-separated list for backup lines (empty: set it later)")
	fs.StringVar(&o.state, "state", initState, "the instance's request, outbox and failed directories go into DIR/NAME")
	fs.StringVar(&o.logs, "logs", initLogs, "the instance's logs and journal go into DIR/NAME")
	fs.IntVar(&o.ports, "ports", initPorts, "the first port to try: the instance takes a block of ten's first three ports (listen, receiver admin, sender admin)")
	units := ""
	if fi, err := os.Stat(unitDir); err == nil && fi.IsDir() {
		units = unitDir
	}
	fs.StringVar(&o.units, "systemd", units, "where the unit drop-ins go (default "+unitDir+" when it exists); empty: print them")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	// NAME may come first: the flags after it are parsed too.
	if fs.NArg() > 0 {
		o.name = fs.Arg(0)
		if code, ok := parseFlags(fs, fs.Args()[1:], stdout, stderr); !ok {
			return code
		}
	}
	switch {
	case o.name == "":
		fmt.Fprintln(stderr, "spoolgate init: name the instance, e.g. spoolgate init bank-b -remote 10.1.2.3:9010")
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "spoolgate init: unexpected argument %q\n", fs.Arg(0))
		return 2
	case !conf.ValidInstanceName(o.name):
		fmt.Fprintf(stderr, "spoolgate init: %q is no instance name: lower-case letters, digits and '-', not first, at most %d, not conf\n",
			o.name, conf.MaxInstanceName)
		return 2
	case o.ports < 1 || o.ports > 65533:
		fmt.Fprintf(stderr, "spoolgate init: -ports %d: want a port from 1 to 65533\n", o.ports)
		return 2
	}
	return o.run(stdout, stderr)
}

// initOptions are the flags of spoolgate init.
type initOptions struct {
	name, listen, remote, state, logs, units string
	ports                                    int
}

// initError is a failure of init with its exit code.
type initError struct {
	code int
	msg  string
}

func (e *initError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &initError{2, fmt.Sprintf(format, args...)}
}

func (o *initOptions) run(stdout, stderr io.Writer) int {
	err := o.write(stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "spoolgate init:", err)
	var ie *initError
	if errors.As(err, &ie) {
		return ie.code
	}
	return 1
}

// newInstance is what init writes.
type newInstance struct {
	host.Instance
	values               map[string]string // the config's own lines
	state, logs          string            // STATE/NAME, LOGS/NAME
	data, outbox, failed string
	listen               string
}

func (o *initOptions) write(stdout, stderr io.Writer) error {
	dir := conf.ConfigDir()
	path := host.File(dir, o.name)
	if _, err := os.Lstat(path); err == nil {
		return refuse("instance %s exists: %s (remove it first, or choose another name)", o.name, path)
	}
	others, err := otherInstances(dir)
	if err != nil {
		return err
	}
	ni, err := o.plan(path, others)
	if err != nil {
		return err
	}
	own := daemonUser(stderr)
	if err := own.configDir(dir); err != nil {
		return err
	}
	tmp, err := ni.writeTemp(dir, others)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // once renamed, nothing
	if err := ni.makeDirs(own); err != nil {
		return err
	}
	if err := own.configFile(tmp); err != nil {
		return err
	}
	if err := fsutil.RenameNoReplace(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuse("instance %s exists: %s (written meanwhile)", o.name, path)
		}
		return err
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	return ni.dropIns(o.units, stdout)
}

// otherInstances loads every instance of dir; one that does not load
// stops init, which could not tell its ports and directories.
func otherInstances(dir string) ([]loadedInstance, error) {
	insts, err := host.List(dir)
	if errors.Is(err, host.ErrNoInstances) || errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env := saveEnv()
	defer env.restore()
	var out []loadedInstance
	for _, ic := range insts {
		cfg, _, err := env.load(ic)
		if err != nil {
			return nil, refuse("instance %s does not load, so its ports and directories are unknown: fix it first (spoolgate check -all): %v",
				ic.Label(), err)
		}
		out = append(out, loadedInstance{ic, cfg, daemons{true, true}})
	}
	return out, nil
}

// plan picks the ports and directories of the new instance.
func (o *initOptions) plan(path string, others []loadedInstance) (*newInstance, error) {
	ni := &newInstance{Instance: host.Instance{Name: o.name, Path: path}}
	for _, d := range []*string{&o.state, &o.logs} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return nil, err
		}
		*d = abs
	}
	ni.state, ni.logs = filepath.Join(o.state, o.name), filepath.Join(o.logs, o.name)
	ni.data, ni.outbox, ni.failed = filepath.Join(ni.state, "request"), filepath.Join(ni.state, "outbox"), filepath.Join(ni.state, "failed")
	taken := func(addr string) string {
		for _, oi := range others {
			for _, a := range listenAddrs(oi.cfg, daemons{true, true}) {
				if conf.SamePort(addr, a.value) {
					return fmt.Sprintf("instance %s's %s %s", oi.Shown(), a.key, a.value)
				}
			}
		}
		return ""
	}
	if o.listen != "" {
		if _, port, err := net.SplitHostPort(o.listen); err != nil || port == "0" {
			return nil, refuse("-listen %q: want HOST:PORT with a port, e.g. 0.0.0.0:9020", o.listen)
		}
		if by := taken(o.listen); by != "" {
			return nil, refuse("-listen %s: %s has that port", o.listen, by)
		}
	}
	listen, rAdmin, sAdmin, ok := pickPorts(o.ports, o.listen, taken)
	if !ok {
		return nil, refuse("no block of ten ports from %d has three that no instance uses and that are free here: try -ports", o.ports)
	}
	ni.listen = listen
	ni.values = map[string]string{
		"receiver.listen":       listen,
		"receiver.admin_listen": rAdmin,
		"receiver.data_dir":     ni.data,
		"sender.remote":         o.remote,
		"sender.admin_listen":   sAdmin,
		"sender.spool_dir":      ni.outbox,
		"sender.failed_dir":     ni.failed,
		"log.dir":               ni.logs,
	}
	return ni, nil
}

// pickPorts returns the listen address (listen when given) and the two
// admin addresses of the first block of ten ports from first whose ports
// no instance has (taken) and that can be bound now.
func pickPorts(first int, listen string, taken func(string) string) (l, rAdmin, sAdmin string, ok bool) {
	for base := first; base+2 <= 65535; base = base - base%10 + 10 {
		l = listen
		if l == "" {
			l = net.JoinHostPort("0.0.0.0", strconv.Itoa(base))
		}
		rAdmin = net.JoinHostPort("127.0.0.1", strconv.Itoa(base+1))
		sAdmin = net.JoinHostPort("127.0.0.1", strconv.Itoa(base+2))
		try := []string{rAdmin, sAdmin}
		if listen == "" {
			try = append(try, l)
		}
		free := !conf.SamePort(l, rAdmin) && !conf.SamePort(l, sAdmin)
		for _, a := range try {
			free = free && taken(a) == "" && bindable(a)
		}
		if free {
			return l, rAdmin, sAdmin, true
		}
	}
	return "", "", "", false
}

// bindable reports whether a TCP listener can be opened on addr now.
func bindable(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// configText returns the shipped conf.properties with the instance's own
// values in place of the defaults, under a header that names it.
func (ni *newInstance) configText() ([]byte, error) {
	socket, recv, send := ni.Units()
	head := fmt.Sprintf(`# spoolgate instance %s, written by spoolgate init; its units are
# %s, %s and
# %s (started with -config %s).
#
# The lines below are the shipped conf.properties: every key with its
# default, but for the instance's own ports and directories. Set the
# partner's format (protocol.*, README: Your partner's format), check with
#   spoolgate check -config %s
# and compare the instances with spoolgate check -all. Under systemd the
# receiver's port is the socket unit's (its drop-in listen.conf): change it
# there too when you change receiver.listen.

`, ni.Name, socket, recv, send, ni.Path, ni.Path)
	text := conf.Shipped
	for key, value := range ni.values {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `[ \t]*=.*$`)
		loc := re.FindIndex(text)
		if loc == nil {
			return nil, fmt.Errorf("the shipped conf.properties has no line %s = (a bug)", key)
		}
		line := key + " = " + strings.ReplaceAll(value, `\`, `\\`)
		text = append(append(append([]byte{}, text[:loc[0]]...), line...), text[loc[1]:]...)
	}
	return append([]byte(head), text...), nil
}

// writeTemp writes the config into a temporary file of dir, loads it and
// holds it against the other instances; it returns the file's path. A
// value that does not load or a collision is refused (exit 2).
func (ni *newInstance) writeTemp(dir string, others []loadedInstance) (string, error) {
	text, err := ni.configText()
	if err != nil {
		return "", err
	}
	tmp, err := fsutil.WriteTemp(dir, "."+ni.Name+".properties.*.tmp", 0o640, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(text)
		return err
	})
	if err != nil {
		return "", err
	}
	cfg, err := conf.Load(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		var msgs []string
		for _, p := range conf.Problems(err) {
			msgs = append(msgs, p.Error())
		}
		if len(msgs) == 0 {
			msgs = append(msgs, err.Error())
		}
		return "", refuse("the config would not load: %s", strings.Join(msgs, "; "))
	}
	r := &report{}
	for _, oi := range others {
		collisions([]loadedInstance{oi, {ni.Instance, cfg, daemons{true, true}}}, r)
	}
	if len(r.problems) > 0 {
		_ = os.Remove(tmp)
		return "", refuse("%s", strings.Join(r.problems, "; "))
	}
	return tmp, nil
}

// dirOwner is who owns what init creates: user and group spoolgate when
// it runs as root and they exist, else whoever runs it.
type dirOwner struct {
	uid, gid int // -1: unchanged
	root     bool
}

// daemonUser returns the owner of the instance's directories; as root
// without user spoolgate it warns on w.
func daemonUser(w io.Writer) dirOwner {
	o := dirOwner{uid: -1, gid: -1, root: os.Geteuid() == 0}
	if !o.root {
		return o
	}
	u, err := user.Lookup("spoolgate")
	if err != nil {
		fmt.Fprintln(w, "spoolgate init: warning: user spoolgate does not exist (the packages create it): the directories stay root's; "+
			"chown them to the user that runs the daemons")
		return o
	}
	o.uid, _ = strconv.Atoi(u.Uid)
	o.gid, _ = strconv.Atoi(u.Gid)
	return o
}

// configDir creates the config directory dir when it is missing, as the
// packages do: 0750, root:spoolgate as root.
func (o dirOwner) configDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if o.gid >= 0 {
		return os.Chown(dir, 0, o.gid)
	}
	return nil
}

// configFile gives the config file root:spoolgate 0640 as root, as the
// packages install conf.properties (it may hold admin.token).
func (o dirOwner) configFile(path string) error {
	if o.gid >= 0 {
		if err := os.Chown(path, 0, o.gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, 0o640)
}

// makeDirs creates the instance's directories with the modes of the
// packages' tmpfiles.d: STATE/NAME 0755 (root's), its request, outbox and
// failed 2770 and LOGS/NAME 0750, owned by spoolgate. A directory that
// exists is kept as it is.
func (ni *newInstance) makeDirs(own dirOwner) error {
	for _, d := range []struct {
		path  string
		mode  os.FileMode
		owned bool
	}{
		{ni.state, 0o755, false},
		{ni.data, 0o770 | os.ModeSetgid, true},
		{ni.outbox, 0o770 | os.ModeSetgid, true},
		{ni.failed, 0o770 | os.ModeSetgid, true},
		{ni.logs, 0o750, true},
	} {
		if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
			return err
		}
		err := os.Mkdir(d.path, d.mode.Perm())
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Stat(d.path); serr != nil || !fi.IsDir() {
				return fmt.Errorf("%s exists and is not a directory", d.path)
			}
			continue
		}
		if err != nil {
			return err
		}
		if d.owned && own.uid >= 0 {
			if err := os.Chown(d.path, own.uid, own.gid); err != nil {
				return err
			}
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
	}
	return nil
}

// dropIns writes the unit drop-ins of the instance into units (or prints
// them when units is ""), then what to run next.
func (ni *newInstance) dropIns(units string, w io.Writer) error {
	socket, recv, send := ni.Units()
	type dropIn struct{ unit, text string }
	_, port, _ := net.SplitHostPort(ni.listen)
	stream := ni.listen
	if host, _, _ := net.SplitHostPort(ni.listen); host == "" {
		stream = port // every address, IPv4 and IPv6, as the plain socket unit
	}
	ins := []dropIn{{socket, fmt.Sprintf("# Written by spoolgate init: the port of instance %s's receiver, receiver.listen\n"+
		"# in %s (change both together).\n[Socket]\nListenStream=%s\n", ni.Name, ni.Path, stream)}}
	// The template units let the daemons write STATE/NAME's and LOGS/NAME's
	// default places only.
	if filepath.Dir(ni.state) != initState || filepath.Dir(ni.logs) != initLogs {
		paths := "# Written by spoolgate init: the directories of instance %s (" + ni.Path + ").\n[Service]\nReadWritePaths=%s\n"
		ins = append(ins, dropIn{recv, fmt.Sprintf(paths, ni.Name, ni.data+" "+ni.logs)},
			dropIn{send, fmt.Sprintf(paths, ni.Name, ni.outbox+" "+ni.failed+" "+ni.logs)})
	}
	fmt.Fprintf(w, "instance %s: %s\n", ni.Name, ni.Path)
	keys := []string{"receiver.listen", "receiver.admin_listen", "sender.admin_listen", "sender.remote",
		"receiver.data_dir", "sender.spool_dir", "sender.failed_dir", "log.dir"}
	for _, k := range keys {
		v := ni.values[k]
		if v == "" {
			v = "(not set: the sender starts once it is)"
		}
		fmt.Fprintf(w, "  %-22s %s\n", k, v)
	}
	for i, d := range ins {
		name := "listen.conf"
		if i > 0 {
			name = "paths.conf"
		}
		if units == "" {
			fmt.Fprintf(w, "under systemd, put this in %s (systemctl edit %s):\n%s", filepath.Join(unitDir, d.unit+".d", name), d.unit, indent(d.text))
			continue
		}
		p := filepath.Join(units, d.unit+".d", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(p, []byte(d.text), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-22s %s\n", "systemd drop-in", p)
	}
	fmt.Fprintf(w, "next: set the partner's format (protocol.*) in %s if it is not the default, then\n", ni.Path)
	fmt.Fprintf(w, "  spoolgate check -config %s\n", ni.Path)
	if units != "" {
		fmt.Fprintln(w, "  systemctl daemon-reload")
	}
	if ni.values["sender.remote"] == "" {
		fmt.Fprintf(w, "  systemctl enable --now %s %s\n", socket, recv)
		fmt.Fprintf(w, "  (set sender.remote, then: systemctl enable --now %s)\n", send)
		return nil
	}
	fmt.Fprintf(w, "  systemctl enable --now %s %s %s\n", socket, recv, send)
	return nil
}

// indent indents each line of s by four spaces.
func indent(s string) string {
	var b bytes.Buffer
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}
