#!/usr/bin/env bash
# Install what building, testing, the demo and the benchmarks need, from
# Debian's archive. Idempotent: does nothing when everything is present.
# Usage: scripts/deps.sh [build|test|bench]   (each includes the previous)
set -euo pipefail
what=${1:-test}

pkgs=(build-essential meson ninja-build pkg-config libyaml-dev libssl-dev curl libcurl4-openssl-dev libjansson-dev libsqlite3-dev libnghttp2-dev liburing-dev libpcre2-dev libmodsecurity-dev modsecurity-crs)
# geo: libmaxminddb; scripts/geo-data.sh fetches the country database with
# npm (make demo, make test). Any npm will do (a NodeSource nodejs has one).
pkgs+=(libmaxminddb-dev)
command -v npm >/dev/null || pkgs+=(npm)
if [ "$what" = test ] || [ "$what" = bench ]; then
	pkgs+=(libcmocka-dev python3-pytest python3-pytest-xdist python3-seccomp clang libclang-rt-14-dev nginx-light python3-aiosmtpd python3-dnspython bind9-dnsutils unbound python3-prometheus-client sqlite3 python3-h2 nghttp2-client python3-cryptography etcd-server)
	# test_install.py: systemd-analyze verify and systemd-sysusers
	pkgs+=(systemd)
fi
if [ "$what" = bench ]; then
	pkgs+=(wrk haproxy nginx-light dnsperf gdnsd valgrind)
	# bench/waf.sh: nginx with ModSecurity v3 and the OWASP CRS (the module
	# is built against the nginx package that nginx-light pulls in)
	pkgs+=(libnginx-mod-http-modsecurity modsecurity-crs)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Keep Debian's service start-up out of the way: our tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
