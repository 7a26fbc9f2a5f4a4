// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "capfile/capfile.h"
#include "base/common.h"

/* A block is written once this many bytes of records are buffered. */
#define FLUSH_AT	(1u << 20)
/* Blocks stored uncompressed after one that did not compress. */
#define RAW_BLOCKS_AFTER_MISS	32

struct pt_capw {
	FILE *f;
	uint8_t *buf;
	size_t len, cap;
	uint32_t nrec;
	uint8_t *zbuf;
	size_t zcap;
	ZSTD_CCtx *zc;		/* made at the first block compressed */
	unsigned int raw_blocks_left;	/* skip compressing this many */
	uint64_t records, blocks;
	uint64_t written;	/* bytes in the file so far */
	bool own;		/* pt_capw_open opened f: closed with it */
};

static uint32_t block_crc(const struct pt_block_hdr *bh, const void *p,
			  size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	crc = crc32(crc, (const Bytef *)bh, offsetof(struct pt_block_hdr, crc));
	return (uint32_t)crc32(crc, p, n);
}

int pt_capw_open_file(struct pt_capw **out, FILE *f, const char *host)
{
	struct pt_file_hdr h = {};
	struct pt_capw *w;
	uint64_t real = pt_now_real_ns(), mono = pt_now_mono_ns();

	memcpy(h.magic, PT_FILE_MAGIC, sizeof(h.magic));
	h.version = PT_FILE_VERSION;
	h.hdr_size = sizeof(h);
	h.start_real_ns = real;
	h.mono_to_real_ns = real - mono;
	snprintf(h.host, sizeof(h.host), "%s", host ? host : "");
	if (fwrite(&h, sizeof(h), 1, f) != 1 || fflush(f))
		return errno ? -errno : -EIO;
	w = pt_xcalloc(1, sizeof(*w));
	w->f = f;
	w->written = sizeof(h);
	*out = w;
	return 0;
}

int pt_capw_open(struct pt_capw **out, const char *path, const char *host)
{
	int fd, err;
	FILE *f;

	/* captures hold credentials: only root reads them */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "wb");
	if (!f) {
		err = -errno;
		close(fd);
		return err;
	}
	err = pt_capw_open_file(out, f, host);
	if (err) {
		fclose(f);
		return err;
	}
	(*out)->own = true;
	return 0;
}

static int write_block(struct pt_capw *w, uint16_t type, const void *raw,
		       size_t raw_len, uint32_t nrec)
{
	struct pt_block_hdr bh = {
		.magic = PT_BLOCK_MAGIC,
		.type = type,
		.raw_len = (uint32_t)raw_len,
		.nrec = nrec,
	};
	const void *stored = raw;

	bh.encoding = PT_ENC_NONE;
	bh.stored_len = (uint32_t)raw_len;
	if (type == PT_BLOCK_RECORDS && w->raw_blocks_left) {
		w->raw_blocks_left--;
	} else if (type == PT_BLOCK_RECORDS) {
		size_t zlen = ZSTD_compressBound(raw_len);

		if (zlen > w->zcap) {
			w->zbuf = pt_xrealloc(w->zbuf, zlen, 1);
			w->zcap = zlen;
		}
		if (!w->zc && !(w->zc = ZSTD_createCCtx()))
			return -ENOMEM;
		/*
		 * zstd at level 1: where zlib's level 1 cost the recorder
		 * 2.5 CPU s per GB of HTTP, this costs 0.5 (bench --compare),
		 * for a smaller file.
		 */
		zlen = ZSTD_compressCCtx(w->zc, w->zbuf, zlen, raw, raw_len, 1);
		if (ZSTD_isError(zlen))
			return -ENOMEM;
		if (zlen < raw_len - raw_len / 8) {
			bh.encoding = PT_ENC_ZSTD;
			stored = w->zbuf;
			bh.stored_len = (uint32_t)zlen;
		} else {
			/*
			 * Payloads that do not compress (TLS, media, random
			 * data) are stored as they are, and compression is
			 * not tried again for a while: it would cost more CPU
			 * than the rest of the recorder at high rates.
			 */
			w->raw_blocks_left = RAW_BLOCKS_AFTER_MISS;
		}
	}
	bh.crc = block_crc(&bh, stored, bh.stored_len);
	if (fwrite(&bh, sizeof(bh), 1, w->f) != 1 ||
	    (bh.stored_len && fwrite(stored, bh.stored_len, 1, w->f) != 1) ||
	    fflush(w->f))
		return errno ? -errno : -EIO;
	w->written += sizeof(bh) + bh.stored_len;
	return 0;
}

