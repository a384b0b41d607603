// Package scripts holds spoolgate's operations files: the systemd units in
// systemd/, install.sh, env.sh, startup.sh, run-local.sh, package.sh with
// package/ (nfpm config and maintainer scripts) and monitoring/ (alert
// rules, dashboard). It has no Go code of its own; its tests build the real
// binaries and run the scripts and the daemons end to end: install into a
// DESTDIR, start/status/stop without systemd, run-local, a receiver restart
// on a socket held as systemd holds it (no connection refused, no
// acknowledged message lost), hot reload of both daemons, the rpm and deb
// (file lists, config files, scripts, installs into throwaway roots), the
// units' sandbox rating, and the alert rules and dashboard against the
// metrics the daemons really expose. TestFunctionLength holds every
// function of the tree's Go code to 100 lines and lists the ten longest:
//
//	go test ./scripts -run TestFunctionLength -v
package scripts
