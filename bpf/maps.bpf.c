// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The one definition of the shared maps and globals (bpf/maps.bpf.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "podtap.h"
#define PT_MAPS_OWNER
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
