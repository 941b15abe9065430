# mk/arch.mk -- target architecture: x86-64 (the default on an x86 host) or
# aarch64 (native on an ARM host, or cross-built from x86 with
# `make ARCH=aarch64`). Included by the Makefile after DEB_PKGS and before
# the dependency check; sets ARCH_CFLAGS, PKG_CONFIG, CC/AR and BUILD/LIBDIR
# when cross-building, and ds8b_arch_srcs, the filter applied to LIB_SRCS.
#
#   x86-64:  -march=x86-64; src/kernels/arm/ is left out.
#   aarch64: -march=armv8-a (plain NEON: every ARMv8-A CPU); the per-level
#            kernel files (names ending in _dotprod.c, _i8mm.c) get their
#            own -march below; src/kernels/x86/ and every source whose name
#            contains avx2, avx512 or amx are left out.

HOST_ARCH := $(shell uname -m)
ARCH ?= $(HOST_ARCH)
ifneq ($(filter arm64,$(ARCH)),)
  override ARCH := aarch64
endif
ifneq ($(filter arm64,$(HOST_ARCH)),)
  HOST_ARCH := aarch64
endif

PKG_CONFIG ?= pkg-config

ifeq ($(ARCH),aarch64)
  ARCH_CFLAGS := -march=armv8-a
  ifneq ($(HOST_ARCH),aarch64)
    # Cross build: Debian's cross gcc, the arm64 -dev packages through
    # multiarch, qemu-user for the tests (make check-arm64).
    CROSS ?= aarch64-linux-gnu-
    ifneq ($(origin CC),command line)
      CC := $(CROSS)gcc
    endif
    ifneq ($(origin AR),command line)
      AR := $(CROSS)ar
    endif
    ifeq ($(origin BUILD),file)
      BUILD := build-arm64
    endif
    ifeq ($(origin LIBDIR),file)
      LIBDIR := lib-arm64
    endif
    ASAN_BUILD := build-arm64-asan
    PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config
    DEB_PKGS := pkg-config gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user \
                libopenblas-dev:arm64 libcjson-dev:arm64 zlib1g-dev:arm64 libpcre2-dev:arm64 \
                libutf8proc-dev:arm64
    # qemu-aarch64 runs the test programs (tests/run.sh honours DS8B_RUN)
    ARM64_RUN := qemu-aarch64
    ARM_TOOLS_OK := $(shell command -v $(CC) >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 && $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)
    ifneq ($(ARM_TOOLS_OK),yes)
      ifeq ($(shell id -u 2>/dev/null),0)
        ifneq ($(wildcard /usr/bin/apt-get),)
          $(info libds8b: installing the aarch64 cross toolchain and arm64 packages: $(DEB_PKGS))
          ARM_INSTALL := $(shell (dpkg --add-architecture arm64 && (apt-get install -y -q $(DEB_PKGS) || (apt-get update -q && apt-get install -y -q $(DEB_PKGS)))) >/dev/null 2>&1 && echo ok)
        endif
      endif
      ifeq ($(shell command -v $(CC) >/dev/null 2>&1 && echo yes),)
        $(error make ARCH=aarch64 needs $(CC). On Debian: sudo dpkg --add-architecture arm64 && sudo apt-get update && sudo apt-get install $(DEB_PKGS))
      endif
    endif
  else
    ARM64_RUN :=
  endif
  # Per-level kernel files (target-specific flags; the x86 rule's
  # findstring tests never match these names).
  ISA_ARM_FLAGS := -ffp-contract=off
  $(BUILD)/src/kernels/arm/%.o: CFLAGS_BASE += $(ISA_ARM_FLAGS)
  $(BUILD)/src/kernels/arm/%_dotprod.o: CFLAGS_BASE += -march=armv8.2-a+dotprod
  $(BUILD)/src/kernels/arm/%_i8mm.o: CFLAGS_BASE += -march=armv8.2-a+dotprod+i8mm
  # Debian 12's gcc 12 for aarch64 stops with an internal compiler error
  # (vect_transform_reduction) on loops of tests/test_quant.c and
  # tests/test_gguf_model.c: test programs skip loop vectorization.
  $(BUILD)/tests/%: CFLAGS_BASE += -fno-tree-loop-vectorize
  ds8b_arch_srcs = $(foreach s,$(1),$(if $(or $(findstring src/kernels/x86/,$(s)),$(findstring avx2,$(notdir $(s))),$(findstring avx512,$(notdir $(s))),$(findstring amx,$(notdir $(s)))),,$(s)))
else
  ARCH_CFLAGS := -march=x86-64 -mtune=generic
  ds8b_arch_srcs = $(filter-out src/kernels/arm/%,$(1))
endif
