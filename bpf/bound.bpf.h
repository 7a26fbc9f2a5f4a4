/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A length bounded for a helper's size argument (bench/floor.bpf.c too). */
#ifndef __PT_BOUND_BPF_H
#define __PT_BOUND_BPF_H

/*
 * len, known here to be 1..max, bounded again on the register that is
 * passed: the verifier of 6.1 does not carry a bound learned on one copy
 * of a value to another (a spilled one), and refuses a helper's size
 * argument that may be 0 or larger than the buffer.
 */
static __always_inline __u64 size_in(__u64 len, __u64 max)
{
	asm volatile("if %[len] <= %[max] goto +1\n\t"
		     "%[len] = %[max]\n\t"
		     "if %[len] > 0 goto +1\n\t"
		     "%[len] = 1"
		     : [len] "+r"(len)
		     : [max] "r"(max));
	return len;
}

#endif
