#!/bin/sh
# postremove of the spoolgate rpm and deb (rpm %postun: $1 = 0 erase, 1
# upgrade; deb postrm: remove|purge|upgrade|...).
#
# Reloads systemd after the units went away and says what was kept: the
# package never deletes /var/spool/spoolgate (requests, outbox, failed),
# /var/log/spoolgate or the user. Config files: dpkg --remove keeps them,
# dpkg --purge deletes them (Debian's rule); rpm -e keeps an edited one as
# conf.properties.rpmsave and drops one that was never edited.
set -e
[ -z "${DPKG_ROOT:-}" ] || exit 0
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
case "$1" in
remove | purge | 0)
	echo "spoolgate removed; kept /var/spool/spoolgate, /var/log/spoolgate and the user spoolgate (delete them by hand when no longer needed)"
	;;
esac
exit 0
