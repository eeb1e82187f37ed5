/* tls_sni.h - the server name index: SNI host name -> certificate set.
 *
 * Pure code (no OpenSSL, no I/O). Names are compared in ASCII lowercase,
 * without a trailing dot. An exact name beats a wildcard; `*.example.com`
 * matches exactly one more label (`www.example.com`, not `example.com` nor
 * `a.b.example.com`), as RFC 6125 §6.4.3 says. When two sets claim the same
 * name, the one added first keeps it.
 *
 * Build once (tls_sni_add..., tls_sni_finish), then look up from any
 * thread: the finished index is read-only.
 */
#ifndef MERIDIAN_TLS_SNI_H
#define MERIDIAN_TLS_SNI_H

#include <stddef.h>
#include <stdint.h>

typedef struct tls_sni tls_sni;

/* Longest host name looked up; longer ones match nothing. */
#define TLS_SNI_MAX_NAME 253

tls_sni *tls_sni_new(void);
void tls_sni_free(tls_sni *x);

/* Add `name` (exact, or `*.` + a suffix) for certificate set `set`.
 * Returns 0 when added, 1 when the name was already taken (by an earlier
 * set; kept) and -EINVAL for a name that cannot match a host (empty, too
 * long, a wildcard not of the form `*.suffix`, bytes outside
 * [A-Za-z0-9.*_-]). */
int tls_sni_add(tls_sni *x, const char *name, uint32_t set);
/* Sort the index; call once after the last add, before lookups. */
void tls_sni_finish(tls_sni *x);

/* The set serving `host` (len bytes, not NUL-terminated), or -1. */
int tls_sni_lookup(const tls_sni *x, const char *host, size_t len);

/* Number of names (exact + wildcard) in the index. */
size_t tls_sni_count(const tls_sni *x);

#endif
