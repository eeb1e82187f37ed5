#!/usr/bin/env bash
# Health checker benchmark: ORIGINS origins (default 10,000) checked every
# INTERVAL_MS (default 1000) by one health thread, against a small epoll
# HTTP server in a child process listening on PORTS loopback ports
# (default 100; origins are spread over them). The server's descriptors do
# not count against the checker's open-file limit, and every origin may
# keep its connection (edge.limits.health_connections = ORIGINS). Reports
# the checks done, the CPU used by the health thread (its own thread CPU
# clock) in total and per check, how many checks went over kept-alive
# connections (and of those through io_uring) and how many opened a new
# one, and the missed intervals (a check that started an interval late or
# was skipped). IO_URING=0 runs the checker on epoll alone
# (edge.io_uring: false).
#
# On loopback the sender's thread is charged the kernel's receive work for
# the other end (the packet is delivered inline in send()), so the health
# thread's clock also carries the server side's TCP receive and wake-up;
# the server's clock carries ours. FLOOR=1 then also measures, after
# the checker, a bare client (one send and one recv per check, nothing
# else) at the same rate over as many kept connections, once with epoll
# and once through io_uring: the part of the figure that is the kernel's,
# not the checker's.
#
# Exit status 1 when an interval was missed or an origin is not healthy.
# usage: bench/health.sh [DURATION_SECONDS]   (default 10)
#   env: ORIGINS, INTERVAL_MS, PORTS, FLOOR=0|1,
#        TYPE=http|tcp|https|https-close|https-full (https: kept TLS
#        connections; -close: the server closes after each answer, so
#        every check resumes its session; -full: and sends no tickets,
#        so every check is a full handshake; https checks use
#        allow_insecure, no chain verification),
#        IO_URING=1|0, BUILD (default build)
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
	"${PORTS:-100}" "${TYPE:-http}" \
	"$([ "${FLOOR:-0}" = 1 ] && echo floor || echo nofloor)" \
	"$([ "${IO_URING:-1}" = 0 ] && echo epoll || echo uring)"
