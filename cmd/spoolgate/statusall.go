package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
)

// statusAll is spoolgate status -all: one row per instance of the config
// directory, each asked at its admin addresses and else read from its
// directories (host.Survey). Each daemon is expected as spoolgate status
// expects it without -daemons (the receiver; the sender when
// sender.remote is set), and one that does not answer is down: exit 1,
// each named on stderr with its unit. A config that does not load is its
// row's error and exit 2.
func statusAll(asJSON bool, stdout, stderr io.Writer) int {
	insts, err := hostInstances()
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate status:", err)
		return 2
	}
	sums := surveyAll(insts, time.Now())
	code := 0
	for _, s := range sums {
		if s.ConfigError != "" {
			fmt.Fprintf(stderr, "spoolgate status: instance %s: %s\n", s.Instance.Shown(), s.ConfigError)
			code = 2
			continue
		}
		_, recv, send := s.Instance.Units()
		for _, d := range s.Down() {
			unit, why := recv, s.Receiver.Error
			if d == "sender" {
				unit, why = send, s.Sender.Error
			}
			fmt.Fprintf(stderr, "spoolgate status: instance %s: %s is not running: %s\n", s.Instance.Shown(), unit, why)
			code = max(code, 1)
		}
	}
	if asJSON {
		down := []string{}
		for _, s := range sums {
			for _, d := range s.Down() {
				down = append(down, s.Instance.Shown()+" "+d)
			}
		}
		out := struct {
			ConfigDir string         `json:"config_dir"`
			Instances []host.Summary `json:"instances"`
			Down      []string       `json:"down"` // "NAME receiver", "NAME sender"; the unnamed instance is "-"
		}{conf.ConfigDir(), sums, down}
		if err := writeJSON(stdout, out); err != nil {
			fmt.Fprintln(stderr, "spoolgate status:", err)
			return 1
		}
		return code
	}
	printSummaries(stdout, sums)
	return code
}

// surveyAll surveys every instance (host.SurveyAll), each config loaded
// with its environment (toolEnv).
func surveyAll(insts []host.Instance, now time.Time) []host.Summary {
	env := saveEnv()
	defer env.restore()
	return host.SurveyAll(insts, func(inst host.Instance) (*conf.Config, error) {
		cfg, _, err := env.load(inst)
		return cfg, err
	}, now)
}

// printSummaries prints one row per instance:
//
//	INSTANCE  RECEIVER  SENDER  BACKLOG  OLDEST  FAILED  LAST ERROR
//	-         up        up      0        -       0       -
//	bank-b    up        down    3        2m10s   0       sender: no answer at 127.0.0.1:9022: connection refused
//
// BACKLOG counts the files not yet delivered (pending and in flight; the
// messages of the results queue for sender.source=amqp), and is followed
// by * when read from the source itself (the sender does not answer); "?"
// is not known.
func printSummaries(w io.Writer, sums []host.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tRECEIVER\tSENDER\tBACKLOG\tOLDEST\tFAILED\tLAST ERROR")
	for _, s := range sums {
		if s.ConfigError != "" {
			fmt.Fprintf(tw, "%s\t?\t?\t?\t?\t?\tconfig: %s\n", s.Instance.Shown(), s.ConfigError)
			continue
		}
		backlog, oldest, failed := "?", "?", "?"
		if s.From != "" {
			backlog, oldest, failed = strconv.Itoa(s.Backlog), "-", strconv.Itoa(s.Failed)
			if s.From != "sender" {
				backlog += "*"
			}
			if s.OldestPendingSeconds > 0 {
				oldest = (time.Duration(s.OldestPendingSeconds) * time.Second).String()
			}
		}
		last := s.LastError
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Instance.Shown(), s.Receiver.State(), s.Sender.State(), backlog, oldest, failed, last)
	}
	_ = tw.Flush()
	for _, s := range sums {
		if s.From != "sender" && s.From != "" {
			fmt.Fprintln(w, "* read from the sender's source (its spool's directories, or its queues): the sender does not answer")
			break
		}
	}
}
