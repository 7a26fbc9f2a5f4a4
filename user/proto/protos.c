// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The protocols, in the order they are asked (proto/proto.h). */
#include <stddef.h>
#include "proto/proto.h"

const struct pt_proto *const pt_protos[] = {
	&pt_proto_http1,
	&pt_proto_tls,
	&pt_proto_http2,
	&pt_proto_raw,		/* takes anything: last */
	NULL,
};
