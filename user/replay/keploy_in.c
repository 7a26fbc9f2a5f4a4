// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A Keploy test set as a capture: see keploy_in.h. Read with libyaml. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include <zlib.h>
#include "base/common.h"
#include "replay/keploy_in.h"

#define BINARY_TAG	"tag:yaml.org,2002:binary"

struct kdoc {
	yaml_document_t d;
	const char *file;
	const char *bad;	/* the first value that is not what it should
				 * be, or NULL */
};

static yaml_node_t *get(struct kdoc *k, yaml_node_t *m, const char *key)
{
	yaml_node_pair_t *p;

	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *n = yaml_document_get_node(&k->d, p->key);

		if (n && n->type == YAML_SCALAR_NODE &&
		    n->data.scalar.length == strlen(key) &&
		    !memcmp(n->data.scalar.value, key, n->data.scalar.length))
			return yaml_document_get_node(&k->d, p->value);
	}
	return NULL;
}

/* A scalar's bytes (a !!binary one decoded), malloc'd; NULL if none. */
static char *sval(yaml_node_t *n, size_t *len)
{
	char *s;
	void *b;

	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	if (n->tag && !strcmp((const char *)n->tag, BINARY_TAG)) {
		if (!pt_base64_decode((const char *)n->data.scalar.value, &b, len))
			return b;
		*len = 0;
		return NULL;	/* not base64: the caller says so */
	}
	*len = n->data.scalar.length;
	s = pt_xcalloc(1, *len + 1);
	memcpy(s, n->data.scalar.value, *len);
	return s;
}

static char *sdup(yaml_node_t *n, const char *dflt)
{
	size_t len;
	char *s = sval(n, &len);

	return s ? s : pt_xstrdup(dflt);
}

static long num(yaml_node_t *n, long dflt)
{
	char *s = sdup(n, ""), *end;
	long v = strtol(s, &end, 10);

	v = *s && !*end ? v : dflt;
	free(s);
	return v;
}

/* RFC 3339 to ns since the epoch; 0 if it is not one. */
static uint64_t stamp(yaml_node_t *n)
{
	char *s = sdup(n, ""), *p;
	struct tm tm = {};
	uint64_t ns = 0, scale = 100000000;

	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p) {
		ns = (uint64_t)timegm(&tm) * 1000000000ULL;
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				ns += (uint64_t)(*p - '0') * scale;
	}
	free(s);
	return ns;
}

static void add_field(struct pt_http_msg *m, const char *name, char *value)
{
	m->fields = pt_xrealloc(m->fields, m->nfields + 1, sizeof(*m->fields));
	m->fields[m->nfields].name = pt_xstrdup(name);
	m->fields[m->nfields].value = value;
	m->nfields++;
}

static void fields(struct kdoc *k, yaml_node_t *h, struct pt_http_msg *m)
{
	yaml_node_pair_t *p;

	if (!h || h->type != YAML_MAPPING_NODE)
		return;
	for (p = h->data.mapping.pairs.start; p < h->data.mapping.pairs.top; p++) {
		char *name = sdup(yaml_document_get_node(&k->d, p->key), "");

		add_field(m, name, sdup(yaml_document_get_node(&k->d, p->value), ""));
		free(name);
	}
}

/* Keploy keeps bodies decoded beside their Content-Encoding: coded
 * again (gzip, deflate) so that the message is as it was sent; a coding
 * zlib does not do is dropped from the fields instead. */
