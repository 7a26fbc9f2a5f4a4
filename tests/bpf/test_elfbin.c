// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What podtap finds to hook in a binary (capture/elfbin.c), checked
 * against the file's own bytes: a function found by symbol is where this
 * process runs it; Go's (*Conn).Read and Write, found by symbol and
 * through the pclntab in a build without symbols, begin with Go's stack
 * check and every hook at a return is a RET. Then the Go binary with
 * random bytes of its pclntab and build info changed, and cut short:
 * always an answer, never a crash or an offset outside the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
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
 * Each hook on the code: an entry that begins with Go's stack check
 * (CMPQ 0x10(R14), SP, or LEAQ -x(SP), R12 before it for a large frame),
 * each return hook a RET.
 */
static bool go_hooks_valid(const char *path, const struct pt_go_tls *g)
{
	static const unsigned char cmp[] = { 0x49, 0x3b, 0x66, 0x10 };
	static const unsigned char lea[] = { 0x4c, 0x8d, 0x64, 0x24 };
	const struct pt_go_func *fs[2] = { &g->write, &g->read };
	size_t i, r, k;

	for (i = 0; i < 2; i++) {
		bool is_cmp = true, is_lea = true;

		for (k = 0; k < sizeof(cmp); k++) {
			int b = byte_at(path, fs[i]->entry + k);

			is_cmp &= b == cmp[k];
			is_lea &= b == lea[k];
		}
		if ((!is_cmp && !is_lea) || !fs[i]->nrets)
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

void test_elfbin(void)
{
	if (test__start_subtest("symbols"))
		test_symbols();
	if (test__start_subtest("go"))
		test_go();
}
