// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* JSON lines: one object per exchange, HTTP and raw, in time order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "base/jsonw.h"
#include "export/export.h"

static int export_jsonl(const struct pt_capture *cap, FILE *f,
		    struct pt_export_counts *cnt)
{
	struct pt_xref *v;
	size_t i, n;

	v = pt_x_sorted(cap, &n);
	for (i = 0; i < n; i++) {
		pt_x_json(f, cap, v[i].xc, v[i].x, true);
		fputc('\n', f);
	}
	cnt->items = n;
	free(v);
	return 0;
}

const struct pt_exporter pt_exporter_jsonl = {
	.name = "jsonl",
	.to_file = export_jsonl,
	.holds = PT_HOLDS_ALL,
	.item = "exchange", .items = "exchanges",
	.help = "one JSON object per exchange, HTTP and raw",
};
