#!/usr/bin/env bash
# startup.sh: start, stop and check the spoolgate daemons on a host without
# systemd (with systemd, use the units in scripts/systemd instead).
#
#   startup.sh start   [receiver|sender|all]  start, wait until /readyz answers
#   startup.sh stop    [receiver|sender|all]  SIGTERM, wait for the drain, SIGKILL after shutdown_timeout+5s
#   startup.sh restart [receiver|sender|all]
#   startup.sh reload  [receiver|sender|all]  SIGHUP: re-read the config file
#   startup.sh status  [receiver|sender|all]  running? ready? (exit 0 all running, 3 otherwise)
#
# "all" (the default) means $SPOOLGATE_DAEMONS, "receiver sender" unless set.
# Where the binaries, the config and the pid files are comes from env.sh
# beside this script (see there); /etc/default/spoolgate is read as systemd
# reads it. A restart without systemd closes the receiver's port for the
# moment between the two processes: the remote's connections are refused
# then and it retries. Only systemd's socket unit avoids that.
#
# Needs bash, coreutils and util-linux (setsid; runuser when started as root
# with SPOOLGATE_USER set). Readiness is read over bash's /dev/tcp: no curl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$here/env.sh"
: "${SPOOLGATE_DAEMONS:=receiver sender}"
# The daemons run in $SPOOLGATE_HOME: make paths given relative to here absolute.
case $SPOOLGATE_CONFIG in /*) ;; *) SPOOLGATE_CONFIG=$PWD/$SPOOLGATE_CONFIG ;; esac
case $SPOOLGATE_RUN_DIR in /*) ;; *) SPOOLGATE_RUN_DIR=$PWD/$SPOOLGATE_RUN_DIR ;; esac
export SPOOLGATE_CONFIG SPOOLGATE_RUN_DIR

prog=${0##*/}
say() { printf '%s\n' "$*"; }
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

