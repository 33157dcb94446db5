# uhmm - top-level entry points.  `make bench` and `make test` work on a fresh
# Debian machine: when run as root they install what is missing with apt-get.
#
#   make bench       build (release) and run the main benchmark
#   make test        build and run the unit tests: plain, under ASan+UBSan,
#                    and the concurrency suites under ThreadSanitizer
#   make test-plain  the plain run only
#   make test-asan   the AddressSanitizer + UndefinedBehaviorSanitizer run only
#   make test-tsan   the ThreadSanitizer run only
#   make fuzz        build the libFuzzer harness (fuzz/uhmm_fuzz.c) with clang,
#                    ASan and UBSan, and fuzz for FUZZ_SECONDS (default 60)
#                    from the seed corpus fuzz/corpus; new inputs go to
#                    build-fuzz/corpus, crash inputs to build-fuzz/artifacts
#   make fuzz-ci     CI's run: 60 s with FUZZ_SEED=1 from the seed corpus
#                    only (new inputs go to build-fuzz/ci-corpus)
#   make fuzz-corpus regenerate the seed corpus (fuzz/gen_corpus.c)
#   make format      clang-format every C file in place

DEBIAN_PACKAGES := meson ninja-build pkg-config libcriterion-dev
MESON ?= meson
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_ARGS ?=

.PHONY: all deps fuzz-deps build bench test test-plain test-asan test-tsan fuzz fuzz-ci fuzz-corpus \
	format clean

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

# ---- fuzzing (clang's libFuzzer; no meson: one object per source file) ----
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR := build-fuzz
FUZZ_SRCS := $(wildcard mm/*.c) drivers/dmirror.c fuzz/uhmm_fuzz.c
FUZZ_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SRCS))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -Wall -Wextra -Werror -g -O2 \
	-Iinclude -Imm -pthread -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_ARGS ?=
# FUZZ_SEED fixes libFuzzer's mutation seed and FUZZ_RUNS caps the
# executions; empty (the default) means a random seed and no cap.  A fixed
# seed does not make two runs identical: coverage feedback also depends on
# timing and host addresses, so the inputs drift apart after a few hundred.
FUZZ_SEED ?=
FUZZ_RUNS ?=
FUZZ_NEW ?= $(FUZZ_DIR)/corpus
FUZZ_LIMITS = $(if $(FUZZ_SEED),-seed=$(FUZZ_SEED)) $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS))

# clang and its libFuzzer runtime (Debian: clang, libclang-rt-N-dev), as root.
fuzz-deps:
	@have_fuzzer() { command -v $(FUZZ_CC) >/dev/null 2>&1 && \
		test -f "$$($(FUZZ_CC) -print-file-name=libclang_rt.fuzzer-$$(uname -m).a)"; }; \
	if ! have_fuzzer; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "missing: $(FUZZ_CC) with libFuzzer (run 'make fuzz-deps' as root)"; exit 1; \
		fi; \
		apt-get update -qq; \
		command -v $(FUZZ_CC) >/dev/null 2>&1 || \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
		ver=$$($(FUZZ_CC) -dumpversion | cut -d. -f1); \
		echo "installing: clang libclang-rt-$$ver-dev"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-rt-$$ver-dev >/dev/null; \
		have_fuzzer || { echo "libFuzzer still missing after installing clang"; exit 1; }; \
	fi

# The library gets edge counters only: comparison tracing (trace-cmp) in
# the audits' and device-memory walks' loops over every page made each
# input 10x slower; the harness, which decodes the input, keeps it.
$(FUZZ_DIR)/obj/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp \
		-MMD -MP -c $< -o $@

$(FUZZ_DIR)/obj/fuzz/uhmm_fuzz.o: fuzz/uhmm_fuzz.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/uhmm_fuzz: $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@

-include $(FUZZ_OBJS:.o=.d)

# Fuzz for FUZZ_SECONDS; print libFuzzer's final figures; a crash fails
# (its input is in $(FUZZ_DIR)/artifacts; replay it with
# build-plain/fuzz/fuzz_replay FILE).
fuzz: $(FUZZ_DIR)/uhmm_fuzz
	@mkdir -p $(FUZZ_NEW) $(FUZZ_DIR)/artifacts
	@echo "fuzzing for $(FUZZ_SECONDS) s $(FUZZ_LIMITS) (log: $(FUZZ_DIR)/fuzz.log)"
	@./$(FUZZ_DIR)/uhmm_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=60 -max_len=2048 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/ \
		$(FUZZ_LIMITS) $(FUZZ_ARGS) $(FUZZ_NEW) fuzz/corpus >$(FUZZ_DIR)/fuzz.log 2>&1; rc=$$?; \
	grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::' $(FUZZ_DIR)/fuzz.log; \
	if [ $$rc != 0 ]; then \
		tail -n 60 $(FUZZ_DIR)/fuzz.log; \
		echo "fuzz: FAILED (exit $$rc); crash inputs:"; ls -l $(FUZZ_DIR)/artifacts; exit 1; \
	fi; \
	echo "fuzz: clean, $$(ls $(FUZZ_NEW) | wc -l) new inputs in $(FUZZ_NEW)"

# CI's run: 60 s from the seed corpus alone (a fresh directory for new
# inputs, so what an earlier local run saved does not change it).
fuzz-ci:
	rm -rf $(FUZZ_DIR)/ci-corpus
	$(MAKE) fuzz FUZZ_SEED=1 FUZZ_SECONDS=60 FUZZ_NEW=$(FUZZ_DIR)/ci-corpus

fuzz-corpus: build-plain/build.ninja
	ninja -C build-plain fuzz/gen_corpus
	rm -f fuzz/corpus/[0-9][0-9]-*
	./build-plain/fuzz/gen_corpus fuzz/corpus

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build-plain build-asan build-tsan build-release $(FUZZ_DIR)
