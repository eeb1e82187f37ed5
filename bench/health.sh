#!/usr/bin/env bash
# Health checker benchmark: ORIGINS origins (default 10,000) checked every
# INTERVAL_MS (default 1000) by one health thread, against a small epoll
# HTTP server in the same process listening on PORTS loopback ports
# (default 100; origins are spread over them). Reports the checks done, the
# CPU used by the health thread (its own thread CPU clock, which on
# loopback also carries the kernel's TCP work for both ends) and the missed
# intervals (a check that started an interval late or was skipped).
# Exit status 1 when an interval was missed or an origin is not healthy.
# usage: bench/health.sh [DURATION_SECONDS]   (default 10)
#   env: ORIGINS, INTERVAL_MS, PORTS, TYPE=http|tcp, BUILD (default build)
#
# The harness is a hidden mode of the unit-test binary test_health_probe
# (--bench), so the benchmark needs no code outside the health module.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
BUILD=${BUILD:-build}
BIN=$BUILD/tests/unit/test_health_probe
if [ ! -x "$BIN" ]; then
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
	ninja -C "$BUILD" tests/unit/test_health_probe >/dev/null
fi
ulimit -n 65536 2>/dev/null || true
exec "$BIN" --bench "${ORIGINS:-10000}" "$DUR" "${INTERVAL_MS:-1000}" \
	"${PORTS:-100}" "${TYPE:-http}"
