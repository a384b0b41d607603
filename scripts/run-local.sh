#!/usr/bin/env bash
# run-local.sh: spoolgate on this machine in one command.
#
# Builds ./bin/{spoolgate,spoolgate-receiver,spoolgate-sender}, starts the
# receiver and the sender with conf/local.properties (the sender delivers to
# the receiver over loopback; state under ./var, logs in ./var/log), drops a
# few sample result files into the spool (./var/outbox) and shows them
# arriving in the request files (./var/request) with a live summary every
# 2 s. Ctrl-C stops both daemons cleanly. Running it again is fine.
#
#   scripts/run-local.sh            run until Ctrl-C
#   scripts/run-local.sh -once      deliver the samples, check them, stop (exit 0 when all arrived)
#   RUN_LOCAL_ONCE=1 scripts/run-local.sh   the same
#
# Ports 9010 (messages), 9011 and 9012 (admin: the web consoles, /readyz, /metrics) on
# 127.0.0.1; SPOOLGATE_<KEY> variables override any key of
# conf/local.properties, e.g. SPOOLGATE_RECEIVER_LISTEN and
# SPOOLGATE_SENDER_REMOTE to use another port. RUN_LOCAL_DIR moves ./bin and
# ./var elsewhere. Needs Go and bash, nothing else.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
once=${RUN_LOCAL_ONCE:-}
samples=${RUN_LOCAL_SAMPLES:-3}
for a in "$@"; do
	case $a in
	-once | --once) once=1 ;;
	-h | -help | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run-local.sh: unknown argument $a (try -help)" >&2
		exit 2
		;;
	esac
done

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || { echo "run-local.sh: Go is required (https://go.dev/dl/, the version in go.mod)" >&2; exit 1; }

work=${RUN_LOCAL_DIR:-$root}
mkdir -p "$work"
work=$(cd "$work" && pwd)
echo "== building into $work/bin (the first build downloads and compiles the dependencies: a minute or two)"
(cd "$root" && go build -o "$work/bin/" ./cmd/...)

# startup.sh runs the daemons: pid files in var/run, readiness via /readyz.
export SPOOLGATE_HOME=$work
export SPOOLGATE_BIN=$work/bin
export SPOOLGATE_CONFIG=$root/conf/local.properties
export SPOOLGATE_RUN_DIR=$work/var/run
export SPOOLGATE_USER=
export SPOOLGATE_DAEMONS="receiver sender"
: "${SPOOLGATE_LOG_DIR=./var/log}"
export SPOOLGATE_LOG_DIR
startup=$root/scripts/startup.sh

cd "$work"
mkdir -p var/request var/outbox var/failed var/sent var/run var/log

# A run that was killed (terminal closed, kill -9) may have left daemons
# behind: stop them so this run starts the binaries just built.
"$startup" stop >/dev/null

stopped=
stop_all() {
	[ -z "$stopped" ] || return 0
	stopped=1
	echo
	echo "== stopping"
	"$startup" stop || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM HUP
trap 'stop_all' EXIT

echo "== starting (config $SPOOLGATE_CONFIG, logs in var/log)"
if ! "$startup" start; then
	echo "run-local.sh: start-up failed; see var/log/*.log and var/run/*.out" >&2
	exit 1
fi

# Sample result files: one line each, a valid result without the length
# field (the sender adds it). Each run uses new process numbers, so the
# receiver's duplicate window does not swallow a re-run's samples: the next
# thousand after the highest sample number already in the request files
# (the files the duplicate window is rebuilt from), so two runs in the same
# second do not collide.
now=$(date +%Y%m%d%H%M%S)
last=$(cat var/request/*_request.txt* 2>/dev/null | sed -n 's/^[0-9]\{4\}|REQ|\([0-9]\{9\}\)|[0-9]*|ORG01|SV01|SAMPLE-.*/\1/p' | sort -n | tail -n 1 || true)
base=$(((10#${last:-0} / 1000 + 1) * 1000 % 1000000000))
pnos=()
for ((i = 1; i <= samples; i++)); do
	pno=$(printf '%09d' $((base + i)))
	pnos+=("$pno")
	printf 'REQ|%s|%s|ORG01|SV01|SAMPLE-%d|hello from run-local %d of %d|\n' "$pno" "$now" "$i" "$i" "$samples" >"var/outbox/.sample-$pno.tmp"
	mv "var/outbox/.sample-$pno.tmp" "var/outbox/sample-$pno.txt"
done
echo "== dropped $samples sample files into var/outbox (process_no ${pnos[0]}..${pnos[${#pnos[@]} - 1]})"
radmin=${SPOOLGATE_RECEIVER_ADMIN_LISTEN:-127.0.0.1:9011}
sadmin=${SPOOLGATE_SENDER_ADMIN_LISTEN:-127.0.0.1:9012}
echo "== web consoles: receiver http://$radmin/  sender http://$sadmin/  (JSON: /api/status; requeue buttons need SPOOLGATE_ADMIN_TOKEN)"

count_files() { find "$1" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l | tr -d ' '; }
request_lines() { cat var/request/*_request.txt* 2>/dev/null | wc -l | tr -d ' '; }
arrived() {
	local n=0 p
	for p in "${pnos[@]}"; do
		if grep -qs "|REQ|$p|" var/request/*_request.txt*; then n=$((n + 1)); fi
	done
	echo "$n"
}
summary() {
	printf '%s  outbox pending %s, in flight %s | request lines %s (samples arrived %s/%s) | failed %s\n' \
		"$(date +%H:%M:%S)" "$(count_files var/outbox)" "$(count_files var/outbox/.inflight)" \
		"$(request_lines)" "$(arrived)" "$samples" "$(count_files var/failed)"
}

if [ -n "$once" ]; then
	deadline=$((SECONDS + ${RUN_LOCAL_TIMEOUT:-30}))
	while [ "$(arrived)" -lt "$samples" ]; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			summary
			echo "run-local.sh: the samples did not all arrive within ${RUN_LOCAL_TIMEOUT:-30}s; see var/log/*.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	summary
	echo "== all $samples samples arrived in var/request:"
	pats=()
	for p in "${pnos[@]}"; do pats+=(-e "|REQ|$p|"); done
	grep -hsF "${pats[@]}" var/request/*_request.txt* | sed 's/^/   /'
	exit 0
fi

cat <<EOF
== running. Try:
   tail -f var/log/receiver.log var/log/sender.log
   echo 'REQ|000000042|$now|ORG01|SV01|BY-HAND|hi|' > var/outbox/.x.tmp && mv var/outbox/.x.tmp var/outbox/by-hand.txt
   bin/spoolgate status -config conf/local.properties
   bin/spoolgate failed -config conf/local.properties
   open http://$sadmin/ (sender console) and http://$radmin/ (receiver console)
   curl -s 127.0.0.1:9011/metrics | grep ^spoolgate_
== Ctrl-C stops both.
EOF
while :; do
	summary
	sleep 2 &
	wait $! || true
done
