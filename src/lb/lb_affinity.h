/* lb_affinity.h - session affinity decisions, pure (no I/O, no allocation).
 *
 * Cloudflare's session_affinity for a load balancer: "cookie", "ip_cookie"
 * and "header", with session_affinity_ttl and session_affinity_attributes
 * (samesite, secure, drain_duration, headers, require_all_headers,
 * zero_downtime_failover). Affinity overrides pool and origin steering while
 * the remembered origin may take traffic.
 *
 * How the proxy uses it, per request of a load balancer with affinity:
 *
 *   cookie / ip_cookie
 *     1. lb_affinity_cookie_find() on each Cookie header value: the
 *        `__cflb` value, if any.
 *     2. lb_affinity_lookup(): the origin (and pool) that token names among
 *        the load balancer's pools, or NULL (absent, forged, or the origin
 *        left the config) -> steer normally and set a cookie.
 *     3. lb_affinity_check() on that origin: LB_AFF_USE -> send there;
 *        LB_AFF_REPICK -> steer normally and set the cookie to the new
 *        origin; LB_AFF_REPICK_KEEP -> steer normally, leave the cookie;
 *        LB_AFF_SHED -> steer with lb_steer_pool_away() from the
 *        session's pool and set the cookie to the new origin.
 *     4. When steering normally: for ip_cookie the first origin is chosen
 *        with lb_steer_origin_by(pool, CFG_OSTEER_HASH, ...) (stable per
 *        client IP), for cookie with lb_steer_origin().
 *     5. When a cookie is to be set: lb_affinity_token() of the chosen
 *        origin, then lb_affinity_set_cookie() gives the Set-Cookie value.
 *        The cookie is also set on the first response when none was sent.
 *     6. When the attempt on the affinity origin fails (connect error or
 *        reset before any response byte): lb_affinity_on_failure() says
 *        whether to retry elsewhere and what to do with the cookie.
 *
 *   header
 *     lb_affinity_header_key() hashes the configured headers' values (and
 *     the named cookies of a "cookie:a,b" item) into a
 *     64-bit key; lb_steer_origin_key(pool, key, ...) then picks the origin
 *     by weighted rendezvous hashing. No table is kept: every worker and
 *     every edge maps the same header values to the same origin, and when an
 *     origin leaves only its sessions move. No key (headers missing) ->
 *     steer normally. No cookie is set.
 *
 * zero_downtime_failover (Cloudflare's semantics):
 *   none       no failover off the affinity origin: a failed attempt is not
 *              retried elsewhere (the client gets the error). Only when the
 *              origin is unhealthy (not routable) or disabled past its drain
 *              is a new origin chosen, and the cookie rewritten to it.
 *   temporary  a failed attempt, or an unhealthy affinity origin, sends this
 *              request elsewhere but keeps the cookie: the session returns
 *              to its origin once it is healthy again.
 *   sticky     a failed attempt, or an unhealthy affinity origin, sends the
 *              request elsewhere and rewrites the cookie to the new origin.
 *
 * drain_duration: an origin (or its pool) disabled in the config keeps its
 * existing sessions for drain_duration seconds after it was disabled, then
 * they move (cookie rewritten). When it was disabled is kept in the live
 * state (lb_origin_state / lb_pool_state.disabled_at_ms): each config swap
 * stamps the origins and pools that go from enabled to disabled with the
 * swap's time and carries the stamp of those that stay disabled
 * (lb_affinity_drain_carry, by pool id and origin name, the identity the
 * cookie names); the proxy reads it with lb_affinity_disabled_at() and
 * passes it to lb_affinity_check(). An origin disabled at start-up, or
 * added disabled, has no stamp: nothing to drain.
 *
 * Tokens: 16 lowercase hex digits, SipHash-2-4 under the edge's secret of
 * (pool id, origin name). Stable across reloads and restarts (names, not
 * indexes) and reveal nothing about addresses. The secret comes from
 * edge.affinity_secret (edge_snapshot.c): edges sharing it honour each
 * other's cookies, and nobody else can make one up. Without it the secret
 * is derived from edge.name, which the edge's own 404 page shows: a client
 * can then compute the token of any origin and pick it, as with HAProxy's
 * `cookie` or nginx's `sticky` values (never an origin that is not a
 * routable member of the load balancer's pools), and edges with the same
 * name honour each other's cookies.
 */
#ifndef MERIDIAN_LB_AFFINITY_H
#define MERIDIAN_LB_AFFINITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "lb/lb_steer.h"

#define LB_AFF_COOKIE_NAME "__cflb" /* Cloudflare's */
#define LB_AFF_TOKEN_LEN   16	    /* hex digits, without the NUL */
/* Enough for any lb_affinity_set_cookie() output. */
#define LB_AFF_SET_COOKIE_MAX 128

/* The per-edge (or per-cluster) secret keying the tokens. */
typedef struct lb_affinity_secret {
	uint8_t key[16];
} lb_affinity_secret;

typedef enum lb_affinity_action {
	LB_AFF_USE = 0,	    /* send to the affinity origin */
	LB_AFF_REPICK,	    /* steer normally, set the cookie to the result */
	LB_AFF_REPICK_KEEP, /* steer normally for this request, keep cookie */
	LB_AFF_NO_RETRY,    /* (on failure) do not retry elsewhere */
	LB_AFF_SHED,	    /* the pool sheds the session (load_shedding):
			     * lb_steer_pool_away() from it, set the cookie */
} lb_affinity_action;

/* Whether this load balancer uses a cookie (cookie or ip_cookie). */
bool lb_affinity_uses_cookie(const cfg_lb *lb);

