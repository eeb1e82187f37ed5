#!/usr/bin/env bash
# geo-data.sh - install the IP -> country database used by geo.database, and
# print its path on stdout.
#
# The database is the MaxMind DB (.mmdb) of the npm package
# @ip-location-db/geo-whois-asn-country-mmdb (IPv4 and IPv6 in one file; each
# record holds `country_code`, an ISO 3166-1 alpha-2 code). It is fetched
# with `npm pack` from the npm registry and unpacked into a project-local,
# gitignored folder: data/geo/ under the repository (or $MERIDIAN_GEO_DIR).
# Nothing is installed system-wide, no node_modules is left behind.
#
# Idempotent: when the file is already there, nothing is fetched and the path
# is printed at once. --force fetches again (a newer version, if any).
#
#   scripts/geo-data.sh            install if missing, print the .mmdb path
#   scripts/geo-data.sh --force    fetch again
#   GEO_DATA_VERSION=2.3.2026061719 scripts/geo-data.sh --force   pin one
#
# How the Makefile uses it (the targets are wired by the Makefile):
#   make demo  runs it before starting the demo and passes the printed path
#              as geo.database (MERIDIAN_GEO_DB=$(scripts/geo-data.sh)).
#   make test  runs it before the unit tests; tests/unit/test_geo.c looks
#              for data/geo/geo-whois-asn-country.mmdb under the source root
#              and skips only its database checks when the file is absent.
# It needs npm (scripts/deps.sh build installs it when missing).
#
# Licence: the package is published as CC0-1.0; the data it is built from
# (RIR WHOIS/ASN statistics) is CC BY 4.0 by the NRO, whose notice is kept
# beside the file (NRO_LICENSE).
set -euo pipefail

pkg=@ip-location-db/geo-whois-asn-country-mmdb
file=geo-whois-asn-country.mmdb
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MERIDIAN_GEO_DIR:-$root/data/geo}
version=${GEO_DATA_VERSION:-latest}
db=$dir/$file

force=
case ${1:-} in
--force) force=1 ;;
"") ;;
*)
	echo "usage: $0 [--force]" >&2
	exit 2
	;;
esac

if [ -z "$force" ] && [ -s "$db" ]; then
	echo "$db"
	exit 0
fi

command -v npm >/dev/null || {
	echo "geo-data: npm is needed (scripts/deps.sh build installs it)" >&2
	exit 1
}

mkdir -p "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/meridian-geo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "geo-data: fetching $pkg@$version" >&2
tgz=$(cd "$tmp" && npm pack --silent --pack-destination "$tmp" \
	"$pkg@$version" 2>"$tmp/npm.log" | tail -n 1) || {
	cat "$tmp/npm.log" >&2
	echo "geo-data: npm pack $pkg@$version failed" >&2
	exit 1
}
tar -xzf "$tmp/$tgz" -C "$tmp" package/"$file" package/package.json \
	package/NRO_LICENSE 2>/dev/null ||
	tar -xzf "$tmp/$tgz" -C "$tmp" package/"$file" package/package.json
[ -s "$tmp/package/$file" ] || {
	echo "geo-data: $file missing from $tgz" >&2
	exit 1
}

# Replace atomically: a running edge keeps its mapping of the old file.
install -m 0644 "$tmp/package/$file" "$db.new"
mv -f "$db.new" "$db"
install -m 0644 "$tmp/package/package.json" "$dir/package.json"
[ -f "$tmp/package/NRO_LICENSE" ] &&
	install -m 0644 "$tmp/package/NRO_LICENSE" "$dir/NRO_LICENSE"
echo "geo-data: installed $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' \
	"$dir/package.json") into $dir" >&2
echo "$db"
