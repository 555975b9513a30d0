#!/bin/sh
# Benchmarks of the Edge as real processes on loopback (see README.md):
# throughput and p50/p99 latency beside a direct connection and nginx, and
# the time from a side's failure to the first answer of the other side.
# Installs nginx-light (Debian) when nginx is missing; extra arguments go
# to go test (e.g. -bench BenchmarkEdgeThroughput).
set -eu
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light
fi
exec go test -run '^$' -bench '^BenchmarkEdge' -benchtime 1x "$@" ./cmd/resman/
