/* tls_int.h - what tls_server.c shares with tls_conn.c and the tests;
 * not for other modules (use tls.h). */
#ifndef MERIDIAN_TLS_INT_H
#define MERIDIAN_TLS_INT_H

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls.h"

/* The context new connections start on (the default set's); the SNI
 * callback moves a connection to its set's context. */
SSL_CTX *tls_server_default_ctx(const tls_server *s);

/* ALPN by server preference from the client's list (wire format: length-
 * prefixed names): h2 when `h2` and offered, else http/1.1 when offered,
 * else none. Pure. */
tls_alpn tls_alpn_choose(const unsigned char *in, size_t inlen, bool h2);

/* Watch the socket BIO of c->ssl (set by SSL_set_fd) for short reads
 * (tls_conn.sock_drained). */
void tls_conn_watch_reads(tls_conn *c);

/* Empty this thread's OpenSSL error queue before an SSL_* I/O call, as
 * SSL_get_error needs; a peek first, because clearing an already empty
 * queue costs ~800 instructions (every slot is reset), three times per
 * proxied request. */
static inline void tls_err_reset(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

#endif
