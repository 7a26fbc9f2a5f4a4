// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What one TLS library call costs a process, for bench.py: N calls of
 * SSL_read_ex on an SSL that has no connection (it fails at once, in
 * OpenSSL's inner read function, which podtap's probes sit on), timed.
 * Prints the nanoseconds per call of each of R rounds.
 *
 * Usage: tlscall N R
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0, i;
	int rounds = argc > 2 ? atoi(argv[2]) : 0, r;
	SSL_CTX *ctx;
	char buf[64];
	size_t got;
	SSL *s;

	if (argc != 3 || n < 1 || rounds < 1) {
		fprintf(stderr, "usage: tlscall CALLS ROUNDS\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_method());
	s = ctx ? SSL_new(ctx) : NULL;
	if (!s) {
		fprintf(stderr, "tlscall: OpenSSL would not make an SSL\n");
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		double t0 = now();

		for (i = 0; i < n; i++) {
			SSL_read_ex(s, buf, sizeof(buf), &got);
			ERR_clear_error();
		}
		printf("%.1f\n", (now() - t0) / (double)n * 1e9);
		fflush(stdout);
	}
	SSL_free(s);
	SSL_CTX_free(ctx);
	return 0;
}
