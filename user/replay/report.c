// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Replay reports: text for a terminal, JSON for programs, JUnit for CI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/common.h"
#include "base/jsonw.h"
#include "replay/replay.h"

static const char *state_name(enum pt_rstate s)
{
	switch (s) {
	case PT_R_PLANNED: return "not-sent";
	case PT_R_SKIPPED: return "skipped";
	case PT_R_FILTERED: return "filtered";
	case PT_R_PASS: return "passed";
	case PT_R_FAIL: return "failed";
	case PT_R_ERROR: return "error";
	}
	return "?";
}

static void case_id(char *buf, size_t n, const struct pt_rcase *c)
{
	if (c->seq)
		snprintf(buf, n, "conn %llu #%zu", (unsigned long long)c->conn_id,
			 c->seq);
	else
		snprintf(buf, n, "conn %llu", (unsigned long long)c->conn_id);
}

char *pt_replay_summary(const struct pt_replay *rp)
{
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);

	if (!f)
		pt_oom();
	if (rp->o->dry_run)
		fprintf(f, "replay --dry-run: %zu would be sent on %zu connections",
			rp->planned, rp->nconns);
	else
		fprintf(f, "replay: %zu sent on %zu connections in %.1fs: %zu passed, %zu failed, %zu errors",
			rp->pass + rp->fail + rp->errors, rp->conns_sent, rp->secs,
			rp->pass, rp->fail, rp->errors);
	fprintf(f, "; %zu skipped, %zu filtered", rp->skipped, rp->filtered);
	fprintf(f, "; noise ignored: %zu found, %zu by rules, %zu learned",
		rp->noise_auto, rp->noise_rule, rp->noise_learned);
	if (rp->interrupted && !rp->o->dry_run)
		fprintf(f, "; interrupted: %zu not sent%s",
			rp->planned - rp->pass - rp->fail - rp->errors,
			rp->unread ? ", and the rest of the capture not read" : "");
	else if (rp->interrupted)
		fprintf(f, "; interrupted%s",
			rp->unread ? " before the capture was all read" : "");
	fclose(f);
	return line;
}

void pt_replay_report_text(FILE *f, const struct pt_replay *rp)
{
	size_t i, k;
	char id[64];

	for (i = 0; i < rp->n; i++) {
		struct pt_rcase cb, *c = &cb;

		pt_replay_case(rp, i, c);
		case_id(id, sizeof(id), c);
		switch (c->state) {
		case PT_R_PASS:
			if (pt_verbose)
				fprintf(f, "PASS   %s (%s)\n", c->name, id);
			break;
		case PT_R_FAIL:
			fprintf(f, "FAIL   %s (%s): %zu difference%s\n", c->name,
				id, c->diffs.n, c->diffs.n == 1 ? "" : "s");
			for (k = 0; k < c->diffs.n; k++)
				fprintf(f, "         %s: recorded %s, got %s\n",
					c->diffs.v[k].where, c->diffs.v[k].want,
					c->diffs.v[k].got);
			break;
		case PT_R_ERROR:
			fprintf(f, "ERROR  %s (%s): %s\n", c->name, id, c->r[0].err);
			break;
		case PT_R_SKIPPED:
			fprintf(f, "SKIP   %s (%s): %s\n", c->name, id, c->why);
			break;
		case PT_R_FILTERED:
			if (pt_verbose)
				fprintf(f, "FILTER %s (%s): %s\n", c->name, id, c->why);
			break;
		case PT_R_PLANNED:
			if (rp->o->dry_run)
				fprintf(f, "SEND   %s (%s) at +%.3fs\n", c->name,
					id, c->at_ns / 1e9);
			break;
		}
		pt_rcase_free(c);
	}
}

