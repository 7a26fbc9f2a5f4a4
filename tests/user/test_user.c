// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Capture file round trip, truncation at every byte, corruption of every
 * byte; reassembly by offset with duplicates, overlaps and gaps; option
 * parsing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "capfile/capfile.h"
#include "base/common.h"
#include "stream/conns.h"
#include "test_progs.h"

/* ---- records to write ---- */

static size_t make_data(uint8_t *buf, uint64_t conn, int dir, uint64_t off,
			uint32_t len, uint16_t flags)
{
	struct pt_data *d = (void *)buf;
	uint32_t i;

	memset(d, 0, sizeof(*d));
	d->h.type = PT_REC_DATA;
	d->h.flags = flags;
	d->h.size = sizeof(*d) + ((len + 7) & ~7u);
	d->h.ts_ns = 1000 + off;
	d->h.conn_id = conn;
	d->offset = off;
	d->len = len;
	d->cap_len = len;
	d->dir = dir;
	for (i = 0; i < len; i++)
		d->payload[i] = (uint8_t)(off + i);
	memset(d->payload + len, 0, d->h.size - sizeof(*d) - len);
	return d->h.size;
}

struct sink {
	uint8_t *buf;
	size_t len, cap;
	int n;
};

static int sink_cb(void *ctx, const struct pt_rec_hdr *h)
{
	struct sink *s = ctx;

	if (s->len + h->size > s->cap) {
		s->cap = (s->len + h->size) * 2;
		s->buf = pt_xrealloc(s->buf, s->cap, 1);
	}
	memcpy(s->buf + s->len, h, h->size);
	s->len += h->size;
	s->n++;
	return 0;
}

static char *tmpfile_path(void)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/podtap-unit-XXXXXX");
	fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	return path;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc(n + 1);
	if (fread(b, 1, n, f) != (size_t)n)
		n = 0;
	fclose(f);
	*len = n;
	return b;
}

/*
 * Writes three blocks of records, returns what the reader must give back
 * (all records, in order) and the record count of each block.
 */
static int write_sample(const char *path, struct sink *expect, int blk[3],
			bool finish)
{
	static uint8_t rec[70000];
	struct pt_capw *w;
	struct pt_conn_open o = {};
	int b, i, err;

	memset(expect, 0, sizeof(*expect));
	err = pt_capw_open(&w, path, "unit-host");
	if (err)
		return err;
	for (b = 0; b < 3; b++) {
		int before = expect->n;

		o.h.type = PT_REC_CONN_OPEN;
		o.h.size = sizeof(o);
		o.h.conn_id = 10 + b;
		o.t.lport = 80;
		o.t.rport = 40000 + b;
		o.t.family = 2;
		o.role = PT_ROLE_SERVER;
		snprintf(o.comm, sizeof(o.comm), "srv%d", b);
		pt_capw_add(w, &o.h, sizeof(o));
		sink_cb(expect, &o.h);
		for (i = 0; i < 5 + b; i++) {
			size_t n = make_data(rec, 10 + b, i & 1, i * 1000,
					     (uint32_t)(i * 997 + b) % 40000, 0);

			pt_capw_add(w, (void *)rec, n);
			sink_cb(expect, (void *)rec);
		}
		blk[b] = expect->n - before;
		if (pt_capw_flush(w))
			return -EIO;
	}
	if (finish)
		return pt_capw_close(w);
	pt_capw_abort(w);
	return 0;
}

void test_capfile_roundtrip(void)
{
	char *path = tmpfile_path();
	struct pt_capr_info info;
	struct sink exp, got = {};
	int blk[3];
	FILE *f;

	if (!ASSERT_OK(write_sample(path, &exp, blk, true), "write"))
		return;
	f = fopen(path, "rb");
	ASSERT_OK(pt_capr_read(f, sink_cb, &got, &info), "read");
	fclose(f);
	ASSERT_TRUE(info.clean_end, "clean end");
	ASSERT_EQ(info.blocks, 3, "blocks");
	ASSERT_EQ(got.n, exp.n, "records");
	ASSERT_TRUE(got.len == exp.len && !memcmp(got.buf, exp.buf, exp.len),
		    "records come back byte for byte");
	ASSERT_TRUE(!strcmp(info.hdr.host, "unit-host"), "host");
	free(exp.buf);
	free(got.buf);
	unlink(path);
}