# conf_get KEY DEFAULT prints the value of a config key as the daemons see
# it: the SPOOLGATE_<KEY> environment variable when set (even empty), else
# the value in $SPOOLGATE_CONFIG, else DEFAULT.
conf_get() {
	local key=$1 def=$2 var v
	var=SPOOLGATE_$(printf '%s' "$key" | tr 'a-z.' 'A-Z_')
	if [ -n "${!var+set}" ]; then
		printf '%s\n' "${!var}"
		return
	fi
	if [ -r "$SPOOLGATE_CONFIG" ] && v=$(awk -v k="$key" '
		{ sub(/^[ \t\f]+/, "") }
		/^[#!]/ { next }
		substr($0, 1, length(k)) == k {
			rest = substr($0, length(k) + 1)
			if (rest != "" && rest !~ /^[ \t\f=:]/) next
			sub(/^[ \t\f]*[=:]?[ \t\f]*/, "", rest)
			sub(/[ \t\f\r]+$/, "", rest)
			val = rest; found = 1
		}
		END { if (found) print val; exit !found }' "$SPOOLGATE_CONFIG"); then
		printf '%s\n' "$v"
		return
	fi
	printf '%s\n' "$def"
}

# seconds DURATION prints a Go duration ("30s", "1m30s", "250ms") rounded up
# to whole seconds; 30 when it cannot be read.
seconds() {
	awk -v d="$1" 'BEGIN {
		s = d; total = 0
		if (s == "0") { print 0; exit }
		while (length(s) > 0) {
			if (!match(s, /^[0-9]*\.?[0-9]+/)) { print 30; exit }
			n = substr(s, 1, RLENGTH) + 0; s = substr(s, RLENGTH + 1)
			if (!match(s, /^(ns|us|µs|ms|s|m|h)/)) { print 30; exit }
			u = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
			if (u == "h") total += n * 3600
			else if (u == "m") total += n * 60
			else if (u == "s") total += n
			else if (u == "ms") total += n / 1000
			else total += n / 1000000
		}
		t = int(total); if (t < total) t++
		print t
	}'
}

# http_get HOST:PORT PATH sets HTTP_CODE and HTTP_BODY (first line) from a
# GET over bash's /dev/tcp; it returns 1 when nothing answers.
http_get() {
	local addr=$1 path=$2 host port resp
	host=${addr%:*} port=${addr##*:}
	host=${host#[} host=${host%]}
	case $host in "" | 0.0.0.0) host=127.0.0.1 ;; "::") host=::1 ;; esac
	HTTP_CODE='' HTTP_BODY=''
	resp=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$host/$port" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
		IFS= read -r -t 5 line <&3 || exit 1
		printf '%s\n' "${line%$'\r'}"
		while IFS= read -r -t 5 line <&3 && [ "${line%$'\r'}" != "" ]; do :; done
		IFS= read -r -t 5 line <&3 || true
		printf '%s\n' "${line%$'\r'}"
	) || return 1
	HTTP_CODE=$(printf '%s\n' "$resp" | sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p')
	HTTP_BODY=$(printf '%s\n' "$resp" | sed -n 2p)
	[ -n "$HTTP_CODE" ]
}

pidfile() { printf '%s/spoolgate-%s.pid\n' "$SPOOLGATE_RUN_DIR" "$1"; }
outfile() { printf '%s/spoolgate-%s.out\n' "$SPOOLGATE_RUN_DIR" "$1"; }
admin_addr() { conf_get "$1.admin_listen" "127.0.0.1:$([ "$1" = receiver ] && echo 9011 || echo 9012)"; }

# alive PID NAME: the process exists, is not a zombie, and runs NAME.
alive() {
	local pid=$1 name=$2 state
	[ -n "$pid" ] || return 1
	if [ -r "/proc/$pid/stat" ]; then
		state=$(sed 's/^.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
		[ "$state" != Z ] || return 1
		# The redirection's own error (the process just exited) is silenced
		# too: 2>/dev/null comes first.
		{ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$name" || return 1
		return 0
	fi
	kill -0 "$pid" 2>/dev/null
}

# running_pid D prints the pid of the running daemon D from its pid file;
# it removes a stale pid file and returns 1 when D is not running.
running_pid() {
	local f pid
	f=$(pidfile "$1")
	[ -f "$f" ] || return 1
	pid=$(cat "$f" 2>/dev/null || true)
	if alive "$pid" "spoolgate-$1"; then
		printf '%s\n' "$pid"
		return 0
	fi
	rm -f "$f"
	return 1
}

# launcher prints the command prefix that starts a daemon as $SPOOLGATE_USER.
launcher() {
	local u=$SPOOLGATE_USER
	if [ -z "$u" ] || [ "$(id -un)" = "$u" ]; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "run as root or as $u (SPOOLGATE_USER), or set SPOOLGATE_USER= to run as $(id -un)"
	command -v runuser >/dev/null || die "runuser (util-linux) is needed to start the daemons as $u"
	printf 'runuser -u %s --\n' "$u"
}

start_one() {
	local d=$1 bin pid f out addr deadline last=""
	bin=$SPOOLGATE_BIN/spoolgate-$d
	[ -x "$bin" ] || die "$bin not found (build with: go build -o bin/ ./cmd/... , or run install.sh)"
	if pid=$(running_pid "$d"); then
		say "spoolgate-$d: already running (pid $pid)"
		return 0
	fi
	f=$(pidfile "$d") out=$(outfile "$d")
	mkdir -p "$SPOOLGATE_RUN_DIR"
	local -a pre
	local prefix
	prefix=$(launcher) || exit 1
	read -r -a pre <<<"$prefix"
	if [ ${#pre[@]} -gt 0 ]; then chown "$SPOOLGATE_USER" "$SPOOLGATE_RUN_DIR"; fi
	# A session of its own: the daemon keeps running when this terminal closes
	# and does not get the terminal's Ctrl-C.
	if command -v setsid >/dev/null; then pre+=(setsid); fi
	rm -f "$f"
	printf '%s starting spoolgate-%s -config %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$d" "$SPOOLGATE_CONFIG" >>"$out"
	# The child writes its own pid (the pid of the daemon after exec), so the
	# pid file is right whatever runuser or setsid do in between.
	# shellcheck disable=SC2016
	(
		cd "$SPOOLGATE_HOME"
		exec ${pre[@]+"${pre[@]}"} sh -c 'echo $$ >"$0.new" && mv "$0.new" "$0" && exec "$@"' \
			"$f" "$bin" -config "$SPOOLGATE_CONFIG"
	) </dev/null >>"$out" 2>&1 &
	local launched=$!
	addr=$(admin_addr "$d")
	deadline=$((SECONDS + SPOOLGATE_START_TIMEOUT))
	while :; do
		pid=$(cat "$f" 2>/dev/null || true)
		if [ -n "$pid" ] && ! alive "$pid" "spoolgate-$d"; then
			rm -f "$f"
			say "spoolgate-$d: exited during start-up; last lines of $out:" >&2
			tail -n 15 "$out" >&2
			return 1
		fi
		if [ -z "$pid" ] && ! kill -0 "$launched" 2>/dev/null; then
			say "spoolgate-$d: could not be started; last lines of $out:" >&2
			tail -n 15 "$out" >&2
			return 1
		fi
		if [ -n "$pid" ] && [ -z "$addr" ]; then
			say "spoolgate-$d: started (pid $pid); $d.admin_listen is empty, readiness not checked"
			return 0
		fi
		if [ -n "$pid" ] && http_get "$addr" /readyz; then
			if [ "$HTTP_CODE" = 200 ]; then
				say "spoolgate-$d: started (pid $pid), ready (admin http://$addr)"
				return 0
			fi
			last=$HTTP_BODY
			case $last in
			*"circuit open"*)
				say "spoolgate-$d: started (pid $pid), not ready yet: $last"
				say "spoolgate-$d: it keeps probing the remote and sends once it answers"
				return 0
				;;
			esac
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			say "spoolgate-$d: running (pid ${pid:-?}) but not ready after ${SPOOLGATE_START_TIMEOUT}s: ${last:-admin http://$addr does not answer}" >&2
			return 1
		fi
		sleep 0.2
	done
}

stop_one() {
	local d=$1 pid limit deadline
	if ! pid=$(running_pid "$d"); then
		say "spoolgate-$d: not running"
		return 0
	fi
	limit=$(($(seconds "$(conf_get shutdown_timeout 30s)") + 5))
	deadline=$((SECONDS + limit))
	kill -TERM "$pid" 2>/dev/null || die "cannot signal spoolgate-$d (pid $pid): run as root or as its user"
	while alive "$pid" "spoolgate-$d"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill -KILL "$pid" 2>/dev/null || true
			# SIGKILL is not instant: report it only once the process is gone.
			local kdeadline=$((SECONDS + 10))
			while alive "$pid" "spoolgate-$d" && [ "$SECONDS" -lt "$kdeadline" ]; do sleep 0.1; done
			if alive "$pid" "spoolgate-$d"; then
				die "spoolgate-$d (pid $pid) survived SIGKILL for 10s"
			fi
			say "spoolgate-$d: did not stop within ${limit}s: killed (pid $pid)" >&2
			break
		fi
		sleep 0.2
	done
	rm -f "$(pidfile "$d")"
	say "spoolgate-$d: stopped (pid $pid)"
}

reload_one() {
	local d=$1 pid
	if ! pid=$(running_pid "$d"); then
		say "spoolgate-$d: not running"
		return 3
	fi
	kill -HUP "$pid" || die "cannot signal spoolgate-$d (pid $pid)"
	say "spoolgate-$d: reload requested (pid $pid); the log tells the result"
}

status_one() {
	local d=$1 pid addr
	if ! pid=$(running_pid "$d"); then
		say "spoolgate-$d: stopped"
		return 3
	fi
	addr=$(admin_addr "$d")
	if [ -z "$addr" ]; then
		say "spoolgate-$d: running (pid $pid)"
	elif http_get "$addr" /readyz; then
		if [ "$HTTP_CODE" = 200 ]; then
			say "spoolgate-$d: running (pid $pid), ready"
		else
			say "spoolgate-$d: running (pid $pid), not ready: $HTTP_BODY"
		fi
	else
		say "spoolgate-$d: running (pid $pid), admin http://$addr does not answer"
	fi
	if [ "$d" = sender ] && [ -x "$SPOOLGATE_BIN/spoolgate" ]; then
		(cd "$SPOOLGATE_HOME" && "$SPOOLGATE_BIN/spoolgate" status -config "$SPOOLGATE_CONFIG" 2>/dev/null | sed 's/^/  /') || true
	fi
	return 0
}

cmd=${1:-}
which=${2:-all}
case $which in
all) read -r -a daemons <<<"$SPOOLGATE_DAEMONS" ;;
receiver | sender) daemons=("$which") ;;
*) die "unknown daemon '$which': want receiver, sender or all" ;;
esac
rc=0
case $cmd in
start)
	for d in "${daemons[@]}"; do start_one "$d" || rc=1; done
	;;
stop)
	# The sender first: it stops taking files while the receiver still answers.
	for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_one "${daemons[i]}" || rc=1; done
	;;
restart)
	for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_one "${daemons[i]}" || rc=1; done
	for d in "${daemons[@]}"; do start_one "$d" || rc=1; done
	;;
reload)
	for d in "${daemons[@]}"; do reload_one "$d" || rc=$?; done
	;;
status)
	for d in "${daemons[@]}"; do status_one "$d" || rc=$?; done
	;;
*)
	printf 'usage: %s {start|stop|restart|reload|status} [receiver|sender|all]\n' "$prog" >&2
	exit 2
	;;
esac
exit "$rc"
