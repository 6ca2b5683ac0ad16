# fulcrum — GNU Make with pkg-config.
#   make            build build/fulcrum
#   make run        install what is missing, build, start the demo
#   make test       install what is missing, build, run every test
#   make test SANITIZE=1   the same with ASan + UBSan (build in build/san)
#   make fuzz       run each libFuzzer driver for FUZZ_SECONDS (clang)
#   make bench      side-by-side benchmark (writes docs/benchmarks.md)
#   make install    install under PREFIX (default /usr/local)

PREFIX  ?= /usr/local
CC      ?= gcc
PKG     := yaml-0.1 libpcre2-8 libssl libcrypto liburing
SANITIZE ?= 0
FUZZ_SECONDS ?= 60

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT     := -O1
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2
endif

CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
           -D_GNU_SOURCE -pthread -MMD -MP $(SANFLAGS) \
           $(shell pkg-config --cflags $(PKG) 2>/dev/null)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKG) 2>/dev/null) -lm

SRCS    := $(wildcard src/*.c)
LIBSRCS := $(filter-out src/main.c,$(SRCS))
LIBOBJS := $(LIBSRCS:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/fuzz/%-replay)

.PHONY: all deps run demo-cert test unit-tests integration-tests fuzz-replay fuzz \
        bench install clean docs check-docs

all: $(BUILD)/fulcrum

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libfulcrum.a: $(LIBOBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fulcrum: $(BUILD)/obj/main.o $(BUILD)/libfulcrum.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libfulcrum.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(BUILD)/libfulcrum.a $(LDFLAGS) $(LDLIBS) -lcmocka

# Fuzz drivers: replay builds (gcc, plain main over the corpus) for make test;
# libFuzzer builds (clang) for make fuzz.
$(BUILD)/fuzz/%-replay: fuzz/%.c fuzz/replay.c $(wildcard fuzz/*.h) $(BUILD)/libfulcrum.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc -o $@ $< fuzz/replay.c $(BUILD)/libfulcrum.a $(LDFLAGS) $(LDLIBS)

deps:
	@sh scripts/deps.sh

run: deps all demo-cert
	@sh scripts/run-demo.sh $(BUILD)/fulcrum

# examples/quickstart.yaml's https listener needs it (also to pass `check`).
demo-cert:
	@sh scripts/demo-cert.sh

unit-tests: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for f in $(FUZZ_REPLAY); do \
	  n=$$(basename $$f -replay); echo "== $$n corpus"; $$f fuzz/corpus/$${n#fuzz_}; done

integration-tests: all
	FULCRUM_BIN=$(abspath $(BUILD)/fulcrum) /usr/bin/python3 -m pytest -q tests/integration

test: deps
	@$(MAKE) --no-print-directory all demo-cert unit-tests fuzz-replay check-docs
	@$(MAKE) --no-print-directory integration-tests

fuzz:
	@set -e; mkdir -p build/libfuzzer; for f in $(FUZZ_SRCS); do \
	  n=$$(basename $$f .c); \
	  clang -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Isrc \
	    $(shell pkg-config --cflags $(PKG)) -o build/libfuzzer/$$n $$f $(LIBSRCS) \
	    $(shell pkg-config --libs $(PKG)) -lm -pthread; \
	  mkdir -p build/libfuzzer/corpus-$$n; \
	  build/libfuzzer/$$n -max_total_time=$(FUZZ_SECONDS) build/libfuzzer/corpus-$$n \
	    fuzz/corpus/$${n#fuzz_}; done

bench: deps all
	/usr/bin/python3 bench/run.py

# docs/configuration.md is generated from the keyword tables in the code.
docs: $(BUILD)/fulcrum
	$(BUILD)/fulcrum config-reference > docs/configuration.md

check-docs: $(BUILD)/fulcrum
	@$(BUILD)/fulcrum config-reference | diff -u docs/configuration.md - \
	  || { echo "docs/configuration.md is stale: run 'make docs'"; exit 1; }

install: $(BUILD)/fulcrum
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/fulcrum $(DESTDIR)$(PREFIX)/bin/fulcrum

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*.d)
