// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor configuration's consumer (bench/floor.bpf.c): attach the two
 * programs of a mode to a cgroup, drain the ring every 10 ms and throw the
 * records away, until SIGINT or SIGTERM; then say how much went through.
 *
 *   floor [-s] [-m copy|pcpu|pass] OBJECT CGROUP
 *
 * copy (the default): one ring, as podtap; pcpu: a ring per CPU, the same
 * memory in all; pass: programs that do nothing. Prints "floor:
 * capturing" once attached, and at the end "floor: N records, B bytes, L
 * bytes lost"; with -s (the kernel's BPF run-time statistics on while it
 * runs) also "floor: PROGRAM R runs T ns" for each.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop;
static unsigned long long records, bytes;

static void on_signal(int sig)
{
	stop = 1;
}

static int on_rec(void *ctx, void *data, size_t size)
{
	records++;
	bytes += *(const unsigned int *)data;
	return 0;
}

static unsigned long long lost_bytes(struct bpf_object *obj)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, "floor_lost");
	int ncpu = libbpf_num_possible_cpus(), i;
	unsigned long long sum = 0, v[1024];
	unsigned int zero = 0;

	if (!m || ncpu <= 0 || ncpu > 1024 ||
	    bpf_map_lookup_elem(bpf_map__fd(m), &zero, v))
		return 0;
	for (i = 0; i < ncpu; i++)
		sum += v[i];
	return sum;
}

#define RING_BYTES	(64u << 20)	/* podtap record's default ring */

enum { COPY, PCPU, PASS, NMODES };

/* Each mode's name, and its ingress and egress programs. */
static const char *const modes[NMODES][3] = {
	[COPY] = { "copy", "floor_ingress", "floor_egress" },
	[PCPU] = { "pcpu", "floor_pcpu_ingress", "floor_pcpu_egress" },
	[PASS] = { "pass", "floor_pass_ingress", "floor_pass_egress" },
};

/* Before load: only the mode's programs; as many inner rings as CPUs. */
static int pick(struct bpf_object *obj, int mode)
{
	struct bpf_program *p;
	int ncpu = libbpf_num_possible_cpus();

	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p,
			!strcmp(bpf_program__name(p), modes[mode][1]) ||
			!strcmp(bpf_program__name(p), modes[mode][2]));
	if (ncpu <= 0)
		return -1;
	return bpf_map__set_max_entries(
		bpf_object__find_map_by_name(obj, "floor_rings"), ncpu);
}

/* After load: the CPUs' rings, RING_BYTES in all, each read by rb. */
static int cpu_rings(struct bpf_object *obj, struct ring_buffer **rb)
{
	int outer = bpf_map__fd(bpf_object__find_map_by_name(obj, "floor_rings"));
	int ncpu = libbpf_num_possible_cpus(), cpu, fd;
	__u32 size = RING_BYTES;

	while (size > 4096 && size / 2 * ncpu >= RING_BYTES)
		size /= 2;
	for (cpu = 0; cpu < ncpu; cpu++) {
		int err;

		fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, NULL, 0, 0, size, NULL);
		if (fd < 0)
			return -1;
		err = bpf_map_update_elem(outer, &cpu, &fd, 0);
		if (!err && !*rb)
			err = !(*rb = ring_buffer__new(fd, on_rec, NULL, NULL));
		else if (!err)
			err = ring_buffer__add(*rb, fd, on_rec, NULL);
		close(fd);	/* the outer map and rb hold the ring */
		if (err)
			return -1;
	}
	return 0;
}

static void print_stats(struct bpf_object *obj, const char *const *progs)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct bpf_program *p =
			bpf_object__find_program_by_name(obj, progs[i]);
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (p && !bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			fprintf(stderr, "floor: %s %llu runs %llu ns\n", progs[i],
				(unsigned long long)info.run_cnt,
				(unsigned long long)info.run_time_ns);
	}
}

int main(int argc, char **argv)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	struct bpf_link *links[2] = {};
	const char *const *progs;
	struct ring_buffer *rb = NULL;
	bool stats = false;
	struct bpf_object *obj;
	int cg, i, rc = 1, stats_fd = -1, mode = COPY, opt;

	while ((opt = getopt(argc, argv, "sm:")) != -1) {
		if (opt == 's') {
			stats = true;
			continue;
		}
		for (mode = 0; opt == 'm' && mode < NMODES; mode++)
			if (!strcmp(optarg, modes[mode][0]))
				break;
		if (opt != 'm' || mode == NMODES)
			goto usage;
	}
	if (argc - optind != 2) {
usage:
		fprintf(stderr, "usage: floor [-s] [-m copy|pcpu|pass] OBJECT CGROUP\n");
		return 2;
	}
	argv += optind - 1;
	progs = modes[mode] + 1;
	cg = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		fprintf(stderr, "floor: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || pick(obj, mode) || bpf_object__load(obj)) {
		fprintf(stderr, "floor: cannot load %s\n", argv[1]);
		return 1;
	}
	if (stats && (stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME)) < 0) {
		fprintf(stderr, "floor: BPF statistics: %s\n", strerror(errno));
		return 1;
	}
	if (mode == PCPU ? cpu_rings(obj, &rb) :
	    !(rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj,
				"floor_ring")), on_rec, NULL, NULL))) {
		fprintf(stderr, "floor: cannot make its rings\n");
		goto out;
	}
	for (i = 0; i < 2; i++) {
		struct bpf_program *p =
			bpf_object__find_program_by_name(obj, progs[i]);

		links[i] = p ? bpf_program__attach_cgroup(p, cg) : NULL;
		if (!links[i]) {
			fprintf(stderr, "floor: cannot attach %s\n", progs[i]);
			goto out;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "floor: capturing\n");
	while (!stop) {
		nanosleep(&tick, NULL);
		ring_buffer__consume(rb);
	}
	rc = 0;
out:
	for (i = 0; i < 2; i++)
		bpf_link__destroy(links[i]);
	if (rb)
		ring_buffer__consume(rb);
	if (!rc) {
		fprintf(stderr, "floor: %llu records, %llu bytes, %llu bytes lost\n",
			records, bytes, lost_bytes(obj));
		if (stats)
			print_stats(obj, progs);
	}
	if (stats_fd >= 0)
		close(stats_fd);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	close(cg);
	return rc;
}
