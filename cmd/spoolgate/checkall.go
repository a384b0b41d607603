package main

import (
	"fmt"
	"io"
	"path/filepath"

	"spoolgate/cmd/internal/host"
	"spoolgate/conf"
)

// checkAll is spoolgate check -all: every instance of the config
// directory as check -config checks it, each line after the name of its
// file, then the instances against each other (collisions); exit 2 when
// any instance or any pair has a problem. The daemons of each instance
// are on, when -daemons was given, else those status -all expects: the
// receiver, and the sender when sender.remote is set (an instance that
// receives only, or whose remote comes later).
func checkAll(on daemons, given, syntax bool, stdout, stderr io.Writer) int {
	insts, err := hostInstances()
	if err != nil {
		fmt.Fprintln(stderr, "spoolgate check:", err)
		return 2
	}
	env := saveEnv()
	code := 0
	var loaded []loadedInstance
	for _, ic := range insts {
		prefix := filepath.Base(ic.Path) + ": "
		its := on
		if cfg, _, err := env.load(ic); err == nil && !given && cfg.RequireSender() != nil {
			its.sender = false
			fmt.Fprintln(stdout, prefix+"note: sender.remote is empty: the sender is not checked (it does not start until it is set)")
		}
		env.restore()
		cfg, r := checkConfig(ic.Path, its, syntax, prefix, stdout)
		code = max(code, r.print(ic.Path, prefix, stdout, stderr))
		if cfg != nil {
			loaded = append(loaded, loadedInstance{ic, cfg, its})
		}
	}
	env.restore()
	r := &report{}
	collisions(loaded, r)
	code = max(code, r.print(conf.ConfigDir()+fmt.Sprintf(" (%d instances) against each other", len(insts)), "", stdout, stderr))
	return code
}

// loadedInstance is an instance whose config loaded, with the daemons
// that run here.
type loadedInstance struct {
	host.Instance
	cfg *conf.Config
	on  daemons
}

// keyed is a key of an instance's config and its value.
type keyed struct{ key, value string }

// listenAddrs are the addresses the daemons of cfg that run here (on) listen on.
func listenAddrs(cfg *conf.Config, on daemons) []keyed {
	var out []keyed
	if on.receiver {
		out = append(out, keyed{"receiver.listen", cfg.Receiver.Listen}, keyed{"receiver.admin_listen", cfg.Receiver.AdminListen})
	}
	if on.sender {
		out = append(out, keyed{"sender.admin_listen", cfg.Sender.AdminListen})
	}
	return out
}

// ownDirs are the directories the daemons of cfg that run here (on) write:
// the data dir (request files), the spool, failed and sent dirs, the log
// and journal dirs; unset ones are left out, the others cleaned.
func ownDirs(cfg *conf.Config, on daemons) []keyed {
	var out []keyed
	if on.receiver && cfg.Receiver.Sink != conf.SinkAMQP {
		out = append(out, keyed{"receiver.data_dir", cfg.Receiver.DataDir})
	}
	if on.sender && cfg.Sender.Source != conf.SourceAMQP {
		out = append(out, keyed{"sender.spool_dir", cfg.Sender.SpoolDir}, keyed{"sender.failed_dir", cfg.Sender.FailedDir},
			keyed{"sender.sent_dir", cfg.Sender.SentDir})
	}
	out = append(out, keyed{"log.dir", cfg.Log.Dir}, keyed{"journal.dir", cfg.Journal.Dir})
	kept := out[:0]
	for _, d := range out {
		if d.value != "" {
			if abs, err := filepath.Abs(d.value); err == nil {
				d.value = abs
			}
			kept = append(kept, d)
		}
	}
	return kept
}

// collisions adds to r a problem for each pair of instances that would
// get in each other's way on one host: a listen or admin address of one
// on the port of one of the other's (the second daemon cannot start), or
// a directory of one that is a directory of the other (two receivers
// cannot own one data dir, two senders one spool; a sender would send
// what another instance files there; two daemons would write one log
// file). A journal directory shared by two instances is a note: the
// journal names its files after the instance (receiver@NAME-…), so that
// instances may share one.
func collisions(insts []loadedInstance, r *report) {
	for j := range insts {
		for i := range j {
			a, b := insts[i], insts[j]
			for _, x := range listenAddrs(a.cfg, a.on) {
				for _, y := range listenAddrs(b.cfg, b.on) {
					if conf.SamePort(x.value, y.value) {
						r.problem("instances %s and %s take one port: %s's %s %s and %s's %s %s", a.Shown(), b.Shown(),
							a.Shown(), x.key, x.value, b.Shown(), y.key, y.value)
					}
				}
			}
			for _, x := range ownDirs(a.cfg, a.on) {
				for _, y := range ownDirs(b.cfg, b.on) {
					switch {
					case x.value != y.value:
					case x.key == "journal.dir" && y.key == "journal.dir":
						r.note("instances %s and %s share the journal directory %s (its files are named after each instance)", a.Shown(), b.Shown(), x.value)
					default:
						r.problem("instances %s and %s share a directory: %s's %s and %s's %s are both %s", a.Shown(), b.Shown(),
							a.Shown(), x.key, b.Shown(), y.key, x.value)
					}
				}
			}
		}
	}
}
