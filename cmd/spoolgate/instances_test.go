package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"spoolgate/conf"
	"spoolgate/internal/e2e"
)

// host is a config directory with its state, logs and unit drop-ins in a
// temporary directory: what spoolgate init writes on a host, for the
// instances tests.
type testHost struct {
	dir, etc, state, logs, units string
	ports                        int // -ports of init: a block of free ports below the ephemeral range
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	dir := t.TempDir()
	port, err := e2e.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return &testHost{dir: dir, etc: filepath.Join(dir, "etc"), state: filepath.Join(dir, "spool"), logs: filepath.Join(dir, "log"),
		units: filepath.Join(dir, "systemd"), ports: port - port%10}
}

// env is the environment of the tool and the daemons on this host.
func (h *testHost) env() []string {
	return append(os.Environ(), "SPOOLGATE_CONFIG_DIR="+h.etc)
}

// tool runs spoolgate on this host.
func (h *testHost) tool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = h.env()
	return runTool(t, cmd, "")
}

// init runs spoolgate init with args (NAME and flags) and then the
// host's directories.
func (h *testHost) init(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	args = append(append([]string{"init"}, args...), "-state", h.state, "-logs", h.logs, "-systemd", h.units, "-ports", fmt.Sprint(h.ports))
	return h.tool(t, args...)
}

// config is the path of instance name's config.
func (h *testHost) config(name string) string { return filepath.Join(h.etc, name+".properties") }

// keyValue returns the value of key in the properties file at path.
func keyValue(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=[ \t]*(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no %s", path, key)
	}
	return strings.TrimSpace(string(m[1]))
}

// edit rewrites the properties file at path as an operator would: every
// line of a key that starts with one of drop goes, then set is appended.
func edit(t *testing.T, path string, drop []string, set ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		keep := true
		for _, d := range drop {
			keep = keep && !strings.HasPrefix(l, d)
		}
		if keep {
			out = append(out, l)
		}
	}
	e2e.WriteFile(t, path, strings.Join(append(out, set...), "\n")+"\n")
}

