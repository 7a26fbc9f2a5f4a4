// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Functions of an executable or library, for uprobes: by symbol where the
 * file has a symbol table, and for Go programs through the pclntab, which
 * the runtime needs and so no build strips. Every offset read from the
 * file is checked against the section it points into: a binary is input.
 *
 * Go's (*Conn).Read and Write are hooked at each RET rather than with a
 * uretprobe, which replaces the return address on the stack: the Go
 * runtime moves and walks goroutine stacks and crashes on one it does not
 * know. Capstone decodes the function to find its RET instructions.
 */
#include <capstone/capstone.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/common.h"
#include "capture/elfbin.h"

struct pt_elf {
	int fd;
	Elf *elf;
	size_t shstrndx;
};

int pt_elf_open(struct pt_elf **out, const char *path, char *why, size_t n)
{
	struct pt_elf *e;
	GElf_Ehdr eh;

	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(why, n, "libelf: %s", elf_errmsg(-1));
		return -EINVAL;
	}
	e = pt_xcalloc(1, sizeof(*e));
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		int err = -errno;

		snprintf(why, n, "%s", strerror(-err));
		free(e);
		return err;
	}
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF || !gelf_getehdr(e->elf, &eh) ||
	    elf_getshdrstrndx(e->elf, &e->shstrndx)) {
		snprintf(why, n, "not an ELF file");
		pt_elf_close(e);
		return -EINVAL;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) {
		snprintf(why, n, "not an x86-64 ELF file");
		pt_elf_close(e);
		return -EINVAL;
	}
	*out = e;
	return 0;
}

int pt_elf_fd(const struct pt_elf *e)
{
	return e->fd;
}

void pt_elf_close(struct pt_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e);
}

static Elf_Scn *section(struct pt_elf *e, const char *name, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e->elf, scn))) {
		const char *s;

		if (!gelf_getshdr(scn, sh))
			continue;
		s = elf_strptr(e->elf, e->shstrndx, sh->sh_name);
		if (s && !strcmp(s, name))
			return scn;
	}
	return NULL;
}

/* A section's bytes as in the file; NULL for none or NOBITS. */
static const uint8_t *section_data(struct pt_elf *e, const char *name,
				   uint64_t *addr, size_t *size)
{
	GElf_Shdr sh;
	Elf_Scn *scn = section(e, name, &sh);
	Elf_Data *d;

	if (!scn || sh.sh_type == SHT_NOBITS)
		return NULL;
	d = elf_getdata(scn, NULL);
	if (!d || !d->d_buf)
		return NULL;
	*addr = sh.sh_addr;
	*size = d->d_size;
	return d->d_buf;
}

bool pt_elf_func(struct pt_elf *e, const char *name, uint64_t *addr,
		 uint64_t *size)
{
	static const Elf64_Word types[] = { SHT_SYMTAB, SHT_DYNSYM };
	size_t t;

	for (t = 0; t < ARRAY_SIZE(types); t++) {
		Elf_Scn *scn = NULL;

		while ((scn = elf_nextscn(e->elf, scn))) {
			GElf_Shdr sh;
			Elf_Data *d;
			size_t i, nsyms;

			if (!gelf_getshdr(scn, &sh) || sh.sh_type != types[t] ||
			    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
				continue;
			nsyms = d->d_size / sh.sh_entsize;
			for (i = 0; i < nsyms; i++) {
				GElf_Sym s;
				const char *sn;

				if (!gelf_getsym(d, (int)i, &s) ||
				    GELF_ST_TYPE(s.st_info) != STT_FUNC ||
				    s.st_shndx == SHN_UNDEF || !s.st_value)
					continue;
				sn = elf_strptr(e->elf, sh.sh_link, s.st_name);
				if (sn && !strcmp(sn, name)) {
					*addr = s.st_value;
					*size = s.st_size;
					return true;
				}
			}
		}
	}
	return false;
}

bool pt_elf_imports(struct pt_elf *e, const char *name)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t i;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM ||
		    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		for (i = 0; i < d->d_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *sn;

			if (gelf_getsym(d, (int)i, &sym) &&
			    sym.st_shndx == SHN_UNDEF &&
			    (sn = elf_strptr(e->elf, sh.sh_link, sym.st_name)) &&
			    !strcmp(sn, name))
				return true;
		}
	}
	return false;
}

