#!/usr/bin/env bash
# Benchmarks spoolgate against a null reference on this machine and prints
# one table of medians and ratios (see BENCHMARKS.md). Talks only to
# 127.0.0.1, cleans up after itself, and takes a few minutes.
#
#   scripts/bench.sh                 # everything
#   ROUNDS=5 DURATION=5s DRAIN_ROUNDS=3 scripts/bench.sh
#   SKIP_DRAIN=1 scripts/bench.sh    # receiver only
#   SKIP_100K=1 scripts/bench.sh     # drain 10,000 files only
#   SKIP_AMQP=1 scripts/bench.sh     # without the RabbitMQ row (skipped anyway without rabbitmq-server)
#   SKIP_LINK=1 scripts/bench.sh     # without the rows through a simulated 30 ms link (13 minutes of the run)
#   SKIP_DIALECT=1 scripts/bench.sh  # without the EUC-KR fixed-width dialect's pipelining row
#   SKIP_JOURNAL=1 scripts/bench.sh  # without the journal on/off rows
#   JOURNAL_ROUNDS=12 scripts/bench.sh  # the journal's rounds (default twice ROUNDS)
#   SKIP_DRAIN=1 SKIP_AMQP=1 SKIP_LINK=1 SKIP_DIALECT=1 SKIP_MULTILINE=1 scripts/bench.sh  # the receiver rows and the journal's A/B
#   PIPE_WINDOW=10000 PIPE_ONE=5000 scripts/bench.sh  # the pipelining rows' windows (the defaults)
#   DRAIN_FILES=200 BIG_DRAIN_FILES=1000 IDLE=50 IDLE_HOLD=1s ROUNDS=1 DURATION=200ms scripts/bench.sh  # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3s}
CLIENTS=${CLIENTS:-16}
IDLE=${IDLE:-5000}
DRAIN_ROUNDS=${DRAIN_ROUNDS:-2}
SMALL=${DRAIN_FILES:-10000}     # the drain run DRAIN_ROUNDS times, into the receiver and the null reference
BIG=${BIG_DRAIN_FILES:-100000}  # the drain run once, into the receiver
IDLE_HOLD=${IDLE_HOLD:-5s}
PIPE_WINDOW=${PIPE_WINDOW:-10000} # messages each of the CLIENTS connections writes before reading replies
PIPE_ONE=${PIPE_ONE:-5000}        # messages pipelined on one connection
# The journal's A/B measures a cost of a few percent on a shared machine
# whose rounds vary by 10%: twice the rounds of the other rows.
JOURNAL_ROUNDS=${JOURNAL_ROUNDS:-$((2 * ROUNDS))}

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/spoolgate-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building into $work/bin" >&2
go build -o "$work/bin/" ./cmd/spoolgate ./cmd/spoolgate-receiver ./cmd/spoolgate-sender
sg="$work/bin/spoolgate"

