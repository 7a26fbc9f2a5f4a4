// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* RecordingSessions and pods from API objects; pods to cgroups. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "kube/objects.h"
#include "base/common.h"
#include "base/jread.h"

char *pt_obj_uid(const char *json, size_t len)
{
	struct pt_jr j;
	char *uid;

	if (pt_jr_parse(&j, json, len))
		return NULL;
	uid = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.uid"));
	pt_jr_free(&j);
	return uid;
}

static int parse_time(const char *s, uint64_t *real_ns)
{
	struct tm tm = {};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	if (!end)
		return -EINVAL;
	*real_ns = (uint64_t)timegm(&tm) * 1000000000ull;
	return 0;
}

static int parse_kv(struct pt_jr *j, int obj, struct pt_kv **out, int *n)
{
	int el, k;

	*out = NULL;
	*n = 0;
	if (obj < 0)
		return 0;
	if (pt_jr_type(j, obj) != PT_J_OBJECT)
		return -EINVAL;
	*out = pt_xcalloc(pt_jr_size(j, obj) + 1, sizeof(**out));
	pt_jr_for_each(j, obj, el, k) {
		(*out)[k].k = pt_jr_str(j, el - 1);
		(*out)[k].v = pt_jr_str(j, el);
		if (!(*out)[k].k || !(*out)[k].v)
			return -EINVAL;
		*n = k + 1;
	}
	return 0;
}

static void free_kv(struct pt_kv *v, int n)
{
	int i;

	for (i = 0; v && i < n + 1; i++) {
		free(v[i].k);
		free(v[i].v);
	}
	free(v);
}

static int parse_strs(struct pt_jr *j, int arr, char ***out, int *n)
{
	int el, k;

	*out = NULL;
	*n = 0;
	if (arr < 0)
		return 0;
	if (pt_jr_type(j, arr) != PT_J_ARRAY)
		return -EINVAL;
	*out = pt_xcalloc(pt_jr_size(j, arr) + 1, sizeof(char *));
	pt_jr_for_each(j, arr, el, k) {
		(*out)[k] = pt_jr_str(j, el);
		if (!(*out)[k])
			return -EINVAL;
		*n = k + 1;
	}
	return 0;
}

static void free_strs(char **v, int n)
{
	int i;

	for (i = 0; v && i < n + 1; i++)
		free(v[i]);
	free(v);
}

static int parse_exprs(struct pt_jr *j, int arr, struct pt_session_spec *s)
{
	static const char *const ops[] = { "In", "NotIn", "Exists",
					   "DoesNotExist" };
	int el, k, op;
	size_t i;

	if (arr < 0)
		return 0;
	if (pt_jr_type(j, arr) != PT_J_ARRAY)
		return -EINVAL;
	s->ex = pt_xcalloc(pt_jr_size(j, arr) + 1, sizeof(*s->ex));
	pt_jr_for_each(j, arr, el, k) {
		struct pt_sel_expr *e = &s->ex[k];

		s->nex = k + 1;
		e->key = pt_jr_str(j, pt_jr_get(j, el, "key"));
		op = pt_jr_get(j, el, "operator");
		for (i = 0; i < ARRAY_SIZE(ops); i++)
			if (pt_jr_streq(j, op, ops[i]))
				break;
		if (!e->key || i == ARRAY_SIZE(ops) ||
		    parse_strs(j, pt_jr_get(j, el, "values"), &e->vals,
			       &e->nvals))
			return -EINVAL;
		e->op = (enum pt_sel_op)i;
		/* the API's rule: In/NotIn need values, Exists none */
		if ((e->op <= PT_SEL_NOTIN) != (e->nvals > 0))
			return -EINVAL;
	}
	return 0;
}