/*
 * OpenSSL's libssl linked in, known by two texts that survive strip: a
 * TLS 1.3 key label of libssl and the credit its assembly carries
 * (OpenSSL's and BoringSSL's). Go's crypto/tls has the label, not the
 * credit.
 */
bool pt_elf_has_openssl(struct pt_elf *e)
{
	size_t size;
	const char *b = elf_rawfile(e->elf, &size);

	return b && memmem(b, size, "s ap traffic", 12) &&
	       memmem(b, size, "CRYPTOGAMS by <appro@openssl.org>", 33);
}

/*
 * The first string of the file that begins with tag and then a digit
 * (digit), or that is tag (!digit); at most 63 printable bytes,
 * NUL-terminated. Read with pread, a window at a time, not through a
 * mapping a truncated file would fault on.
 */
static bool find_text(struct pt_elf *e, const char *tag, bool digit,
		      char *buf, size_t n)
{
	enum { WIN = 1 << 20, KEEP = 64 };
	size_t tl = strlen(tag), have = 0;
	char *w = pt_xcalloc(1, WIN + KEEP);
	bool found = false;
	off_t at = 0;

	for (;;) {
		ssize_t r = pread(e->fd, w + have, WIN, at);
		size_t i, len = have + (r > 0 ? (size_t)r : 0);

		if (r <= 0 && !have)
			break;
		for (i = 0; i + tl < len && !found; i++) {
			size_t k;

			/* the start of a string */
			if (w[i] != tag[0] || (i && w[i - 1]) ||
			    memcmp(w + i, tag, tl) ||
			    (digit ? w[i + tl] < '0' || w[i + tl] > '9' :
				     w[i + tl] != 0))
				continue;
			for (k = i; k < len && k - i < KEEP && w[k] >= ' ' &&
			     w[k] < 0x7f; k++)
				;
			if (k == len && r > 0)
				break;	/* runs past the window: next one */
			if (k < len && !w[k] && k - i < n) {
				memcpy(buf, w + i, k - i);
				buf[k - i] = 0;
				found = true;
			}
		}
		if (found || r <= 0)
			break;
		/* the window's tail again, for a text that straddles it */
		have = len < KEEP ? len : KEEP;
		memmove(w, w + len - have, have);
		at += r;
	}
	free(w);
	return found;
}

/*
 * The version OpenSSL_version() gives, from libcrypto (or an executable
 * with it linked in): OPENSSL_VERSION_TEXT ("OpenSSL 3.0.15 3 Sep 2024"),
 * or BoringSSL's, which is its name alone.
 */
bool pt_elf_openssl_version(struct pt_elf *e, char *buf, size_t n)
{
	return find_text(e, "OpenSSL ", true, buf, n) ||
	       find_text(e, "BoringSSL", false, buf, n);
}

