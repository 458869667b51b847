# Thin wrapper over CMake for the README's commands.
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build, run every test (normal
#               build, then once more under ASan+UBSan with clang, which
#               also runs the libFuzzer targets for a bounded time)
#   make bench  run yard-bench against the plain ZeroMQ proxy, then the
#               admin API under wrk (bench/http_bench.py), then the Python
#               and Node clients and workers (bench/lang_bench.py)
JOBS ?= 2
BUILD ?= build
SAN_BUILD ?= build-san

.PHONY: all deps build test test-fast test-san demo bench format clean

all: build

deps:
	@sh scripts/install-deps.sh
	@sh scripts/node-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 1

test-san: deps
	@CC=clang cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DYARD_SANITIZE=ON >/dev/null
	@cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ctest --output-on-failure -j 1

test: test-fast test-san

demo: build
	@bash scripts/demo.sh $(BUILD)/bin

bench: build
	@$(BUILD)/bin/yard-bench
	@/usr/bin/python3 bench/http_bench.py --bin $(BUILD)/bin
	@/usr/bin/python3 bench/lang_bench.py --bin $(BUILD)/bin

format:
	clang-format -i common/*.[ch] proto/*.[ch] broker/*.[ch] workers/*.[ch] clients/*.[ch] bench/*.[ch] tests/unit/*.c tests/fuzz/*.c tests/conformance/c/*.c

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
