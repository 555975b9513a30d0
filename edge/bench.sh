#!/bin/sh
# Benchmarks of the Edge as real processes on loopback (see README.md):
#  1. edge/edgebench: wrk against an upstream directly, through the Edge
#     and through nginx, in alternating rounds, for 1.1 KiB, 4 KiB and
#     1 MiB answers at 32 and 1,000 connections: each one's share of the
#     direct throughput, p99 latency, the proxy's CPU time per request, and
#     the Edge's resident memory idle, after the loads and 30 s later;
#  2. BenchmarkEdgeFailover (cmd/resman): the time from a side's failure to
#     the first answer of the other side.
# Installs nginx-light and wrk (Debian) when missing. Extra arguments go to
# edgebench (e.g. -rounds 5 -conns 32 -sizes "4 KiB"; -h lists them), but
# go test's -count=N, -timeout=D and -v, which go to the second part (make
# proof passes -count=1); EDGE_BENCH_NO_FAILOVER=1 skips the second part.
set -eu
cd "$(dirname "$0")/.."
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/resman" ./cmd/resman
go build -o "$dir/edgebench" ./edge/edgebench
gotest=""
for a in "$@"; do
	shift
	case "$a" in
	-count=* | -timeout=* | -v) gotest="$gotest $a" ;;
	*) set -- "$@" "$a" ;;
	esac
done
"$dir/edgebench" -resman "$dir/resman" "$@"
if [ -z "${EDGE_BENCH_NO_FAILOVER:-}" ]; then
	# shellcheck disable=SC2086 # several flags
	go test -run '^$' -bench '^BenchmarkEdgeFailover$' -benchtime 1x $gotest ./cmd/resman/
fi