static char *encode(struct pt_http_msg *m, char *s, size_t *len)
{
	const char *ce = pt_http_field(m, "Content-Encoding");
	z_stream z = {};
	size_t cap;
	uint8_t *out;
	int wbits;

	if (!ce || !*ce || !strcasecmp(ce, "identity") || !s || !*len)
		return s;
	if (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip"))
		wbits = 16 + MAX_WBITS;
	else if (!strcasecmp(ce, "deflate"))
		wbits = MAX_WBITS;
	else
		wbits = 0;
	if (!wbits || deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits,
				   8, Z_DEFAULT_STRATEGY) != Z_OK) {
		size_t i, k;

		for (i = k = 0; i < m->nfields; i++) {
			if (!strcasecmp(m->fields[i].name, "Content-Encoding")) {
				free(m->fields[i].name);
				free(m->fields[i].value);
				continue;
			}
			m->fields[k++] = m->fields[i];
		}
		m->nfields = k;
		return s;
	}
	cap = deflateBound(&z, *len);
	out = pt_xcalloc(1, cap);
	z.next_in = (Bytef *)s;
	z.avail_in = (uInt)*len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*len = z.total_out;
	deflateEnd(&z);
	free(s);
	return (char *)out;
}

static void body(struct kdoc *k, yaml_node_t *b, struct pt_http_msg *m)
{
	size_t len = 0;
	char *s = sval(b, &len);

	if (!s && b && b->tag && !strcmp((const char *)b->tag, BINARY_TAG) && !k->bad)
		k->bad = "a !!binary body that is not base64";
	s = encode(m, s, &len);

	m->body_alloc = (uint8_t *)s;
	m->body = m->body_alloc;
	m->body_len = s ? len : 0;
	m->framing = len ? PT_FRAME_LENGTH : PT_FRAME_NONE;
	m->content_length = len;
	m->complete = true;
}

