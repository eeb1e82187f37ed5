#!/bin/sh
# fuzz.sh - run the libFuzzer harnesses built in BUILD_DIR/tests/fuzz.
#
#   scripts/fuzz.sh regress BUILD_DIR          replay the seeds once (fast)
#   scripts/fuzz.sh run BUILD_DIR SECONDS      fuzz each harness SECONDS
#
# Seeds: tests/fuzz/corpus/<harness>/*.http and, for the HTTP/1 harnesses,
# the decoded tests/corpus/http1/{good,bad} files (bodies after the head for
# the chunked walker). All are in the escaped text format of
# tests/corpus/http1/README.md and are decoded into a temporary directory.
# Exits non-zero when a harness crashes; crash inputs are kept and listed.
set -eu

usage() {
	echo "usage: $0 regress BUILD_DIR | run BUILD_DIR SECONDS" >&2
	exit 2
}

[ $# -ge 2 ] || usage
mode=$1
build=$2
secs=${3:-60}
case $mode in
regress) ;;
run) [ $# -eq 3 ] || usage ;;
*) usage ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
fuzzdir=$build/tests/fuzz
[ -d "$fuzzdir" ] || {
	echo "fuzz.sh: no $fuzzdir (configure with -Dfuzz=true)" >&2
	exit 2
}
command -v python3 >/dev/null || {
	echo "fuzz.sh: python3 is needed to decode the seed corpora" >&2
	exit 2
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/meridian-fuzz.XXXXXX")
keep=
cleanup() {
	[ -n "$keep" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Decode the seeds of one harness into $tmp/seeds/<harness>.
decode_seeds() {
	python3 - "$root" "$1" "$tmp/seeds/$1" <<'EOF'
import os, sys

def decode(data):
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    out, i = bytearray(), 0
    simple = {ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("\\"): 92}
    while i < len(data):
        c = data[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        e = data[i + 1] if i + 1 < len(data) else -1
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == ord("x") and len(data[i + 2:i + 4]) == 2:
            out.append(int(data[i + 2:i + 4], 16))
            i += 4
        else:
            raise ValueError("bad escape")
    return bytes(out)

root, name, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
srcs = [os.path.join(root, "tests/fuzz/corpus", name)]
if name.startswith("fuzz_http1_"):
    srcs += [os.path.join(root, "tests/corpus/http1", d) for d in ("good", "bad")]
n = 0
for d in srcs:
    if not os.path.isdir(d):
        continue
    for f in sorted(os.listdir(d)):
        if not f.endswith(".http"):
            continue
        raw = decode(open(os.path.join(d, f), "rb").read())
        tag = os.path.basename(d) + "-" + f[:-5]
        if name == "fuzz_http1_chunked" and "corpus/http1" in d:
            # the chunked walker sees what follows the head
            cut = raw.find(b"\r\n\r\n")
            if cut < 0:
                continue
            raw = raw[cut + 4:]
        elif name == "fuzz_http1_response" and "corpus/http1" in d:
            continue
        open(os.path.join(dst, tag), "wb").write(raw)
        n += 1
print(n)
EOF
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

harnesses=$(find "$fuzzdir" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x |
	sort)
[ -n "$harnesses" ] || {
	echo "fuzz.sh: no harnesses in $fuzzdir" >&2
	exit 2
}

dict_for() {
	case $1 in
	fuzz_http1_*) echo "-dict=$root/tests/fuzz/http1.dict" ;;
	esac
}

failed=
for h in $harnesses; do
	name=$(basename "$h")
	nseeds=$(decode_seeds "$name")
	mkdir -p "$tmp/crashes/$name" "$tmp/work/$name"
	if [ "$mode" = regress ]; then
		# -runs=0: execute every seed once, no mutation
		if "$h" -runs=0 -artifact_prefix="$tmp/crashes/$name/" \
			"$tmp/seeds/$name" >"$tmp/$name.log" 2>&1; then
			echo "ok   $name ($nseeds seeds)"
		else
			echo "FAIL $name" >&2
			tail -n 40 "$tmp/$name.log" >&2
			failed="$failed $name"
		fi
	else
		echo "fuzzing $name for ${secs}s ($nseeds seeds)"
		# shellcheck disable=SC2046 # dict_for yields zero or one word
		if "$h" -max_total_time="$secs" -timeout=10 -max_len=20000 \
			-rss_limit_mb=2048 -print_final_stats=1 \
			$(dict_for "$name") \
			-artifact_prefix="$tmp/crashes/$name/" \
			"$tmp/work/$name" "$tmp/seeds/$name" \
			>"$tmp/$name.log" 2>&1; then
			grep -E '^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ *DONE)' \
				"$tmp/$name.log" | sed "s/^/  /" || true
		else
			echo "FAIL $name" >&2
			grep -A 30 -E 'ERROR|runtime error|deadly signal' \
				"$tmp/$name.log" | head -n 60 >&2 || true
			failed="$failed $name"
		fi
	fi
	if [ -n "$(ls -A "$tmp/crashes/$name")" ]; then
		keep=1
		echo "  crash inputs: $tmp/crashes/$name" >&2
		ls -l "$tmp/crashes/$name" >&2
		case " $failed " in *" $name "*) ;; *) failed="$failed $name" ;; esac
	fi
done

if [ -n "$failed" ]; then
	keep=1
	echo "fuzz.sh: failures in:$failed (logs in $tmp)" >&2
	exit 1
fi
echo "fuzz.sh: $mode passed"
