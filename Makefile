# libds8b -- top-level Makefile.
#
#   make                 build lib/libds8b.so*, lib/libds8b.a, build/ds8b, examples
#   make check           make test, then make test-asan: what CI runs
#   make test            build and run the whole test suite (the quick loop)
#   make test-asan       the suite under AddressSanitizer + UBSan, in build-asan/
#   make demo            generate text with the bundled demo model
#   make install PREFIX=/usr/local
#
# BUILD and LIBDIR may be overridden to build in another tree.

BUILD   ?= build
LIBDIR  ?= lib
PREFIX  ?= /usr/local
CC      ?= cc
SAN     ?=
ASAN_BUILD ?= build-asan
ASAN_QUICK ?= 1

# Version, read from the one public header.
VMAJOR := $(shell sed -n 's/^\#define DS8B_VERSION_MAJOR \([0-9]*\)/\1/p' include/ds8b.h)
VMINOR := $(shell sed -n 's/^\#define DS8B_VERSION_MINOR \([0-9]*\)/\1/p' include/ds8b.h)
VPATCH := $(shell sed -n 's/^\#define DS8B_VERSION_PATCH \([0-9]*\)/\1/p' include/ds8b.h)
VERSION := $(VMAJOR).$(VMINOR).$(VPATCH)
SONAME  := libds8b.so.$(VMAJOR)

# Dependencies, found through pkg-config. Missing ones are installed when
# running as root on Debian; otherwise make stops and says what to install.
PKGS     := openblas libcjson zlib libpcre2-8 libutf8proc
DEB_PKGS := pkg-config libopenblas-dev libcjson-dev zlib1g-dev libpcre2-dev libutf8proc-dev
# Target architecture (x86-64, or aarch64 native / cross: make ARCH=aarch64).
include mk/arch.mk
DEPS_OK  := $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
  ifeq ($(shell id -u 2>/dev/null),0)
    ifneq ($(wildcard /usr/bin/apt-get),)
      $(info libds8b: installing build dependencies: $(DEB_PKGS))
      DEPS_INSTALL := $(shell (apt-get install -y -q $(DEB_PKGS) || (apt-get update -q && apt-get install -y -q $(DEB_PKGS))) >/dev/null 2>&1 && echo ok)
    endif
  endif
  DEPS_OK := $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)
  ifneq ($(DEPS_OK),yes)
    $(error libds8b needs: $(PKGS). On Debian/Ubuntu: sudo apt-get install $(DEB_PKGS))
  endif
endif
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS)) -lpthread -lm

OPT     ?= -O2
WARN    := -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wshadow=local -Wno-format-truncation
CFLAGS_BASE := -std=gnu11 $(OPT) -g $(ARCH_CFLAGS) -fPIC \
               -fvisibility=hidden -Iinclude -Isrc/core -Isrc $(WARN) $(DEP_CFLAGS)
ifneq ($(SAN),)
  CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  SANLD := -fsanitize=$(SAN)
endif

# Per-ISA kernel files: chosen at run time through a function table.
ISA_AVX2   := -mavx2 -mfma -mf16c -mbmi2
ISA_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c -mbmi2
ISA_AMX    := $(ISA_AVX512) -mavx512bf16 -mamx-tile -mamx-bf16 -mamx-int8 -ffp-contract=off

LIB_SRCS := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
LIB_SRCS := $(call ds8b_arch_srcs,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS := $(sort $(wildcard src/cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
HDRS     := $(shell find include src -name '*.h')

SHLIB  := $(LIBDIR)/libds8b.so.$(VERSION)
STLIB  := $(LIBDIR)/libds8b.a
CLI    := $(BUILD)/ds8b

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/replay_%)
EX_SRCS  := $(sort $(wildcard examples/*.c))
EX_BINS  := $(EX_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: check-arm64
.PHONY: all lib check test test-asan demo install clean tests fuzz-replay examples quant-table
all: lib $(CLI) examples

lib: $(SHLIB) $(STLIB) $(LIBDIR)/libds8b.so $(LIBDIR)/$(SONAME) $(BUILD)/ds8b.pc

$(BUILD)/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(if $(findstring amx,$(notdir $<)),$(ISA_AMX),$(if $(findstring avx512,$<),$(ISA_AVX512),$(if $(findstring avx2,$<),$(ISA_AVX2)))) $(if $(and $(findstring x86/,$<),$(findstring bf16,$(notdir $<))),-mavx512bf16) -c $< -o $@

$(SHLIB): $(LIB_OBJS) src/libds8b.map
	@mkdir -p $(LIBDIR)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/libds8b.map -Wl,-z,defs \
	  -o $@ $(LIB_OBJS) $(DEP_LIBS) $(SANLD)

$(LIBDIR)/$(SONAME): $(SHLIB)
	ln -sf libds8b.so.$(VERSION) $@
$(LIBDIR)/libds8b.so: $(SHLIB)
	ln -sf libds8b.so.$(VERSION) $@

$(STLIB): $(LIB_OBJS)
	@mkdir -p $(LIBDIR)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

$(BUILD)/ds8b.pc: pkgconfig/ds8b.pc.in include/ds8b.h
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(CLI): $(CLI_OBJS) $(STLIB)
	$(CC) -o $@ $(CLI_OBJS) $(STLIB) $(DEP_LIBS) $(SANLD)

examples: $(EX_BINS)
$(BUILD)/examples/%: examples/%.c $(STLIB) include/ds8b.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -o $@ $< $(STLIB) $(DEP_LIBS) $(SANLD)

# Tests link the static library so they can reach internal functions.
tests: $(TEST_BINS) $(FUZZ_REPLAY) $(CLI) examples
$(BUILD)/tests/%: tests/%.c tests/t.h tests/t_json.h $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Itests -o $@ $< $(STLIB) $(DEP_LIBS) $(SANLD)

# Fuzz targets built as plain programs that replay a corpus.
$(BUILD)/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay_main.c $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Itests -o $@ $< tests/fuzz/replay_main.c $(STLIB) $(DEP_LIBS) $(SANLD)

test: lib tests
	BUILD=$(BUILD) LIBDIR=$(LIBDIR) bash tests/run.sh

# ASan + UBSan over the whole suite. -O2: the kernels run 4-5x faster than
# at -O1 under ASan. DS8B_QUICK=1 shrinks the slowest workloads (tests/t.h);
# ASAN_QUICK=0 runs them in full.
test-asan:
	DS8B_QUICK=$(ASAN_QUICK) $(MAKE) BUILD=$(ASAN_BUILD) LIBDIR=$(ASAN_BUILD)/lib SAN=address,undefined OPT=-O2 test

# What CI runs (.ci/run): both suites, one final "N passed, N failed, N skipped" line.
check:
	@bash tests/check.sh

# aarch64: cross-build (or native build) and a part of the suite under
# qemu-aarch64, per emulated CPU level (tests/arm/check-arm64.sh).
check-arm64:
	@bash tests/arm/check-arm64.sh

demo: all
	$(CLI) generate -m models/demo-llama -p "The Python interpreter" -n 64 --temp 0

# The measured quantization table (a few minutes): see docs/quantization.md.
quant-table: all
	bash docs/quant_table.sh > docs/quantization-table.md

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/ds8b.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libds8b.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf libds8b.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libds8b.so
	install -m 644 $(STLIB) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/ds8b.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ds8b.pc
	if [ -f $(CLI) ]; then install -d $(DESTDIR)$(PREFIX)/bin && install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/; fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(LIBDIR)/libds8b.*
