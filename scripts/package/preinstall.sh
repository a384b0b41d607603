#!/bin/sh
# preinstall of the spoolgate rpm and deb (rpm %pre: $1 = 1 install, 2
# upgrade; deb preinst: install|upgrade [OLD_VERSION]).
#
# Creates the system user and group spoolgate before the files are
# unpacked, so /etc/spoolgate and conf.properties get group spoolgate. With
# systemd-sysusers it reads the line of /usr/lib/sysusers.d/spoolgate.conf
# (the same line as scripts/systemd/spoolgate.sysusers; a test compares
# them); without it (no systemd) it falls back to useradd.
#
# DPKG_ROOT is set when dpkg installs into another root without chroot
# (dpkg --root DIR --force-script-chrootless): every path is under it.
set -e
root=${DPKG_ROOT:-}

have_user() {
	if [ -n "$root" ]; then
		grep -q '^spoolgate:' "$root/etc/passwd" 2>/dev/null
	else
		getent passwd spoolgate >/dev/null 2>&1 || id spoolgate >/dev/null 2>&1
	fi
}

if ! have_user; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		echo 'u spoolgate - "spoolgate gateway" /var/spool/spoolgate /usr/sbin/nologin' |
			systemd-sysusers ${root:+--root="$root"} --replace=/usr/lib/sysusers.d/spoolgate.conf -
	else
		useradd ${root:+--prefix "$root"} --system --user-group --home-dir /var/spool/spoolgate \
			--no-create-home --shell /usr/sbin/nologin --comment "spoolgate gateway" spoolgate
	fi
fi
exit 0