int pt_elf_offset(struct pt_elf *e, uint64_t addr, uint64_t *off)
{
	size_t i, n;

	if (elf_getphdrnum(e->elf, &n))
		return -1;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (addr >= ph.p_vaddr && addr - ph.p_vaddr < ph.p_filesz) {
			*off = addr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -1;
}

/* len bytes of the file at a loaded address. */
static int read_at(struct pt_elf *e, uint64_t addr, void *buf, size_t len)
{
	uint64_t off;

	if (pt_elf_offset(e, addr, &off) ||
	    pread(e->fd, buf, len, (off_t)off) != (ssize_t)len)
		return -1;
	return 0;
}

/*
 * The Go version from .go.buildinfo: "\xff Go buildinf:", pointer size,
 * flags; since 1.18 (flags bit 1) the version follows inline at 32 as a
 * varint-prefixed string, before it the header points at a Go string.
 */
static int go_version(struct pt_elf *e, char *v, size_t n)
{
	static const char magic[] = "\xff Go buildinf:";
	uint64_t addr, sp, slen;
	size_t size, len = 0, i;
	const uint8_t *b = section_data(e, ".go.buildinfo", &addr, &size);
	uint8_t ps;

	if (!b || size < 32 || memcmp(b, magic, 14))
		return -1;
	ps = b[14];
	if (b[15] & 2) {
		int shift = 0;

		for (i = 32; i < size && shift < 28; i++, shift += 7) {
			len |= (size_t)(b[i] & 0x7f) << shift;
			if (!(b[i] & 0x80))
				break;
		}
		if (++i >= size || len >= n || len > size - i)
			return -1;
		memcpy(v, b + i, len);
		v[len] = 0;
		return 0;
	}
	/* before 1.18: a pointer to the string header { data, len } */
	if (ps != 8)
		return -1;
	memcpy(&sp, b + 16, 8);
	if (read_at(e, sp, &addr, 8) || read_at(e, sp + 8, &slen, 8) ||
	    slen >= n || read_at(e, addr, v, slen))
		return -1;
	v[slen] = 0;
	return 0;
}

/*
 * The pclntab: the runtime's table of every function's entry and name.
 * Layouts of Go 1.16-1.17 (magic 0xfffffffa) and 1.18 on (0xfffffff0,
 * 0xfffffff1): a header of pointer-size words, a function table of
 * (entry, offset of its _func) pairs ending with the end of the text, and
 * each _func beginning with its entry and the offset of its name.
 */
struct pclntab {
	const uint8_t *b;
	size_t size;
	bool v118;		/* entries are 32-bit offsets from text */
	uint64_t nfunc, text, names, ftab;
};

static uint64_t word(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static int pcln_open(struct pt_elf *e, struct pclntab *t)
{
	uint64_t addr;
	uint32_t magic;
	const uint8_t *h;

	memset(t, 0, sizeof(*t));
	t->b = section_data(e, ".gopclntab", &addr, &t->size);
	if (!t->b)	/* PIE builds */
		t->b = section_data(e, ".data.rel.ro.gopclntab", &addr, &t->size);
	if (!t->b || t->size < 8 + 8 * 8)
		return -1;
	h = t->b;
	memcpy(&magic, h, 4);
	if (h[7] != 8)
		return -1;	/* pointer size */
	if (magic == 0xfffffff0 || magic == 0xfffffff1) {
		uint64_t sh_text;
		size_t tsize;

		t->v118 = true;
		t->nfunc = word(h + 8);
		t->text = word(h + 24);
		t->names = word(h + 32);
		t->ftab = word(h + 64);
		/* a PIE's text start is a relocation, 0 in the file */
		if (!t->text && section_data(e, ".text", &sh_text, &tsize))
			t->text = sh_text;
	} else if (magic == 0xfffffffa) {
		t->nfunc = word(h + 8);
		t->names = word(h + 24);
		t->ftab = word(h + 56);
	} else {
		return -1;
	}
	if (t->names >= t->size || t->ftab >= t->size ||
	    t->nfunc >= (t->size - t->ftab) / (t->v118 ? 8 : 16))
		return -1;
	return 0;
}

/* Entry and end (the next function's entry) of function i. */
static int pcln_func(const struct pclntab *t, uint64_t i, uint64_t *entry,
		     uint64_t *end, const char **name)
{
	size_t esz = t->v118 ? 8 : 16, fsz = t->v118 ? 8 : 12;
	const uint8_t *f = t->b + t->ftab + i * esz;
	uint64_t foff, noff;
	int32_t nameoff;

	if (t->v118) {
		uint32_t a, b, o;

		memcpy(&a, f, 4);
		memcpy(&o, f + 4, 4);
		memcpy(&b, f + 8, 4);
		*entry = t->text + a;
		*end = t->text + b;
		foff = o;
	} else {
		*entry = word(f);
		*end = word(f + 16);
		foff = word(f + 8);
	}
	if (foff > t->size - t->ftab || t->size - t->ftab - foff < fsz)
		return -1;
	memcpy(&nameoff, t->b + t->ftab + foff + (t->v118 ? 4 : 8), 4);
	noff = t->names + (uint64_t)(uint32_t)nameoff;
	if (nameoff < 0 || noff >= t->size ||
	    !memchr(t->b + noff, 0, t->size - noff))
		return -1;
	*name = (const char *)t->b + noff;
	return 0;
}

static bool pcln_find(const struct pclntab *t, const char *name,
		      uint64_t *entry, uint64_t *size)
{
	uint64_t i, end;
	const char *fn;

	for (i = 0; i < t->nfunc; i++)
		if (!pcln_func(t, i, entry, &end, &fn) && !strcmp(fn, name)) {
			if (end <= *entry)
				return false;
			*size = end - *entry;
			return true;
		}
	return false;
}

/* Entry and RET instructions of a function, as file offsets. */
static int go_func_hooks(struct pt_elf *e, uint64_t addr, uint64_t size,
			 struct pt_go_func *f, char *why, size_t n)
{
	uint64_t at, off;
	cs_insn *insn = NULL;
	uint8_t *code;
	size_t count, i, decoded = 0;
	csh cs;
	int err = -1;

	f->entry_addr = addr;
	if (!size || size > (1 << 20) || pt_elf_offset(e, addr, &f->entry)) {
		snprintf(why, n, "function at %#llx is not in the file",
			 (unsigned long long)addr);
		return -1;
	}
	code = pt_xcalloc(1, size);
	if (read_at(e, addr, code, size)) {
		snprintf(why, n, "cannot read the function at %#llx",
			 (unsigned long long)addr);
		goto out;
	}
	/*
	 * Go 1.17+ code begins with its stack check, CMPQ 0x10(R14), SP or,
	 * for a large frame, LEAQ -x(SP), R12 first: a uprobe anywhere but
	 * on an instruction would break the program, so anything else is
	 * refused.
	 */
	if (size < 8 || (memcmp(code, "\x49\x3b\x66\x10", 4) &&
			 memcmp(code, "\x4c\x8d\x64\x24", 4) &&
			 memcmp(code, "\x4c\x8d\xa4\x24", 4))) {
		snprintf(why, n, "the function at %#llx does not begin as Go code does",
			 (unsigned long long)addr);
		goto out;
	}
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
		snprintf(why, n, "capstone: cannot open an x86-64 disassembler");
		goto out;
	}
	/* the entry probe on the stack check's jump, which is emulated */
	at = pt_probe_point(code, size, addr, PT_KEEP_GO);
	if (at && !pt_elf_offset(e, at, &off)) {
		f->entry_addr = at;
		f->entry = off;
		f->entry_emulated = true;
	}
	count = cs_disasm(cs, code, size, addr, 0, &insn);
	f->nrets = 0;
	for (i = 0; i < count; i++) {
		decoded += insn[i].size;
		if (insn[i].id != X86_INS_RET)
			continue;
		if (f->nrets == PT_GO_MAX_RETS ||
		    pt_elf_offset(e, insn[i].address, &f->rets[f->nrets])) {
			snprintf(why, n, "too many returns");
			goto freed;
		}
		f->ret_addrs[f->nrets++] = insn[i].address;
	}
	/* what did not decode can only be the padding after the last RET */
	if (!f->nrets) {
		snprintf(why, n, "no RET found in the function at %#llx",
			 (unsigned long long)addr);
		goto freed;
	}
	for (i = decoded; i < size; i++)
		if (code[i] != 0xcc && code[i] != 0x00)
			break;
	if (i < size) {
		snprintf(why, n, "could not decode the function at %#llx",
			 (unsigned long long)addr);
		goto freed;
	}
	err = 0;
freed:
	cs_free(insn, count);
	cs_close(&cs);
out:
	free(code);
	return err;
}

/*
 * Where the socket is, from a *tls.Conn: conn net.Conn is its first field
 * (an interface: the data word at 8); *net.TCPConn holds conn{fd *netFD}
 * at 0; netFD begins with poll.FD, whose Sysfd follows a 16-byte fdMutex.
 * The same from Go 1.17 (the register ABI) to 1.24.
 */
static int go_offsets(const char *version, uint64_t *offsets)
{
	unsigned int major, minor;

	if (sscanf(version, "go%u.%u", &major, &minor) != 2 || major != 1 ||
	    minor < 17 || minor > 24)
		return -1;
	*offsets = 8 | 0 << 8 | 16 << 16;
	return 0;
}

uint64_t pt_go_cookie(const struct pt_go_tls *g, uint64_t addr)
{
	int64_t rel = g->tcpconn_type ? (int64_t)(g->tcpconn_type - addr) : 0;

	if (rel >= (1ll << 39) || rel < -(1ll << 39))
		rel = 0;	/* too far to say: never joined */
	return g->offsets | (uint64_t)rel << 24;
}

/* A function by symbol, else through the pclntab. */
static bool go_func(struct pt_elf *e, const struct pclntab *t, bool have_pcln,
		    const char *name, uint64_t *addr, uint64_t *size)
{
	return (pt_elf_func(e, name, addr, size) && *size) ||
	       (have_pcln && pcln_find(t, name, addr, size));
}

/*
 * The type descriptor of *net.TCPConn, from the itab of (net.Conn,
 * *net.TCPConn) among those .itablink lists: its methods (fun, from 24)
 * in net.Conn's order begin Close, LocalAddr, Read and end Write, each
 * *net.TCPConn's; its interface has 8 methods (interfacetype's method
 * slice length, at 64); its type is at 8. Any interface holding a
 * *net.TCPConn has an itab with that type.
 */
static uint64_t go_tcpconn_type(struct pt_elf *e, const struct pclntab *t,
				bool have_pcln)
{
	static const char *const m[3] = {
		"net.(*TCPConn).Close", "net.(*TCPConn).Read",
		"net.(*TCPConn).Write",
	};
	uint64_t want[3], size, links;
	const uint8_t *b;
	size_t n, i, k;

	for (k = 0; k < 3; k++)
		if (!go_func(e, t, have_pcln, m[k], &want[k], &size))
			return 0;
	b = section_data(e, ".itablink", &links, &n);
	if (!b)
		b = section_data(e, ".data.rel.ro.itablink", &links, &n);
	for (i = 0; b && i + 8 <= n; i += 8) {
		uint64_t itab = word(b + i), fun[8], inter, nm, type;

		if (read_at(e, itab + 24, fun, sizeof(fun)) ||
		    fun[0] != want[0] || fun[2] != want[1] || fun[7] != want[2] ||
		    read_at(e, itab, &inter, 8) || read_at(e, inter + 64, &nm, 8) ||
		    nm != 8 || read_at(e, itab + 8, &type, 8))
			continue;
		return type;
	}
	return 0;
}

int pt_go_tls_find(struct pt_elf *e, struct pt_go_tls *g, char *why, size_t n)
{
	static const char *names[2] = {
		"crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read",
	};
	struct pt_go_func *fs[2] = { &g->write, &g->read };
	uint64_t addr[2], size[2];
	size_t n_sym;
	struct pclntab t;
	bool have_pcln;
	int i;

	memset(g, 0, sizeof(*g));
	have_pcln = !pcln_open(e, &t);
	if (go_version(e, g->version, sizeof(g->version)) && !have_pcln)
		return 0;	/* not Go */
	if (!have_pcln && !pt_elf_func(e, names[0], &addr[0], &size[0])) {
		if (section_data(e, ".symtab", &addr[1], &n_sym))
			return 0;	/* its symbols say: no crypto/tls */
		snprintf(why, n, "no symbols and no pclntab podtap can read");
		return -1;
	}
	for (i = 0; i < 2; i++) {
		if (pt_elf_func(e, names[i], &addr[i], &size[i]) && size[i])
			;
		else if (have_pcln && pcln_find(&t, names[i], &addr[i], &size[i]))
			g->from_pclntab = true;
		else
			return 0;	/* no crypto/tls in it */
	}
	if (!g->version[0]) {
		snprintf(why, n, "no Go version in .go.buildinfo");
		return -1;
	}
	if (go_offsets(g->version, &g->offsets)) {
		snprintf(why, n, "%s: podtap knows Go 1.17 (the register ABI) to 1.24",
			 g->version);
		return -1;
	}
	for (i = 0; i < 2; i++)
		if (go_func_hooks(e, addr[i], size[i], fs[i], why, n))
			return -1;
	g->tcpconn_type = go_tcpconn_type(e, &t, have_pcln);
	return 1;
}

/*
 * Where a uprobe costs least. At a probe the kernel emulates a push of a
 * register and a call, jmp or jcc with a displacement; any other
 * instruction it single-steps out of line, which takes a second trap: on
 * this project's machine that took one probe from 0.5 us to 17 us (bench,
 * docs/benchmarks.md). So a probe goes on the first such instruction of
 * the function's straight-line start before which neither rsp nor any
 * register the program reads has been written: the arguments are as the
 * caller passed them, and the return address is on top of the stack, as
 * a return probe needs it.
 */
_Static_assert(X86_REG_R15 - X86_REG_R8 == 7 &&
	       X86_REG_R15B - X86_REG_R8B == 7 &&
	       X86_REG_R15D - X86_REG_R8D == 7 &&
	       X86_REG_R15W - X86_REG_R8W == 7,
	       "capstone numbers r8-r15 and their parts in order");

static int gpr(unsigned int r)
{
	switch (r) {
	case X86_REG_RAX: case X86_REG_EAX: case X86_REG_AX:
	case X86_REG_AL: case X86_REG_AH:
		return PT_RAX;
	case X86_REG_RCX: case X86_REG_ECX: case X86_REG_CX:
	case X86_REG_CL: case X86_REG_CH:
		return PT_RCX;
	case X86_REG_RDX: case X86_REG_EDX: case X86_REG_DX:
	case X86_REG_DL: case X86_REG_DH:
		return PT_RDX;
	case X86_REG_RBX: case X86_REG_EBX: case X86_REG_BX:
	case X86_REG_BL: case X86_REG_BH:
		return PT_RBX;
	case X86_REG_RSP: case X86_REG_ESP: case X86_REG_SP:
	case X86_REG_SPL:
		return PT_RSP;
	case X86_REG_RBP: case X86_REG_EBP: case X86_REG_BP:
	case X86_REG_BPL:
		return PT_RBP;
	case X86_REG_RSI: case X86_REG_ESI: case X86_REG_SI:
	case X86_REG_SIL:
		return PT_RSI;
	case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI:
	case X86_REG_DIL:
		return PT_RDI;
	}
	if (r >= X86_REG_R8 && r <= X86_REG_R15)
		return PT_R8 + (int)(r - X86_REG_R8);
	if (r >= X86_REG_R8B && r <= X86_REG_R15B)
		return PT_R8 + (int)(r - X86_REG_R8B);
	if (r >= X86_REG_R8D && r <= X86_REG_R15D)
		return PT_R8 + (int)(r - X86_REG_R8D);
	if (r >= X86_REG_R8W && r <= X86_REG_R15W)
		return PT_R8 + (int)(r - X86_REG_R8W);
	return -1;
}

/* Does the kernel emulate this instruction at a probe? (x86 uprobes'
 * branch and push emulation; no prefixes but REX.B on a push.) */
static bool emulated(const cs_insn *in)
{
	const uint8_t *b = in->bytes;

	if (in->size == 1 && b[0] >= 0x50 && b[0] <= 0x57)
		return true;			/* push reg */
	if (in->size == 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57)
		return true;			/* push r8-r15 */
	if ((in->size == 5 && (b[0] == 0xe8 || b[0] == 0xe9)) ||
	    (in->size == 2 && (b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f))))
		return true;			/* call, jmp, jcc */
	return in->size == 6 && b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f;
}

