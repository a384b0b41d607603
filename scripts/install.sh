#!/usr/bin/env bash
# install.sh: install spoolgate on this host from a checkout (run as root), or
# stage it under DESTDIR. It installs the same paths as the rpm and deb of
# scripts/package.sh (a test compares them); prefer the packages where you
# can (README: "Install from a package").
#
#   scripts/install.sh                 build with Go and install
#   scripts/install.sh -bin DIR        install the prebuilt binaries in DIR
#   scripts/install.sh -uninstall      remove programs, units and scripts; keep
#                                      config, data, spool, logs and the user
#   DESTDIR=/tmp/stage scripts/install.sh -bin DIR    stage into a tree
#
# What goes where (PREFIX defaults to /usr, as in the packages):
#   PREFIX/bin/spoolgate{,-receiver,-sender}       the programs
#   PREFIX/lib/spoolgate/{env.sh,startup.sh}       start/stop without systemd
#   PREFIX/share/doc/spoolgate/                    README.md, LICENSE, copyright, conf.properties
#                                                  (all defaults), monitoring/ and lb/ examples
#   /usr/lib/systemd/system/spoolgate-receiver.{socket,service}, spoolgate-sender.service
#   /usr/lib/systemd/system/spoolgate-receiver@.{socket,service}, spoolgate-sender@.service
#                                                  the named instances' templates (spoolgate init NAME)
#   /usr/lib/sysusers.d/spoolgate.conf             the user and group spoolgate
#   /usr/lib/tmpfiles.d/spoolgate.conf             the directories below
#   /etc/spoolgate/conf.properties                 only when absent: yours is never overwritten
#   /etc/default/spoolgate                         only when absent, 0640 root:spoolgate (environment of
#                                                  the daemons; /etc/sysconfig/spoolgate on RHEL, or ENV_FILE=)
#   /var/spool/spoolgate/{request,outbox,failed}   data, spool, failed (setgid group spoolgate)
#   /var/log/spoolgate                             logs
# and the system user and group spoolgate. Add the users of the downstream
# workflow to group spoolgate: they read request files and drop result files.
#
# Running it again is safe: it updates the programs and units and keeps
# everything else. It also removes what an older install.sh put in
# /usr/local and /etc/systemd/system (units there would hide the new ones).
# Under DESTDIR no user is created and nothing is chowned (the staging host
# may not have the user): run the commands it prints on the target host.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
PREFIX=${PREFIX%/}
SG_USER=spoolgate
bindir=$PREFIX/bin
libdir=$PREFIX/lib/spoolgate
docdir=$PREFIX/share/doc/spoolgate
unitdir=/usr/lib/systemd/system
sysusers=/usr/lib/sysusers.d/spoolgate.conf
tmpfiles=/usr/lib/tmpfiles.d/spoolgate.conf
confdir=/etc/spoolgate
# As the packages: /etc/sysconfig/spoolgate in the rpm, /etc/default/spoolgate
# in the deb.
if [ -z "${ENV_FILE:-}" ] && [ -e /etc/redhat-release ] && [ ! -e /etc/default/spoolgate ]; then
	ENV_FILE=/etc/sysconfig/spoolgate
fi
defaults=${ENV_FILE:-/etc/default/spoolgate}
spool=/var/spool/spoolgate
logdir=/var/log/spoolgate
programs=(spoolgate spoolgate-receiver spoolgate-sender)
units=(spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service)
templates=(spoolgate-receiver@.socket spoolgate-receiver@.service spoolgate-sender@.service)
# The named instances' units that run (systemctl takes these patterns).
instances=('spoolgate-receiver@*.socket' 'spoolgate-receiver@*.service' 'spoolgate-sender@*.service')