/*
 * Files written before zstd hold zlib blocks: the same records re-stored
 * as zlib read the same. And a zstd frame that is not the size its header
 * says is damage, not records.
 */
void test_capfile_encodings(void)
{
	char *path = tmpfile_path();
	struct sink exp, got = {};
	struct pt_capr_info info;
	size_t len, off, o = 0;
	uint8_t *in, *out;
	int blk[3], zstd = 0;

	if (!ASSERT_OK(write_sample(path, &exp, blk, true), "write"))
		return;
	in = slurp(path, &len);
	out = pt_xcalloc(1, len * 2 + 4096);
	memcpy(out, in, sizeof(struct pt_file_hdr));
	o = off = sizeof(struct pt_file_hdr);
	while (off + sizeof(struct pt_block_hdr) <= len) {
		struct pt_block_hdr bh;
		uint8_t *raw = NULL;
		uLongf zl;

		memcpy(&bh, in + off, sizeof(bh));
		if (bh.encoding == PT_ENC_ZSTD) {
			raw = pt_xcalloc(1, bh.raw_len);
			zstd += ZSTD_decompress(raw, bh.raw_len, in + off + sizeof(bh),
						bh.stored_len) == bh.raw_len;
			zl = compressBound(bh.raw_len);
			compress2(out + o + sizeof(bh), &zl, raw, bh.raw_len, 1);
			bh.encoding = PT_ENC_ZLIB;
			bh.stored_len = (uint32_t)zl;
		} else {
			memcpy(out + o + sizeof(bh), in + off + sizeof(bh),
			       bh.stored_len);
		}
		bh.crc = 0;
		bh.crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)&bh, 20);
		bh.crc = (uint32_t)crc32(bh.crc, out + o + sizeof(bh), bh.stored_len);
		memcpy(out + o, &bh, sizeof(bh));
		off += sizeof(bh) + ((struct pt_block_hdr *)(in + off))->stored_len;
		o += sizeof(bh) + bh.stored_len;
		free(raw);
	}
	ASSERT_TRUE(zstd > 0, "this writer stores zstd blocks");
	ASSERT_OK(pt_capr_read_mem(out, o, sink_cb, &got, &info), "zlib blocks read");
	ASSERT_TRUE(got.len == exp.len && !memcmp(got.buf, exp.buf, exp.len),
		    "zlib blocks give the same records");
	free(got.buf);
	/* one byte of a zstd frame's content size changed: damaged */
	memset(&got, 0, sizeof(got));
	off = sizeof(struct pt_file_hdr);
	while (((struct pt_block_hdr *)(in + off))->encoding != PT_ENC_ZSTD)
		off += sizeof(struct pt_block_hdr) +
		       ((struct pt_block_hdr *)(in + off))->stored_len;
	((struct pt_block_hdr *)(in + off))->raw_len -= 8;
	{
		struct pt_block_hdr *h = (void *)(in + off);

		h->crc = 0;
		h->crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)h, 20);
		h->crc = (uint32_t)crc32(h->crc, in + off + sizeof(*h), h->stored_len);
	}
	ASSERT_EQ(pt_capr_read_mem(in, len, sink_cb, &got, &info), -EBADMSG,
		  "a frame of another size than the header says is damage");
	ASSERT_TRUE(strstr(info.error, "decompress") != NULL, "and says so");
	free(got.buf);
	free(exp.buf);
	free(in);
	free(out);
	unlink(path);
}