/*
 * Registers an instruction before a probe point writes, as bits of gpr();
 * all for one podtap does not walk past. Only plain moves, loads of an
 * address, tests and arithmetic, whose writes capstone lists in full
 * (it lists none for enter, nor cmpxchg's write of rax).
 */
static uint32_t writes(csh cs, const cs_insn *in)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr, i;
	uint32_t m = 0;

	switch (in->id) {
	case X86_INS_ENDBR64: case X86_INS_NOP:
	case X86_INS_MOV: case X86_INS_MOVABS: case X86_INS_MOVZX:
	case X86_INS_MOVSX: case X86_INS_MOVSXD: case X86_INS_LEA:
	case X86_INS_TEST: case X86_INS_CMP: case X86_INS_XOR:
	case X86_INS_AND: case X86_INS_OR: case X86_INS_ADD:
	case X86_INS_SUB:
		break;
	default:
		return ~0u;
	}
	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return ~0u;
	for (i = 0; i < nwr; i++) {
		int r = gpr(wr[i]);

		if (r >= 0)
			m |= 1u << r;
	}
	return m;
}

/*
 * Walks the straight-line start of code (at addr): the address of the
 * first emulated instruction with nothing in keep | rsp written before it
 * (call_only: the first call, rsp may move), 0 if none. *target: that
 * instruction's destination, for a call.
 */