int pt_session_parse(const char *json, size_t len, struct pt_session_spec *s)
{
	struct pt_jr j;
	int spec, sel, tls;
	char *v;

	memset(s, 0, sizeof(*s));
	if (pt_jr_parse(&j, json, len))
		return -EINVAL;
	s->uid = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.uid"));
	s->ns = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.namespace"));
	s->name = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.name"));
	if (!s->uid || !s->ns || !s->name) {
		pt_jr_free(&j);
		pt_session_free(s);
		return -EINVAL;
	}
	pt_jr_u64(&j, pt_jr_path(&j, 0, "metadata.generation"), &s->generation);
	v = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.creationTimestamp"));
	if (parse_time(v, &s->created_real_ns))
		s->created_real_ns = pt_now_real_ns();
	free(v);
	spec = pt_jr_get(&j, 0, "spec");
	sel = pt_jr_get(&j, spec, "selector");
	if (sel < 0 || pt_jr_type(&j, sel) != PT_J_OBJECT)
		snprintf(s->invalid, sizeof(s->invalid), "spec.selector is missing");
	else if (parse_kv(&j, pt_jr_get(&j, sel, "matchLabels"), &s->match,
			  &s->nmatch))
		snprintf(s->invalid, sizeof(s->invalid),
			 "spec.selector.matchLabels: want a map of strings");
	else if (parse_exprs(&j, pt_jr_get(&j, sel, "matchExpressions"), s))
		snprintf(s->invalid, sizeof(s->invalid),
			 "spec.selector.matchExpressions: want key, operator (In, NotIn, Exists, DoesNotExist) and values as the operator needs");
	else if (parse_strs(&j, pt_jr_get(&j, spec, "containers"),
			    &s->containers, &s->ncontainers))
		snprintf(s->invalid, sizeof(s->invalid),
			 "spec.containers: want a list of container names");
	if (!s->invalid[0] && (v = pt_jr_str(&j, pt_jr_get(&j, spec, "duration")))) {
		if (pt_parse_duration(v, &s->duration_ns))
			snprintf(s->invalid, sizeof(s->invalid),
				 "spec.duration %.60s: not a duration (try 15m, 1h30m)", v);
		free(v);
	}
	if (!s->invalid[0] && (v = pt_jr_str(&j, pt_jr_get(&j, spec, "maxBytes")))) {
		if (pt_parse_size(v, &s->max_bytes))
			snprintf(s->invalid, sizeof(s->invalid),
				 "spec.maxBytes %.60s: not a quantity (try 1Gi, 500M)", v);
		free(v);
	}
	s->tls = true;
	tls = pt_jr_get(&j, spec, "tls");
	if (!s->invalid[0] && tls >= 0) {
		int n = 0;
		const char *raw = pt_jr_raw(&j, tls, &n);

		if (pt_jr_type(&j, tls) == PT_J_PRIM && n == 5 &&
		    !memcmp(raw, "false", 5))
			s->tls = false;
		else if (pt_jr_type(&j, tls) != PT_J_PRIM || n != 4 ||
			 memcmp(raw, "true", 4))
			snprintf(s->invalid, sizeof(s->invalid),
				 "spec.tls: want true or false");
	}
	pt_jr_free(&j);
	return 0;
}

int pt_session_node_status(const char *json, size_t len, const char *node,
			   struct pt_node_status *ns)
{
	struct pt_jr j;
	int arr, el, k, err = -ENOENT;

	memset(ns, 0, sizeof(*ns));
	if (pt_jr_parse(&j, json, len))
		return -EINVAL;
	arr = pt_jr_path(&j, 0, "status.perNode");
	pt_jr_for_each(&j, arr, el, k) {
		char *v;

		if (!pt_jr_streq(&j, pt_jr_get(&j, el, "node"), node))
			continue;
		pt_jr_u64(&j, pt_jr_get(&j, el, "bytes"), &ns->bytes);
		pt_jr_u64(&j, pt_jr_get(&j, el, "lostBytes"), &ns->lost);
		pt_jr_u64(&j, pt_jr_get(&j, el, "connections"), &ns->conns);
		pt_jr_u64(&j, pt_jr_get(&j, el, "segments"), &ns->segments);
		if ((v = pt_jr_str(&j, pt_jr_get(&j, el, "phase"))))
			snprintf(ns->phase, sizeof(ns->phase), "%s", v);
		free(v);
		if ((v = pt_jr_str(&j, pt_jr_get(&j, el, "message"))))
			snprintf(ns->message, sizeof(ns->message), "%s", v);
		free(v);
		err = 0;
		break;
	}
	pt_jr_free(&j);
	return err;
}