// TestInit: two inits give two configs that pass check, with distinct
// ports and directories and the socket's drop-in; an existing name, a
// bad name and a port another instance has are refused with exit 2.
func TestInit(t *testing.T) {
	h := newTestHost(t)
	for _, name := range []string{"alpha", "beta"} {
		code, out, errs := h.init(t, name, "-remote", "127.0.0.1:9")
		if code != 0 || !strings.Contains(out, "systemctl enable --now spoolgate-receiver@"+name+".socket spoolgate-receiver@"+name+".service spoolgate-sender@"+name+".service\n") {
			t.Fatalf("init %s: exit %d\n%s%s", name, code, out, errs)
		}
		if fi, err := os.Stat(h.config(name)); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: %v, want mode 0640", h.config(name), err)
		}
		if code, out, errs := h.tool(t, "check", "-config", h.config(name)); code != 0 {
			t.Errorf("check %s: exit %d\n%s%s", name, code, out, errs)
		}
		for _, d := range []string{"request", "outbox", "failed"} {
			if fi, err := os.Stat(filepath.Join(h.state, name, d)); err != nil || fi.Mode()&os.ModePerm != 0o770 || fi.Mode()&os.ModeSetgid == 0 {
				t.Errorf("%s/%s: %v %v, want a directory 2770", name, d, fi, err)
			}
		}
		dropIn := filepath.Join(h.units, "spoolgate-receiver@"+name+".socket.d", "listen.conf")
		if b, err := os.ReadFile(dropIn); err != nil || !strings.Contains(string(b), "ListenStream="+keyValue(t, h.config(name), "receiver.listen")+"\n") {
			t.Errorf("%s: %q %v, want the ListenStream of receiver.listen", dropIn, b, err)
		}
	}
	seen := map[string]string{}
	for _, name := range []string{"alpha", "beta"} {
		for _, k := range []string{"receiver.listen", "receiver.admin_listen", "sender.admin_listen", "receiver.data_dir", "sender.spool_dir",
			"sender.failed_dir", "log.dir"} {
			v := keyValue(t, h.config(name), k)
			if strings.Contains(k, "listen") {
				v = v[strings.LastIndex(v, ":"):] // the port
			}
			if other, ok := seen[v]; ok {
				t.Errorf("%s %s = %s, as %s", name, k, v, other)
			}
			seen[v] = name + " " + k
		}
		if got, want := keyValue(t, h.config(name), "log.dir"), filepath.Join(h.logs, name); got != want {
			t.Errorf("%s log.dir = %s, want %s (the journal goes into its journal/)", name, got, want)
		}
	}
	if code, out, errs := h.tool(t, "check", "-all"); code != 0 || !strings.Contains(out, "(2 instances) against each other: ok") {
		t.Errorf("check -all: exit %d\n%s%s", code, out, errs)
	}
	alphaListen := keyValue(t, h.config("alpha"), "receiver.listen")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"alpha"}, "instance alpha exists: " + h.config("alpha")},
		{[]string{"Gamma"}, `"Gamma" is no instance name`},
		{[]string{"conf"}, `"conf" is no instance name`},
		{[]string{"ga_mma"}, `"ga_mma" is no instance name`},
		{[]string{"-listen", "127.0.0.1:1", "-gamma"}, "flag provided but not defined: -gamma"},
		{[]string{"gamma", "-listen", alphaListen}, "-listen " + alphaListen + ": instance alpha's receiver.listen " + alphaListen + " has that port"},
		{[]string{"gamma", "-remote", "nowhere"}, "sender.remote"},
		{[]string{"gamma", "extra"}, `unexpected argument "extra"`},
		{[]string{}, "name the instance"},
	} {
		code, out, errs := h.init(t, tt.args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("init %q: exit %d, stderr %q (stdout %q); want 2 and %q", tt.args, code, errs, out, tt.want)
		}
	}
	if _, err := os.Stat(h.config("gamma")); err == nil {
		t.Errorf("a refused init left %s", h.config("gamma"))
	}
	// Without -remote the config passes check for the receiver; the line
	// starts the receiver only.
	code, out, errs := h.init(t, "gamma")
	if code != 0 || !strings.Contains(out, "systemctl enable --now spoolgate-receiver@gamma.socket spoolgate-receiver@gamma.service\n") ||
		!strings.Contains(out, "set sender.remote, then: systemctl enable --now spoolgate-sender@gamma.service") {
		t.Errorf("init gamma without -remote: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := h.tool(t, "check", "-config", h.config("gamma"), "-daemons", "receiver"); code != 0 {
		t.Errorf("check gamma -daemons receiver: exit %d\n%s%s", code, out, errs)
	}
	// check -all expects an instance's sender once its remote is set, as
	// status -all does; -daemons holds every instance to it.
	if code, out, errs := h.tool(t, "check", "-all"); code != 0 || !strings.Contains(out, "gamma.properties: note: sender.remote is empty: the sender is not checked") {
		t.Errorf("check -all with gamma receiving only: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := h.tool(t, "check", "-all", "-daemons", "receiver,sender"); code != 2 || !strings.HasPrefix(errs, "gamma.properties: sender.remote = \"\": required") {
		t.Errorf("check -all -daemons receiver,sender: exit %d\n%s%s", code, out, errs)
	}
}

// TestCheckAll: check -all finds each way two instances get in each
// other's way and names both; a journal directory shared is a note.
func TestCheckAll(t *testing.T) {
	for _, tt := range []struct {
		name, a, b string
		code       int
		want       string
	}{
		{"listen port", "receiver.listen = 127.0.0.1:21001", "receiver.listen = 0.0.0.0:21001", 2,
			"instances alpha and beta take one port: alpha's receiver.listen 127.0.0.1:21001 and beta's receiver.listen 0.0.0.0:21001"},
		{"admin port", "receiver.admin_listen = 127.0.0.1:21001", "sender.admin_listen = 127.0.0.1:21001", 2,
			"alpha's receiver.admin_listen 127.0.0.1:21001 and beta's sender.admin_listen 127.0.0.1:21001"},
		{"listen on an admin port", "sender.admin_listen = 127.0.0.1:21001", "receiver.listen = :21001", 2,
			"alpha's sender.admin_listen 127.0.0.1:21001 and beta's receiver.listen :21001"},
		{"data dir", "receiver.data_dir = D/x", "receiver.data_dir = D/x", 2,
			"instances alpha and beta share a directory: alpha's receiver.data_dir and beta's receiver.data_dir are both D/x"},
		{"spool", "sender.spool_dir = D/x", "sender.spool_dir = D/x", 2, "alpha's sender.spool_dir and beta's sender.spool_dir are both D/x"},
		{"failed", "sender.failed_dir = D/x", "sender.failed_dir = D/x", 2, "alpha's sender.failed_dir and beta's sender.failed_dir are both D/x"},
		{"sent", "sender.sent_dir = D/x", "sender.sent_dir = D/x", 2, "alpha's sender.sent_dir and beta's sender.sent_dir are both D/x"},
		{"log", "log.dir = D/x", "log.dir = D/x", 2, "alpha's log.dir and beta's log.dir are both D/x"},
		{"spool of one, data of the other", "sender.spool_dir = D/x", "receiver.data_dir = D/x", 2,
			"alpha's sender.spool_dir and beta's receiver.data_dir are both D/x"},
		{"journal into a spool", "journal.dir = D/x", "sender.spool_dir = D/x", 2, "alpha's journal.dir and beta's sender.spool_dir are both D/x"},
		{"journal shared", "journal.dir = D/x", "journal.dir = D/x", 0,
			"note: instances alpha and beta share the journal directory D/x (its files are named after each instance)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHost(t)
			port := 0
			for _, inst := range []struct{ name, line string }{{"alpha", tt.a}, {"beta", tt.b}} {
				// Every address and directory its own, then the case's line.
				lines := []string{}
				for _, k := range []string{"receiver.listen", "receiver.admin_listen", "sender.admin_listen"} {
					port++
					lines = append(lines, fmt.Sprintf("%s = 127.0.0.1:%d", k, 22000+port))
				}
				for _, k := range []string{"receiver.data_dir", "sender.spool_dir", "sender.failed_dir", "log.dir"} {
					lines = append(lines, k+" = "+filepath.Join(h.dir, inst.name, k))
				}
				lines = append(lines, "sender.remote = 127.0.0.1:9")
				key, _, _ := strings.Cut(inst.line, " = ")
				for i, l := range lines {
					if strings.HasPrefix(l, key+" = ") {
						lines = append(lines[:i], lines[i+1:]...)
						break
					}
				}
				lines = append(lines, strings.ReplaceAll(inst.line, "D/", h.dir+"/"))
				e2eWrite(t, h.config(inst.name), strings.Join(lines, "\n")+"\n")
			}
			code, out, errs := h.tool(t, "check", "-all", "-syntax")
			want := strings.ReplaceAll(tt.want, "D/", h.dir+"/")
			if code != tt.code || !strings.Contains(out+errs, want) {
				t.Errorf("check -all: exit %d\n%s%s\nwant exit %d and %q", code, out, errs, tt.code, want)
			}
		})
	}
	h := newTestHost(t)
	if code, _, errs := h.tool(t, "check", "-all"); code != 2 || !strings.Contains(errs, "config directory") {
		t.Errorf("check -all without a config directory: exit %d %q", code, errs)
	}
	if code, _, errs := h.tool(t, "check", "-all", "-config", "x"); code != 2 || !strings.Contains(errs, "not both") {
		t.Errorf("check -all -config: exit %d %q", code, errs)
	}
}