/* The token naming origin o of pool p: LB_AFF_TOKEN_LEN hex digits and a
 * NUL in out. */
void lb_affinity_token(const lb_affinity_secret *s, const cfg_pool *p,
		       const cfg_origin *o, char out[LB_AFF_TOKEN_LEN + 1]);

/* The origin a token names among the pools of lb (default, fallback,
 * region, country and pop pools), with its pool in *pool_out (may be
 * NULL). NULL when the token is malformed, forged, or names no origin of
 * this load balancer any more. */
const cfg_origin *lb_affinity_lookup(const cfg_lb *lb,
				     const lb_affinity_secret *s,
				     const char *token, size_t len,
				     const cfg_pool **pool_out);

/* The value of cookie name[0..nl) in one Cookie header value
 * ("a=1; b=2"), surrounding double quotes removed. */
bool lb_cookie_get(const char *hdr, size_t len, const char *name, size_t nl,
		   const char **val, size_t *vlen);

/* A session_affinity_attributes.headers item "cookie:NAME[,NAME...]"
 * (Cloudflare's form) names cookies of the Cookie header, each one a part
 * of the key like a header; the item "cookie" is the whole header. */
#define LB_AFF_COOKIE_ITEM "cookie:"

/* The value of the __cflb cookie in one Cookie header value
 * ("a=1; __cflb=0123abcd; b=2"); surrounding double quotes are removed.
 * false when absent. *val points into hdr. */
bool lb_affinity_cookie_find(const char *hdr, size_t len, const char **val,
			     size_t *vlen);

/* The Set-Cookie header value for token (without "Set-Cookie: "):
 *   __cflb=TOKEN; Path=/; Max-Age=TTL; HttpOnly[; SameSite=X][; Secure]
 * Max-Age is session_affinity_ttl (omitted when 0: a session cookie).
 * Secure: Always -> set; Never -> not; Auto -> when the request came over
 * https. SameSite: Lax/None/Strict as configured; Auto -> None when the
 * cookie is Secure, else Lax. Returns the length written (NUL-terminated)
 * or -ENOSPC. */
int lb_affinity_set_cookie(const cfg_lb *lb, const char *token, bool https,
			   char *buf, size_t size);

/* A request header lookup: the value of the first field named name (ASCII
 * case-insensitive), false when absent. */
typedef bool (*lb_affinity_header_fn)(void *arg, const char *name,
				      const char **val, size_t *vlen);

/* The affinity key of a request for session_affinity "header": a hash of
 * the configured headers (session_affinity_attributes.headers) that are
 * present, in configured order. With require_all_headers every one must be
 * present; otherwise at least one. false: no key (steer normally). */
bool lb_affinity_header_key(const cfg_lb *lb, lb_affinity_header_fn get,
			    void *arg, uint64_t *key);

/* Whether the remembered origin o (of pool p, as found by
 * lb_affinity_lookup) may keep the session now:
 *   - enabled origin and pool, routable -> LB_AFF_USE;
 *   - disabled (origin or pool) but routable and within drain_duration of
 *     disabled_at_ms (monotonic ms, same clock as ctx->now_ms; 0 when
 *     unknown, i.e. no drain) -> LB_AFF_USE; past it -> LB_AFF_REPICK;
 *   - not routable (unhealthy, ejected) -> LB_AFF_REPICK_KEEP with
 *     zero_downtime_failover temporary, LB_AFF_REPICK otherwise;
 *   - a session that would be kept (LB_AFF_USE, draining ones included)
 *     but that its pool sheds (load_shedding.session_percent,
 *     lb_steer_pool_sheds) -> LB_AFF_SHED.
 * A weight of 0 does not end a session: it only stops new ones. */
lb_affinity_action lb_affinity_check(const cfg_lb *lb, const cfg_pool *p,
				     const cfg_origin *o,
				     const lb_steer_ctx *ctx,
				     uint64_t disabled_at_ms);

/* When the session's origin o (of pool p) stopped taking new sessions by
 * config, for lb_affinity_check: the disabled_at_ms of o if it is
 * disabled, of p if p is, the earlier of the two if both are (0, unknown,
 * counts as earliest); 0 when neither is disabled. os and ps are the live
 * state arrays (indexed by cfg_origin.index / cfg_pool.index); NULL: 0. */
uint64_t lb_affinity_disabled_at(const cfg_pool *p, const cfg_origin *o,
				 const lb_origin_state *os,
				 const lb_pool_state *ps);

/* At a config swap, before `to` is published: stamp the disabled_at_ms of
 * each origin and pool of `to` that is disabled. One disabled in `from`
 * too (same pool id, same origin name) keeps its stamp; one enabled in
 * `from` gets now_ms (monotonic); one absent from `from` gets 0. Enabled
 * ones stay 0. Reads only the configs and the from stamps (written before
 * `from` was published). */
void lb_affinity_drain_carry(const cfg_snapshot *from,
			     const lb_origin_state *from_o,
			     const lb_pool_state *from_p,
			     const cfg_snapshot *to, lb_origin_state *to_o,
			     lb_pool_state *to_p, uint64_t now_ms);

/* What to do when an attempt on the affinity origin failed before any
 * response byte: LB_AFF_NO_RETRY (none), LB_AFF_REPICK_KEEP (temporary:
 * retry elsewhere, keep the cookie) or LB_AFF_REPICK (sticky: retry
 * elsewhere, set the cookie to the origin that answers). */
lb_affinity_action lb_affinity_on_failure(const cfg_lb *lb);

#endif
