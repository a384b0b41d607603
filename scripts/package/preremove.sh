#!/bin/sh
# preremove of the spoolgate rpm and deb (rpm %preun: $1 = 0 erase, 1
# upgrade; deb prerm: remove|upgrade|deconfigure|failed-upgrade).
#
# On removal (not on an upgrade) stops and disables the daemons and the
# socket, the named instances' too. Data, spool, logs, configuration and
# the user stay.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
[ -z "${DPKG_ROOT:-}" ] || exit 0

units="spoolgate-receiver.socket spoolgate-receiver.service spoolgate-sender.service"
# The named instances (spoolgate init NAME) that are enabled: their links
# in /etc/systemd/system/*.wants/.
for link in /etc/systemd/system/*.wants/spoolgate-receiver@*.socket /etc/systemd/system/*.wants/spoolgate-receiver@*.service \
	/etc/systemd/system/*.wants/spoolgate-sender@*.service; do
	if [ -L "$link" ]; then
		unit=${link##*/}
		case " $units " in *" $unit "*) ;; *) units="$units $unit" ;; esac
	fi
done
if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl disable --now $units || true
	else
		systemctl --no-reload disable $units >/dev/null 2>&1 || true
	fi
fi
if [ ! -d /run/systemd/system ] && [ -x /usr/lib/spoolgate/startup.sh ]; then
	/usr/lib/spoolgate/startup.sh stop || true
fi
exit 0