uint64_t pt_capw_size(const struct pt_capw *w)
{
	return w->written + w->len;
}

int pt_capw_flush(struct pt_capw *w)
{
	int err;

	if (!w->len)
		return 0;
	err = write_block(w, PT_BLOCK_RECORDS, w->buf, w->len, w->nrec);
	if (err)
		return err;
	w->blocks++;
	w->len = 0;
	w->nrec = 0;
	return 0;
}

int pt_capw_add(struct pt_capw *w, const struct pt_rec_hdr *rec, size_t size)
{
	size_t keep = size, padded;
	struct pt_rec_hdr *h;

	if ((rec->type == PT_REC_DATA || rec->type == PT_REC_TLS_DATA) &&
	    size >= sizeof(struct pt_data))
		keep = sizeof(struct pt_data) +
		       ((const struct pt_data *)rec)->cap_len;
	if (keep > size)
		return -EINVAL;
	padded = (keep + 7) & ~(size_t)7;
	if (w->len + padded > PT_BLOCK_MAX_RAW) {
		int err = pt_capw_flush(w);

		if (err)
			return err;
	}
	if (w->len + padded > w->cap) {
		w->cap = (w->len + padded) * 2;
		w->buf = pt_xrealloc(w->buf, w->cap, 1);
	}
	memcpy(w->buf + w->len, rec, keep);
	memset(w->buf + w->len + keep, 0, padded - keep);
	h = (struct pt_rec_hdr *)(w->buf + w->len);
	h->size = (uint32_t)padded;
	w->len += padded;
	w->nrec++;
	w->records++;
	if (w->len >= FLUSH_AT)
		return pt_capw_flush(w);
	return 0;
}

static void capw_free(struct pt_capw *w)
{
	ZSTD_freeCCtx(w->zc);
	free(w->buf);
	free(w->zbuf);
	free(w);
}

int pt_capw_close(struct pt_capw *w)
{
	struct pt_block_end end;
	int err;

	err = pt_capw_flush(w);
	if (!err) {
		end.records = w->records;
		end.blocks = w->blocks;
		err = write_block(w, PT_BLOCK_END, &end, sizeof(end), 0);
	}
	if (!err && fflush(w->f))
		err = -errno;
	if (w->own && fclose(w->f) && !err)
		err = -errno;
	capw_free(w);
	return err;
}

void pt_capw_abort(struct pt_capw *w)
{
	pt_capw_flush(w);
	if (w->own)
		fclose(w->f);
	else
		fflush(w->f);
	capw_free(w);
}

size_t pt_rec_min_size(uint16_t type)
{
	switch (type) {
	case PT_REC_CONN_OPEN:	return sizeof(struct pt_conn_open);
	case PT_REC_DATA:	return sizeof(struct pt_data);
	case PT_REC_CONN_CLOSE:	return sizeof(struct pt_conn_close);
	case PT_REC_LOSS:	return sizeof(struct pt_loss);
	case PT_REC_ATTR:	return sizeof(struct pt_attr);
	case PT_REC_TARGET:	return sizeof(struct pt_target_rec);
	/* files before the TLS counters: 11 + PT_LOSS_MAX of them */
	case PT_REC_STATS:	return sizeof(struct pt_rec_hdr) +
				       (11 + PT_LOSS_MAX) * sizeof(__u64);
	case PT_REC_TLS_DATA:	return sizeof(struct pt_data);
	case PT_REC_TLS_ASSOC:	return sizeof(struct pt_tls_assoc);
	case PT_REC_TLS_PROC:	return sizeof(struct pt_tls_proc_rec);
	default:		return 0;
	}
}

