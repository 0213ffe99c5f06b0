# Tether: the top-level commands. CMake and ctest do the work underneath.
#   make            build (build/bin, build/lib)
#   make test       install what is missing, build, run every suite, then again under ASan+UBSan
#   make run        the demo system: balancer + three tether-app on the embedded store (STRATEGY=redis too)
#   make bench      side-by-side benchmarks (bench/)
#   make lab        the failover lab: every strategy, one app killed mid-run (lab-results/)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=
FUZZ_SECONDS ?= 15

.PHONY: all build deps test test-plain test-asan fuzz run bench lab clean format format-check

all: build

deps:
	@scripts/deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: deps
	$(MAKE) --no-print-directory format-check
	$(MAKE) --no-print-directory test-plain
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-asan

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTETHER_SANITIZE=ON -DCMAKE_C_COMPILER=clang
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# Each libFuzzer harness runs for FUZZ_SECONDS on its checked-in corpus (make fuzz FUZZ_SECONDS=600 for longer).
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTETHER_FUZZ=ON -DCMAKE_C_COMPILER=clang
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@scripts/run-fuzz $(FUZZ_BUILD)/bin $(FUZZ_SECONDS)

run: deps build
	@scripts/demo

bench: deps build
	@scripts/bench

lab: deps build
	@$(BUILD)/bin/tether-lab compare --kill app2@4s --kill-store memcached1@7s $(LAB_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The checked-in .clang-format, over every C file of the tree (make format fixes what it finds).
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