free_port() {
	local p
	while :; do
		# Below the ephemeral range (ip_local_port_range, 32768 up by
		# default), where the load generator's own connections cannot hold it.
		p=$((10000 + RANDOM % 22000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
wait_port() { # wait until something listens on port $1
	for _ in $(seq 1 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}
metric() { # metric PORT NAME: the value of sample NAME at 127.0.0.1:PORT/metrics (empty if none)
	{ exec 5<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 0
	printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&5
	awk -v k="$2" 'index($0, k " ") == 1 {print $2}' <&5
	exec 5<&-
}
hwm_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
jnum() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" | head -n1; }

rport=$(free_port); aport=$(free_port); nport=$(free_port); sport=$(free_port)
mkdir -p "$work/request" "$work/outbox" "$work/failed" "$work/log"
cat >"$work/conf.properties" <<EOF
receiver.listen = 127.0.0.1:$rport
receiver.admin_listen = 127.0.0.1:$aport
receiver.data_dir = $work/request
receiver.fsync = always
receiver.publish = rename
receiver.max_conns = $((IDLE + 512))
# every client and idle connection of the benchmark comes from 127.0.0.1
receiver.max_conns_per_ip = 0
sender.remote = 127.0.0.1:$rport
sender.admin_listen = 127.0.0.1:$sport
sender.spool_dir = $work/outbox
sender.failed_dir = $work/failed
sender.workers = 16
sender.keepalive = true
sender.settle = 100ms
log.dir = $work/log
log.level = info
EOF

echo "probing this machine: fsync rate in the data dir, pauses" >&2
"$sg" bench -probe "$work/request" -d "$DURATION" -json >"$work/probe.json"
fsyncs=$(jnum syncs_per_second <"$work/probe.json" | awk '{printf "%.0f", $1}')
fsync_p50=$(jnum sync_p50_ns <"$work/probe.json" | awk '{printf "%.3f", $1/1e6}')
pauses=$(jnum pause_share <"$work/probe.json" | awk '{printf "%.0f%%", 100*$1}')

"$work/bin/spoolgate-receiver" -config "$work/conf.properties" &
rpid=$!; pids+=("$rpid")
"$sg" bench -null "127.0.0.1:$nport" >/dev/null &
npid=$!; pids+=("$npid")
wait_port "$rport"; wait_port "$nport"

declare -A rate p99
run() { # run NAME ADDR [bench flags]: one bench, record msg/s and p99 (ms)
	local name=$1 addr=$2; shift 2
	local out
	out=$("$sg" bench -addr "$addr" -c "$CLIENTS" -d "$DURATION" -json "$@") || true
	rate[$name]+="$(echo "$out" | jnum messages_per_second) "
	p99[$name]+="$(echo "$out" | jnum p99_ns | awk '{printf "%.3f", $1/1e6}') "
	local errs; errs=$(echo "$out" | jnum errors)
	[ "${errs:-0}" = 0 ] || echo "bench.sh: $name: $errs errors: $(echo "$out" | sed -n 's/.*"first_error": "\(.*\)".*/\1/p')" >&2
}
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS: one connection per message, keep-alive; receiver and null alternately" >&2
	run recv_conn "127.0.0.1:$rport"
	run null_conn "127.0.0.1:$nport"
	run recv_keep "127.0.0.1:$rport" -keepalive
	run null_keep "127.0.0.1:$nport" -keepalive
done
# Before the pipelining rounds, which fill the duplicate window (800,000
# keys in 3 s: 37 MB of live heap, RSS 46 -> 106 MB), since VmHWM is a
# peak: 5,000 idle connections alone take about 31 MB.
echo "holding $IDLE idle connections to the receiver" >&2
"$sg" bench -addr "127.0.0.1:$rport" -idle "$IDLE" -d "$IDLE_HOLD" >"$work/idle.out" &
ipid=$!; pids+=("$ipid")
wait "$ipid" || true
idle_held=$(awk '{print $2}' "$work/idle.out")
recv_hwm=$(hwm_mb "$rpid")
per_sync() { # per_sync VAR: set VAR to the receiver's lines per fsync since the last call
	local sum cnt
	sum=$(metric "$aport" spoolgate_receiver_sync_batch_sum); cnt=$(metric "$aport" spoolgate_receiver_sync_batch_count)
	printf -v "$1" '%s' "$(awk -v s="${sum:-0}" -v c="${cnt:-0}" -v ls="$last_sum" -v lc="$last_cnt" 'BEGIN { if (c > lc) printf "%.1f", (s-ls)/(c-lc); else print "-" }')"
	last_sum=${sum:-0}; last_cnt=${cnt:-0}
}
last_sum=0; last_cnt=0
per_sync bench_per_sync
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r/$ROUNDS: pipelining, $CLIENTS connections x $PIPE_WINDOW and $PIPE_ONE on one connection; receiver and null alternately" >&2
	run recv_pipe "127.0.0.1:$rport" -keepalive -pipeline "$PIPE_WINDOW"
	run null_pipe "127.0.0.1:$nport" -keepalive -pipeline "$PIPE_WINDOW"
	for _ in 1 2 3; do
		run recv_one "127.0.0.1:$rport" -c 1 -d 0 -n "$PIPE_ONE" -keepalive -pipeline "$PIPE_ONE"
		run null_one "127.0.0.1:$nport" -c 1 -d 0 -n "$PIPE_ONE" -keepalive -pipeline "$PIPE_ONE"
	done
done
per_sync pipe_per_sync

# A partner's dialect (issue 23): EUC-KR, fixed width, behind a 4-digit
# ASCII header (conf/testdata/good_dialect_euckr_fixed.properties, 97-byte
# requests), pipelined as the row above, against the default dialect in the
# same rounds: two fresh receivers (fsync=always) of their own, so that
# neither carries the duplicate window the rounds above filled.
if [ -z "${SKIP_DIALECT:-}" ]; then
	for dl in euckr default; do
		p=$(free_port); a=$(free_port)
		mkdir -p "$work/request-$dl" "$work/log-$dl"
		sed -e "s/^receiver.listen = .*/receiver.listen = 127.0.0.1:$p/" -e "s/^receiver.admin_listen = .*/receiver.admin_listen = 127.0.0.1:$a/" \
			-e "s#^receiver.data_dir = .*#receiver.data_dir = $work/request-$dl#" -e "s#^log.dir = .*#log.dir = $work/log-$dl#" \
			"$work/conf.properties" >"$work/conf-$dl.properties"
		[ $dl = default ] || grep -v '^#' conf/testdata/good_dialect_euckr_fixed.properties >>"$work/conf-$dl.properties"
		"$work/bin/spoolgate-receiver" -config "$work/conf-$dl.properties" &
		pids+=("$!")
		wait_port "$p"
		declare "dport_$dl=$p"
	done
	for r in $(seq 1 "$ROUNDS"); do
		echo "round $r/$ROUNDS: pipelining $PIPE_WINDOW, EUC-KR fixed width and the default dialect alternately" >&2
		run euckr_pipe "127.0.0.1:$dport_euckr" -keepalive -pipeline "$PIPE_WINDOW" -config "$work/conf-euckr.properties"
		run default_pipe "127.0.0.1:$dport_default" -keepalive -pipeline "$PIPE_WINDOW"
	done
fi

# The journal (issue 26): the keep-alive and pipelining rows with the
# journal on (journal.dir set, as by default) against it off (journal.dir
# empty), two fresh receivers (fsync=always) of their own, in the same
# rounds, each round on, off, off, on (a load that drifts during a round
# weighs on both alike). SKIP_JOURNAL=1 skips it.
if [ -z "${SKIP_JOURNAL:-}" ]; then
	for jl in on off; do
		p=$(free_port); a=$(free_port)
		mkdir -p "$work/request-j$jl" "$work/log-j$jl"
		sed -e "s/^receiver.listen = .*/receiver.listen = 127.0.0.1:$p/" -e "s/^receiver.admin_listen = .*/receiver.admin_listen = 127.0.0.1:$a/" \
			-e "s#^receiver.data_dir = .*#receiver.data_dir = $work/request-j$jl#" -e "s#^log.dir = .*#log.dir = $work/log-j$jl#" \
			"$work/conf.properties" >"$work/conf-j$jl.properties"
		if [ $jl = on ]; then echo "journal.dir = $work/log-jon/journal"; else echo "journal.dir ="; fi >>"$work/conf-j$jl.properties"
		"$work/bin/spoolgate-receiver" -config "$work/conf-j$jl.properties" &
		pids+=("$!")
		wait_port "$p"
		declare "jport_$jl=$p" "jadmin_$jl=$a"
	done
	for r in $(seq 1 "$JOURNAL_ROUNDS"); do
		echo "round $r/$JOURNAL_ROUNDS: keep-alive and pipelining $PIPE_WINDOW, journal on, off, off, on" >&2
		for kind in keep pipe; do
			for jl in on off off on; do
				port_var=jport_$jl
				if [ $kind = keep ]; then run "j${jl}_keep" "127.0.0.1:${!port_var}" -keepalive
				else run "j${jl}_pipe" "127.0.0.1:${!port_var}" -keepalive -pipeline "$PIPE_WINDOW"; fi
			done
		done
	done
	jrec=$(metric "$jadmin_on" 'spoolgate_journal_records_total{daemon="receiver"}')
	jerr=$(metric "$jadmin_on" 'spoolgate_journal_write_errors_total{daemon="receiver"}')
	jdrop=$(metric "$jadmin_on" 'spoolgate_journal_dropped_total{daemon="receiver"}')
	awk -v n="${jrec:-0}" -v e="${jerr:-0}" -v d="${jdrop:-0}" 'BEGIN { if (n == 0 || e > 0 || d > 0) { printf "bench.sh: the journal wrote %d lines, %d write errors, %d dropped\n", n, e, d; exit 1 } }' >&2 || true
	printf '%s\n' "journal on / off msg/s per round: keep-alive ${rate[jon_keep]}/ ${rate[joff_keep]}; pipelining ${rate[jon_pipe]}/ ${rate[joff_pipe]}; journal lines written ${jrec:-0}" >&2
fi
med() { echo "${rate[$1]}" | tr ' ' '\n' | grep . | median | awk '{printf "%.0f", $1}'; }
medp() { echo "${p99[$1]}" | tr ' ' '\n' | grep . | median; }


drain() { # drain N CONF: N files through the sender; prints "files/s hwm_mb files/s_from_the_first_delivery"
	local n=$1 conf=$2
	"$sg" bench -make-spool "$work/outbox" -files "$n" >/dev/null
	# Flush the burst of new files first, so that its writeback is not
	# charged to the drain (a real spool fills over time).
	sync
	local t0 t1 tf="" spid done=0
	t0=$(date +%s.%N)
	"$work/bin/spoolgate-sender" -config "$conf" &
	spid=$!; pids+=("$spid")
	local deadline=$((SECONDS + 300))
	# Counting files in a spool of 100,000 would cost the sender CPU: read
	# the sender's own count of delivered messages instead.
	while :; do
		done=$(metric "$sport" 'spoolgate_sender_messages_total{outcome="delivered"}')
		[ -z "$tf" ] && [ "${done:-0}" -ge 1 ] && tf=$(date +%s.%N)
		[ "${done:-0}" = "$n" ] && break
		if [ $SECONDS -gt $deadline ] || ! kill -0 "$spid" 2>/dev/null; then
			echo "bench.sh: drain of $n stopped with ${done:-0} delivered; the end of the sender's log:" >&2
			tail -n 5 "$work/log/sender.log" >&2 || true
			break
		fi
		sleep 0.05
	done
	t1=$(date +%s.%N)
	local hwm; hwm=$(hwm_mb "$spid")
	kill -TERM "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	local failed; failed=$(find "$work/failed" -type f | wc -l)
	[ "$failed" = 0 ] || echo "bench.sh: $failed files failed" >&2
	rm -rf "$work/outbox" "$work/failed"; mkdir -p "$work/outbox" "$work/failed"
	awk -v n="${done:-0}" -v a="$t0" -v b="$t1" -v h="$hwm" -v f="${tf:-0}" 'BEGIN {printf "%.0f %s %s\n", n/(b-a), h, (f > 0 && b > f && n > 1) ? sprintf("%.0f", (n-1)/(b-f)) : "-"}'
}
sed "s/^sender.remote = .*/sender.remote = 127.0.0.1:$nport/" "$work/conf.properties" >"$work/conf-null.properties"
drain_rate=(); null_rate=(); d10k_hwm="-"; d100k="- -"; drain_per_sync="-"
if [ -z "${SKIP_DRAIN:-}" ]; then
	for r in $(seq 1 "$DRAIN_ROUNDS"); do
		echo "round $r/$DRAIN_ROUNDS: draining $SMALL spool files (workers=16) into the receiver, then into the null reference" >&2
		read -r f h _ <<<"$(drain "$SMALL" "$work/conf.properties")"; drain_rate+=("$f"); d10k_hwm=$h
		read -r f h _ <<<"$(drain "$SMALL" "$work/conf-null.properties")"; null_rate+=("$f")
	done
	per_sync drain_per_sync
	if [ -z "${SKIP_100K:-}" ]; then
		echo "draining $BIG spool files (workers=16) into the receiver" >&2
		d100k=$(drain "$BIG" "$work/conf.properties")
	fi
fi
recv_hwm_all=$(hwm_mb "$rpid")

rc=$(med recv_conn); nc=$(med null_conn); rk=$(med recv_keep); nk=$(med null_keep)
rp=$(med recv_pipe); np=$(med null_pipe); ro=$(med recv_one); no=$(med null_one)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else print "-" }'; }
medv() { printf '%s\n' "$@" | grep . | median | awk '{printf "%.0f", $1}' || echo "-"; }
f10=$(medv "${drain_rate[@]}"); n10=$(medv "${null_rate[@]}")
h10=$d10k_hwm; read -r f100 h100 _ <<<"$d100k"
ceiling=$((CLIENTS * ${fsyncs:-0}))
echo
echo "spoolgate bench: $(nproc) cores, $(uname -r), $(go version | awk '{print $3}'), $ROUNDS rounds x $DURATION, $CLIENTS clients, medians"
echo
printf '| %-58s | %12s | %10s | %8s |\n' "what" "value" "reference" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..60})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})"
printf '| %-58s | %12s | %10s | %8s |\n' "this disk: fsyncs/s, one writer (p50 ms)" "$fsyncs ($fsync_p50)" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "fsync ceiling at $CLIENTS clients, msg/s ($CLIENTS x fsyncs/s)" "$ceiling" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "machine pauses (1 ms sleeps back >= 20 ms late), of wall time" "$pauses" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, one connection per message, msg/s (fsync=always)" "$rc" "$nc" "$(ratio "$rc" "$nc")"
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, keep-alive, msg/s (fsync=always)" "$rk" "$nk" "$(ratio "$rk" "$nk")"
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, keep-alive, msg/s, against the fsync ceiling" "$rk" "$ceiling" "$(ratio "$rk" "$ceiling")"
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, $CLIENTS connections pipelining $PIPE_WINDOW, msg/s" "$rp" "$np" "$(ratio "$rp" "$np")"
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, $PIPE_ONE pipelined on one connection, msg/s" "$ro" "$no" "$(ratio "$ro" "$no")"
if [ -z "${SKIP_DIALECT:-}" ]; then
	de=$(med euckr_pipe); dd=$(med default_pipe)
	printf '| %-58s | %12s | %10s | %8s |\n' "receiver, EUC-KR fixed width vs default, pipelining, msg/s" "$de" "$dd" "$(ratio "$de" "$dd")"