prog=${0##*/}
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

bin=
uninstall=
while [ $# -gt 0 ]; do
	case $1 in
	-bin | --bin)
		[ $# -ge 2 ] || die "$1 needs a directory"
		bin=$2
		shift
		;;
	-uninstall | --uninstall) uninstall=1 ;;
	-h | -help | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (try -help)" ;;
	esac
	shift
done

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
	die "run as root, or set DESTDIR to stage the files into a directory"
fi
# Under systemd (and not staging) units are started, stopped and reloaded.
systemd=
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then systemd=1; fi
owned=
if [ -z "$DESTDIR" ]; then owned=1; fi

if [ -n "$uninstall" ]; then
	if [ -n "$systemd" ]; then
		systemctl disable --now "${units[@]}" 2>/dev/null || true
		systemctl stop "${instances[@]}" 2>/dev/null || true
	fi
	for p in "${programs[@]}"; do rm -f "$DESTDIR$bindir/$p"; done
	for u in "${units[@]}" "${templates[@]}"; do rm -f "$DESTDIR$unitdir/$u"; done
	rm -f "$DESTDIR$sysusers" "$DESTDIR$tmpfiles"
	rm -rf "$DESTDIR$libdir" "$DESTDIR$docdir"
	if [ -n "$systemd" ]; then systemctl daemon-reload; fi
	say "removed the programs, units and scripts."
	say "kept: $confdir, $defaults, $spool, $logdir and the user $SG_USER;"
	say "remove them by hand when the data is no longer needed."
	exit 0
fi

# --- programs -------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$bin" ]; then
	if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
	command -v go >/dev/null || die "Go is needed to build (or pass -bin DIR with prebuilt binaries)"
	say "building in $root"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp/" ./cmd/...)
	bin=$tmp
fi
for p in "${programs[@]}"; do
	[ -x "$bin/$p" ] || die "$bin/$p: not found or not executable"
done

# --- user -----------------------------------------------------------------
if [ -n "$owned" ]; then
	if ! id "$SG_USER" >/dev/null 2>&1; then
		if command -v systemd-sysusers >/dev/null; then
			systemd-sysusers - <"$root/scripts/systemd/spoolgate.sysusers"
		else
			nologin=$(command -v nologin || echo /usr/sbin/nologin)
			[ -x "$nologin" ] || nologin=/sbin/nologin
			useradd --system --user-group --home-dir "$spool" --no-create-home \
				--shell "$nologin" --comment "spoolgate gateway" "$SG_USER"
		fi
		say "created user and group $SG_USER"
	fi
else
	say "DESTDIR set: not creating user $SG_USER and not changing owners (see the header of $prog)"
fi

# dir MODE OWNER:GROUP PATH creates PATH (if missing) and sets its mode, and
# its owner unless staging.
dir() {
	mkdir -p "$DESTDIR$3"
	chmod "$1" "$DESTDIR$3"
	if [ -n "$owned" ]; then chown "$2" "$DESTDIR$3"; fi
}
# file MODE SRC DST installs SRC as DST (owned by root), replacing it.
file() {
	mkdir -p "$(dirname "$DESTDIR$3")"
	install -m "$1" "$2" "$DESTDIR$3.new"
	mv -f "$DESTDIR$3.new" "$DESTDIR$3"
}

dir 0755 root:root "$bindir"
dir 0755 root:root "$libdir"
dir 0755 root:root "$docdir"
dir 0755 root:root "$unitdir"
dir 0750 "root:$SG_USER" "$confdir"
dir 0755 root:root "$(dirname "$defaults")"
dir 0755 "root:root" "$spool"
# setgid: files dropped or written there belong to group spoolgate, so the
# daemons and the downstream workflow (members of the group) can read them.
dir 2770 "$SG_USER:$SG_USER" "$spool/request"
dir 2770 "$SG_USER:$SG_USER" "$spool/outbox"
dir 2770 "$SG_USER:$SG_USER" "$spool/failed"
dir 0750 "$SG_USER:$SG_USER" "$logdir"

# The programs are replaced by rename, so a running daemon keeps its file.
for p in "${programs[@]}"; do file 0755 "$bin/$p" "$bindir/$p"; done
file 0644 "$root/scripts/env.sh" "$libdir/env.sh"
file 0755 "$root/scripts/startup.sh" "$libdir/startup.sh"
file 0644 "$root/README.md" "$docdir/README.md"
file 0644 "$root/LICENSE" "$docdir/LICENSE"
file 0644 "$root/scripts/package/copyright" "$docdir/copyright"
file 0644 "$root/BENCHMARKS.md" "$docdir/BENCHMARKS.md"
file 0644 "$root/conf/conf.properties" "$docdir/conf.properties"
for f in "$root"/docs/*.md; do
	if [ -f "$f" ]; then file 0644 "$f" "$docdir/${f##*/}"; fi
done
for d in monitoring lb; do
	[ -d "$root/scripts/$d" ] || continue
	for f in "$root/scripts/$d"/*; do
		case $f in *.go) continue ;; esac
		if [ -f "$f" ]; then file 0644 "$f" "$docdir/$d/${f##*/}"; fi
	done
