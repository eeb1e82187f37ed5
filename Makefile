# Meridian - top-level wrapper around meson/ninja.
#   make demo      build and run the embedded demo (installs what it needs)
#   make test      build, run unit + integration tests, then again under ASan+UBSan
#   make bench     run the benchmarks in bench/
#   make install   the binary, a systemd unit, its user and an example
#                  config under meson's prefix (/usr/local; DESTDIR honoured)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PYTEST     ?= /usr/bin/python3 -m pytest
# Integration tests run on several pytest-xdist workers; each takes its
# ports from its own slice (tests/integration/meridian_test.py) and runs a
# file's tests in order. TEST_JOBS=0 runs them in this process.
TEST_JOBS  ?= 3
PYTEST_PAR  = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

.PHONY: all deps deps-test geo-data build asan demo test test-unit \
        test-integration test-asan fuzz fuzz-regress bench format clean \
        install

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

# The country database (npm @ip-location-db/geo-whois-asn-country-mmdb) in
# data/geo/; idempotent.
geo-data: deps
	@scripts/geo-data.sh >/dev/null || echo "warning: the country database" \
		"could not be installed from npm; geo uses geo.networks only" >&2

$(BUILD)/build.ninja:
	meson setup $(BUILD) >/dev/null

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
		-Darena_malloc=true -Dbuildtype=debug >/dev/null

asan: deps-test $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

demo: build geo-data
	MERIDIAN_GEO_DB=$$(scripts/geo-data.sh 2>/dev/null || true) \
		./$(BUILD)/meridian demo

test-unit: deps-test build geo-data
	meson test -C $(BUILD) --print-errorlogs

test-integration: deps-test build
	MERIDIAN_BIN=$(CURDIR)/$(BUILD)/meridian $(PYTEST) -q $(PYTEST_PAR) tests/integration

test-asan: asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1 MERIDIAN_ASAN=1 \
	MERIDIAN_BIN=$(CURDIR)/$(ASAN_BUILD)/meridian $(PYTEST) -q $(PYTEST_PAR) tests/integration

$(FUZZ_BUILD)/build.ninja:
	CC=clang CXX=clang++ meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug >/dev/null

# Replay the fuzz corpora (regression) - quick, part of make test.
fuzz-regress: deps-test $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/fuzz.sh regress $(FUZZ_BUILD)

# Fuzz each harness for FUZZ_SECONDS (default 60).
fuzz: deps-test $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/fuzz.sh run $(FUZZ_BUILD) $${FUZZ_SECONDS:-60}

test: test-unit test-integration fuzz-regress test-asan

bench: build
	scripts/deps.sh bench
	bench/proxy.sh
	bench/dns.sh
	bench/ratelimit.sh
	bench/tunnel.sh
	bench/waf.sh
	bench/cluster.sh

install: build
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(DESTDIR))

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
