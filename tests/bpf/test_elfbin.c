// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What podtap finds to hook in a binary (capture/elfbin.c), checked
 * against the file's own bytes: a function found by symbol is where this
 * process runs it; Go's (*Conn).Read and Write, found by symbol and
 * through the pclntab in a build without symbols, begin with Go's stack
 * check and every hook at a return is a RET. Then the Go binary with
 * random bytes of its pclntab and build info changed, and cut short:
 * always an answer, never a crash or an offset outside the file. And
 * OpenSSL's version text, found as OpenSSL_version() gives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <openssl/crypto.h>
#include "capture/elfbin.h"
#include "test_progs.h"

static char tmp[] = "/tmp/podtap-elfbin.XXXXXX";

void test_elfbin(void);

/* Byte at a file offset; -1 past the end. */
static int byte_at(const char *path, uint64_t off)
{
	unsigned char b;
	int fd = open(path, O_RDONLY), r;

	if (fd < 0)
		return -1;
	r = pread(fd, &b, 1, (off_t)off) == 1 ? b : -1;
	close(fd);
	return r;
}

/*
 * Each hook on the code: an entry on the jump of Go's stack check, just
 * after its CMPQ 0x10(R14), SP (or R12, after LEAQ -x(SP), R12 for a
 * large frame), where the kernel emulates the probed instruction; each
 * return hook a RET.
 */
static bool go_hooks_valid(const char *path, const struct pt_go_tls *g)
{
	const struct pt_go_func *fs[2] = { &g->write, &g->read };
	size_t i, r;

	for (i = 0; i < 2; i++) {
		uint64_t at = fs[i]->entry;
		int rex = byte_at(path, at - 4), jb = byte_at(path, at);

		if (!fs[i]->entry_emulated || at < 4 ||
		    (rex != 0x49 && rex != 0x4d) ||
		    byte_at(path, at - 3) != 0x3b ||
		    byte_at(path, at - 2) != 0x66 ||
		    byte_at(path, at - 1) != 0x10 ||
		    (jb != 0x76 && (jb != 0x0f || byte_at(path, at + 1) != 0x86)) ||
		    !fs[i]->nrets)
			return false;
		for (r = 0; r < fs[i]->nrets; r++)
			if (byte_at(path, fs[i]->rets[r]) != 0xc3)
				return false;
	}
	return true;
}

static void test_symbols(void)
{
	char why[160];
	struct pt_elf *e;
	struct pt_go_tls g;
	uint64_t addr, size, off;
	unsigned char file[16];
	int fd;

	if (!ASSERT_OK(pt_elf_open(&e, "/proc/self/exe", why, sizeof(why)),
		       "open this program"))
		return;
	if (ASSERT_TRUE(pt_elf_func(e, "test_elfbin", &addr, &size),
			"find test_elfbin by symbol") &&
	    ASSERT_OK(pt_elf_offset(e, addr, &off), "its file offset")) {
		/* the same bytes in the file as where this process runs it */
		fd = open("/proc/self/exe", O_RDONLY);
		ASSERT_EQ(pread(fd, file, sizeof(file), (off_t)off),
			  (ssize_t)sizeof(file), "read the file there");
		close(fd);
		ASSERT_OK(memcmp(file, (const void *)test_elfbin, sizeof(file)),
			  "file bytes are the code run");
	}
	ASSERT_FALSE(pt_elf_func(e, "no_such_function_here", &addr, &size),
		     "a name not in it");
	ASSERT_EQ(pt_go_tls_find(e, &g, why, sizeof(why)), 0, "not a Go program");
	pt_elf_close(e);

	fd = open("/tmp/podtap-elfbin.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (ASSERT_TRUE(fd >= 0 && write(fd, "#!/bin/sh\n", 10) == 10, "a script")) {
		ASSERT_EQ(pt_elf_open(&e, "/tmp/podtap-elfbin.txt", why,
				      sizeof(why)), -EINVAL, "a text file");
		ASSERT_OK(strcmp(why, "not an ELF file"), "said why");
	}
	if (fd >= 0)
		close(fd);
	unlink("/tmp/podtap-elfbin.txt");
	ASSERT_EQ(pt_elf_open(&e, "/no/such/file", why, sizeof(why)), -ENOENT,
		  "a missing file");
}

static int build(const char *flags, const char *out)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "cd tests/peers/gotls && GOCACHE=%s/cache GOPATH=%s/gopath "
		 "GOFLAGS=-mod=mod CGO_ENABLED=0 go build %s -o %s/%s . 2>&1",
		 tmp, tmp, flags, tmp, out);
	return system(cmd);
}

static int find(const char *name, struct pt_go_tls *g, char *why, size_t n)
{
	char path[256];
	struct pt_elf *e;
	int r;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	if (pt_elf_open(&e, path, why, n))
		return -2;
	r = pt_go_tls_find(e, g, why, n);
	pt_elf_close(e);
	return r;
}

