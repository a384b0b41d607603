#!/usr/bin/env bash
# The test command: formatting, vet, and every test with the race detector.
# Works from a fresh clone; installs what the suite needs when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
	if need apt-get && [ "$(id -u)" = 0 ]; then
		echo "test.sh: installing $*" >&2
		if [ -z "${apt_updated:-}" ]; then
			apt-get update -qq >/dev/null 2>&1 || true
			apt_updated=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	else
		echo "test.sh: please install: $*" >&2
	fi
}
if ! need go && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
need go || { echo "test.sh: Go is required (https://go.dev/dl/), see go.mod for the version" >&2; exit 1; }
need flock || apt_install util-linux
need systemd-analyze || apt_install systemd || true
# Load balancers for cmd/spoolgate-receiver/lb_test.go (skipped without them).
need haproxy || apt_install haproxy || true
need nginx || apt_install nginx-light libnginx-mod-stream || true
if need nginx && nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' && ! ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1; then
	apt_install libnginx-mod-stream || true
fi
# promtool (Debian's prometheus; its service is not started here) tests the
# alert rules; rpm checks the rpm of scripts/package.sh.
need promtool || apt_install --no-install-recommends prometheus || true
need rpm || apt_install --no-install-recommends rpm || true
# RabbitMQ for the amqp sink and source (issue 14; internal/e2e/rabbit.go
# starts nodes of the tests' own; the package's service is not used).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || apt_install --no-install-recommends rabbitmq-server || echo "test.sh: rabbitmq-server not installed: the RabbitMQ tests will skip" >&2
# The console's browser test drives Debian's chromium; it skips without it.
[ -x /usr/bin/chromium ] || apt_install chromium || echo "test.sh: chromium not installed: the console's browser test will skip" >&2

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 15m "$@" ./...