/* The encodings of a file's record blocks, in order: 'z' zstd, 'r' raw. */
static int block_encodings(const char *path, char *out, size_t n)
{
	size_t len, off = sizeof(struct pt_file_hdr), k = 0;
	uint8_t *in = slurp(path, &len);

	while (in && off + sizeof(struct pt_block_hdr) <= len && k + 1 < n) {
		const struct pt_block_hdr *bh = (const void *)(in + off);

		if (bh->type == PT_BLOCK_RECORDS)
			out[k++] = bh->encoding == PT_ENC_ZSTD ? 'z' : 'r';
		off += sizeof(*bh) + bh->stored_len;
	}
	out[k] = 0;
	free(in);
	return in ? 0 : -1;
}

/*
 * Blocks of text are compressed; a block of random bytes is stored as it
 * is, and so are the blocks after it for a while (compressing what does
 * not compress costs more than the rest of the recorder); records come
 * back the same either way.
 */
void test_capfile_backoff(void)
{
	char *path = tmpfile_path(), enc[16];
	struct sink got = {};
	struct pt_capr_info info;
	struct pt_capw *w;
	struct pt_data *d = calloc(1, sizeof(*d) + 32768);
	uint64_t x = 88172645463325252ull;
	size_t i, k;
	FILE *f;

	if (!ASSERT_OK(pt_capw_open(&w, path, "unit-host"), "open"))
		return;
	d->h.type = PT_REC_DATA;
	d->h.size = sizeof(*d) + 32768;
	d->len = d->cap_len = 32768;
	for (k = 0; k < 3; k++) {	/* text, random, text */
		for (i = 0; i < 40; i++) {
			size_t j;

			for (j = 0; j < 32768; j++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				d->payload[j] = k == 1 ? (uint8_t)x :
						"GET /items HTTP/1.1\r\n"[j % 21];
			}
			d->h.conn_id = i + 1;
			pt_capw_add(w, &d->h, d->h.size);
		}
		pt_capw_flush(w);
	}
	ASSERT_OK(pt_capw_close(w), "close");
	free(d);
	ASSERT_OK(block_encodings(path, enc, sizeof(enc)), "blocks");
	/* 1.25 MiB a part: two blocks each (FLUSH_AT is 1 MiB) */
	ASSERT_STREQ(enc, "zzrrrr", "text compressed, random not, nor what follows for a while");
	f = fopen(path, "rb");
	ASSERT_OK(pt_capr_read(f, sink_cb, &got, &info), "read");
	fclose(f);
	ASSERT_EQ(got.n, 120, "every record back");
	free(got.buf);
	unlink(path);
}

void test_capfile_unfinished(void)
{
	char *path = tmpfile_path();
	struct pt_capr_info info;
	struct sink exp, got = {};
	int blk[3];
	FILE *f;

	/* a recorder still running (or killed): no END block */
	if (!ASSERT_OK(write_sample(path, &exp, blk, false), "write"))
		return;
	f = fopen(path, "rb");
	ASSERT_OK(pt_capr_read(f, sink_cb, &got, &info), "read");
	fclose(f);
	ASSERT_TRUE(!info.clean_end, "not marked finished");
	ASSERT_EQ(got.n, exp.n, "every flushed record readable");
	free(exp.buf);
	free(got.buf);
	unlink(path);
}

void test_capfile_truncation(void)
{
	char *path = tmpfile_path();
	struct pt_capr_info info;
	struct sink exp;
	uint8_t *file;
	size_t len, cut, fails = 0;
	int blk[3];

	if (!ASSERT_OK(write_sample(path, &exp, blk, true), "write"))
		return;
	file = slurp(path, &len);
	for (cut = 0; cut < len; cut++) {
		struct sink got = {};
		int err = pt_capr_read_mem(file, cut, sink_cb, &got, &info);
		/* whole blocks before the cut are delivered, nothing else */
		bool ok = got.n == 0 || got.n == blk[0] ||
			  got.n == blk[0] + blk[1] ||
			  got.n == blk[0] + blk[1] + blk[2];

		ok &= !info.clean_end;
		if (err)
			ok &= err == -EBADMSG && strstr(info.error, "byte offset");
		else	/* a cut exactly between blocks reads as unfinished */
			ok &= cut >= sizeof(struct pt_file_hdr) &&
			      info.end_offset == cut;
		ok &= !got.len || !memcmp(got.buf, exp.buf, got.len);
		if (!ok && fails++ < 5)
			fprintf(stderr, "cut at %zu: err %d, %d records, '%s'\n",
				cut, err, got.n, info.error);
		free(got.buf);
	}
	ASSERT_EQ(fails, 0, "every truncation handled");
	free(file);
	free(exp.buf);
	unlink(path);
}

