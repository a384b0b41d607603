package scripts

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"spoolgate/internal/e2e"
	"spoolgate/internal/tlsutil/tlstest"
)

// The shipped monitoring files (scripts/monitoring/), over the metrics
// of docs/PROTOCOL.md and the README's runbook.
const (
	alertsFile     = "scripts/monitoring/spoolgate-alerts.yml"
	alertTestsFile = "scripts/monitoring/spoolgate-alerts_test.yml"
	dashboardFile  = "scripts/monitoring/spoolgate-dashboard.json"
	promConfigFile = "scripts/monitoring/prometheus.yml"
)

// promtool returns the path of promtool, or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: skipping the checks of the Prometheus rules (apt-get install --no-install-recommends prometheus; scripts/test.sh does it)")
	}
	return p
}

// runIn runs a command in dir and fails the test with its output unless
// it exits 0.
func runIn(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules: promtool accepts the rules and the example scrape
// config, and the unit tests of the rules pass (each alert fires when it
// should and not before its "for").
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(repoRoot, "scripts/monitoring")
	t.Log(runIn(t, dir, pt, "check", "rules", filepath.Base(alertsFile)))
	t.Log(runIn(t, dir, pt, "test", "rules", filepath.Base(alertTestsFile)))
	t.Log(runIn(t, dir, pt, "check", "config", "--syntax-only", filepath.Base(promConfigFile)))

	// Every alert of the rules has a unit test.
	rules, tests := readRepo(t, alertsFile), readRepo(t, alertTestsFile)
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(rules, -1) {
		if !strings.Contains(tests, "alertname: "+m[1]+"\n") {
			t.Errorf("alert %s has no test in %s", m[1], alertTestsFile)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos *struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboard: the Grafana dashboard is valid JSON with the panels the
// issue asks for, and every query is PromQL that promtool parses (each is
// checked as a recording rule, with Grafana's variables filled in).
func TestDashboard(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal([]byte(readRepo(t, dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard without title or uid")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	// spoolgate_instance: the instances of a host (several partners), the
	// daemons (instance) chained to it.
	if !slices.Contains(vars, "datasource") || !slices.Contains(vars, "instance") || !slices.Contains(vars, "spoolgate_instance") {
		t.Errorf("template variables %q, want datasource, spoolgate_instance and instance", vars)
	}
	ids := map[int]bool{}
	var exprs []string
	all := ""
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 {
			t.Errorf("panel %q has no position", p.Title)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
			all += tg.Expr + "\n"
		}
	}
	// What the issue asks to see: messages by code, store latency, lines
	// per fsync, pending and oldest age, in flight, circuit, failed.
	for _, m := range []string{"spoolgate_receiver_messages_total", "spoolgate_receiver_store_seconds_bucket",
		"spoolgate_receiver_sync_batch_sum", "spoolgate_sender_pending_files", "spoolgate_sender_oldest_pending_seconds",
		"spoolgate_sender_inflight", "spoolgate_sender_circuit_open", `outcome=~"failed|rejected"`} {
		if !strings.Contains(all, m) {
			t.Errorf("no panel queries %s", m)
		}
	}

	pt := promtool(t)
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$instance", ".*", "$spoolgate_instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		b, _ := json.Marshal(grafana.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, b)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(runIn(t, "", pt, "check", "rules", f))
}

// pendingMetrics are being added by other changes: the console's failed
// files gauge. Until a daemon exposes them, the name test tolerates
// exactly these names.
var pendingMetrics = map[string]string{
	"spoolgate_sender_failed_files": "the failed files gauge",
}

// TestMonitoringMetricNames: every spoolgate_* name in the rules, their
// tests and the dashboard is one that a running receiver or sender
// exposes on /metrics, so renaming a metric breaks the build until the
// monitoring files follow.
func TestMonitoringMetricNames(t *testing.T) {
	dir := t.TempDir()
	// A sender CA, so spoolgate_tls_cert_expiry_seconds is on /metrics (the
	// sender dials nothing while its spool is empty).
	// The journal on (log.dir is empty here), so that its counters are
	// on /metrics.
	c := newConfig(t, dir, "sender.tls.ca = "+tlstest.NewCA(t, "monitoring").File, "journal.dir = "+filepath.Join(dir, "journal"))
	r := startProc(t, "receiver", daemonCmd(t, "spoolgate-receiver", c.path))
	s := startProc(t, "sender", daemonCmd(t, "spoolgate-sender", c.path))
	e2e.WaitFor(t, 30*time.Second, "both daemons ready", func() bool { return ready(c.rAdmin) && ready(c.sAdmin) })

	// Label vectors show up once they have a child: one rejected message
	// gives spoolgate_receiver_rejects_total its first reason.
	nc, err := net.DialTimeout("tcp", c.listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte("0012|NOPE|x\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(nc).ReadString('\n')
	nc.Close()
	if err != nil || !strings.HasSuffix(reply, "|400\n") {
		t.Fatalf("reply to a bad message: %q %v, want a 400", reply, err)
	}

	exposed := map[string]bool{}
	labels := map[string]bool{} // label names of the samples (spoolgate_instance)
	labelName := regexp.MustCompile(`[{,]([a-zA-Z_][a-zA-Z0-9_]*)=`)
	for _, addr := range []string{c.rAdmin, c.sAdmin} {
		code, body, err := e2e.HTTPGet("http://" + addr + "/metrics")
		if err != nil || code != 200 {
			t.Fatalf("GET %s/metrics: %d %v", addr, code, err)
		}
		for _, line := range strings.Split(body, "\n") {
			// Sample names, and family names from "# TYPE" (the base name of
			// a histogram).
			if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
				line = rest
			} else if strings.HasPrefix(line, "#") {
				continue
			}
			if name := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' }); len(name) > 0 {
				exposed[name[0]] = true
			}
			for _, m := range labelName.FindAllStringSubmatch(line, -1) {
				labels[m[1]] = true
			}
		}
	}
	if !exposed["spoolgate_receiver_rejects_total"] || !exposed["spoolgate_build_info"] {
		t.Fatalf("the daemons' /metrics lack spoolgate_receiver_rejects_total or spoolgate_build_info")
	}

	name := regexp.MustCompile(`\bspoolgate_[a-zA-Z0-9_]+`)
	for _, f := range []string{alertsFile, alertTestsFile, dashboardFile} {
		used := map[string]bool{}
		for _, n := range name.FindAllString(readRepo(t, f), -1) {
			used[n] = true
		}
		if len(used) == 0 {
			t.Errorf("%s uses no spoolgate metric", f)
		}
		for n := range used {
			switch {
			case exposed[n], labels[n]:
			case pendingMetrics[n] != "":
				t.Logf("%s uses %s, which no daemon exposes yet: tolerated until %s lands", f, n, pendingMetrics[n])
			default:
				t.Errorf("%s uses %s, which neither the receiver nor the sender exposes", f, n)
			}
		}
	}
	// The build in the start-up line and in spoolgate_build_info.
	for _, p := range []*e2e.Proc{r, s} {
		if !regexp.MustCompile(`spoolgate-(receiver|sender) starting version=\S+ revision=\S+`).MatchString(p.Log.String()) {
			t.Errorf("no start-up line with the version in the log:\n%s", p.Log.String())
		}
	}
	r.Kill()
	s.Kill()
}

// TestVersionFlag: -version of every program of a plain build prints its
// name, a version, a revision, the Go version and the platform, and exits 0
// (the package test checks the version and commit package.sh links in).
func TestVersionFlag(t *testing.T) {
	want := regexp.MustCompile(`^(spoolgate|spoolgate-receiver|spoolgate-sender) \S+ \(revision \S+, go[0-9.]+\S*, linux/\w+\)\n$`)
	for _, p := range []string{"spoolgate", "spoolgate-receiver", "spoolgate-sender"} {
		cmd := exec.Command(program(t, p), "-version")
		cmd.Env = cleanEnv("SPOOLGATE_CONFIG=/nonexistent/conf.properties") // -version reads no config
		out, err := cmd.CombinedOutput()
		if err != nil || !want.Match(out) || !strings.HasPrefix(string(out), p+" ") {
			t.Errorf("%s -version: %q, %v", p, out, err)
		}
	}
}
