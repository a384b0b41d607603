#!/usr/bin/env bash
# package.sh: build the spoolgate rpm and deb with nfpm (a Go tool of this
# module, pinned in go.mod: nothing is downloaded but Go modules).
#
#   scripts/package.sh [VERSION]        dist/spoolgate-VERSION-1.x86_64.rpm
#                                       dist/spoolgate_VERSION_amd64.deb
#   ARCH=arm64 scripts/package.sh 1.2.0 dist/spoolgate-1.2.0-1.aarch64.rpm
#                                       dist/spoolgate_1.2.0_arm64.deb
#
# VERSION defaults to the latest tag vX.Y.Z (without the v), else
# 0.0.0~git<date>.<commit> (sorts before any release). It may hold digits,
# letters, ".", "+" and "~" (no "-": rpm forbids it in a version).
# DIST=DIR writes the packages there instead of dist/. MAINTAINER="Name
# <address>" and HOMEPAGE=URL name the organisation that builds them
# (default: The spoolgate authors, no homepage).
#
# The binaries are static (CGO_ENABLED=0), stripped (-s -w), built with
# -trimpath, and carry the version and commit for -version and
# spoolgate_build_info. What goes where: scripts/package/nfpm.yaml; the
# install, upgrade and removal steps: scripts/package/*.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
prog=${0##*/}
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }

case ${1:-} in
-h | -help | --help)
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -le 1 ] || die "usage: $prog [VERSION]"
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null || die "Go is needed (see go.mod for the version)"

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=${1:-}
if [ -z "$version" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		version=${tag#v}
	else
		version="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d).${revision:0:12}"
	fi
fi
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "bad VERSION $version: digits first, then letters, digits, . + ~ (no -)"

ARCH=${ARCH:-amd64}
case $ARCH in
amd64) rpmarch=x86_64 ;;
arm64) rpmarch=aarch64 ;;
*) die "ARCH=$ARCH: amd64 or arm64" ;;
esac
dist=${DIST:-$root/dist}
mkdir -p "$dist"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/doc"

echo "$prog: building spoolgate $version ($revision) for linux/$ARCH"
ldflags="-s -w -X spoolgate/internal/version.Version=$version -X spoolgate/internal/version.Revision=$revision"
CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$stage/bin/" ./cmd/...

# /usr/share/doc/spoolgate: README, LICENSE, copyright, docs/*.md, the defaults, the shipped examples.
install -m 0644 README.md "$stage/doc/README.md"
install -m 0644 LICENSE "$stage/doc/LICENSE"
install -m 0644 scripts/package/copyright "$stage/doc/copyright"
[ ! -f BENCHMARKS.md ] || install -m 0644 BENCHMARKS.md "$stage/doc/BENCHMARKS.md"
install -m 0644 conf/conf.properties "$stage/doc/conf.properties"
for f in docs/*.md; do
	[ ! -f "$f" ] || install -m 0644 "$f" "$stage/doc/"
done
for d in monitoring lb; do
	[ -d "scripts/$d" ] || continue
	mkdir -p "$stage/doc/$d"
	find "scripts/$d" -maxdepth 1 -type f ! -name '*_test.go' ! -name '*.go' -exec install -m 0644 {} "$stage/doc/$d/" \;
done

export SG_VERSION=$version SG_ARCH=$ARCH SG_STAGE=$stage SG_MAINTAINER=${MAINTAINER:-The spoolgate authors} SG_HOMEPAGE=${HOMEPAGE:-}
rpm=$dist/spoolgate-$version-1.$rpmarch.rpm
deb=$dist/spoolgate_${version}_$ARCH.deb
go tool nfpm package --config scripts/package/nfpm.yaml --packager rpm --target "$rpm" >/dev/null
go tool nfpm package --config scripts/package/nfpm.yaml --packager deb --target "$deb" >/dev/null
echo "$rpm"
echo "$deb"