static uint64_t straight_start(const uint8_t *code, size_t len, uint64_t addr,
			       uint32_t keep, bool call_only, uint64_t *target)
{
	uint64_t at = 0;
	cs_insn *in = NULL;
	size_t count, i;
	uint32_t dirty = 0;
	csh cs;

	if (!call_only)
		keep |= PT_R(RSP);
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	count = cs_disasm(cs, code, len, addr, 16, &in);
	for (i = 0; i < count && !(dirty & keep); i++) {
		const cs_x86 *x = &in[i].detail->x86;
		bool call = in[i].id == X86_INS_CALL;

		if ((!call_only || call) && emulated(&in[i])) {
			at = in[i].address;
			if (target && x->op_count == 1 &&
			    x->operands[0].type == X86_OP_IMM)
				*target = (uint64_t)x->operands[0].imm;
			break;
		}
		/* a branch podtap cannot follow ends the straight line */
		if (cs_insn_group(cs, &in[i], CS_GRP_JUMP) ||
		    cs_insn_group(cs, &in[i], CS_GRP_CALL) ||
		    cs_insn_group(cs, &in[i], CS_GRP_RET) ||
		    cs_insn_group(cs, &in[i], CS_GRP_INT))
			break;
		dirty |= writes(cs, &in[i]);
	}
	cs_free(in, count);
	cs_close(&cs);
	return at;
}

