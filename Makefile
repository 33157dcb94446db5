# uhmm - top-level entry points.  `make bench` and `make test` work on a fresh
# Debian machine: when run as root they install what is missing with apt-get.
#
#   make bench       build (release) and run the main benchmark
#   make test        build and run the unit tests: plain, under ASan+UBSan,
#                    and the concurrency suites under ThreadSanitizer
#   make test-plain  the plain run only
#   make test-asan   the AddressSanitizer + UndefinedBehaviorSanitizer run only
#   make test-tsan   the ThreadSanitizer run only
#   make format      clang-format every C file in place

DEBIAN_PACKAGES := meson ninja-build pkg-config libcriterion-dev
MESON ?= meson
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_ARGS ?=

.PHONY: all deps build bench test test-plain test-asan test-tsan format clean

all: build

# Install the build dependencies that are missing (as root, with apt-get).
deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing (run 'make deps' as root)"; exit 1; \
		fi; \
	fi

build-release/build.ninja: | deps
	$(MESON) setup build-release --buildtype=release -Db_ndebug=true >/dev/null

build-plain/build.ninja: | deps
	$(MESON) setup build-plain --buildtype=debugoptimized >/dev/null

build-asan/build.ninja: | deps
	$(MESON) setup build-asan --buildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all >/dev/null

build-tsan/build.ninja: | deps
	$(MESON) setup build-tsan --buildtype=debugoptimized -Db_sanitize=thread \
		-Db_lundef=false >/dev/null

build: build-plain/build.ninja
	ninja -C build-plain

bench: build-release/build.ninja
	ninja -C build-release
	./build-release/bench/uhmm-bench $(BENCH_ARGS)

test: test-plain test-asan test-tsan

# Count the TAP lines the Criterion executables print (--tap=-) into one
# 'N passed, N failed, N skipped' line; a skipped test is never a pass.
define summarize
	@awk '/^ok .*# SKIP/ { skip++; next } /^ok / { pass++ } /^not ok / { fail++ } \
		END { printf "$(1): %d passed, %d failed, %d skipped\n", pass, fail, skip }' \
		$(2)/meson-logs/testlog.txt
endef

test-plain: build-plain/build.ninja
	ninja -C build-plain
	$(MESON) test -C build-plain --print-errorlogs --num-processes $(JOBS)
	$(call summarize,plain,build-plain)

test-asan: build-asan/build.ninja
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(MESON) test -C build-asan --print-errorlogs --num-processes $(JOBS) --timeout-multiplier 3
	$(call summarize,asan,build-asan)

test-tsan: build-tsan/build.ninja
	ninja -C build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		$(MESON) test -C build-tsan --print-errorlogs --num-processes 1 --timeout-multiplier 2
	@grep -h '^tsan: ' build-tsan/meson-logs/testlog.txt | \
		awk '{ p += $$2; f += $$4; s += $$6 } END { printf "tsan: %d passed, %d failed, %d skipped\n", p, f, s }'

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build-plain build-asan build-tsan build-release