done
file 0644 "$root/scripts/systemd/spoolgate.sysusers" "$sysusers"
file 0644 "$root/scripts/systemd/spoolgate.tmpfiles" "$tmpfiles"
for u in "${units[@]}" "${templates[@]}"; do
	sed -e "s#/usr/bin/#$PREFIX/bin/#g" -e "s#/usr/share/doc/#$PREFIX/share/doc/#g" "$root/scripts/systemd/$u" >"$tmp/$u"
	file 0644 "$tmp/$u" "$unitdir/$u"
done

# What an older install.sh put elsewhere: its units in /etc/systemd/system
# would hide the ones above.
for u in "${units[@]}"; do
	old=$DESTDIR/etc/systemd/system/$u
	if [ -f "$old" ] && grep -q "^# $u:" "$old"; then
		rm -f "$old"
		say "removed /etc/systemd/system/$u (from an older install.sh; now in $unitdir)"
	fi
done
if [ "$PREFIX" != /usr/local ]; then
	for p in "${programs[@]}"; do
		if [ -f "$DESTDIR/usr/local/bin/$p" ]; then
			rm -f "$DESTDIR/usr/local/bin/$p"
			say "removed /usr/local/bin/$p (from an older install.sh; now in $bindir)"
		fi
	done
	rm -rf "$DESTDIR/usr/local/lib/spoolgate" "$DESTDIR/usr/local/share/doc/spoolgate"
fi

# --- configuration: never overwritten -------------------------------------
if [ -e "$DESTDIR$confdir/conf.properties" ]; then
	say "kept $confdir/conf.properties (the defaults of this version: $docdir/conf.properties)"
	# Under DESTDIR the paths and ports are the target host's: syntax only.
	if ! out=$("$bin/spoolgate" check ${DESTDIR:+-syntax} -config "$DESTDIR$confdir/conf.properties" 2>&1); then
		say "WARNING: $confdir/conf.properties does not pass this version's check: $out" >&2
	fi
else
	install -m 0640 "$root/conf/conf.properties" "$DESTDIR$confdir/conf.properties"
	if [ -n "$owned" ]; then chown "root:$SG_USER" "$DESTDIR$confdir/conf.properties"; fi
	say "installed $confdir/conf.properties: set sender.remote before starting the sender"
fi
# The environment file may hold secrets (SPOOLGATE_ADMIN_TOKEN, AMQP
# passwords): root and group spoolgate read it (startup.sh may run as the
# daemons' user), no one else; one an older install.sh left readable by
# every user is closed to them.
if [ -e "$DESTDIR$defaults" ]; then
	say "kept $defaults"
	if [ -n "$(find "$DESTDIR$defaults" -maxdepth 0 -perm -o=r)" ]; then
		chmod o-rwx "$DESTDIR$defaults"
		say "made $defaults unreadable by other users (it may hold SPOOLGATE_ADMIN_TOKEN)"
	fi
else
	install -m 0640 "$root/scripts/spoolgate.env" "$DESTDIR$defaults"
	if [ -n "$owned" ]; then chown "root:$SG_USER" "$DESTDIR$defaults"; fi
	say "installed $defaults (mode 0640, group $SG_USER: it may hold secrets)"
fi

if [ -z "$owned" ]; then
	cat <<EOF
staged under $DESTDIR. On the target host, after installing the tree:
  systemd-sysusers spoolgate.conf        (no systemd: useradd --system --user-group --home-dir $spool --no-create-home --shell /usr/sbin/nologin $SG_USER)
  systemd-tmpfiles --create spoolgate.conf
  chown root:$SG_USER $confdir $confdir/conf.properties $defaults
  chown $SG_USER:$SG_USER $spool/request $spool/outbox $spool/failed $logdir
  systemctl daemon-reload
EOF
	exit 0
fi

if [ -n "$systemd" ]; then
	systemctl daemon-reload
	say "installed. Next:"
	say "  edit $confdir/conf.properties (sender.remote), then: spoolgate check"
	say "  systemctl enable --now spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service"
	say "after an upgrade: systemctl restart spoolgate-receiver spoolgate-sender (no connection is refused)"
	say "  and the named instances: systemctl try-restart 'spoolgate-receiver@*.service' 'spoolgate-sender@*.service'"
	say "another partner on this host: spoolgate init NAME -remote HOST:PORT (README: Several partners on one host)"
else
	say "installed (no systemd here). Next:"
	say "  edit $confdir/conf.properties (sender.remote), then: $bindir/spoolgate check"
	say "  $libdir/startup.sh start      (stop, restart, reload, status)"
fi