/* Change random bytes of [from, from + len) of a copy, or cut it short. */
static void damage(const char *src, const char *dst, uint64_t from,
		   uint64_t len, unsigned int seed, bool cut)
{
	struct stat st;
	unsigned char *b;
	int fd = open(src, O_RDONLY), i;

	fstat(fd, &st);
	b = malloc(st.st_size);
	if (pread(fd, b, st.st_size, 0) != st.st_size)
		memset(b, 0, st.st_size);
	close(fd);
	srand(seed);
	for (i = 0; i < 8; i++)
		b[from + (uint64_t)rand() % len] = (unsigned char)rand();
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (write(fd, b, cut ? (size_t)rand() % st.st_size : (size_t)st.st_size) < 0)
		perror("write");
	close(fd);
	free(b);
}

/* Offset and size of a section, by readelf. */
static bool section_of(const char *path, const char *name, uint64_t *off,
		       uint64_t *size)
{
	char cmd[512];
	unsigned long long o = 0, s = 0;
	FILE *f;
	int n;

	snprintf(cmd, sizeof(cmd), "readelf -SW %s | awk '{ for (i = 1; i < NF; i++) "
		 "if ($i == \"%s\") print $(i + 3), $(i + 4) }'", path, name);
	f = popen(cmd, "r");
	n = f ? fscanf(f, "%llx %llx", &o, &s) : 0;
	if (f)
		pclose(f);
	*off = o;
	*size = s;
	return n == 2 && s;
}

static void test_go(void)
{
	struct pt_go_tls plain, nosym, stripped, pie, g;
	char why[160], path[256], src[256];
	uint64_t off, size;
	unsigned int i, answers = 0, found = 0;

	if (system("command -v go >/dev/null 2>&1") ||
	    access("tests/peers/gotls/main.go", R_OK)) {
		test__skip("no go (make deps installs golang-go), or not run from the tree");
		return;
	}
	if (!ASSERT_TRUE(mkdtemp(tmp) != NULL, "temporary directory") ||
	    !ASSERT_OK(build("", "plain"), "go build") ||
	    !ASSERT_OK(build("-ldflags='-s -w'", "stripped"), "go build -s -w") ||
	    !ASSERT_OK(build("-buildmode=pie -ldflags='-s -w'", "pie"),
		       "go build -buildmode=pie"))
		goto out;
	snprintf(path, sizeof(path), "objcopy --strip-all %s/plain %s/nosym", tmp, tmp);
	ASSERT_OK(system(path), "objcopy --strip-all");

	ASSERT_EQ(find("plain", &plain, why, sizeof(why)), 1, "plain build");
	ASSERT_FALSE(plain.from_pclntab, "plain: by symbol");
	ASSERT_OK(strncmp(plain.version, "go1.", 4), "plain: Go version");
	ASSERT_EQ(find("nosym", &nosym, why, sizeof(why)), 1, "no symbols");
	ASSERT_TRUE(nosym.from_pclntab, "no symbols: through the pclntab");
	/* the same functions, whichever way they were found */
	ASSERT_EQ(nosym.read.entry, plain.read.entry, "same Read entry");
	ASSERT_EQ(nosym.write.nrets, plain.write.nrets, "same Write returns");
	ASSERT_EQ(nosym.write.rets[0], plain.write.rets[0], "same first RET");
	/* *net.TCPConn's type, from its itab found by its methods: the same */
	ASSERT_NEQ(plain.tcpconn_type, 0, "plain: *net.TCPConn's type");
	ASSERT_EQ(nosym.tcpconn_type, plain.tcpconn_type, "no symbols: the same type");
	ASSERT_EQ(find("stripped", &stripped, why, sizeof(why)), 1, "stripped");
	ASSERT_EQ(find("pie", &pie, why, sizeof(why)), 1, "stripped PIE");
	ASSERT_NEQ(stripped.tcpconn_type, 0, "stripped: *net.TCPConn's type");
	ASSERT_NEQ(pie.tcpconn_type, 0, "PIE: *net.TCPConn's type");
	snprintf(path, sizeof(path), "%s/plain", tmp);
	ASSERT_TRUE(go_hooks_valid(path, &plain), "plain: hooks on the code");
	snprintf(path, sizeof(path), "%s/stripped", tmp);
	ASSERT_TRUE(go_hooks_valid(path, &stripped), "stripped: hooks on the code");
	snprintf(path, sizeof(path), "%s/pie", tmp);
	ASSERT_TRUE(go_hooks_valid(path, &pie), "PIE: hooks on the code");

	/* damaged copies of the stripped build: any answer but a crash */
	snprintf(src, sizeof(src), "%s/stripped", tmp);
	snprintf(path, sizeof(path), "%s/damaged", tmp);
	if (!ASSERT_TRUE(section_of(src, ".gopclntab", &off, &size), "pclntab"))
		goto out;
	for (i = 0; i < 300; i++) {
		uint64_t o = off, s = i % 3 ? 4096 : size;

		if (i % 5 == 4 && section_of(src, ".go.buildinfo", &o, &s))
			;
		damage(src, path, o, s, i, i % 7 == 6);
		switch (find("damaged", &g, why, sizeof(why))) {
		case 1:
			answers++;
			found++;
			if (!go_hooks_valid(path, &g)) {
				ASSERT_TRUE(false, "hooks found in a damaged file are on code");
				goto out;
			}
			break;
		case 0: case -1: case -2:
			answers++;
			break;
		}
	}
	ASSERT_EQ(answers, 300, "an answer for each damaged copy");
	/* both ways taken: damage that matters, and damage that does not */
	ASSERT_GT(found, 0, "some damaged copies still hooked");
	ASSERT_LT(found, 300, "some damaged copies refused");
out:
	snprintf(path, sizeof(path), "rm -rf %s", tmp);
	if (system(path))
		perror("rm");
}