fi
if [ -z "${SKIP_JOURNAL:-}" ]; then
	jk=$(med jon_keep); jK=$(med joff_keep); jp=$(med jon_pipe); jP=$(med joff_pipe)
	printf '| %-58s | %12s | %10s | %8s |\n' "receiver, keep-alive, msg/s, journal on vs off" "$jk" "$jK" "$(ratio "$jk" "$jK")"
	printf '| %-58s | %12s | %10s | %8s |\n' "receiver, $CLIENTS pipelining $PIPE_WINDOW, msg/s, journal on vs off" "$jp" "$jP" "$(ratio "$jp" "$jP")"
fi
printf '| %-58s | %12s | %10s | %8s |\n' "receiver lines per fsync: bench / pipelining / the sender" "$bench_per_sync / $pipe_per_sync / $drain_per_sync" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, keep-alive, p99 ms" "$(medp recv_keep)" "$(medp null_keep)" ""
printf '| %-58s | %12s | %10s | %8s |\n' "receiver, one connection per message, p99 ms" "$(medp recv_conn)" "$(medp null_conn)" ""
printf '| %-58s | %12s | %10s | %8s |\n' "receiver peak RSS MB after $idle_held idle connections" "$recv_hwm" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "sender drain $SMALL files, workers=16, files/s" "$f10" "$n10" "$(ratio "$f10" "$n10")"
printf '| %-58s | %12s | %10s | %8s |\n' "sender drain $BIG files, files/s" "$f100" "$f10" "$(ratio "$f100" "$f10")"
printf '| %-58s | %12s | %10s | %8s |\n' "sender peak RSS MB ($SMALL / $BIG files)" "$h10 / $h100" "" ""
printf '| %-58s | %12s | %10s | %8s |\n' "receiver peak RSS MB, whole run" "$recv_hwm_all" "" ""