/*
 * Does a direct branch of code land in (addr, at]? A probe there would be
 * hit again by the same call (and a return probe set up twice).
 */
static bool branched_into(const uint8_t *code, size_t len, uint64_t addr,
			  uint64_t at)
{
	const uint8_t *p = code;
	uint64_t a = addr;
	size_t left = len;
	bool into = false;
	cs_insn *in;
	csh cs;

	if (at == addr)
		return false;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return true;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(cs);
	while (!into && left && cs_disasm_iter(cs, &p, &left, &a, in)) {
		const cs_x86 *x = &in->detail->x86;

		if ((cs_insn_group(cs, in, CS_GRP_JUMP) ||
		     cs_insn_group(cs, in, CS_GRP_CALL)) &&
		    x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
		    (uint64_t)x->operands[0].imm > addr &&
		    (uint64_t)x->operands[0].imm <= at)
			into = true;
	}
	cs_free(in, 1);
	cs_close(&cs);
	return into;
}

uint64_t pt_probe_point(const uint8_t *code, size_t len, uint64_t addr,
			uint32_t keep)
{
	uint64_t at = straight_start(code, len, addr, keep, false, NULL);

	return at && !branched_into(code, len, addr, at) ? at : 0;
}

/*
 * The code of a function at addr, for the walks above: all of it up to
 * CODE_MAX bytes, or 64 if its size is not known; 0 if none.
 */
