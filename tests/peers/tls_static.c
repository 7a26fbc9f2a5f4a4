// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * An HTTPS server with OpenSSL linked in statically (tests/e2e_tls.sh
 * builds it against libssl.a): no libssl.so in its maps, SSL_read and
 * SSL_write in the executable itself. One connection at a time; GET /n/K
 * answers body(K) of tls_server.py, then the connection is closed.
 * Usage: tls_static PORT CERT KEY
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* tls_server.py's body(k): "k:" repeated, cut to k bytes */
static char *body(long k)
{
	char *b = malloc(k + 32), unit[32];
	long n = 0, u = snprintf(unit, sizeof(unit), "%ld:", k);

	while (n < k) {
		memcpy(b + n, unit, u);
		n += u;
	}
	return b;
}

static void serve(SSL *ssl)
{
	char req[8192], head[128], *b;
	int n = 0, r;
	long k;

	while (n < (int)sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		r = SSL_read(ssl, req + n, (int)sizeof(req) - 1 - n);
		if (r <= 0)
			return;
		n += r;
		req[n] = 0;
	}
	if (sscanf(req, "GET /n/%ld ", &k) != 1 || k < 0 || k > (8 << 20))
		k = 0;
	b = body(k);
	r = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\nConnection: close\r\n\r\n", k);
	if (SSL_write(ssl, head, r) > 0 && k)
		SSL_write(ssl, b, (int)k);
	free(b);
	SSL_shutdown(ssl);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	SSL_CTX *ctx;
	int s, one = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: tls_static PORT CERT KEY\n");
		return 2;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 16)) {
		perror("tls_static");
		return 1;
	}
	for (;;) {
		int c = accept(s, NULL, NULL);
		SSL *ssl;

		if (c < 0)
			continue;
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) == 1)
			serve(ssl);
		SSL_free(ssl);
		close(c);
	}
}