claimrun() { # claimrun CONF LINES BASE WAIT: one LINES-line file (process_nos from BASE) through a sender with CONF, at most WAIT; prints lines/s from its claim, and from the sender's start
	local conf=$1 lines=$2 base=$3 maxwait=$4 spid tpid done
	awk -v n="$lines" -v b="$base" 'BEGIN { for (i = 0; i < n; i++) printf "REQ|%09d|20261121093000|ORG01|SV01|KEY-%d|payload %d|\n", b+i, b+i, i }' >"$work/outbox/.big.tmp"
	touch -d '-1 min' "$work/outbox/.big.tmp"; mv "$work/outbox/.big.tmp" "$work/outbox/big.txt"; sync
	# The claim's life (its rename into .inflight to its deletion), looked
	# at every millisecond from just before the sender starts.
	rm -f "$work/claim.json"
	"$sg" bench -time-claim "$work/outbox/big.txt" -d "$maxwait" -json >"$work/claim.json" 2>"$work/claim.err" &
	tpid=$!; pids+=("$tpid")
	for _ in $(seq 1 500); do grep -q watching "$work/claim.err" 2>/dev/null && break; sleep 0.01; done
	"$work/bin/spoolgate-sender" -config "$conf" &
	spid=$!; pids+=("$spid")
	while kill -0 "$tpid" 2>/dev/null && kill -0 "$spid" 2>/dev/null; do sleep 0.05; done
	wait "$tpid" 2>/dev/null || true
	grep -v watching "$work/claim.err" >&2 || true
	done=$(metric "$sport" 'spoolgate_sender_messages_total{outcome="delivered"}')
	[ "${done:-0}" = "$lines" ] || echo "bench.sh: a $lines-line file stopped with ${done:-0} lines delivered" >&2
	kill -TERM "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	rm -rf "$work/outbox" "$work/failed"; mkdir -p "$work/outbox" "$work/failed"
	local took wait; took=$(jnum took_ns <"$work/claim.json"); wait=$(jnum wait_ns <"$work/claim.json")
	awk -v n="${done:-0}" -v took="${took:-0}" -v w="${wait:-0}" 'BEGIN { if (took > 0) printf "%.0f %.0f\n", n/(took/1e9), n/((w+took)/1e9); else print "- -" }'
}

