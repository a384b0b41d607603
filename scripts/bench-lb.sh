#!/usr/bin/env bash
# The receiver's rate through HAProxy against the same receiver direct:
# `spoolgate bench` alternately against a receiver without the PROXY protocol
# and through scripts/lb/haproxy.cfg (send-proxy-v2, health checks; both
# server lines point at one receiver with receiver.proxy_protocol=on), and
# prints the medians. Talks only to 127.0.0.1, cleans up after itself.
# Needs haproxy (apt-get install haproxy).
#
#   scripts/bench-lb.sh                       # keep-alive, fsync=always, 5 rounds of 20,000 messages
#   FSYNC=never scripts/bench-lb.sh           # the balancer's cost without the disk's
#   KEEPALIVE= N=5000 scripts/bench-lb.sh     # one connection per message
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
N=${N:-20000}
CLIENTS=${CLIENTS:-16}
FSYNC=${FSYNC:-always}
KEEPALIVE=${KEEPALIVE--keepalive}

command -v haproxy >/dev/null || { echo "bench-lb.sh: needs haproxy (apt-get install haproxy)" >&2; exit 1; }
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/spoolgate-bench-lb.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/bin/" ./cmd/spoolgate ./cmd/spoolgate-receiver
sg="$work/bin/spoolgate"

free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
wait_port() {
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench-lb.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
jnum() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" | head -n1; }

receiver() { # receiver NAME PORT [keys...]
	local name=$1 port=$2; shift 2
	mkdir -p "$work/$name"
	printf '%s\n' "receiver.listen = 127.0.0.1:$port" "receiver.admin_listen =" "receiver.data_dir = $work/$name/data" \
		"receiver.fsync = $FSYNC" "log.dir = $work/$name" "$@" >"$work/$name/conf.properties"
	"$work/bin/spoolgate-receiver" -config "$work/$name/conf.properties" &
	pids+=("$!")
	wait_port "$port"
}
dport=$(free_port); pport=$(free_port); hport=$(free_port)
receiver direct "$dport"
receiver proxied "$pport" "receiver.proxy_protocol = on" "receiver.proxy_trusted = 127.0.0.1/32"
sed -e "s|bind :9010|bind 127.0.0.1:$hport|" -e "s|10.0.0.11:9010|127.0.0.1:$pport|" -e "s|10.0.0.12:9010|127.0.0.1:$pport|" \
	-e "s|/run/haproxy/admin.sock|$work/admin.sock|" -e "s|log /dev/log local0|log stderr format short local0|" \
	scripts/lb/haproxy.cfg >"$work/haproxy.cfg"
[ "$(id -u)" = 0 ] || sed -i -E '/^\s*(chroot|user|group) /d' "$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
pids+=("$!")
wait_port "$hport"
sleep 3 # two health checks (inter 2s, rise 2) before HAProxy sends traffic

declare -A rate p50 p99
run() { # run NAME PORT
	local out errs
	out=$("$sg" bench -addr "127.0.0.1:$2" -c "$CLIENTS" -n "$N" $KEEPALIVE -json) || true
	rate[$1]+="$(echo "$out" | jnum messages_per_second) "
	p50[$1]+="$(echo "$out" | jnum p50_ns | awk '{printf "%.3f", $1/1e6}') "
	p99[$1]+="$(echo "$out" | jnum p99_ns | awk '{printf "%.3f", $1/1e6}') "
	errs=$(echo "$out" | jnum errors)
	[ "${errs:-0}" = 0 ] || echo "bench-lb.sh: $1: $errs errors" >&2
}
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS: direct, then through HAProxy" >&2
	run direct "$dport"
	run haproxy "$hport"
done
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
echo
echo "receiver through HAProxy vs direct: $(nproc) cores, $(haproxy -v | head -n1 | awk '{print $1, $3}'), fsync=$FSYNC, ${KEEPALIVE:-one connection per message}, $CLIENTS clients, $ROUNDS rounds x $N messages, medians"
printf '| %-8s | %10s | %8s | %8s |\n' "path" "msg/s" "p50 ms" "p99 ms"
printf '|----------|------------|----------|----------|\n'
for k in direct haproxy; do
	printf '| %-8s | %10.0f | %8s | %8s |\n' "$k" "$(med "${rate[$k]}")" "$(med "${p50[$k]}")" "$(med "${p99[$k]}")"
done
awk -v a="$(med "${rate[haproxy]}")" -v b="$(med "${rate[direct]}")" 'BEGIN {printf "through HAProxy / direct: %.2f\n", a/b}'
