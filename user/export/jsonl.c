// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON lines: one object per exchange, HTTP and raw, in time order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "base/jsonw.h"
#include "export/export.h"

static int jsonl_one(const struct pt_capture *cap, FILE *f,
		     const struct pt_xconn *xc, const struct pt_exchange *x,
		     struct pt_export_counts *cnt)
{
	pt_x_json(f, cap, xc, x, true);
	fputc('\n', f);
	cnt->items++;
	return pt_ferror(f);
}

const struct pt_exporter pt_exporter_jsonl = {
	.name = "jsonl",
	.one = jsonl_one,
	.holds = PT_HOLDS_ALL,
	.item = "exchange", .items = "exchanges",
	.help = "one JSON object per exchange, HTTP and raw",
};
