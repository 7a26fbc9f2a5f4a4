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
INCLUDES := -Iuser -Ibpf -I$(SKEL)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Ibpf -Ivmlinux/$(ARCH)
LDLIBS := -lbpf -lelf -lz -lzstd -lyaml -lmicrohttpd -lcurl -lpthread

BPF_OBJS := $(OUTPUT)/podtap.bpf.o
SKELS := $(SKEL)/podtap.skel.h
LIB_SRCS := $(filter-out user/main.c,$(wildcard user/*.c))
LIB_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(LIB_SRCS))
LIB := $(OUTPUT)/libpodtap.a
BPF_TEST_SRCS := $(wildcard tests/bpf/*.c)
BPF_TEST_OBJS := $(patsubst tests/bpf/%.c,$(OUTPUT)/tests/bpf/%.o,$(BPF_TEST_SRCS))
USER_TEST_SRCS := $(filter-out tests/user/fuzz_%.c,$(wildcard tests/user/*.c))
USER_TEST_OBJS := $(patsubst tests/user/%.c,$(OUTPUT)/tests/user/%.o,$(USER_TEST_SRCS))

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
.PHONY: all clean test test-user test-bpf test-kernels fuzz bench deps demo vmlinux

all: podtap

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests/bpf $(OUTPUT)/tests/user $(SKEL):
	$(Q)mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c bpf/podtap.h bpf/compat.bpf.h $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)llvm-strip -g $@ 2>/dev/null || true

$(SKEL)/%.skel.h: $(OUTPUT)/%.bpf.o | $(SKEL)
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name podtap_bpf > $@

$(OUTPUT)/user/%.o: user/%.c $(wildcard user/*.h) bpf/podtap.h $(SKELS) | $(OUTPUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

podtap: $(OUTPUT)/user/main.o $(LIB)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# One DEFINE_TEST(name) per test_<name>(void) found in tests/bpf.
$(OUTPUT)/tests/bpf/tests.inc: $(BPF_TEST_SRCS) | $(OUTPUT)/tests/bpf
	$(call msg,GEN,$@)
	$(Q)sed -n 's/^void test_\([a-z0-9][a-z0-9_]*\)(void)$$/DEFINE_TEST(\1)/p' \
		$(BPF_TEST_SRCS) > $@

$(OUTPUT)/tests/bpf/%.o: tests/bpf/%.c $(wildcard tests/bpf/*.h) $(wildcard user/*.h) $(SKELS) $(OUTPUT)/tests/bpf/tests.inc | $(OUTPUT)/tests/bpf
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) -Itests/bpf -I$(OUTPUT)/tests/bpf -c $< -o $@

$(OUTPUT)/test_progs: $(BPF_TEST_OBJS) $(LIB)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -lpthread -o $@

$(OUTPUT)/tests/user/%.o: tests/user/%.c $(wildcard tests/user/*.h) $(wildcard user/*.h) $(SKELS) | $(OUTPUT)/tests/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) -Itests/user -c $< -o $@

$(OUTPUT)/test_user: $(USER_TEST_OBJS) $(LIB)
	$(call msg,BINARY,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# libFuzzer targets with address sanitizer: the capture file reader with
# reassembly, the HTTP parser with exchanges, the agent's reading of API objects.
FUZZ_LIB_SRCS := user/capfile.c user/conns.c user/common.c user/http1.c \
	user/agent_k8s.c user/jread.c \
	user/exch.c user/jsonw.c user/export.c
FUZZERS := capfile http k8s
$(OUTPUT)/fuzz_%: tests/user/fuzz_%.c $(FUZZ_LIB_SRCS) $(wildcard user/*.h) bpf/podtap.h | $(OUTPUT)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) -g -O1 -Wall -Werror -D_GNU_SOURCE -fsanitize=fuzzer,address \
		$(INCLUDES) $< $(FUZZ_LIB_SRCS) -lz -lzstd -o $@

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
# in about six minutes; BENCH=tiny proves the harness in half a minute and
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
		tshark util-linux procps wrk tcpdump gnuplot-nox openssl \
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