# One result file of many lines through the sender (issue 12): sender.window
# = 1 against a window of $ML_WINDOW, into the receiver above (fsync=always)
# and into a second one with fsync=never. Lines/s from the file's claim to
# its end (what the window changes), and from the sender's start, which adds
# the start-up and sender.settle (100 ms) to both. SKIP_MULTILINE=1 skips it.
ML_LINES=${ML_LINES:-20000}; ML_WINDOW=${ML_WINDOW:-32}; ML_ROUNDS=${ML_ROUNDS:-5}
if [ -z "${SKIP_MULTILINE:-}" ]; then
	mport=$(free_port); maport=$(free_port)
	mkdir -p "$work/request-never"
	sed -e "s/^receiver.listen = .*/receiver.listen = 127.0.0.1:$mport/" -e "s/^receiver.admin_listen = .*/receiver.admin_listen = 127.0.0.1:$maport/" \
		-e "s#^receiver.data_dir = .*#receiver.data_dir = $work/request-never#" -e "s/^receiver.fsync = .*/receiver.fsync = never/" \
		-e "s#^log.dir = .*#log.dir = $work/log-never#" "$work/conf.properties" >"$work/conf-never.properties"
	mkdir -p "$work/log-never"
	"$work/bin/spoolgate-receiver" -config "$work/conf-never.properties" &
	pids+=("$!")
	wait_port "$mport"
	# process_no of the first line: every run sends new lines, else the
	# receiver's duplicate window answers them without storing (or syncing).
	# mlrun runs in a subshell: the caller moves it on.
	ml_base=500000000
	mlrun() { # mlrun PORT WINDOW: one $ML_LINES-line file through the sender; prints lines/s from its claim, and from the sender's start
		sed -e "s/^sender.remote = .*/sender.remote = 127.0.0.1:$1/" "$work/conf.properties" >"$work/conf-ml.properties"
		echo "sender.window = $2" >>"$work/conf-ml.properties"
		claimrun "$work/conf-ml.properties" "$ML_LINES" "$ml_base" 300s
	}
	dups0=$(metric "$aport" spoolgate_receiver_duplicates_total); dupn0=$(metric "$maport" spoolgate_receiver_duplicates_total)
	declare -A ml mls
	for r in $(seq 1 "$ML_ROUNDS"); do
		echo "round $r/$ML_ROUNDS: one $ML_LINES-line file, window 1 and $ML_WINDOW, fsync=always and never" >&2
		for f in always never; do
			port=$rport; [ $f = never ] && port=$mport
			for w in 1 "$ML_WINDOW"; do
				read -r claim start <<<"$(mlrun "$port" "$w")"
				ml_base=$((ml_base + ML_LINES))
				ml[$f-$w]+="$claim "; mls[$f-$w]+="$start "
			done
		done
	done
	dups1=$(metric "$aport" spoolgate_receiver_duplicates_total); dupn1=$(metric "$maport" spoolgate_receiver_duplicates_total)
	awk -v a="${dups0:-0}" -v b="${dups1:-0}" -v c="${dupn0:-0}" -v d="${dupn1:-0}" 'BEGIN { if (b > a || d > c) { printf "bench.sh: the multi-line runs sent %d duplicates (not stored, not synced)\n", b-a+d-c; exit 1 } }' >&2 || true
	mlmed() { echo "$1" | tr ' ' '\n' | grep -v '^-*$' | median | awk '{printf "%.0f", $1}'; }
	for f in always never; do
		w1=$(mlmed "${ml[$f-1]}"); ww=$(mlmed "${ml[$f-$ML_WINDOW]}")
		printf '| %-58s | %12s | %10s | %8s |\n' "sender, $ML_LINES-line file, window $ML_WINDOW vs 1, lines/s, fsync=$f" "$ww" "$w1" "$(ratio "$ww" "$w1")"
	done
	for f in always never; do
		w1=$(mlmed "${mls[$f-1]}"); ww=$(mlmed "${mls[$f-$ML_WINDOW]}")
		printf '| %-58s | %12s | %10s | %8s |\n' "  the same from the sender's start (+ settle), fsync=$f" "$ww" "$w1" "$(ratio "$ww" "$w1")"
	done
	printf '%s\n' "window 1 / $ML_WINDOW lines/s per round, fsync=always: ${ml[always-1]}/ ${ml[always-$ML_WINDOW]}; never: ${ml[never-1]}/ ${ml[never-$ML_WINDOW]}" >&2
