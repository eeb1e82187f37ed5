/* tls_int.h - what tls_server.c shares with tls_conn.c and the tests;
 * not for other modules (use tls.h). */
#ifndef MERIDIAN_TLS_INT_H
#define MERIDIAN_TLS_INT_H

#include <openssl/ssl.h>

#include "tls/tls.h"

/* The context new connections start on (the default set's); the SNI
 * callback moves a connection to its set's context. */
SSL_CTX *tls_server_default_ctx(const tls_server *s);

/* ALPN by server preference from the client's list (wire format: length-
 * prefixed names): h2 when `h2` and offered, else http/1.1 when offered,
 * else none. Pure. */
tls_alpn tls_alpn_choose(const unsigned char *in, size_t inlen, bool h2);

#endif