// paySpec is what alpha sends beta: PAY lines; beta sends alpha the
// default spec's REQ lines, so the two request specs differ. (The two are
// each other's partner, so their link has one dialect, both ends'. gamma,
// a third partner, speaks EUC-KR in fixed width behind a length header,
// its receiver and its sender alike: its sender sends to its own
// receiver, and spoolgate send -config gamma's does too.)
var paySpec = []string{
	"fields = length,type,process_no,org_code,amount,memo",
	"field.length = length 4",
	"field.type = const PAY",
	"field.process_no = digits 9",
	"field.org_code = class A-Z0-9 2..10",
	"field.amount = digits 12",
	"field.memo = text 0..100",
}

// gammaDialect is the README's partner example
// (conf/testdata/good_dialect_euckr_fixed.properties) without its
// heartbeat (30 s: longer than the test), its result spec the request's:
// gamma's sender sends to gamma's receiver.
func gammaDialect(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join("..", "..", "conf", "testdata", "good_dialect_euckr_fixed.properties"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "sender.heartbeat") {
			out = append(out, l)
		}
		if after, ok := strings.CutPrefix(l, "protocol.request."); ok {
			out = append(out, "protocol.result."+after)
		}
	}
	return out
}

// spec returns the lines of paySpec as protocol.DIR.* keys.
func spec(dir string) []string {
	var out []string
	for _, l := range paySpec {
		out = append(out, "protocol."+dir+"."+l)
	}
	return out
}

