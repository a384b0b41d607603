#!/bin/sh
# postinstall of the spoolgate rpm and deb (rpm %post: $1 = 1 install, 2
# upgrade; deb postinst: configure [OLD_VERSION], or abort-*).
#
# Creates the directories of /usr/lib/tmpfiles.d/spoolgate.conf, then:
# - on a first install starts nothing (sender.remote must be set first) and
#   says what to do;
# - on an upgrade restarts the daemons that were running, with the new
#   programs. The receiver's port belongs to spoolgate-receiver.socket,
#   which is not restarted: connections wait in its queue and none is
#   refused. Without systemd, startup.sh restarts what it had started.
# DPKG_ROOT (dpkg --root DIR --force-script-chrootless): install into that
# root; no service is touched.
set -e
root=${DPKG_ROOT:-}

case "$1" in
configure) upgrade=${2:+yes} ;;
1) upgrade= ;;
[2-9] | [1-9][0-9]*) upgrade=yes ;;
*) exit 0 ;;
esac

# Directories: systemd-tmpfiles, else the same lines read here.
tmpfiles=/usr/lib/tmpfiles.d/spoolgate.conf
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles ${root:+--root="$root"} --create spoolgate.conf || true
else
	grep -v '^[[:space:]]*#' "$root$tmpfiles" | while read -r type path mode user group _; do
		[ "$type" = d ] || continue
		mkdir -p "$root$path"
		chown "$user:$group" "$root$path"
		chmod "$mode" "$root$path"
	done
fi

# The environment file may hold secrets (SPOOLGATE_ADMIN_TOKEN, AMQP
# passwords): an older package installed it readable by every user, and a
# kept (edited) config file keeps its mode. Close it to others.
for f in "$root/etc/default/spoolgate" "$root/etc/sysconfig/spoolgate"; do
	if [ -f "$f" ]; then chmod o-rwx "$f"; fi
done

[ -z "$root" ] || exit 0
units="spoolgate-receiver.service spoolgate-sender.service"
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -n "$upgrade" ]; then
		# Only those that run, the named instances' too (spoolgate init
		# NAME; systemctl matches the patterns against the units it has
		# loaded); the socket units keep the ports open.
		systemctl try-restart $units 'spoolgate-receiver@*.service' 'spoolgate-sender@*.service' || true
	fi
elif [ -n "$upgrade" ] && [ -x /usr/lib/spoolgate/startup.sh ]; then
	for d in receiver sender; do
		if /usr/lib/spoolgate/startup.sh status "$d" >/dev/null 2>&1; then
			/usr/lib/spoolgate/startup.sh restart "$d" || true
		fi
	done
fi
if [ -z "$upgrade" ]; then
	cat <<'MSG'
spoolgate installed. Next:
  edit /etc/spoolgate/conf.properties (at least sender.remote), then: spoolgate check
  systemctl enable --now spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service
MSG
fi
exit 0
