# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# podtap: `make` builds ./podtap; `make test` runs every test.
OUTPUT ?= build
SKEL := skel
CLANG ?= clang
CC ?= cc
BPFTOOL ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
VMLINUX := vmlinux/$(ARCH)/vmlinux.h

CFLAGS ?= -g -O2
override CFLAGS += -Wall -Werror -D_GNU_SOURCE
DEPFLAGS = -MMD -MP
INCLUDES := -Iuser -Ibpf -I$(SKEL)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Ibpf -Ivmlinux/$(ARCH)
LDLIBS := -lbpf -lelf -lcapstone -lz -lzstd -lyaml -lmicrohttpd -lcurl -lpthread -lm
# What the core (everything but capture/, agent/ and cmd/) needs: the unit
# tests and fuzzers link it without libbpf.
CORE_LDLIBS := -lz -lzstd -lyaml -lcurl -lpthread -lm

# user/ by concern, each folder using only those before it (docs/hacking.md;
# scripts/check-layers.sh checks the includes):
#   base <- capfile <- stream <- proto <- export <- replay; kube   (the core)
#   capture (loader, cgroups, runtime) <- agent <- cmd
CORE_DIRS := base capfile stream proto export replay kube
USER_DIRS := $(CORE_DIRS) capture agent cmd
dir_srcs = $(foreach d,$(1),$(wildcard user/$(d)/*.c))
user_obj = $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(1))
CORE_OBJS := $(call user_obj,$(call dir_srcs,$(CORE_DIRS)))
LIB_OBJS := $(call user_obj,$(filter-out user/cmd/main.c,$(call dir_srcs,$(USER_DIRS))))
CORE_LIB := $(OUTPUT)/libpodtap-core.a
LIB := $(OUTPUT)/libpodtap.a

# BPF: one object per concern, linked into one (bpftool gen object) so that
# every program shares the same maps and ring buffer.
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_PARTS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.bpf.o,$(BPF_SRCS))
BPF_OBJ := $(OUTPUT)/podtap.bpf.o
SKELS := $(SKEL)/podtap.skel.h

BPF_TEST_SRCS := $(wildcard tests/bpf/*.c)
BPF_TEST_OBJS := $(patsubst tests/bpf/%.c,$(OUTPUT)/tests/bpf/%.o,$(BPF_TEST_SRCS))
USER_TEST_SRCS := $(filter-out tests/user/fuzz_%.c,$(wildcard tests/user/*.c))
USER_TEST_OBJS := $(patsubst tests/user/%.c,$(OUTPUT)/tests/user/%.o,$(USER_TEST_SRCS))
# the agent's spool is tested too; it needs nothing the core does not
USER_TEST_LINK := $(USER_TEST_OBJS) $(OUTPUT)/user/agent/spool.o $(CORE_LIB)

pc := %
FUZZ_SECONDS ?= 20

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SECONDARY:
.SECONDEXPANSION:
.PHONY: all clean test test-user test-bpf test-kernels fuzz bench deps demo vmlinux

all: podtap

$(OUTPUT) $(OUTPUT)/bpf $(OUTPUT)/tests/bpf $(OUTPUT)/tests/user $(SKEL):
	$(Q)mkdir -p $@

# A strip that fails fails the build: the object would carry DWARF.
$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c $(VMLINUX) | $(OUTPUT)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@
	$(Q)llvm-strip -g $@

$(BPF_OBJ): $(BPF_PARTS)
	$(call msg,BPF-LINK,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(SKEL)/podtap.skel.h: $(BPF_OBJ) | $(SKEL)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name podtap_bpf > $@.tmp
	$(Q)mv $@.tmp $@

# Header dependencies from the compiler (-MMD -MP); the skeleton is made
# before any object, since the first build has no .d files yet.
$(OUTPUT)/user/%.o: user/%.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

podtap: $(OUTPUT)/user/cmd/main.o $(LIB)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# One runner (tests/lib) for both test binaries. Each finds its tests by
# the `void test_<name>(void)` of its folder: the lists are never kept by hand.
$(OUTPUT)/tests/%/tests.inc: $$(wildcard tests/$$*/*.c) | $(OUTPUT)/tests/bpf $(OUTPUT)/tests/user
	$(call msg,GEN,$@)
	$(Q)sed -n 's/^void test_\([a-z0-9][a-z0-9_]*\)(void)$$/DEFINE_TEST(\1)/p' \
		$(filter-out %/fuzz_$(pc).c,$(wildcard tests/$*/*.c)) > $@

$(OUTPUT)/tests/%/runner.o: tests/lib/runner.c $(OUTPUT)/tests/%/tests.inc
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -Itests/lib -I$(OUTPUT)/tests/$* \
		-DPROG='"$(if $(filter bpf,$*),test_progs,test_$*)"' -c $< -o $@

TEST_CFLAGS = $(CFLAGS) $(DEPFLAGS) $(INCLUDES) -Itests/lib

$(OUTPUT)/tests/bpf/%.o: tests/bpf/%.c | $(SKELS) $(OUTPUT)/tests/bpf
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -Itests/bpf -c $< -o $@

# libssl for test_openssl's own HTTPS peers (the kernel matrix copies it
# into its guests with the rest of what test_progs links)
$(OUTPUT)/test_progs: $(BPF_TEST_OBJS) $(OUTPUT)/tests/bpf/runner.o $(LIB)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -lssl -lcrypto -o $@

$(OUTPUT)/tests/user/%.o: tests/user/%.c | $(SKELS) $(OUTPUT)/tests/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -Itests/user -c $< -o $@

# No libbpf here: the core stands on its own.
$(OUTPUT)/test_user: $(USER_TEST_LINK) $(OUTPUT)/tests/user/runner.o
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(CORE_LDLIBS) -o $@

# libFuzzer targets with address sanitizer: the capture file reader with
# reassembly, the HTTP parser with exchanges, the agent's reading of API objects.
FUZZ_LIB_SRCS := $(call dir_srcs,$(CORE_DIRS))
FUZZERS := capfile http k8s
$(OUTPUT)/fuzz_%: tests/user/fuzz_%.c $(FUZZ_LIB_SRCS) $(wildcard user/*/*.h) bpf/podtap.h | $(OUTPUT)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) -g -O1 -Wall -Werror -D_GNU_SOURCE -fsanitize=fuzzer,address \
		$(INCLUDES) $< $(FUZZ_LIB_SRCS) $(CORE_LDLIBS) -o $@

test-user: $(OUTPUT)/test_user
	$(OUTPUT)/test_user

test-bpf: $(OUTPUT)/test_progs podtap
	$(OUTPUT)/test_progs

# The BPF harness on Debian's 6.1 and 6.12 kernels under qemu and on this
# one, with and without the task helpers; writes docs/compat.md.
# KERNELS="6.1" picks guests; packages are cached in build/kernels/.
test-kernels: $(OUTPUT)/test_progs
	tests/kernels/run.sh $(KERNELS)

# Each fuzzer for FUZZ_SECONDS; libFuzzer's chatter goes to
# build/fuzz-NAME.log, and a crash prints its end.
fuzz: $(patsubst %,$(OUTPUT)/fuzz_%,$(FUZZERS))
	@pass=0; fail=0; for f in $(FUZZERS); do \
		mkdir -p $(OUTPUT)/fuzz-corpus-$$f; \
		if $(OUTPUT)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			-artifact_prefix=$(OUTPUT)/$$f- $(OUTPUT)/fuzz-corpus-$$f \
			tests/user/corpus-$$f > $(OUTPUT)/fuzz-$$f.log 2>&1; then \
			echo "$$f: $$(grep '^Done' $(OUTPUT)/fuzz-$$f.log)"; pass=$$((pass + 1)); \
		else \
			tail -40 $(OUTPUT)/fuzz-$$f.log; fail=$$((fail + 1)); \
		fi; \
	done; echo "fuzz: $$pass passed, $$fail failed"; [ $$fail = 0 ]

# What recording costs (bench/bench.py): writes docs/benchmarks.{md,json,png}
# in about eight minutes; BENCH=tiny proves the harness in half a minute and
# writes build/bench/ instead.
bench: podtap
	bench/bench.py $(if $(filter tiny,$(BENCH)),--tiny)

# The whole suite: unit tests, a bounded fuzz run, the BPF harness, the end
# to end checks and the benchmark harness in its tiny mode.
test: podtap
	tests/run.sh

# Debian packages needed to build and test (run as root).
deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		make clang llvm libclang-rt-dev libbpf-dev bpftool libelf-dev \
		zlib1g-dev libzstd-dev libyaml-dev libmicrohttpd-dev libcurl4-openssl-dev libjsmn-dev iproute2 curl nginx python3 python3-yaml \
		tshark util-linux procps strace wrk tcpdump gnuplot-nox openssl linux-perf \
		libcapstone-dev golang-go golang-gopkg-yaml.v3-dev libssl-dev gcc \
		android-libboringssl-dev \
		qemu-system-x86 busybox-static dash cpio xz-utils zstd

demo: podtap
	scripts/demo.sh

# Regenerate vmlinux.h on purpose, from a BTF file: make vmlinux BTF=/path
BTF ?= /sys/kernel/btf/vmlinux
vmlinux:
	$(BPFTOOL) btf dump file $(BTF) format c > $(VMLINUX).tmp
	mv $(VMLINUX).tmp $(VMLINUX)

clean:
	rm -rf $(OUTPUT) $(SKEL) podtap

-include $(wildcard $(OUTPUT)/user/*/*.d $(OUTPUT)/bpf/*.d $(OUTPUT)/tests/*/*.d)