void pt_session_free(struct pt_session_spec *s)
{
	int i;

	free(s->uid);
	free(s->ns);
	free(s->name);
	free_kv(s->match, s->nmatch);
	for (i = 0; s->ex && i < s->nex; i++) {
		free(s->ex[i].key);
		free_strs(s->ex[i].vals, s->ex[i].nvals);
	}
	free(s->ex);
	free_strs(s->containers, s->ncontainers);
	memset(s, 0, sizeof(*s));
}

static void lower(char *s)
{
	for (; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int pt_pod_parse(const char *json, size_t len, struct pt_pod *p)
{
	static const char *const lists[] = { "status.initContainerStatuses",
		"status.containerStatuses", "status.ephemeralContainerStatuses" };
	struct pt_jr j;
	size_t l;
	char *phase;
	int el, k;

	memset(p, 0, sizeof(*p));
	if (pt_jr_parse(&j, json, len))
		return -EINVAL;
	p->uid = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.uid"));
	p->ns = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.namespace"));
	p->name = pt_jr_str(&j, pt_jr_path(&j, 0, "metadata.name"));
	p->node = pt_jr_str(&j, pt_jr_path(&j, 0, "spec.nodeName"));
	p->qos = pt_jr_str(&j, pt_jr_path(&j, 0, "status.qosClass"));
	lower(p->qos);
	phase = pt_jr_str(&j, pt_jr_path(&j, 0, "status.phase"));
	p->terminated = phase && (!strcmp(phase, "Succeeded") ||
				  !strcmp(phase, "Failed"));
	free(phase);
	if (!p->uid || !p->ns || !p->name ||
	    parse_kv(&j, pt_jr_path(&j, 0, "metadata.labels"), &p->labels,
		     &p->nlabels)) {
		pt_jr_free(&j);
		pt_pod_free(p);
		return -EINVAL;
	}
	for (l = 0; l < ARRAY_SIZE(lists); l++) {
		int arr = pt_jr_path(&j, 0, lists[l]);

		pt_jr_for_each(&j, arr, el, k) {
			char *name = pt_jr_str(&j, pt_jr_get(&j, el, "name"));
			char *id = pt_jr_str(&j, pt_jr_get(&j, el, "containerID"));
			char *sep = id ? strstr(id, "://") : NULL;

			if (!name || !sep || !sep[3]) {
				free(name);
				free(id);
				continue;
			}
			p->c = pt_xrealloc(p->c, p->nc + 1, sizeof(*p->c));
			p->c[p->nc].name = name;
			p->c[p->nc].id = pt_xstrdup(sep + 3);
			free(id);
			p->nc++;
		}
	}
	pt_jr_free(&j);
	return 0;
}

void pt_pod_free(struct pt_pod *p)
{
	int i;

	free(p->uid);
	free(p->ns);
	free(p->name);
	free(p->node);
	free(p->qos);
	free_kv(p->labels, p->nlabels);
	for (i = 0; i < p->nc; i++) {
		free(p->c[i].name);
		free(p->c[i].id);
	}
	free(p->c);
	memset(p, 0, sizeof(*p));
}

static const char *label(const struct pt_pod *p, const char *k)
{
	int i;

	for (i = 0; i < p->nlabels; i++)
		if (!strcmp(p->labels[i].k, k))
			return p->labels[i].v;
	return NULL;
}

bool pt_session_selects(const struct pt_session_spec *s,
			const struct pt_pod *p)
{
	int i, k;

	if (strcmp(s->ns, p->ns) || s->invalid[0])
		return false;
	for (i = 0; i < s->nmatch; i++) {
		const char *v = label(p, s->match[i].k);

		if (!v || strcmp(v, s->match[i].v))
			return false;
	}
	for (i = 0; i < s->nex; i++) {
		const struct pt_sel_expr *e = &s->ex[i];
		const char *v = label(p, e->key);
		bool in = false;

		for (k = 0; v && k < e->nvals; k++)
			in |= !strcmp(v, e->vals[k]);
		switch (e->op) {
		case PT_SEL_IN: if (!in) return false; break;
		case PT_SEL_NOTIN: if (in) return false; break;
		case PT_SEL_EXISTS: if (!v) return false; break;
		case PT_SEL_NOTEXISTS: if (v) return false; break;
		}
	}
	return true;
}

bool pt_session_wants_container(const struct pt_session_spec *s,
				const char *name)
{
	int i;

	if (!s->ncontainers)
		return true;
	for (i = 0; i < s->ncontainers; i++)
		if (!strcmp(s->containers[i], name))
			return true;
	return false;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return !stat(p, &st) && S_ISDIR(st.st_mode);
}

/* Inside a pod's cgroup: the entry that is the container's. */
static int find_container(const char *poddir, const char *id, char *out,
			  size_t n)
{
	size_t idlen = strlen(id);
	struct dirent *de;
	DIR *d = opendir(poddir);
	int err = -ENOENT;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		const char *name = de->d_name, *dash = strrchr(name, '-');
		size_t nl = strlen(name);

		/* cgroupfs: <id>; systemd: <runtime>-<id>.scope
		 * (cri-containerd-, crio-, docker-) */
		if (!strcmp(name, id) ||
		    (dash && nl > 6 && !strcmp(name + nl - 6, ".scope") &&
		     (size_t)(name + nl - 6 - (dash + 1)) == idlen &&
		     !strncmp(dash + 1, id, idlen))) {
			if ((size_t)snprintf(out, n, "%s/%s", poddir, name) < n)
				err = 0;
			break;
		}
	}
	closedir(d);
	return err;
}

/* Letters and digits only, and the characters in extra; not empty. */
static bool is_word(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

int pt_container_cgroup(const char *root, const struct pt_pod *p,
			const struct pt_container *c, char *out, size_t n)
{
	char uid_[64], dir[PATH_MAX];
	const char *qos = p->qos && *p->qos ? p->qos : "besteffort";
	bool guaranteed = !strcmp(qos, "guaranteed");
	size_t i;

	/*
	 * These come from the API server and become path components: a
	 * container id ".." would name the pod's parent, and an ancestor
	 * cgroup as target captures every pod under it.
	 */
	if (strlen(p->uid) >= sizeof(uid_) || !is_word(p->uid, "-") ||
	    !is_word(c->id, "") || (!guaranteed && strcmp(qos, "burstable") &&
				    strcmp(qos, "besteffort")))
		return -EINVAL;
	for (i = 0; p->uid[i]; i++)
		uid_[i] = p->uid[i] == '-' ? '_' : p->uid[i];
	uid_[i] = 0;
	/* systemd driver, then cgroupfs; Guaranteed pods sit one level up */
	if (guaranteed)
		snprintf(dir, sizeof(dir), "%s/kubepods.slice/kubepods-pod%s.slice",
			 root, uid_);
	else
		snprintf(dir, sizeof(dir), "%s/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice",
			 root, qos, qos, uid_);
	if (is_dir(dir))
		return find_container(dir, c->id, out, n);
	if (guaranteed)
		snprintf(dir, sizeof(dir), "%s/kubepods/pod%s", root, p->uid);
	else
		snprintf(dir, sizeof(dir), "%s/kubepods/%s/pod%s", root, qos,
			 p->uid);
	if (is_dir(dir))
		return find_container(dir, c->id, out, n);
	return -ENOENT;
}
