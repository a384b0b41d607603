#!/usr/bin/env bash
# install.sh: install spoolgate on this host (run as root), or stage it
# under DESTDIR for a package.
#
#   scripts/install.sh                 build with Go and install
#   scripts/install.sh -bin DIR        install the prebuilt binaries in DIR
#   scripts/install.sh -uninstall      remove programs, units and scripts; keep
#                                      config, data, spool, logs and the user
#   DESTDIR=/tmp/stage scripts/install.sh -bin DIR    stage into a tree
#
# What goes where (PREFIX defaults to /usr/local):
#   PREFIX/bin/spoolgate{,-receiver,-sender}       the programs
#   PREFIX/lib/spoolgate/{env.sh,startup.sh}       start/stop without systemd
#   PREFIX/share/doc/spoolgate/                    README.md, conf.properties (all defaults)
#   /etc/systemd/system/spoolgate-receiver.{socket,service}, spoolgate-sender.service
#   /etc/spoolgate/conf.properties                 only when absent: yours is never overwritten
#   /etc/default/spoolgate                         only when absent (environment of the daemons)
#   /var/spool/spoolgate/{request,outbox,failed}   data, spool, failed (setgid group spoolgate)
#   /var/log/spoolgate                             logs
# and the system user and group spoolgate. Add the users of the downstream
# workflow to group spoolgate: they read request files and drop result files.
#
# Running it again is safe: it updates the programs and units and keeps
# everything else. Under DESTDIR no user is created and nothing is chowned
# (the staging host may not have the user): the package's post-install step
# must run "useradd --system --user-group spoolgate" and the chown/chmod
# lines this script prints.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
PREFIX=${PREFIX%/}
SG_USER=spoolgate
bindir=$PREFIX/bin
libdir=$PREFIX/lib/spoolgate
docdir=$PREFIX/share/doc/spoolgate
unitdir=/etc/systemd/system
confdir=/etc/spoolgate
defaults=/etc/default/spoolgate
spool=/var/spool/spoolgate
logdir=/var/log/spoolgate
programs=(spoolgate spoolgate-receiver spoolgate-sender)
units=(spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service)

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
	fi
	for p in "${programs[@]}"; do rm -f "$DESTDIR$bindir/$p"; done
	for u in "${units[@]}"; do rm -f "$DESTDIR$unitdir/$u"; done
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
		nologin=$(command -v nologin || echo /usr/sbin/nologin)
		[ -x "$nologin" ] || nologin=/sbin/nologin
		useradd --system --user-group --home-dir "$spool" --no-create-home \
			--shell "$nologin" --comment "spoolgate gateway" "$SG_USER"
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
file 0644 "$root/conf/conf.properties" "$docdir/conf.properties"
for u in "${units[@]}"; do
	sed "s#/usr/local/#$PREFIX/#g" "$root/scripts/systemd/$u" >"$tmp/$u"
	file 0644 "$tmp/$u" "$unitdir/$u"
done

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
if [ -e "$DESTDIR$defaults" ]; then
	say "kept $defaults"
else
	cat >"$tmp/defaults" <<'EOF'
# Environment of the spoolgate daemons: read by systemd (EnvironmentFile=) and
# by startup.sh. One NAME=value a line, no spaces around =.
#
# The config file (default /etc/spoolgate/conf.properties):
#SPOOLGATE_CONFIG=/etc/spoolgate/conf.properties
#
# Any config key can be overridden here: SPOOLGATE_ + the key upper-cased
# with . as _, e.g.
#SPOOLGATE_SENDER_REMOTE=10.20.30.40:9010
#SPOOLGATE_LOG_LEVEL=debug
EOF
	install -m 0644 "$tmp/defaults" "$DESTDIR$defaults"
	say "installed $defaults"
fi

if [ -z "$owned" ]; then
	cat <<EOF
staged under $DESTDIR. On the target host, after installing the tree:
  useradd --system --user-group --home-dir $spool --no-create-home --shell /usr/sbin/nologin $SG_USER
  chown root:$SG_USER $confdir $confdir/conf.properties
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
else
	say "installed (no systemd here). Next:"
	say "  edit $confdir/conf.properties (sender.remote), then: $bindir/spoolgate check"
	say "  $libdir/startup.sh start      (stop, restart, reload, status)"
fi
