/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What an executable or library offers to hook (capture/elfbin.c): its
 * functions by name, the file offset a uprobe takes for an address, and
 * Go's crypto/tls, found even in stripped and PIE builds.
 */
#ifndef __PODTAP_ELFBIN_H
#define __PODTAP_ELFBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pt_elf;

/* An x86-64 ELF file; on error (-errno of open, -EINVAL for a file that
 * is not one) why says what is wrong with it. */
int pt_elf_open(struct pt_elf **out, const char *path, char *why, size_t n);
void pt_elf_close(struct pt_elf *e);
/* The open file, for attaching to it by /proc/self/fd/N. */
int pt_elf_fd(const struct pt_elf *e);
/* A function defined in the file (.symtab, then .dynsym): its address. */
bool pt_elf_func(struct pt_elf *e, const char *name, uint64_t *addr,
		 uint64_t *size);
/* Does the file take this function from a shared library? */
bool pt_elf_imports(struct pt_elf *e, const char *name);
/* Is OpenSSL's (or BoringSSL's) libssl linked in, symbols or not? */
bool pt_elf_has_openssl(struct pt_elf *e);
/* OpenSSL's version text in the file ("OpenSSL 3.0.15 3 Sep 2024"), or
 * "BoringSSL". */
bool pt_elf_openssl_version(struct pt_elf *e, char *buf, size_t n);
/* The file offset of an address of a loaded segment; -1 if none. */
int pt_elf_offset(struct pt_elf *e, uint64_t addr, uint64_t *off);

/*
 * Where a uprobe on a function costs least: the first instruction of its
 * straight-line start that the kernel emulates rather than single-steps,
 * with neither rsp nor a register of keep (PT_R() bits) written before
 * it, so that the arguments and the return address are as at the entry,
 * and that no branch of the function comes back to. 0 if there is none.
 */
enum pt_reg {
	PT_RAX, PT_RCX, PT_RDX, PT_RBX, PT_RSP, PT_RBP, PT_RSI, PT_RDI,
	PT_R8, PT_R9, PT_R10, PT_R11, PT_R12, PT_R13, PT_R14, PT_R15,
};
#define PT_R(r)		(1u << PT_##r)
/* the C ABI's argument registers; Go's (ABIInternal) and its g in r14 */
#define PT_KEEP_SYSV	(PT_R(RDI) | PT_R(RSI) | PT_R(RDX) | PT_R(RCX) | \
			 PT_R(R8) | PT_R(R9))
#define PT_KEEP_GO	(PT_R(RAX) | PT_R(RBX) | PT_R(RCX) | PT_R(RDI) | \
			 PT_R(RSI) | PT_R(R8) | PT_R(R9) | PT_R(R10) | \
			 PT_R(R11) | PT_R(R14))
uint64_t pt_probe_point(const uint8_t *code, size_t len, uint64_t addr,
			uint32_t keep);
/* The same for a function of the file (size 0: unknown). */
uint64_t pt_elf_probe_point(struct pt_elf *e, uint64_t addr, uint64_t size,
			    uint32_t keep);
/*
 * OpenSSL's internal function that the _ex form ex (SSL_read_ex) and its
 * plain form (SSL_read) both call first, with the _ex form's arguments
 * and result: its address.
 */
bool pt_elf_ssl_inner(struct pt_elf *e, const char *ex, const char *plain,
		      uint64_t *addr);

/* Where a Go function is hooked: its entry and every RET in it. */
#define PT_GO_MAX_RETS	32
struct pt_go_func {
	uint64_t entry;			/* file offsets, for uprobes */
	uint64_t rets[PT_GO_MAX_RETS];
	uint64_t entry_addr;		/* the same as addresses */
	uint64_t ret_addrs[PT_GO_MAX_RETS];
	size_t nrets;
	bool entry_emulated;		/* entry on an instruction not stepped */
};

struct pt_go_tls {
	char version[32];	/* as .go.buildinfo says: "go1.19.8" */
	uint64_t offsets;	/* struct offsets, PT_GO_OFF of bpf/podtap.h */
	uint64_t tcpconn_type;	/* address of *net.TCPConn's type descriptor */
	bool from_pclntab;	/* no symbol table: found through the pclntab */
	struct pt_go_func write, read;	/* crypto/tls.(*Conn).Write, .Read */
};

/* The attach cookie of the uprobe at addr (bpf/podtap.h, PT_GO_TYPE). */
uint64_t pt_go_cookie(const struct pt_go_tls *g, uint64_t addr);

/*
 * Go's crypto/tls in the file: 1 found (g filled), 0 not a Go program or
 * one without crypto/tls, -1 a Go program that cannot be hooked (why).
 */
int pt_go_tls_find(struct pt_elf *e, struct pt_go_tls *g, char *why,
		   size_t n);

#endif