static void json_case(FILE *f, const struct pt_rcase *c)
{
	size_t k;

	fprintf(f, "{\"conn\":%llu", (unsigned long long)c->conn_id);
	if (c->seq)
		fprintf(f, ",\"seq\":%zu", c->seq);
	fputs(",\"name\":", f);
	pt_json_str(f, c->name);
	fprintf(f, ",\"result\":\"%s\"", state_name(c->state));
	if (c->why) {
		fputs(",\"reason\":", f);
		pt_json_str(f, c->why);
	}
	if (c->recorded_status >= 0)
		fprintf(f, ",\"recorded_status\":%d", c->recorded_status);
	if (c->r[0].done && !c->r[0].err[0])
		fprintf(f, ",\"status\":%d,\"latency_ns\":%llu", c->r[0].status,
			(unsigned long long)c->r[0].ns);
	if (c->r[0].err[0]) {
		fputs(",\"error\":", f);
		pt_json_str(f, c->r[0].err);
	}
	if (c->state == PT_R_PASS || c->state == PT_R_FAIL) {
		fprintf(f, ",\"noise\":{\"found\":%zu,\"rules\":%zu,\"learned\":%zu}",
			c->diffs.noise_auto, c->diffs.noise_rule,
			c->diffs.noise_learned);
		fputs(",\"diffs\":[", f);
		for (k = 0; k < c->diffs.n; k++) {
			fputs(k ? ",{\"where\":" : "{\"where\":", f);
			pt_json_str(f, c->diffs.v[k].where);
			fputs(",\"recorded\":", f);
			pt_json_str(f, c->diffs.v[k].want);
			fputs(",\"got\":", f);
			pt_json_str(f, c->diffs.v[k].got);
			fputc('}', f);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

void pt_replay_report_json(FILE *f, const struct pt_replay *rp)
{
	size_t i;

	fprintf(f, "{\"to\":");
	pt_json_str(f, rp->o->to);
	fputs(",\"damaged\":", f);
	if (rp->damaged)
		pt_json_str(f, rp->damaged);
	else
		fputs("null", f);
	fprintf(f, ",\"summary\":{\"sent\":%zu,\"connections\":%zu,\"passed\":%zu,"
		"\"failed\":%zu,\"errors\":%zu,\"skipped\":%zu,\"filtered\":%zu,"
		"\"planned\":%zu,\"planned_connections\":%zu,"
		"\"noise\":{\"found\":%zu,\"rules\":%zu,\"learned\":%zu},"
		"\"seconds\":%.3f,\"interrupted\":%s,\"all_read\":%s},\"cases\":[",
		rp->pass + rp->fail + rp->errors, rp->conns_sent, rp->pass, rp->fail,
		rp->errors, rp->skipped, rp->filtered, rp->planned, rp->nconns,
		rp->noise_auto, rp->noise_rule, rp->noise_learned, rp->secs,
		rp->interrupted ? "true" : "false", rp->unread ? "false" : "true");
	for (i = 0; i < rp->n; i++) {
		struct pt_rcase c;

		if (i)
			fputc(',', f);
		pt_replay_case(rp, i, &c);
		json_case(f, &c);
		pt_rcase_free(&c);
	}
	fputs("]}\n", f);
}

/* Text for XML attributes and character data: UTF-8 only (a stray byte
 * becomes U+FFFD), no control bytes. */
static void xml(FILE *f, const char *s)
{
	size_t n = strlen(s);
	char *fixed = NULL;

	if (!pt_utf8_valid((const uint8_t *)s, n))
		s = fixed = pt_utf8_fix(s, n, &n);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		switch (ch) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			/* XML 1.0 has no place for other control bytes */
			if (ch < 0x20 && ch != '\n' && ch != '\t')
				fputc('?', f);
			else
				fputc(ch, f);
		}
	}
	free(fixed);
}

void pt_replay_report_junit(FILE *f, const struct pt_replay *rp)
{
	/* not sent (Ctrl-C) is written as skipped too */
	size_t i, k, tests = rp->n - rp->filtered + (rp->damaged != NULL);
	size_t skipped = rp->skipped + rp->planned - rp->pass - rp->fail -
			 rp->errors;
	char id[64];

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
	fprintf(f, "<testsuites tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
		tests, rp->fail, rp->errors + (rp->damaged != NULL), skipped, rp->secs);
	fputs("  <testsuite name=\"podtap replay ", f);
	xml(f, rp->o->to);
	fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n",
		tests, rp->fail, rp->errors + (rp->damaged != NULL), skipped, rp->secs);
	if (rp->damaged) {
		fputs("    <testcase classname=\"capture\" name=\"the capture file\" time=\"0\">\n      <error message=\"", f);
		xml(f, rp->damaged);
		fputs("\"/>\n    </testcase>\n", f);
	}
	for (i = 0; i < rp->n; i++) {
		struct pt_rcase cb, *c = &cb;

		pt_replay_case(rp, i, c);
		if (c->state == PT_R_FILTERED) {
			pt_rcase_free(c);
			continue;
		}
		case_id(id, sizeof(id), c);
		fputs("    <testcase classname=\"", f);
		xml(f, id);
		fputs("\" name=\"", f);
		xml(f, c->name);
		fprintf(f, "\" time=\"%.6f\"", c->r[0].ns / 1e9);
		switch (c->state) {
		case PT_R_PASS:
			fputs("/>\n", f);
			pt_rcase_free(c);
			continue;
		case PT_R_FAIL:
			fprintf(f, ">\n      <failure message=\"%zu difference%s\">",
				c->diffs.n, c->diffs.n == 1 ? "" : "s");
			for (k = 0; k < c->diffs.n; k++) {
				xml(f, c->diffs.v[k].where);
				fputs(": recorded ", f);
				xml(f, c->diffs.v[k].want);
				fputs(", got ", f);
				xml(f, c->diffs.v[k].got);
				fputc('\n', f);
			}
			fputs("</failure>\n", f);
			break;
		case PT_R_ERROR:
			fputs(">\n      <error message=\"", f);
			xml(f, c->r[0].err);
			fputs("\"/>\n", f);
			break;
		default:
			fputs(">\n      <skipped message=\"", f);
			xml(f, c->why ? c->why : "not sent");
			fputs("\"/>\n", f);
			break;
		}
		fputs("    </testcase>\n", f);
		pt_rcase_free(c);
	}
	fputs("  </testsuite>\n</testsuites>\n", f);
}
