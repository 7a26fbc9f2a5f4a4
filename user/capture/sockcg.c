// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which cgroup each TCP socket belongs to. A socket stays in the cgroup
 * it was made in when its process moves, and cgroup programs run by the
 * socket's cgroup: the loader asks sock_diag (INET_DIAG_CGROUP_ID, Linux
 * 5.7 and later) to find the sockets a target's processes brought along.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include "base/common.h"
#include "capture/sockcg.h"

/* A sock_diag socket in the network namespace of pid (ours if 0). */
static int diag_socket(pid_t pid)
{
	char path[64];
	int fd, ns, self = -1, err;

	if (!pid)
		return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
			      NETLINK_SOCK_DIAG);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return -errno;
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0 || setns(ns, CLONE_NEWNET)) {
		err = -errno;
		close(ns);
		if (self >= 0)
			close(self);
		return err;
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	err = fd < 0 ? -errno : 0;
	if (setns(self, CLONE_NEWNET)) {
		/* never stay in a pod's network namespace */
		pt_err("returning to podtap's network namespace: %s",
		       strerror(errno));
		abort();
	}
	close(self);
	close(ns);
	return err ? err : fd;
}

static int dump_family(int fd, int family, struct pt_sockcg **v, size_t *n,
		       size_t *cap)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		},
		.r = {
			.sdiag_family = (uint8_t)family,
			.sdiag_protocol = IPPROTO_TCP,
			.idiag_states = ~0u,
		},
	};
	static char buf[32768] __attribute__((aligned(8)));

	if (send(fd, &req, sizeof(req), 0) < 0)
		return -errno;
	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (len < 0)
			return -errno;
		if (!len)
			return 0;
		for (h = (void *)buf; NLMSG_OK(h, (size_t)len);
		     h = NLMSG_NEXT(h, len)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);
			struct rtattr *a;
			int alen;

			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error ? e->error : -EIO;
			}
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (a = (void *)(m + 1); RTA_OK(a, alen);
			     a = RTA_NEXT(a, alen)) {
				if (a->rta_type != INET_DIAG_CGROUP_ID ||
				    RTA_PAYLOAD(a) < sizeof(uint64_t))
					continue;
				if (*n == *cap) {
					*cap = *cap ? *cap * 2 : 256;
					*v = pt_xrealloc(*v, *cap, sizeof(**v));
				}
				(*v)[*n].ino = m->idiag_inode;
				memcpy(&(*v)[*n].cgid, RTA_DATA(a),
				       sizeof(uint64_t));
				(*n)++;
			}
		}
	}
}

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct pt_sockcg *)a)->ino;
	uint64_t y = ((const struct pt_sockcg *)b)->ino;

	return x < y ? -1 : x > y;
}

int pt_sock_cgroups(pid_t pid, struct pt_sockcg **v, size_t *n)
{
	size_t cap = 0;
	int fd, err;

	*v = NULL;
	*n = 0;
	fd = diag_socket(pid);
	if (fd < 0)
		return fd;
	err = dump_family(fd, AF_INET, v, n, &cap);
	if (!err)
		err = dump_family(fd, AF_INET6, v, n, &cap);
	close(fd);
	/* by inode, for pt_sockcg_find */
	if (!err && *n)
		qsort(*v, *n, sizeof(**v), cmp_ino);
	if (err) {
		free(*v);
		*v = NULL;
		*n = 0;
	}
	return err;
}

uint64_t pt_sockcg_find(const struct pt_sockcg *v, size_t n, uint64_t ino)
{
	struct pt_sockcg key = { .ino = ino };
	const struct pt_sockcg *hit = n ? bsearch(&key, v, n, sizeof(*v),
						  cmp_ino) : NULL;

	return hit ? hit->cgid : 0;
}
