# Tether: the top-level commands. CMake and ctest do the work underneath.
#   make            build (build/bin, build/lib)
#   make test       install what is missing, build, run every suite, then again under ASan+UBSan
#   make run        the demo system: balancer + three tether-app on the embedded store (STRATEGY=redis too)
#   make bench      side-by-side benchmarks (bench/)
#   make lab        the failover lab: every strategy, one app killed mid-run (lab-results/)
#   make install    cmake --install (PREFIX=/usr/local, DESTDIR= for a staged copy)
#   make deb        Debian packages (tether, libtether0, libtether-dev) with debhelper, into deb/
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=
FUZZ_SECONDS ?= 15
PREFIX     ?= /usr/local
DESTDIR    ?=
# make test, CI and the developers' builds treat warnings as errors (a packager's build does not).
WERROR     ?= -DTETHER_WERROR=ON

.PHONY: all build deps test test-plain test-asan test-release fuzz run bench lab clean format format-check install deb

all: build

deps:
	@scripts/deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: deps
	$(MAKE) --no-print-directory format-check
	$(MAKE) --no-print-directory test-plain
	$(MAKE) --no-print-directory test-release
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-asan

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# What a packager builds: Release (-O3) with GCC and with Clang, and Debug (-O0) with GCC, whose warnings
# differ (no value ranges at -O0); warnings as errors; the programs and libraries only (no test runs), so that
# a warning only one of them sees cannot come back.
RELEASE_TARGETS = tether tether-app tether-lab tether_shared tether_static
test-release:
	cmake -S . -B build-release-gcc -DCMAKE_BUILD_TYPE=Release $(WERROR) -DTETHER_TESTS=OFF -DCMAKE_C_COMPILER=gcc
	cmake --build build-release-gcc -j$(JOBS) --target $(RELEASE_TARGETS)
	cmake -S . -B build-release-clang -DCMAKE_BUILD_TYPE=Release $(WERROR) -DTETHER_TESTS=OFF -DCMAKE_C_COMPILER=clang
	cmake --build build-release-clang -j$(JOBS) --target $(RELEASE_TARGETS)
	cmake -S . -B build-debug-gcc -DCMAKE_BUILD_TYPE=Debug $(WERROR) -DTETHER_TESTS=OFF -DCMAKE_C_COMPILER=gcc
	cmake --build build-debug-gcc -j$(JOBS) --target $(RELEASE_TARGETS)

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTETHER_SANITIZE=ON -DCMAKE_C_COMPILER=clang $(WERROR)
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# Each libFuzzer harness runs for FUZZ_SECONDS on its checked-in corpus (make fuzz FUZZ_SECONDS=600 for longer).
fuzz:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTETHER_FUZZ=ON -DCMAKE_C_COMPILER=clang $(WERROR)
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@scripts/run-fuzz $(FUZZ_BUILD)/bin $(FUZZ_SECONDS)

run: deps build
	@scripts/demo

bench: deps build
	@scripts/bench

lab: deps build
	@$(BUILD)/bin/tether-lab compare --kill app2@4s --kill-store memcached1@7s \
		--kill-store redis-master1@6s --restart-store redis-master1@9s $(LAB_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The checked-in .clang-format, over every C file of the tree (make format fixes what it finds).
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

# A Release build of its own, installed under PREFIX (into DESTDIR when given).
install:
	cmake -S . -B build-install -DCMAKE_BUILD_TYPE=Release -DTETHER_TESTS=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build build-install -j$(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build-install

# Binary packages from debian/ (dpkg-buildpackage, unsigned), moved into deb/.
deb:
	@scripts/deps --no-npm
	dpkg-buildpackage -b -us -uc -j$(JOBS)
	mkdir -p deb && mv ../tether_*.deb ../tether-dbgsym_*.deb ../libtether0_*.deb ../libtether0-dbgsym_*.deb ../libtether-dev_*.deb ../tether_*.changes ../tether_*.buildinfo deb/ 2>/dev/null; ls deb/

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-release-gcc build-release-clang build-debug-gcc build-install deb