// TestInstancesSideBySide: two instances made by init run with the real
// daemons, each sending to the other in its own spec, and a third,
// gamma, sends and receives in EUC-KR fixed width behind a length header
// (its sender to its own receiver: one instance, one dialect); status
// -all lists the three (exit 0), every admin address says its instance in
// spoolgate_build_info, the consoles show the host; once beta's sender is
// killed, exit 1 and beta's row says its sender is down.
func TestInstancesSideBySide(t *testing.T) {
	h := newTestHost(t)
	listen := map[string]string{"alpha": e2e.FreeAddr(t), "beta": e2e.FreeAddr(t)}
	for _, p := range [][2]string{{"alpha", "beta"}, {"beta", "alpha"}} {
		if code, out, errs := h.init(t, p[0], "-listen", listen[p[0]], "-remote", listen[p[1]]); code != 0 {
			t.Fatalf("init %s: exit %d\n%s%s", p[0], code, out, errs)
		}
	}
	// alpha sends PAY lines; beta receives them and sends what alpha
	// receives, the default spec (conf.properties' protocol.request.*).
	var reqSpec []string
	for _, l := range strings.Split(string(conf.Shipped), "\n") {
		if after, ok := strings.CutPrefix(l, "protocol.request."); ok {
			reqSpec = append(reqSpec, "protocol.result."+after)
		}
	}
	edit(t, h.config("alpha"), []string{"protocol.result."}, spec("result")...)
	edit(t, h.config("beta"), []string{"protocol.request.", "protocol.result."}, append(spec("request"), reqSpec...)...)
	gammaListen := e2e.FreeAddr(t)
	if code, out, errs := h.init(t, "gamma", "-listen", gammaListen, "-remote", gammaListen); code != 0 {
		t.Fatalf("init gamma: exit %d\n%s%s", code, out, errs)
	}
	edit(t, h.config("gamma"), []string{"protocol.", "receiver.dedup_key"}, gammaDialect(t)...)
	if code, out, errs := h.tool(t, "check", "-all"); code != 0 {
		t.Fatalf("check -all: exit %d\n%s%s", code, out, errs)
	}
	procs := map[string]*e2e.Proc{}
	for _, name := range []string{"alpha", "beta", "gamma"} {
		for _, d := range []struct{ daemon, bin, admin string }{
			{"receiver", receiverBin, "receiver.admin_listen"}, {"sender", senderBin, "sender.admin_listen"},
		} {
			cmd := exec.Command(d.bin, "-config", h.config(name))
			cmd.Env = h.env()
			procs[name+" "+d.daemon] = e2e.Start(t, name+" "+d.daemon, cmd, nil)
			admin := keyValue(t, h.config(name), d.admin)
			e2e.WaitFor(t, 20*time.Second, name+"'s "+d.daemon+" ready", func() bool {
				code, _, _ := e2e.HTTPGet("http://" + admin + "/readyz")
				return code == 200
			})
			_, metrics, err := e2e.HTTPGet("http://" + admin + "/metrics")
			if err != nil || !regexp.MustCompile(`(?m)^spoolgate_build_info\{[^}]*spoolgate_instance="`+name+`"`).MatchString(metrics) {
				t.Errorf("%s %s /metrics: %v, no spoolgate_build_info with spoolgate_instance=%q", name, d.daemon, err, name)
			}
		}
	}
	// Each sends one line of its result spec to the other.
	lines := map[string]string{
		"alpha": "PAY|000000001|ORG01|000000012345|to beta",
		"beta":  "REQ|000000002|20261121093000|ORG02|SV01|CUST-2|to alpha|",
	}
	for name, line := range lines {
		e2e.WriteFile(t, filepath.Join(h.state, name, "outbox", "result-"+name+".txt"), line+"\n")
	}
	for from, to := range map[string]string{"alpha": "beta", "beta": "alpha"} {
		data := filepath.Join(h.state, to, "request")
		e2e.WaitFor(t, 20*time.Second, to+" storing "+from+"'s line", func() bool {
			files, _ := filepath.Glob(filepath.Join(data, "*_request.txt*"))
			for _, f := range files {
				if b, _ := os.ReadFile(f); strings.Contains(string(b), "|"+lines[from]+"\n") {
					return true
				}
			}
			return false
		})
	}
	e2e.WaitFor(t, 20*time.Second, "both outboxes empty", func() bool {
		a, _ := os.ReadDir(filepath.Join(h.state, "alpha", "outbox"))
		b, _ := os.ReadDir(filepath.Join(h.state, "beta", "outbox"))
		return len(a)+len(b) == 2 // .inflight of each
	})
	// gamma's partner speaks its dialect: spoolgate send -config gamma's.
	line := "0200000000003" + "20261207093000" + "ORG03     " + "홍길동" + strings.Repeat(" ", 14) + "잔액조회" + strings.Repeat(" ", 32)
	code, out, errs := h.tool(t, "send", "-config", h.config("gamma"), "-addr", gammaListen, line)
	if code != 0 {
		t.Fatalf("send to gamma in EUC-KR fixed width: exit %d\n%s%s", code, out, errs)
	}
	gcfg, err := conf.Load(h.config("gamma"))
	if err != nil {
		t.Fatal(err)
	}
	euc, err := gcfg.Protocol.Dialect.FromUTF8(line)
	if err != nil || len(euc) != 97 {
		t.Fatalf("the line in EUC-KR: %d bytes, %v; want 97", len(euc), err)
	}
	// gamma's sender sends a spool file of the wire bytes (EUC-KR) to
	// gamma's receiver, framed and answered in the dialect.
	line2 := "0200000000004" + "20261207093001" + "ORG03     " + "김철수" + strings.Repeat(" ", 14) + "이체결과" + strings.Repeat(" ", 32)
	euc2, err := gcfg.Protocol.Dialect.FromUTF8(line2)
	if err != nil {
		t.Fatal(err)
	}
	e2e.WriteFile(t, filepath.Join(h.state, "gamma", "outbox", "result-gamma.txt"), string(euc2)+"\n")
	var stored string
	e2e.WaitFor(t, 20*time.Second, "gamma storing both lines", func() bool {
		files, _ := filepath.Glob(filepath.Join(h.state, "gamma", "request", "*_request.txt*"))
		stored = ""
		for _, f := range files {
			b, _ := os.ReadFile(f)
			stored += string(b)
		}
		return len(stored) == 2*98
	})
	if !strings.Contains(stored, string(euc)+"\n") || !strings.Contains(stored, string(euc2)+"\n") {
		t.Errorf("gamma's request files: %q, want the EUC-KR lines %q and %q, byte for byte", stored, euc, euc2)
	}
	e2e.WaitFor(t, 20*time.Second, "gamma's outbox empty", func() bool {
		d, _ := os.ReadDir(filepath.Join(h.state, "gamma", "outbox"))
		return len(d) == 1 // .inflight
	})

	code, out, errs = h.tool(t, "status", "-all")
	t.Logf("status -all: exit %d\n%s%s", code, out, errs)
	row := regexp.MustCompile(`(?m)^(alpha|beta|gamma) +up +up +0 +- +0 +-$`)
	if code != 0 || len(row.FindAllString(out, -1)) != 3 || errs != "" {
		t.Fatalf("status -all with the three instances up: exit %d, want 0, each row up, up, 0, -, 0, -", code)
	}

	// Each console shows the host: both instances, each daemon linked to
	// its own console.
	alphaConsole := "http://" + keyValue(t, h.config("alpha"), "receiver.admin_listen") + "/?lang=en"
	_, page, err := e2e.HTTPGet(alphaConsole)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-instance="alpha"`, `data-instance="beta"`, "(this one)",
		`<a href="http://127.0.0.1:` + port(keyValue(t, h.config("beta"), "receiver.admin_listen")) + `/?lang=en">up</a>`,
		`<a href="http://127.0.0.1:` + port(keyValue(t, h.config("beta"), "sender.admin_listen")) + `/?lang=en">up</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("alpha's receiver console has no %s:\n%s", want, overviewOf(page))
		}
	}

	snd := procs["beta sender"]
	if err := syscall.Kill(snd.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	snd.ExitCode(t, 10*time.Second)
	code, out, errs = h.tool(t, "status", "-all")
	t.Logf("status -all, beta's sender killed: exit %d\n%s%s", code, out, errs)
	if code != 1 || !regexp.MustCompile(`(?m)^beta +up +down +0\* +- +0 +sender: no answer at `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^alpha +up +up `).MatchString(out) ||
		!strings.Contains(errs, "spoolgate status: instance beta: spoolgate-sender@beta.service is not running: no answer at ") {
		t.Fatalf("want exit 1, alpha up, beta's sender down and named on stderr")
	}
	e2e.WaitFor(t, 20*time.Second, "alpha's console showing beta's sender down", func() bool {
		_, page, _ := e2e.HTTPGet(alphaConsole)
		return regexp.MustCompile(`data-instance="beta"[^\n]*\n[^\n]*d-up[^\n]*\n<td class="d-down"><a [^>]*>DOWN</a>`).MatchString(page)
	})
	code, out, _ = h.tool(t, "status", "-all", "-json")
	var st struct {
		Instances []struct {
			Name   string
			Sender struct{ Running, Expected bool }
			From   string
		}
		Down []string
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 1 || len(st.Instances) != 3 || st.Instances[1].Name != "beta" ||
		st.Instances[1].Sender.Running || st.Instances[1].From != "directories" || !st.Instances[2].Sender.Running ||
		strings.Join(st.Down, ",") != "beta sender" {
		t.Errorf("status -all -json: exit %d %v\n%s", code, err, out)
	}
}

// port returns the port of a HOST:PORT address.
func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// overviewOf returns the host overview section of a console page.
func overviewOf(page string) string {
	i, j := strings.Index(page, `<section id="s-host"`), strings.Index(page, "</section>")
	if i < 0 || j < i {
		return "(no overview)"
	}
	return page[i:j]
}