static int bad(struct pt_capr_info *info, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int bad(struct pt_capr_info *info, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(info->error, sizeof(info->error), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* Offsets are stream positions: no range may pass PT_STREAM_MAX. */
static bool rec_fields_ok(const struct pt_rec_hdr *h, size_t min)
{
	const struct pt_data *d = (const void *)h;
	const struct pt_loss *l = (const void *)h;
	const struct pt_conn_close *c = (const void *)h;

	switch (h->type) {
	case PT_REC_DATA: case PT_REC_TLS_DATA:
		return d->cap_len <= h->size - min && d->cap_len <= d->len &&
		       d->dir <= PT_DIR_TX && d->offset <= PT_STREAM_MAX &&
		       d->len <= PT_STREAM_MAX - d->offset;
	case PT_REC_LOSS:
		return l->dir <= PT_DIR_TLS + PT_DIR_TX &&
		       l->offset <= PT_STREAM_MAX &&
		       l->len <= PT_STREAM_MAX - l->offset;
	case PT_REC_CONN_CLOSE:
		return c->bytes[0] <= PT_STREAM_MAX &&
		       c->bytes[1] <= PT_STREAM_MAX;
	default:
		return true;
	}
}

static int walk_records(const uint8_t *p, size_t len, uint32_t nrec,
			uint64_t boff, pt_capr_fn fn, void *ctx,
			struct pt_capr_info *info)
{
	size_t off = 0;
	uint32_t n = 0;
	int err;

	while (off < len) {
		const struct pt_rec_hdr *h = (const void *)(p + off);
		size_t min;

		if (len - off < sizeof(*h) || h->size < sizeof(*h) ||
		    h->size > len - off || h->size % 8)
			return bad(info, "corrupt record %u of the block at byte offset %llu",
				   n, (unsigned long long)boff);
		min = pt_rec_min_size(h->type);
		if (h->size < min || !rec_fields_ok(h, min))
			return bad(info, "corrupt record %u (type %u) of the block at byte offset %llu",
				   n, h->type, (unsigned long long)boff);
		if (min) {
			err = fn(ctx, h);
			if (err)
				return err;
		}
		info->records++;
		off += h->size;
		n++;
	}
	if (n != nrec)
		return bad(info, "block at byte offset %llu holds %u records, its header says %u",
			   (unsigned long long)boff, n, nrec);
	return 0;
}

/* The most a stored block can take, whatever its encoding. */
static size_t stored_max(void)
{
	size_t z = compressBound(PT_BLOCK_MAX_RAW);
	size_t zs = ZSTD_compressBound(PT_BLOCK_MAX_RAW);

	return z > zs ? z : zs;
}

/* A compressed block into raw (bh->raw_len bytes); 0 when it is whole. */
static int decode(const struct pt_block_hdr *bh, const void *stored, void *raw)
{
	if (bh->encoding == PT_ENC_ZLIB) {
		uLongf rl = bh->raw_len;

		return uncompress(raw, &rl, stored, bh->stored_len) != Z_OK ||
		       rl != bh->raw_len ? -EBADMSG : 0;
	}
	if (bh->encoding == PT_ENC_ZSTD) {
		/* older files may be zlib; this writer makes zstd frames */
		size_t rl = ZSTD_decompress(raw, bh->raw_len, stored,
					    bh->stored_len);

		return ZSTD_isError(rl) || rl != bh->raw_len ? -EBADMSG : 0;
	}
	return -EBADMSG;
}

int pt_capr_read(FILE *f, pt_capr_fn fn, void *ctx, struct pt_capr_info *info)
{
	uint8_t *stored = NULL, *raw = NULL;
	struct pt_block_hdr bh;
	uint64_t off;
	size_t got;
	int err = 0;

	memset(info, 0, sizeof(*info));
	got = fread(&info->hdr, 1, sizeof(info->hdr), f);
	if (got < sizeof(info->hdr) ||
	    memcmp(info->hdr.magic, PT_FILE_MAGIC, sizeof(info->hdr.magic)))
		return bad(info, got < sizeof(info->hdr) && got >= 8 &&
				 !memcmp(info->hdr.magic, PT_FILE_MAGIC, 8) ?
				 "truncated file header at byte offset %zu" :
				 "not a podtap capture (bad magic at byte offset 0, %zu bytes read)",
			   got);
	if (info->hdr.version != PT_FILE_VERSION)
		return bad(info, "unsupported capture version %u at byte offset 8 (this podtap reads version %u)",
			   info->hdr.version, PT_FILE_VERSION);
	if (info->hdr.hdr_size < sizeof(info->hdr) || info->hdr.hdr_size > 4096)
		return bad(info, "bad header size %u at byte offset 10",
			   info->hdr.hdr_size);
	info->hdr.host[sizeof(info->hdr.host) - 1] = 0;
	off = info->hdr.hdr_size;
	/* read past a longer header, not seek: the capture may be a pipe */
	for (got = sizeof(info->hdr); got < off; got++)
		if (fgetc(f) == EOF)
			return bad(info, "truncated file header at byte offset %zu",
				   got);
	info->end_offset = off;
	for (;;) {
		got = fread(&bh, 1, sizeof(bh), f);
		if (got == 0)
			break;
		if (info->clean_end) {
			err = bad(info, "data after the end block, at byte offset %llu",
				  (unsigned long long)off);
			break;
		}
		if (got < sizeof(bh)) {
			err = bad(info, "truncated block header at byte offset %llu (%zu of %zu bytes)",
				  (unsigned long long)off, got, sizeof(bh));
			break;
		}
		if (bh.magic != PT_BLOCK_MAGIC ||
		    (bh.type != PT_BLOCK_RECORDS && bh.type != PT_BLOCK_END) ||
		    bh.raw_len > PT_BLOCK_MAX_RAW ||
		    bh.stored_len > stored_max() ||
		    (bh.encoding == PT_ENC_NONE && bh.stored_len != bh.raw_len) ||
		    bh.encoding > PT_ENC_ZSTD) {
			err = bad(info, "corrupt block header at byte offset %llu",
				  (unsigned long long)off);
			break;
		}
		free(stored);
		stored = malloc(bh.stored_len ? bh.stored_len : 1);
		if (!stored) {
			err = -ENOMEM;
			break;
		}
		got = fread(stored, 1, bh.stored_len, f);
		if (got < bh.stored_len) {
			err = bad(info, "truncated block at byte offset %llu (%zu of %u bytes)",
				  (unsigned long long)off, got, bh.stored_len);
			break;
		}
		if (block_crc(&bh, stored, bh.stored_len) != bh.crc) {
			err = bad(info, "checksum mismatch in the block at byte offset %llu",
				  (unsigned long long)off);
			break;
		}
		if (bh.encoding != PT_ENC_NONE) {
			free(raw);
			raw = malloc(bh.raw_len ? bh.raw_len : 1);
			if (!raw) {
				err = -ENOMEM;
				break;
			}
			if (decode(&bh, stored, raw)) {
				err = bad(info, "cannot decompress the block at byte offset %llu",
					  (unsigned long long)off);
				break;
			}
		}
		if (bh.type == PT_BLOCK_END) {
			if (bh.raw_len != sizeof(struct pt_block_end)) {
				err = bad(info, "corrupt end block at byte offset %llu",
					  (unsigned long long)off);
				break;
			}
			info->clean_end = true;
		} else {
			err = walk_records(bh.encoding != PT_ENC_NONE ? raw : stored,
					   bh.raw_len, bh.nrec, off, fn, ctx,
					   info);
			if (err)
				break;
			info->blocks++;
		}
		off += sizeof(bh) + bh.stored_len;
		info->end_offset = off;
	}
	free(stored);
	free(raw);
	return err;
}

int pt_capr_read_mem(const void *buf, size_t len, pt_capr_fn fn, void *ctx,
		     struct pt_capr_info *info)
{
	FILE *f;
	int err;

	if (!len) {
		memset(info, 0, sizeof(*info));
		return bad(info, "empty file (no header at byte offset 0)");
	}
	f = fmemopen((void *)buf, len, "r");
	if (!f)
		return -errno;
	err = pt_capr_read(f, fn, ctx, info);
	fclose(f);
	return err;
}
