# shellcheck shell=bash
# env.sh: where spoolgate lives on this host, for startup.sh and for your
# shell (". scripts/env.sh" then "$SPOOLGATE_BIN/spoolgate status").
#
# Hosts without systemd start the daemons with startup.sh, which sources this
# file. Every variable below may be set before sourcing (or in the defaults
# file) to override what is detected:
#
#   SPOOLGATE_HOME      working directory of the daemons (relative paths in the
#                       config are relative to it)
#   SPOOLGATE_BIN       directory holding spoolgate, spoolgate-receiver and
#                       spoolgate-sender
#   SPOOLGATE_CONFIG    the config file; the daemons read this variable too
#   SPOOLGATE_RUN_DIR   pid files and the daemons' console output (*.out)
#   SPOOLGATE_USER      when startup.sh runs as root, start the daemons as this
#                       user; empty: as whoever runs startup.sh
#   SPOOLGATE_START_TIMEOUT  seconds startup.sh waits for /readyz (default 60)
#   SPOOLGATE_DEFAULTS  a file of NAME=value lines sourced first: the same
#                       /etc/default/spoolgate (or /etc/sysconfig/spoolgate)
#                       systemd reads (EnvironmentFile),
#                       so both ways of running use one configuration. Any
#                       SPOOLGATE_<KEY> set there overrides that config key.
#
# Two layouts are detected from where this file is:
#   a checkout (scripts/env.sh beside go.mod): binaries in ./bin, config
#     conf/local.properties, state under ./var, pid files in ./var/run;
#   installed by a package or install.sh (PREFIX/lib/spoolgate/env.sh, PREFIX
#     /usr by default): binaries in
#     PREFIX/bin, config /etc/spoolgate/conf.properties, pid files in
#     /run/spoolgate, daemons run as user spoolgate.

# _sg_defaults sources $SPOOLGATE_DEFAULTS, exporting what it sets; a
# variable already exported in the environment wins over the file.
_sg_defaults() {
	[ -n "$SPOOLGATE_DEFAULTS" ] && [ -r "$SPOOLGATE_DEFAULTS" ] || return 0
	local saved
	saved=$(export -p | grep '^declare -x SPOOLGATE_' || true)
	set -a
	# shellcheck disable=SC1090
	. "$SPOOLGATE_DEFAULTS"
	set +a
	eval "$saved"
}

_sg_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -f "$_sg_here/../go.mod" ] && grep -q '^module spoolgate$' "$_sg_here/../go.mod"; then
	_sg_root=$(cd "$_sg_here/.." && pwd)
	: "${SPOOLGATE_DEFAULTS:=}"
	_sg_defaults
	: "${SPOOLGATE_HOME:=$_sg_root}"
	: "${SPOOLGATE_BIN:=$SPOOLGATE_HOME/bin}"
	: "${SPOOLGATE_CONFIG:=$_sg_root/conf/local.properties}"
	: "${SPOOLGATE_RUN_DIR:=$SPOOLGATE_HOME/var/run}"
	: "${SPOOLGATE_USER:=}"
	unset _sg_root
else
	# The deb's /etc/default/spoolgate, else the rpm's /etc/sysconfig/spoolgate.
	if [ -z "$SPOOLGATE_DEFAULTS" ]; then
		SPOOLGATE_DEFAULTS=/etc/default/spoolgate
		if [ ! -e /etc/default/spoolgate ] && [ -e /etc/sysconfig/spoolgate ]; then SPOOLGATE_DEFAULTS=/etc/sysconfig/spoolgate; fi
	fi
	_sg_defaults
	: "${SPOOLGATE_HOME:=/}"
	: "${SPOOLGATE_BIN:=$(cd "$_sg_here/../../bin" 2>/dev/null && pwd || echo /usr/bin)}"
	: "${SPOOLGATE_CONFIG:=/etc/spoolgate/conf.properties}"
	: "${SPOOLGATE_RUN_DIR:=/run/spoolgate}"
	if [ -z "${SPOOLGATE_USER+set}" ]; then
		if id spoolgate >/dev/null 2>&1; then SPOOLGATE_USER=spoolgate; else SPOOLGATE_USER=; fi
	fi
fi
: "${SPOOLGATE_START_TIMEOUT:=60}"
unset _sg_here
unset -f _sg_defaults
export SPOOLGATE_HOME SPOOLGATE_BIN SPOOLGATE_CONFIG SPOOLGATE_RUN_DIR SPOOLGATE_USER SPOOLGATE_START_TIMEOUT SPOOLGATE_DEFAULTS