void test_capfile_corruption(void)
{
	char *path = tmpfile_path();
	struct pt_capr_info info;
	struct sink exp;
	uint8_t *file;
	size_t len, i, fails = 0;
	int blk[3];

	if (!ASSERT_OK(write_sample(path, &exp, blk, true), "write"))
		return;
	file = slurp(path, &len);
	for (i = 0; i < len; i++) {
		struct sink got = {};
		int err;

		file[i] ^= 0x5a;
		err = pt_capr_read_mem(file, len, sink_cb, &got, &info);
		file[i] ^= 0x5a;
		/* header fields that carry no structure may change freely */
		if (i >= 12 && i < sizeof(struct pt_file_hdr)) {
			free(got.buf);
			continue;
		}
		if ((err != -EBADMSG || !strstr(info.error, "offset")) &&
		    fails++ < 5)
			fprintf(stderr, "flip at %zu not detected (err %d)\n", i, err);
		free(got.buf);
	}
	ASSERT_EQ(fails, 0, "every corrupted byte detected");
	free(file);
	free(exp.buf);
	unlink(path);
}

/* ---- reassembly ---- */

static void add_data(struct pt_conns *c, uint64_t conn, int dir, uint64_t off,
		     const char *s)
{
	static uint8_t buf[4096];
	struct pt_data *d = (void *)buf;

	make_data(buf, conn, dir, off, strlen(s), 0);
	memcpy(d->payload, s, strlen(s));
	pt_conns_add(c, &d->h);
}

void test_reassembly(void)
{
	struct pt_conns c;
	struct pt_assembled a;
	struct pt_conn *conn;
	struct pt_loss l = {};

	pt_conns_init(&c);
	/* out of order, duplicated, overlapping, with a hole at 12..15 */
	add_data(&c, 1, PT_DIR_TX, 6, "world!");
	add_data(&c, 1, PT_DIR_TX, 0, "hello ");
	add_data(&c, 1, PT_DIR_TX, 0, "hello ");
	add_data(&c, 1, PT_DIR_TX, 3, "lo wo");
	add_data(&c, 1, PT_DIR_TX, 16, "tail");
	l.h.type = PT_REC_LOSS;
	l.h.size = sizeof(l);
	l.h.conn_id = 1;
	l.offset = 12;
	l.len = 4;
	l.lost_bytes = 4;
	l.dir = PT_DIR_TX;
	l.reason = PT_LOSS_RINGBUF_FULL;
	pt_conns_add(&c, &l.h);
	conn = pt_conns_find(&c, 1);
	if (!ASSERT_TRUE(conn, "connection"))
		return;
	ASSERT_OK(pt_stream_assemble(conn, PT_DIR_TX, &a), "assemble");
	ASSERT_EQ(a.len, 20, "stream length");
	ASSERT_TRUE(!memcmp(a.buf, "hello world!", 12), "bytes before the gap");
	ASSERT_TRUE(!memcmp(a.buf + 16, "tail", 4), "bytes after the gap");
	ASSERT_EQ(a.ngaps, 1, "gaps");
	ASSERT_EQ(a.gaps[0].start, 12, "gap start");
	ASSERT_EQ(a.gaps[0].end, 16, "gap end");
	ASSERT_EQ(a.gaps[0].reason, PT_LOSS_RINGBUF_FULL, "gap reason");
	ASSERT_EQ(a.conflicts, 0, "no conflicting copies");
	ASSERT_EQ(a.dup_bytes, 6 + 5, "duplicate bytes dropped");
	pt_assembled_free(&a);

	/* a copy that disagrees is counted, the first one kept */
	add_data(&c, 1, PT_DIR_TX, 0, "jello");
	ASSERT_OK(pt_stream_assemble(conn, PT_DIR_TX, &a), "assemble");
	ASSERT_EQ(a.conflicts, 1, "conflicting copy seen");
	ASSERT_TRUE(!memcmp(a.buf, "hello", 5), "first copy kept");
	pt_assembled_free(&a);

	/* a lost tail: the stream still ends where the loss says */
	l.offset = 20;
	l.len = 10;
	pt_conns_add(&c, &l.h);
	ASSERT_OK(pt_stream_assemble(conn, PT_DIR_TX, &a), "assemble");
	ASSERT_EQ(a.len, 30, "length includes a lost tail");
	ASSERT_EQ(a.ngaps, 2, "two gaps");
	pt_assembled_free(&a);

	/* the other direction is empty */
	ASSERT_OK(pt_stream_assemble(conn, PT_DIR_RX, &a), "assemble rx");
	ASSERT_EQ(a.len, 0, "rx empty");
	pt_assembled_free(&a);
	pt_conns_free(&c);
}