fi

# The receiver's keep-alive rate with receiver.sink=amqp (issue 14) against
# the files sink above (fsync=always), alternately in the same rounds: a
# rabbitmq-server node of the bench's own on 127.0.0.1 (own name, ports,
# data dir, cookie and epmd, as internal/e2e/rabbit.go starts one), a quorum
# queue. Skipped when rabbitmq-server is not installed; SKIP_AMQP=1 skips it.
RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}
if [ -z "${SKIP_AMQP:-}" ] && [ -x "$RABBIT_BIN/rabbitmq-server" ]; then
	rdir="$work/rabbit"; mkdir -p "$rdir"
	qport=$(free_port); dport=$(free_port); eport=$(free_port)
	echo '[].' >"$rdir/enabled_plugins"
	printf 'listeners.tcp.default = 127.0.0.1:%s\nlog.console = false\n' "$qport" >"$rdir/rabbitmq.conf"
	echo spoolgatebench >"$rdir/.erlang.cookie"; chmod 400 "$rdir/.erlang.cookie"
	epmd_bin=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd | head -n1)
	"$epmd_bin" -port "$eport" -address 127.0.0.1 >/dev/null 2>&1 &
	pids+=("$!")
	renv=(HOME="$rdir" RABBITMQ_NODENAME="sgbench$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$qport" RABBITMQ_DIST_PORT="$dport" ERL_EPMD_PORT="$eport" ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_MNESIA_BASE="$rdir/mnesia" RABBITMQ_LOG_BASE="$rdir/log" RABBITMQ_CONFIG_FILE="$rdir/rabbitmq"
		RABBITMQ_ENABLED_PLUGINS_FILE="$rdir/enabled_plugins" RABBITMQ_PID_FILE="$rdir/pid"
		RABBITMQ_CONF_ENV_FILE="$rdir/rabbitmq-env.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$rdir/advanced.config")
	rabbit() { (cd "$rdir" && env "${renv[@]}" "$RABBIT_BIN/$@"); }
	echo "starting a rabbitmq-server node on 127.0.0.1:$qport" >&2
	rabbit rabbitmq-server -detached
	for _ in $(seq 1 600); do rabbit rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 0.2; done
	if rabbit rabbitmqctl -q await_startup >/dev/null 2>&1; then
		pids+=("$(cat "$rdir/pid")") # SIGTERM at exit if the shutdown below did not happen
		qrport=$(free_port); qaport=$(free_port)
		sed -e "s/^receiver.listen = .*/receiver.listen = 127.0.0.1:$qrport/" -e "s/^receiver.admin_listen = .*/receiver.admin_listen = 127.0.0.1:$qaport/" \
			-e "s#^log.dir = .*#log.dir = $work/log-amqp#" "$work/conf.properties" >"$work/conf-amqp.properties"
		printf 'receiver.sink = amqp\nreceiver.amqp.url = amqp://guest:guest@127.0.0.1:%s/\nreceiver.amqp.queue_type = quorum\n' "$qport" >>"$work/conf-amqp.properties"
		mkdir -p "$work/log-amqp"
		"$work/bin/spoolgate-receiver" -config "$work/conf-amqp.properties" &
		qrpid=$!; pids+=("$qrpid")
		wait_port "$qrport"
		for r in $(seq 1 "$ROUNDS"); do
			echo "round $r/$ROUNDS: keep-alive, receiver with sink=amqp and sink=files alternately" >&2
			run amqp_keep "127.0.0.1:$qrport" -keepalive
			run files_keep "127.0.0.1:$rport" -keepalive
		done
		ak=$(med amqp_keep); fk=$(med files_keep)
		printf '| %-58s | %12s | %10s | %8s |\n' "receiver, keep-alive, msg/s, sink=amqp (quorum) vs files" "$ak" "$fk" "$(ratio "$ak" "$fk")"
		kill -TERM "$qrpid" 2>/dev/null || true
		wait "$qrpid" 2>/dev/null || true
		rabbit rabbitmqctl -q shutdown >/dev/null 2>&1 || true
	else
		echo "bench.sh: the rabbitmq-server node did not start; amqp row skipped" >&2
	fi
