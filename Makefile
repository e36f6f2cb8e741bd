# rdino: plain GNU make. Sources are discovered, so adding a module means adding files:
#   src/<module>/*.c   -> build/librdino.a        (src/apps excluded)
#   src/apps/<name>.c  -> build/bin/<name>         (one program per stage)
#   tests/<module>/test_*.c -> build/tests/<module>/test_*   (linked with the module's own helpers
#                               tests/<module>/*.c not named test_*, and with the archive of
#                               tests/*.c, the harness, from which a test takes what it uses)
#   bench/*.c          -> build/bench/*
# Variables: BUILD (output dir), WERROR=1 (warnings are errors, as in CI), SANITIZE=1 (ASan+UBSan),
# ARCH (target flags; default -march=native: build on the kind of node you run on).

BUILD   ?= build
ARCH    ?= -march=native
CC      := mpicc
PKGS    := hdf5-openmpi libpng zlib yaml-0.1 openblas jansson libisal
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# OPT: optimisation and debug flags; CFLAGS/LDFLAGS from the command line are added last.
# -Wno-psabi: GCC notes that vector types passed by value change ABI between ISA levels; ours
# only pass between static inline functions of one file, so there is no ABI to keep.
OPT     ?= -O2 -g
RD_CFLAGS  := $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-psabi -fopenmp
RD_CFLAGS  += $(ARCH) -Iinclude $(PKG_CFLAGS) -MMD -MP
RD_LDFLAGS := -fopenmp
LDLIBS  += $(PKG_LIBS) -llapacke -lm
ifeq ($(WERROR),1)
RD_CFLAGS  += -Werror
endif
ifeq ($(SANITIZE),1)
RD_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
RD_LDFLAGS += -fsanitize=address,undefined
endif
ALL_CFLAGS  = $(RD_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(RD_LDFLAGS) $(LDFLAGS)

LIB_SRC   := $(sort $(filter-out src/apps/%,$(wildcard src/*/*.c)))
APP_SRC   := $(sort $(wildcard src/apps/*.c))
TEST_SRC  := $(sort $(wildcard tests/*/test_*.c))
TEST_HELPER_SRC := $(sort $(filter-out $(TEST_SRC),$(wildcard tests/*/*.c)))
BENCH_SRC := $(sort $(wildcard bench/*.c))
# libFuzzer harnesses tests/fuzz/fuzz_<target>.c (docs/TESTING.md, "Fuzzing"): in the normal build
# each is linked with tests/fuzz/replay.c as tests/fuzz/test_replay_<target>, which replays its seed
# corpus and regression inputs; `make fuzz` builds them with clang and libFuzzer into build-fuzz/.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_util.c,$(wildcard tests/fuzz/fuzz_*.c)))

LIB    := $(BUILD)/librdino.a
APPS   := $(patsubst src/apps/%.c,$(BUILD)/bin/%,$(APP_SRC))
TESTS  := $(patsubst %.c,$(BUILD)/%,$(TEST_SRC))
BENCHES:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
REPLAYS:= $(patsubst %,$(BUILD)/tests/fuzz/test_replay_%,$(FUZZ_TARGETS))
FUZZERS:= $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))
HARNESS:= $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(filter-out tests/%/test_%.c,$(wildcard tests/*.c)))
HARNESS_LIB := $(BUILD)/tests/libharness.a

.PHONY: all lib apps tests benches test asan bench demo lint format clean deps fuzz fuzzers
.DEFAULT_GOAL := all

all: $(LIB) $(APPS) $(TESTS) $(REPLAYS) $(BENCHES)
lib: $(LIB)
apps: $(APPS)
tests: $(TESTS)
benches: $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/src/apps/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Isrc -c $< -o $@

# The harness as an archive: a test links only the members it uses (tiny.o pulls in the trainer).
$(HARNESS_LIB): $(HARNESS)
	rm -f $@
	ar rcs $@ $^

# A test's folder helpers: tests/<module>/*.c other than test_*.c.
folder_helpers = $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(filter-out $(dir $(1))test_%.c,$(wildcard $(dir $(1))*.c)))

.SECONDEXPANSION:
$(BUILD)/tests/%: tests/%.c $$(call folder_helpers,tests/$$*) $(HARNESS_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Isrc $< $(filter %.o,$^) $(HARNESS_LIB) $(LIB) -o $@ $(ALL_LDFLAGS) $(LDLIBS)

$(BUILD)/tests/fuzz/test_replay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o \
                                   $(BUILD)/tests/fuzz/fuzz_util.o $(HARNESS_LIB) $(LIB)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) $(HARNESS_LIB) $(LIB) -o $@ $(LDLIBS)

# Built by `make fuzz` with CFLAGS carrying -fsanitize=fuzzer-no-link: libFuzzer's main at link.
# Only the folders of the fuzzed readers are compiled, a set closed under docs/ARCHITECTURE.md's
# "may use", which leaves out nn, model, train, embed and synth (the slow half of the build).
FUZZ_LIB := $(BUILD)/libreaders.a
$(FUZZ_LIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(filter $(foreach d,core parallel io image probe \
                                 preprocess shard analyze,src/$(d)/%),$(LIB_SRC)))
	rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz_util.o \
                 $(BUILD)/tests/mpi_once.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer $(filter %.o,$^) $(FUZZ_LIB) -o $@ $(LDLIBS)
fuzzers: $(FUZZERS)
# Kept between builds (make would delete them as intermediates of the fuzzers).
.SECONDARY: $(patsubst %,$(BUILD)/tests/fuzz/fuzz_%.o,$(FUZZ_TARGETS)) $(BUILD)/tests/fuzz/fuzz_util.o

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Isrc $< $(LIB) -o $@ $(ALL_LDFLAGS) $(LDLIBS)

# The README's commands: each installs what is missing first (scripts/install-deps.sh).
deps:
	@scripts/install-deps.sh --if-missing

test: deps
	$(MAKE) all
	tests/run.sh $(BUILD) $(T)

asan: deps
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT="-O1 -g" all
	RDINO_SANITIZE=1 tests/run.sh build-asan $(T)

# Every fuzz target for FUZZ_SECONDS each (clang through mpicc's OMPI_CC, ASan + UBSan, -O1);
# non-zero exit on a finding, which tests/fuzz/run.sh keeps in build-fuzz/findings/.
FUZZ_SECONDS ?= 10
FUZZ_SANITIZE := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
                 -fno-omit-frame-pointer
fuzz: deps
	OMPI_CC=clang $(MAKE) BUILD=build-fuzz OPT="-O1 -gline-tables-only" CFLAGS="$(FUZZ_SANITIZE)" \
	  LDFLAGS="-fsanitize=address,undefined" fuzzers
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: deps
	$(MAKE) all
	bench/run.sh $(BUILD)

demo: deps
	$(MAKE) apps
	scripts/demo.sh $(BUILD)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem --std=c11 -Iinclude -Isrc src tests bench
	clang-format --dry-run -Werror $(LIB_SRC) $(APP_SRC) $(TEST_SRC) $(TEST_HELPER_SRC) $(BENCH_SRC) \
	  $(wildcard include/rdino/*.h tests/*.h tests/*.c tests/*/*.h src/*/*.h)

format:
	clang-format -i $(LIB_SRC) $(APP_SRC) $(TEST_SRC) $(TEST_HELPER_SRC) $(BENCH_SRC) \
	  $(wildcard include/rdino/*.h tests/*.h tests/*.c tests/*/*.h src/*/*.h)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
