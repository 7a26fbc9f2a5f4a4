// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which path the loader chose on this kernel, printed for the kernel
 * matrix (tests/kernels/) and asserted when it says what to expect:
 * PODTAP_EXPECT_TASK_HELPERS=0 or 1, PODTAP_EXPECT_UPROBE_SESSION=0 or 1.
 */
#include <stdlib.h>
#include <sys/utsname.h>
#include <bpf/libbpf.h>
#include "harness.h"
#include "capture/loader.h"
#include "test_progs.h"

/* The helpers podtap's programs may call, as this kernel offers them. */
static void print_helpers(const char *release)
{
	static const struct {
		enum bpf_prog_type type;
		const char *tname;
		enum bpf_func_id fn;
		const char *fname;
	} h[] = {
#define H(t, f) { BPF_PROG_TYPE_##t, #t, BPF_FUNC_##f, #f }
		H(CGROUP_SKB, get_current_pid_tgid),
		H(CGROUP_SKB, get_current_comm),
		H(CGROUP_SKB, get_current_task),
		H(CGROUP_SKB, get_current_cgroup_id),
		H(CGROUP_SKB, skc_to_tcp_sock),
		H(CGROUP_SKB, probe_read_kernel),
		H(CGROUP_SOCK, get_current_pid_tgid),
		H(CGROUP_SOCK, get_current_comm),
		H(CGROUP_SOCK, get_current_task),
		H(CGROUP_SOCK, probe_read_kernel),
#undef H
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(h); i++)
		printf("kernel %s: helper %s in %s: %s\n", release,
		       h[i].fname, h[i].tname,
		       libbpf_probe_bpf_helper(h[i].type, h[i].fn, NULL) > 0 ?
		       "yes" : "no");
}

void test_kernel(void)
{
	const char *want = getenv("PODTAP_EXPECT_TASK_HELPERS");
	const char *want_ses = getenv("PODTAP_EXPECT_UPROBE_SESSION");
	struct bpf_program *p;
	struct utsname u;
	struct h_rec rec;
	bool have, ses;
	int n = 0, ntls = 0, nuprobe = 0;

	if (!ASSERT_OK(uname(&u) ? -1 : 0, "uname") ||
	    !ASSERT_OK(h_rec_start(&rec, 1 << 20), "recorder"))
		return;
	have = pt_loader_task_helpers(rec.l);
	print_helpers(u.release);
	printf("kernel %s: task helpers in cgroup programs: %s (%s)\n",
	       u.release, have ? "yes" : "no",
	       have ? "processes attributed from the task, --pidns available"
		    : "fallback: no attribution from the task, no --pidns");
	bpf_object__for_each_program(p, pt_loader_object(rec.l)) {
		printf("kernel %s: program %s (%s): %s, %zu insns\n",
		       u.release, bpf_program__name(p),
		       bpf_program__section_name(p),
		       bpf_program__fd(p) >= 0 ? "loaded" : "not loaded",
		       bpf_program__insn_cnt(p));
		if (bpf_program__type(p) == BPF_PROG_TYPE_KPROBE) {
			ntls += bpf_program__fd(p) >= 0;
			nuprobe++;
		} else
			n += bpf_program__fd(p) >= 0;
	}
	ASSERT_EQ(n, 4, "socket programs loaded");
	printf("kernel %s: TLS plaintext programs (uprobes): %s\n", u.release,
	       ntls ? "loaded" : "not loaded");
	ses = pt_loader_tls_session(rec.l);
	printf("kernel %s: TLS library uprobes: %s\n", u.release, ses ?
	       "session (one link per library, one trap per call for processes that are not targets)" :
	       "entry and return (two traps per call)");
	/*
	 * OpenSSL's 10 (entry and return of 5 kinds) or its one session
	 * program, and Go's 4
	 */
	ASSERT_EQ(nuprobe, 15, "TLS programs in the object");
	ASSERT_EQ(ntls, !pt_loader_tls_object(rec.l) ? 0 : ses ? 5 : 14,
		  "TLS programs: all of one way or none");
	if (want)
		ASSERT_EQ(have, atoi(want), "task helpers as expected");
	if (want_ses)
		ASSERT_EQ(ses, atoi(want_ses), "session uprobes as expected");
	h_rec_free(&rec);
}