/* Where a probe goes in code given as bytes; 0 for nowhere. */
static uint64_t point(const char *hex, uint32_t keep)
{
	uint8_t code[32];
	size_t n = 0;

	while (hex[0] && hex[1] && n < sizeof(code)) {
		unsigned int b;

		if (hex[0] == ' ') {
			hex++;
			continue;
		}
		if (sscanf(hex, "%2x", &b) != 1)
			break;
		code[n++] = (uint8_t)b;
		hex += 2;
	}
	return pt_probe_point(code, n, 0x1000, keep);
}

/*
 * Probes go on instructions the kernel emulates, before anything the
 * programs read is changed; and OpenSSL's inner read and write functions
 * are found by the structure of SSL_read_ex and SSL_read.
 */
/* The file this process maps whose path has name in it (test_progs
 * links libssl and libcrypto), or "". */
static void mapped(const char *name, char *out, size_t n)
{
	char line[PATH_MAX + 128];
	FILE *m = fopen("/proc/self/maps", "re");

	out[0] = 0;
	while (m && fgets(line, sizeof(line), m)) {
		char *p = strchr(line, '/');

		if (p && strstr(p, name)) {
			p[strcspn(p, "\n")] = 0;
			snprintf(out, n, "%s", p);
			break;
		}
	}
	if (m)
		fclose(m);
}

static void test_points(void)
{
	uint64_t rd, wr, addr, size;
	char lib[PATH_MAX], why[160];
	struct pt_elf *e;

	ASSERT_EQ(point("4155 4154", PT_KEEP_SYSV), 0x1000, "push r13 at the entry");
	ASSERT_EQ(point("f30f1efa 55 4889e5", PT_KEEP_SYSV), 0x1004,
		  "push rbp after endbr64");
	ASSERT_EQ(point("4883ec08 e800000000", PT_KEEP_SYSV), 0,
		  "not after rsp moved: the return address is not on top");
	ASSERT_EQ(point("4889c7 53", PT_KEEP_SYSV), 0, "not after rdi changed");
	ASSERT_EQ(point("488b4730 4885c0 7405", PT_KEEP_SYSV), 0x1007,
		  "a jcc after rax changed (not an argument)");
	ASSERT_EQ(point("c3", PT_KEEP_SYSV), 0, "not past a ret");
	ASSERT_EQ(point("ffe0 55", PT_KEEP_SYSV), 0, "not past an indirect jmp");
	ASSERT_EQ(point("90 c3", PT_KEEP_SYSV), 0, "a nop, then a ret: nowhere");
	ASSERT_EQ(point("4850 55", PT_KEEP_SYSV), 0,
		  "a push with REX.W is not taken, and moved rsp");
	ASSERT_EQ(point("c8080000 55", PT_KEEP_SYSV), 0,
		  "not past enter, whose rsp write capstone does not list");
	ASSERT_EQ(point("0fb10f 7405", PT_KEEP_GO), 0,
		  "Go: not past cmpxchg, which writes AX");
	ASSERT_EQ(point("4883f800 7402 ebfa", PT_KEEP_SYSV), 0,
		  "not on a jcc that a later jump comes back to");
	ASSERT_EQ(point("493b6610 7620", PT_KEEP_GO), 0x1004,
		  "Go: on the stack check's jbe");
	ASSERT_EQ(point("4c8d6424f8 4d3b6610 0f8620000000", PT_KEEP_GO), 0x1009,
		  "Go, a large frame: on the jbe after LEAQ into R12");
	ASSERT_EQ(point("4889c3 493b6610 7620", PT_KEEP_GO), 0,
		  "Go: not after BX, an argument, changed");

	/* Debian's libssl3: /usr/lib/..., or /lib/... in the guests */
	mapped("/libssl.so.3", lib, sizeof(lib));
	if (!lib[0]) {
		test__skip("no libssl.so.3 mapped");
		return;
	}
	if (!ASSERT_OK(pt_elf_open(&e, lib, why, sizeof(why)), "open libssl"))
		return;
	ASSERT_TRUE(pt_elf_ssl_inner(e, "SSL_read_ex", "SSL_read", &rd),
		    "libssl: the read pair's inner function");
	ASSERT_TRUE(pt_elf_ssl_inner(e, "SSL_write_ex", "SSL_write", &wr),
		    "libssl: the write pair's inner function");
	ASSERT_NEQ(rd, wr, "two inner functions");
	ASSERT_EQ(pt_elf_probe_point(e, rd, 0, PT_KEEP_SYSV), rd,
		  "the read one's entry is emulated");
	ASSERT_EQ(pt_elf_probe_point(e, wr, 0, PT_KEEP_SYSV), wr,
		  "the write one's entry is emulated");
	ASSERT_FALSE(pt_elf_ssl_inner(e, "SSL_read_ex", "SSL_write", &addr),
		     "no inner function shared by SSL_read_ex and SSL_write");
	if (ASSERT_TRUE(pt_elf_func(e, "SSL_read", &addr, &size), "SSL_read"))
		ASSERT_EQ(pt_elf_probe_point(e, addr, size, PT_KEEP_SYSV), 0,
			  "SSL_read itself begins by moving rsp");
	pt_elf_close(e);
}