#define CODE_MAX	4096
static size_t code_at(struct pt_elf *e, uint64_t addr, uint64_t size,
		      uint8_t *buf, size_t cap)
{
	size_t len = size ? (size < cap ? size : cap) : (cap < 64 ? cap : 64);

	while (len && read_at(e, addr, buf, len))
		len /= 2;	/* near the end of the segment */
	return len;
}

uint64_t pt_elf_probe_point(struct pt_elf *e, uint64_t addr, uint64_t size,
			    uint32_t keep)
{
	uint8_t code[CODE_MAX];
	size_t len = code_at(e, addr, size, code, sizeof(code));

	return len ? pt_probe_point(code, len, addr, keep) : 0;
}

/* Is addr in the named section (a function of .text, not a PLT stub)? */
static bool in_section(struct pt_elf *e, const char *name, uint64_t addr)
{
	GElf_Shdr sh;

	return section(e, name, &sh) && addr >= sh.sh_addr &&
	       addr - sh.sh_addr < sh.sh_size;
}

/* Does the instruction set rcx to an address on the stack? */
static bool rcx_to_stack(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	if (x->op_count != 2 || x->operands[0].type != X86_OP_REG ||
	    x->operands[0].reg != X86_REG_RCX)
		return false;
	if (in->id == X86_INS_MOV)
		return x->operands[1].type == X86_OP_REG &&
		       x->operands[1].reg == X86_REG_RSP;
	return in->id == X86_INS_LEA && x->operands[1].type == X86_OP_MEM &&
	       x->operands[1].mem.base == X86_REG_RSP &&
	       x->operands[1].mem.index == X86_REG_INVALID;
}

