// Package scripts holds spoolgate's operations files: the systemd units in
// systemd/, install.sh, env.sh, startup.sh and run-local.sh. It has no Go
// code of its own; its tests build the real binaries and run the scripts
// and the daemons end to end: install into a DESTDIR, start/status/stop
// without systemd, run-local, a receiver restart on a socket held as
// systemd holds it (no connection refused, no acknowledged message lost),
// and hot reload of both daemons.
package scripts