/*
 * An ELF file: /bin/sh (the kernel matrix's guests have it too), then
 * zeros to off, then the len bytes of text.
 */
static int elf_with(const char *dst, off_t off, const char *text, size_t len)
{
	char buf[65536];
	int in = open("/bin/sh", O_RDONLY), out;
	ssize_t n;

	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (in < 0 || out < 0)
		goto bad;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			goto bad;
	if (pwrite(out, text, len, off) != (ssize_t)len)
		goto bad;
	close(in);
	return close(out);
bad:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return -1;
}

/*
 * OpenSSL's version text: in the libcrypto this process runs (test_progs
 * links it), the same as OpenSSL_version() says; at the start of a string
 * only; found where it straddles two of the reader's 1 MiB windows.
 */
static void test_version(void)
{
	static const char text[] = "OpenSSL 9.8.7 1 Jan 2030";
	const char *f = "/tmp/podtap-elfbin.version";
	char crypto[PATH_MAX], why[160], v[48];
	struct pt_elf *e;

	mapped("/libcrypto.so", crypto, sizeof(crypto));
	if (ASSERT_TRUE(crypto[0], "libcrypto mapped") &&
	    ASSERT_OK(pt_elf_open(&e, crypto, why, sizeof(why)), crypto)) {
		if (ASSERT_TRUE(pt_elf_openssl_version(e, v, sizeof(v)),
				"libcrypto's version"))
			ASSERT_STREQ(v, OpenSSL_version(OPENSSL_VERSION),
				     "as OpenSSL_version() says");
		pt_elf_close(e);
	}
	if (ASSERT_OK(elf_with(f, (1 << 20) - 6, text, sizeof(text)), f) &&
	    ASSERT_OK(pt_elf_open(&e, f, why, sizeof(why)), f)) {
		if (ASSERT_TRUE(pt_elf_openssl_version(e, v, sizeof(v)),
				"across a window"))
			ASSERT_STREQ(v, text, "the whole text");
		pt_elf_close(e);
	}
	if (ASSERT_OK(elf_with(f, (1 << 20) - 7, "x" "OpenSSL 9.8.7", 14), f) &&
	    ASSERT_OK(pt_elf_open(&e, f, why, sizeof(why)), f)) {
		ASSERT_FALSE(pt_elf_openssl_version(e, v, sizeof(v)),
			     "not inside another string");
		pt_elf_close(e);
	}
	/* BoringSSL's OpenSSL_version() is its name, and only that */
	if (ASSERT_OK(elf_with(f, 4096, "BoringSSL rocks\0BoringSSL", 26), f) &&
	    ASSERT_OK(pt_elf_open(&e, f, why, sizeof(why)), f)) {
		if (ASSERT_TRUE(pt_elf_openssl_version(e, v, sizeof(v)),
				"BoringSSL's"))
			ASSERT_STREQ(v, "BoringSSL", "its name alone");
		pt_elf_close(e);
	}
	unlink(f);
}

void test_elfbin(void)
{
	if (test__start_subtest("version"))
		test_version();
	if (test__start_subtest("points"))
		test_points();
	if (test__start_subtest("symbols"))
		test_symbols();
	if (test__start_subtest("go"))
		test_go();
}