/* req: method, url (target and Host from it), header, body. */
static uint16_t request(struct kdoc *k, yaml_node_t *q, struct pt_http_msg *m)
{
	char *url = sdup(get(k, q, "url"), "/"), *p = url, *auth = NULL, *colon;
	uint16_t port = 0;

	m->request = true;
	m->method = sdup(get(k, q, "method"), "GET");
	m->major = (uint8_t)num(get(k, q, "proto_major"), 1);
	m->minor = (uint8_t)num(get(k, q, "proto_minor"), 1);
	if (!strncasecmp(p, "http://", 7) || !strncasecmp(p, "https://", 8)) {
		p += p[4] == ':' ? 7 : 8;
		auth = strndup(p, strcspn(p, "/?#"));
		p += strlen(auth);
		colon = strrchr(auth, ':');
		port = colon ? (uint16_t)atoi(colon + 1) :
		       url[4] == 's' ? 443 : 80;
	}
	m->target = pt_xstrdup(*p ? p : "/");
	fields(k, get(k, q, "header"), m);
	/* Go keeps Host out of its header map: Keploy's URL has it */
	if (auth && !pt_http_field(m, "Host"))
		add_field(m, "Host", pt_xstrdup(auth));
	body(k, get(k, q, "body"), m);
	free(auth);
	free(url);
	/* what goes on the wire as it is: no way to split a request */
	if (!k->bad && (!*m->method ||
			strspn(m->method, "!#$%&'*+-.^_`|~0123456789"
			       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") !=
			strlen(m->method)))
		k->bad = "a method that is not a token";
	for (const char *c = m->target; !k->bad && *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			k->bad = "a URL with spaces or control characters";
	for (size_t i = 0; !k->bad && i < m->nfields; i++)
		if (strpbrk(m->fields[i].name, " \t\r\n:") ||
		    strpbrk(m->fields[i].value, "\r\n"))
			k->bad = "a header field with CR, LF or a bad name";
	return port;
}

static void response(struct kdoc *k, yaml_node_t *r, struct pt_http_msg *m)
{
	m->status = (int)num(get(k, r, "status_code"), 0);
	if ((m->status < 100 || m->status > 999) && !k->bad)
		k->bad = "a status_code that is not a number from 100 to 999";
	m->reason = sdup(get(k, r, "status_message"), "");
	m->major = (uint8_t)num(get(k, r, "proto_major"), 1);
	m->minor = (uint8_t)num(get(k, r, "proto_minor"), 1);
	fields(k, get(k, r, "header"), m);
	body(k, get(k, r, "body"), m);
}

/* One Http document as a connection with one exchange. */
static void add_exchange(struct pt_kset *ks, struct kdoc *k, yaml_node_t *spec,
			 bool inbound)
{
	struct pt_capture *cap = &ks->cap;
	size_t i = cap->conns.n;
	struct pt_conn *c = pt_xcalloc(1, sizeof(*c));
	struct pt_xconn *xc;
	struct pt_exchange *x;
	yaml_node_t *noise = get(k, get(k, spec, "assertions"), "noise");
	uint16_t port;

	cap->conns.v = pt_xrealloc(cap->conns.v, i + 1, sizeof(*cap->conns.v));
	cap->xc = pt_xrealloc(cap->xc, i + 1, sizeof(*cap->xc));
	ks->noise = pt_xrealloc(ks->noise, i + 1, sizeof(*ks->noise));
	ks->nnoise = pt_xrealloc(ks->nnoise, i + 1, sizeof(*ks->nnoise));
	cap->conns.v[i] = c;
	cap->conns.n++;
	xc = &cap->xc[i];
	memset(xc, 0, sizeof(*xc));
	x = xc->x = pt_xcalloc(1, sizeof(*x));
	xc->nx = 1;
	x->kind = PT_X_HTTP;
	x->has_req = x->has_resp = true;
	port = request(k, get(k, spec, "req"), &x->req);
	response(k, get(k, spec, "resp"), &x->resp);
	x->req_span.ts = x->req_span.ts_end = stamp(get(k, get(k, spec, "req"), "timestamp"));
	x->resp_span.ts = x->resp_span.ts_end =
		stamp(get(k, get(k, spec, "resp"), "timestamp"));
	/* no time: the order of the files */
	if (!x->req_span.ts)
		x->req_span.ts = x->req_span.ts_end = i;
	c->id = i + 1;
	c->has_open = true;
	c->open.role = inbound ? PT_ROLE_SERVER : PT_ROLE_CLIENT;
	c->open.t.family = 2;
	c->open.t.laddr[0] = c->open.t.raddr[0] = 127;
	c->open.t.laddr[3] = c->open.t.raddr[3] = 1;
	if (inbound)
		c->open.t.lport = port;
	else
		c->open.t.rport = port;
	c->first_ts = c->last_ts = x->req_span.ts;
	xc->conn = c;
	xc->assembled = xc->http = xc->role_known = true;
	xc->inbound = inbound;
	xc->req_dir = inbound ? PT_DIR_RX : PT_DIR_TX;
	xc->proto = PT_XP_HTTP1;
	ks->noise[i] = NULL;
	ks->nnoise[i] = 0;
	if (noise && noise->type == YAML_MAPPING_NODE) {
		yaml_node_pair_t *p;

		for (p = noise->data.mapping.pairs.start;
		     p < noise->data.mapping.pairs.top; p++) {
			ks->noise[i] = pt_xrealloc(ks->noise[i], ks->nnoise[i] + 1,
						   sizeof(**ks->noise));
			ks->noise[i][ks->nnoise[i]++] =
				sdup(yaml_document_get_node(&k->d, p->key), "");
		}
	}
}

static int read_file(struct pt_kset *ks, const char *path, bool tests)
{
	yaml_parser_t p;
	struct kdoc k = { .file = path };
	FILE *f = fopen(path, "r");
	struct stat st;
	int err = 0;

	if (!f) {
		pt_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		pt_err("%s: not a regular file", path);
		fclose(f);
		return -EINVAL;
	}
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	for (;;) {
		yaml_node_t *root, *kind;
		char *ks_kind;
		size_t line;

		if (!yaml_parser_load(&p, &k.d)) {
			pt_err("%s: line %zu: %s", path, p.problem_mark.line + 1,
			       p.problem ? p.problem : "not YAML");
			err = -EINVAL;
			break;
		}
		root = yaml_document_get_root_node(&k.d);
		if (!root) {
			yaml_document_delete(&k.d);
			break;
		}
		kind = get(&k, root, "kind");
		ks_kind = sdup(kind, "");
		{
			char *v = sdup(get(&k, root, "version"), "");

			if (strncmp(v, "api.keploy.io/", 14))
				k.bad = "no api.keploy.io version";
			free(v);
		}
		if (!k.bad && !strcmp(ks_kind, "Http") && get(&k, root, "spec")) {
			add_exchange(ks, &k, get(&k, root, "spec"), tests);
			if (tests)
				ks->tests++;
			else
				ks->mocks++;
		} else if (!k.bad) {
			ks->other++;
		}
		free(ks_kind);
		line = k.d.start_mark.line + 1;
		yaml_document_delete(&k.d);
		if (k.bad) {
			pt_err("%s: the document from line %zu has %s", path, line, k.bad);
			err = -EINVAL;
			break;
		}
	}
	yaml_parser_delete(&p);
	fclose(f);
	return err;
}

bool pt_kset_is(const char *path)
{
	char p[4096];
	struct stat st;

	if (stat(path, &st) || !S_ISDIR(st.st_mode))
		return false;
	snprintf(p, sizeof(p), "%s/mocks.yaml", path);
	if (!access(p, R_OK))
		return true;
	snprintf(p, sizeof(p), "%s/tests", path);
	return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static int cmp_name(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	/* test-2 before test-10 */
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

int pt_kset_load(struct pt_kset *ks, const char *dir)
{
	char path[4096], **names = NULL;
	size_t n = 0, i;
	struct dirent *e;
	DIR *d;
	int err = 0;

	memset(ks, 0, sizeof(*ks));
	ks->cap.path = dir;
	snprintf(path, sizeof(path), "%s/tests", dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l > 5 && !strcmp(e->d_name + l - 5, ".yaml")) {
			names = pt_xrealloc(names, n + 1, sizeof(*names));
			names[n++] = pt_xstrdup(e->d_name);
		}
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof(*names), cmp_name);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/tests/%s", dir, names[i]);
		if (!err)
			err = read_file(ks, path, true);
		free(names[i]);
	}
	free(names);
	snprintf(path, sizeof(path), "%s/mocks.yaml", dir);
	if (!err && !access(path, F_OK))
		err = read_file(ks, path, false);
	if (!err && !ks->tests && !ks->mocks) {
		pt_err("%s: no Http test or mock in this Keploy test set", dir);
		err = -ENOENT;
	}
	if (!err && ks->other)
		pt_info("%s: %zu test%s or mock%s of other kinds (Generic, gRPC, ...) left out: only Http is replayed and mocked",
			dir, ks->other, ks->other == 1 ? "" : "s", ks->other == 1 ? "" : "s");
	if (err)
		pt_kset_free(ks);
	return err;
}

void pt_kset_free(struct pt_kset *ks)
{
	size_t i, k;

	for (i = 0; ks->nnoise && i < ks->cap.conns.n; i++) {
		for (k = 0; k < ks->nnoise[i]; k++)
			free(ks->noise[i][k]);
		free(ks->noise[i]);
	}
	free(ks->noise);
	free(ks->nnoise);
	pt_capture_free(&ks->cap);
	memset(ks, 0, sizeof(*ks));
}

int pt_input_kset(struct pt_kset *ks, const char *const *paths, int n)
{
	int i;

	memset(ks, 0, sizeof(*ks));
	for (i = 0; i < n; i++) {
		struct stat st;

		if (!pt_kset_is(paths[i]) && !stat(paths[i], &st) &&
		    S_ISDIR(st.st_mode)) {
			pt_err("%s: a directory that is not a Keploy test set (one holds tests/ or mocks.yaml: give DIR/test-set-N)",
			       paths[i]);
			return -EINVAL;
		}
		if (pt_kset_is(paths[i])) {
			if (n > 1) {
				pt_err("%s: a Keploy test set is read alone, not with other files",
				       paths[i]);
				return -EINVAL;
			}
			return pt_kset_load(ks, paths[i]) < 0 ? -EINVAL : 1;
		}
	}
	return 0;
}

int pt_input_load(struct pt_kset *ks, const char *const *paths, int n)
{
	int err = pt_input_kset(ks, paths, n);

	if (err)
		return err < 0 ? err : 0;
	return pt_capture_load_many(&ks->cap, paths, n, true);
}