else
	echo "bench.sh: rabbitmq-server not installed (apt-get install rabbitmq-server) or SKIP_AMQP set: amqp row skipped" >&2
fi

# The partner 30 ms away (issue 24): the rows above again through a
# simulated link, Shopify's toxiproxy (a tool of go.mod) on 127.0.0.1 with
# $LINK_LATENCY_MS ms each way, configured over its HTTP API, each row
# beside the link's own limit, in the same rounds. To the receiver above
# (fsync=always); the sender at its shipped defaults except where a row
# says. SKIP_LINK=1 skips it.
LINK_ROUNDS=${LINK_ROUNDS:-3}
LINK_LATENCY_MS=${LINK_LATENCY_MS:-15} # each way: a round trip of twice that
LINK_MBIT=${LINK_MBIT:-10}             # the capped link, for the windowed file
LINK_LINES=${LINK_LINES:-1500}         # one file at the shipped defaults
LINK_BIG_LINES=${LINK_BIG_LINES:-100000}
LINK_WINDOWS=${LINK_WINDOWS:-32 1024 auto} # sender.window for the big file (auto: the sender sizes it)
LINK_FILES=${LINK_FILES:-2000}         # single-line files at the shipped defaults
if [ -z "${SKIP_LINK:-}" ]; then
	go build -o "$work/bin/toxiproxy-server" github.com/Shopify/toxiproxy/v2/cmd/server
	tport=$(free_port); lport=$(free_port); cport=$(free_port)
	LOG_LEVEL=warn "$work/bin/toxiproxy-server" -host 127.0.0.1 -port "$tport" >"$work/log/toxiproxy.log" 2>&1 &
	pids+=("$!")
	wait_port "$tport"
	toxi() { # toxi PATH JSON: POST JSON to toxiproxy's API (bash's /dev/tcp, as metric: no curl); fails unless it answers 2xx
		local resp
		exec 6<>"/dev/tcp/127.0.0.1/$tport" || return 1
		printf 'POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "$1" "${#2}" "$2" >&6
		resp=$(cat <&6); exec 6<&-
		case "$resp" in "HTTP/1."?" 2"*) return 0 ;; esac
		echo "bench.sh: toxiproxy POST $1: ${resp%%$'\r'*}" >&2
		return 1
	}
	# Two links to the receiver: latency only, and latency then the
	# bandwidth cap (toxiproxy's KB/s are 1,000 bytes; latency first, so
	# that the wait for the cap adds to it).
	link_kbps=$((LINK_MBIT * 125))
	for l in "plain $lport" "capped $cport"; do
		read -r name port <<<"$l"
		toxi /proxies "{\"name\":\"$name\",\"listen\":\"127.0.0.1:$port\",\"upstream\":\"127.0.0.1:$rport\"}"
		for s in upstream downstream; do
			toxi "/proxies/$name/toxics" "{\"name\":\"latency_$s\",\"type\":\"latency\",\"stream\":\"$s\",\"attributes\":{\"latency\":$LINK_LATENCY_MS}}"
			[ "$name" = plain ] || toxi "/proxies/$name/toxics" "{\"name\":\"bandwidth_$s\",\"type\":\"bandwidth\",\"stream\":\"$s\",\"attributes\":{\"rate\":$link_kbps}}"
		done
	done
	# The sender's shipped defaults (conf/conf.properties holds them): only
	# where it sends, its directories and its admin address are set.
	cat >"$work/conf-link.properties" <<CONF
