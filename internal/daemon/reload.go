package daemon

import (
	"context"
	"strings"
)

// WatchConfig starts watching the config file now (NewConfigWatch: call it
// before listening and READY=1) and returns the function that reloads it
// on SIGHUP and on every change of the file until ctx is done; run it on a
// goroutine of its own. Each reload loads the file with the Program's
// Load, sets the log level and hands the new config to apply, which takes
// its live keys; a file that does not load is logged and the running
// configuration stays (apply is not called). apply runs on the watch's
// goroutine. When the watch cannot start, WatchConfig logs that reload is
// off and the returned function returns at once.
func (p *Process[C]) WatchConfig(apply func(C)) (run func(ctx context.Context)) {
	cw, err := NewConfigWatch(p.Path)
	if err != nil {
		p.Logger.Error("config watch: reload on change is off (SIGHUP too)", "err", err)
		return func(context.Context) {}
	}
	return func(ctx context.Context) {
		prev := p.Config
		cw.Run(ctx, p.Logger, func() {
			if next, ok := p.reload(prev, apply); ok {
				prev = next
			}
		})
	}
}

// reload loads the config file again and applies it: it tells systemd,
// logs the live keys changed since prev and the keys that differ from the
// config the process started with, which need a restart, and returns the
// new config. A file that does not load, or a log level that does not
// parse, is logged and changes nothing (ok false).
func (p *Process[C]) reload(prev C, apply func(C)) (next C, ok bool) {
	Notify("RELOADING=1")
	defer Notify("READY=1")
	next, err := p.prog.Load(p.Path)
	if err == nil {
		err = p.Logging.SetLevel(next.LogOptions().Level)
	}
	if err != nil {
		p.Logger.Error("reload rejected: the running configuration stays", "err", err)
		return next, false
	}
	live, _ := next.ReloadDiff(prev, p.prog.Name)
	_, restart := next.ReloadDiff(p.Config, p.prog.Name)
	apply(next)
	p.Logger.Info("config reloaded", "path", p.Path, "log_level", next.LogOptions().Level, "changed", strings.Join(live, ","))
	if len(restart) > 0 {
		p.Logger.Warn("configuration change needs a restart to take effect", "keys", strings.Join(restart, ","))
	}
	return next, true
}