/* Offsets near 2^64 must be refused by the reader, not wrap in reassembly. */
void test_hostile_offsets(void)
{
	static uint8_t rec[256];
	char *path = tmpfile_path();
	struct pt_capr_info info;
	struct pt_capw *w;
	struct pt_conns c;
	struct pt_data *d = (void *)rec;
	FILE *f;
	int err;

	if (!ASSERT_OK(pt_capw_open(&w, path, "h"), "open"))
		return;
	make_data(rec, 5, PT_DIR_RX, 0, 16, 0);
	d->offset = UINT64_MAX - 7;
	pt_capw_add(w, &d->h, d->h.size);
	pt_capw_close(w);
	pt_conns_init(&c);
	f = fopen(path, "rb");
	err = pt_capr_read(f, (pt_capr_fn)pt_conns_add, &c, &info);
	fclose(f);
	ASSERT_EQ(err, -EBADMSG, "wrapping DATA record refused");
	ASSERT_TRUE(strstr(info.error, "byte offset") != NULL, "error names the offset");
	ASSERT_EQ(c.n, 0, "nothing taken from it");
	pt_conns_free(&c);
	unlink(path);
}

void test_parse(void)
{
	uint64_t v;

	ASSERT_OK(pt_parse_duration("250ms", &v), "250ms");
	ASSERT_EQ(v, 250000000ull, "250ms");
	ASSERT_OK(pt_parse_duration("2m", &v), "2m");
	ASSERT_EQ(v, 120000000000ull, "2m");
	ASSERT_OK(pt_parse_duration("7", &v), "7");
	ASSERT_EQ(v, 7000000000ull, "7 is seconds");
	ASSERT_TRUE(pt_parse_duration("-1s", &v) < 0, "negative refused");
	ASSERT_TRUE(pt_parse_duration("5 s", &v) < 0, "junk refused");
	ASSERT_TRUE(pt_parse_duration("99999999999999999999h", &v) < 0,
		    "overflow refused");
	ASSERT_OK(pt_parse_size("64Ki", &v), "64Ki");
	ASSERT_EQ(v, 65536, "64Ki");
	ASSERT_OK(pt_parse_size("1G", &v), "1G");
	ASSERT_EQ(v, 1000000000ull, "1G is decimal, as in Kubernetes");
	ASSERT_TRUE(pt_parse_size("1X", &v) < 0, "unknown unit refused");
	ASSERT_OK(pt_parse_duration("1.5s", &v), "1.5s");
	ASSERT_EQ(v, 1500000000ull, "1.5s");
	ASSERT_OK(pt_parse_duration("1h30m", &v), "1h30m");
	ASSERT_EQ(v, 5400000000000ull, "1h30m");
	ASSERT_TRUE(pt_parse_u64("0x10", 0, 100, &v) < 0, "hex refused");
	ASSERT_TRUE(pt_parse_u64("101", 0, 100, &v) < 0, "range checked");
}