/*
 * The function SSL_read's first direct call goes to, if it is passed an
 * address on SSL_read's stack in rcx (&readbytes) as its fourth argument;
 * 0 if not.
 */
static uint64_t plain_call(struct pt_elf *e, uint64_t addr, uint64_t size)
{
	uint64_t target = 0;
	cs_insn *in = NULL;
	uint8_t code[64];
	size_t len = code_at(e, addr, size, code, sizeof(code)), count, i;
	bool rcx_stack = false;
	csh cs;

	if (!len || cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	count = cs_disasm(cs, code, len, addr, 0, &in);
	for (i = 0; i < count; i++) {
		const cs_x86 *x = &in[i].detail->x86;

		if (in[i].id == X86_INS_CALL) {
			if (rcx_stack && x->op_count == 1 &&
			    x->operands[0].type == X86_OP_IMM)
				target = (uint64_t)x->operands[0].imm;
			break;
		}
		if (writes(cs, &in[i]) & PT_R(RCX))
			rcx_stack = rcx_to_stack(&in[i]);
	}
	cs_free(in, count);
	cs_close(&cs);
	return target;
}

/*
 * OpenSSL's SSL_read and SSL_read_ex (and the write pair) are wrappers of
 * one internal function with the _ex form's arguments and result:
 * ssl_read_internal(s, buf, num, &readbytes). Known by the structure, not
 * guessed: SSL_read_ex passes its four arguments to it untouched by its
 * first call, and SSL_read's first call is to the same function, in
 * .text (a call to a PLT stub is to another file), with an address on
 * SSL_read's stack for the count. The caller checks the
 * read and write pairs lead to two functions: in a build for profiling
 * both would first call mcount.
 */
bool pt_elf_ssl_inner(struct pt_elf *e, const char *ex, const char *plain,
		      uint64_t *addr)
{
	uint64_t a, sz, x = 0, off;
	uint8_t code[64];
	size_t len;

	if (!pt_elf_func(e, ex, &a, &sz) ||
	    !(len = code_at(e, a, sz, code, sizeof(code))) ||
	    !straight_start(code, len, a, PT_KEEP_SYSV, true, &x) ||
	    !x || !pt_elf_func(e, plain, &a, &sz) || plain_call(e, a, sz) != x ||
	    pt_elf_offset(e, x, &off) || !in_section(e, ".text", x))
		return false;
	*addr = x;
	return true;
}
