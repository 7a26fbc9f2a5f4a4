// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The output formats, in the order --help lists them (export/export.h). */
#include <stddef.h>
#include "export/export.h"

const struct pt_exporter *const pt_exporters[] = {
	&pt_exporter_keploy,
	&pt_exporter_pcapng,
	&pt_exporter_har,
	&pt_exporter_jsonl,
	NULL,
};
