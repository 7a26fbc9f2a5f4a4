// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: any bytes as the API objects the agent reads from the
 * API server. Byte 0 says where the input splits: the first part is read
 * as a RecordingSession (spec, and a node's status entry), the second as
 * a pod; a session that reads is matched against the pod. Every string
 * token is unescaped. Nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kube/objects.h"
#include "base/jread.h"

static void walk(const char *s, size_t n)
{
	struct pt_jr j;
	int i;

	if (pt_jr_parse(&j, s, n))
		return;
	for (i = 0; i < j.n; i++) {
		char *v = pt_jr_str(&j, i);
		uint64_t u;

		free(v);
		pt_jr_u64(&j, i, &u);
		if (pt_jr_next(&j, i) > j.n || pt_jr_next(&j, i) <= i)
			abort();	/* a value ends after it starts, inside */
	}
	pt_jr_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pt_session_spec s;
	struct pt_node_status ns;
	struct pt_pod p;
	size_t cut;
	char *a, *b, *uid;
	bool have_s, have_p;
	int k;

	if (size < 1)
		return 0;
	cut = (size - 1) * data[0] / 255;
	/* copies, so that reading past either part is caught */
	a = malloc(cut + 1);
	b = malloc(size - 1 - cut + 1);
	memcpy(a, data + 1, cut);
	memcpy(b, data + 1 + cut, size - 1 - cut);
	walk(a, cut);
	walk(b, size - 1 - cut);
	have_s = !pt_session_parse(a, cut, &s);
	pt_session_node_status(a, cut, "node-a", &ns);
	uid = pt_obj_uid(b, size - 1 - cut);
	free(uid);
	have_p = !pt_pod_parse(b, size - 1 - cut, &p);
	if (have_s && have_p) {
		pt_session_selects(&s, &p);
		for (k = 0; k < p.nc; k++)
			pt_session_wants_container(&s, p.c[k].name);
	}
	if (have_s)
		pt_session_free(&s);
	if (have_p)
		pt_pod_free(&p);
	free(a);
	free(b);
	return 0;
}