sender.remote = 127.0.0.1:$lport
sender.admin_listen = 127.0.0.1:$sport
sender.spool_dir = $work/outbox
sender.failed_dir = $work/failed
log.dir = $work/log
log.level = info
CONF
	workers=$(awk -F' *= *' '$1 == "sender.workers" {print $2}' conf/conf.properties)
	rtt=$((2 * LINK_LATENCY_MS))
	link_base=700000000
	declare -A lk # each row's value per round
	for r in $(seq 1 "$LINK_ROUNDS"); do
		echo "round $r/$LINK_ROUNDS: through a ${rtt} ms link: receiver keep-alive, $LINK_LINES-line file, $LINK_BIG_LINES-line file at ${LINK_MBIT} Mbit/s (window $LINK_WINDOWS), $LINK_FILES files" >&2
		out=$("$sg" bench -addr "127.0.0.1:$lport" -c 1 -n 30 -keepalive -json) || true
		lk[rtt]+="$(echo "$out" | jnum p50_ns | awk '{printf "%.1f", $1/1e6}') "
		run link_keep "127.0.0.1:$lport" -keepalive
		read -r claim _ <<<"$(claimrun "$work/conf-link.properties" "$LINK_LINES" "$link_base" 900s)"
		link_base=$((link_base + LINK_LINES)); lk[file]+="$claim "
		for w in $LINK_WINDOWS; do
			sed "s/^sender.remote = .*/sender.remote = 127.0.0.1:$cport/" "$work/conf-link.properties" >"$work/conf-link-w.properties"
			echo "sender.window = $w" >>"$work/conf-link-w.properties"
			read -r claim _ <<<"$(claimrun "$work/conf-link-w.properties" "$LINK_BIG_LINES" "$link_base" 900s)"
			link_base=$((link_base + LINK_BIG_LINES)); lk[big-$w]+="$claim "
		done
		read -r f _ ff <<<"$(drain "$LINK_FILES" "$work/conf-link.properties")"; lk[files]+="$f "; lk[files1]+="$ff "
	done
	# The wire bytes of a line of the big file, on average: the line as
	# claimrun writes it, its LF, and the length field the sender puts in
	# front ("0087|").
	per_line=$(awk -v n="$LINK_BIG_LINES" -v b="$link_base" 'BEGIN { for (i = 0; i < n; i++) s += length(sprintf("REQ|%09d|20261121093000|ORG01|SV01|KEY-%d|payload %d|", b+i, b+i, i)) + 1 + 5; printf "%.1f", s/n }')
	lkmed() { echo "${lk[$1]}" | tr ' ' '\n' | grep -v '^-*$' | median | awk '{printf "%.0f", $1}'; }
	per_rtt=$(awk -v c="$CLIENTS" -v r="$rtt" 'BEGIN {printf "%.0f", c * 1000 / r}')
	wk_rtt=$(awk -v w="$workers" -v r="$rtt" 'BEGIN {printf "%.0f", w * 1000 / r}')
	bw_lines=$(awk -v k="$link_kbps" -v p="$per_line" 'BEGIN {printf "%.0f", k * 1000 / p}')
	lr=$(echo "${lk[rtt]}" | tr ' ' '\n' | grep . | median)
	printf '| %-58s | %12s | %10s | %8s |\n' "link: one client's round trip, p50 ms" "$lr" "$rtt" "$(ratio "$lr" "$rtt")"
	lv=$(med link_keep)
	printf '| %-58s | %12s | %10s | %8s |\n' "link: receiver keep-alive, $CLIENTS clients, msg/s vs $CLIENTS/RTT" "$lv" "$per_rtt" "$(ratio "$lv" "$per_rtt")"
	lv=$(lkmed file)
	printf '| %-58s | %12s | %10s | %8s |\n' "link: $LINK_LINES-line file, sender defaults, lines/s vs $workers/RTT" "$lv" "$wk_rtt" "$(ratio "$lv" "$wk_rtt")"
	for w in $LINK_WINDOWS; do
		lv=$(lkmed "big-$w")
		printf '| %-58s | %12s | %10s | %8s |\n' "link ${LINK_MBIT} Mbit/s: $LINK_BIG_LINES lines, window $w, vs bandwidth" "$lv" "$bw_lines" "$(ratio "$lv" "$bw_lines")"
	done
	lv=$(lkmed files)
	printf '| %-58s | %12s | %10s | %8s |\n' "link: $LINK_FILES single-line files, defaults, files/s vs $workers/RTT" "$lv" "$wk_rtt" "$(ratio "$lv" "$wk_rtt")"
	lv=$(lkmed files1)
	printf '| %-58s | %12s | %10s | %8s |\n' "  the same from the first delivery (without start-up, settle)" "$lv" "$wk_rtt" "$(ratio "$lv" "$wk_rtt")"
	printf '%s\n' "link rows per round: round trip ms ${lk[rtt]}/ keep-alive ${rate[link_keep]}/ file ${lk[file]}/ $(for w in $LINK_WINDOWS; do printf 'window %s %s/ ' "$w" "${lk[big-$w]}"; done)files ${lk[files]}/ from the first ${lk[files1]}" >&2
fi
