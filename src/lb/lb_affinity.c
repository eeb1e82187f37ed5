/* lb_affinity.c - see lb_affinity.h. */
#include "lb/lb_affinity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/cfg_load.h"
#include "lb/lb_hash.h"

bool lb_affinity_uses_cookie(const cfg_lb *lb)
{
	return lb->session_affinity == CFG_AFF_COOKIE ||
	       lb->session_affinity == CFG_AFF_IP_COOKIE;
}

/* SipHash under the secret of "pool id" NUL "origin name" NUL, streamed
 * through a small stack buffer (ids and names are short; longer ones are
 * folded in chunks, still deterministic). */
static uint64_t token_value(const lb_affinity_secret *s, const cfg_pool *p,
			    const cfg_origin *o)
{
	char buf[256];
	const char *id = p->id ? p->id : "", *name = o->name ? o->name : "";
	size_t il = strlen(id), nl = strlen(name);

	if (il + nl + 2 <= sizeof(buf)) {
		memcpy(buf, id, il + 1);
		memcpy(buf + il + 1, name, nl + 1);
		return lb_hash_siphash(s->key, buf, il + nl + 2);
	}
	uint64_t a = lb_hash_siphash(s->key, id, il + 1);
	uint64_t b = lb_hash_siphash(s->key, name, nl + 1);
	return lb_hash_mix(a, b);
}

void lb_affinity_token(const lb_affinity_secret *s, const cfg_pool *p,
		       const cfg_origin *o, char out[LB_AFF_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v = token_value(s, p, o);

	for (int i = LB_AFF_TOKEN_LEN - 1; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[LB_AFF_TOKEN_LEN] = '\0';
}

/* Strict: exactly LB_AFF_TOKEN_LEN lowercase hex digits. */
static bool token_parse(const char *t, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (!t || len != LB_AFF_TOKEN_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v;
	return true;
}

static const cfg_origin *find_in_pool(const cfg_pool *p,
				      const lb_affinity_secret *s, uint64_t v)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->norigins; i++)
		if (token_value(s, p, &p->origins[i]) == v)
			return &p->origins[i];
	return NULL;
}

static const cfg_origin *find_in_list(const cfg_pool *const *pools, size_t n,
				      const lb_affinity_secret *s, uint64_t v,
				      const cfg_pool **pool_out)
{
	for (size_t i = 0; i < n; i++) {
		const cfg_origin *o = find_in_pool(pools[i], s, v);
		if (o) {
			*pool_out = pools[i];
			return o;
		}
	}
	return NULL;
}

static const cfg_origin *find_in_maps(const cfg_pool_map *m, size_t n,
				      const lb_affinity_secret *s, uint64_t v,
				      const cfg_pool **pool_out)
{
	for (size_t i = 0; i < n; i++) {
		const cfg_origin *o =
		    find_in_list(m[i].pools, m[i].npools, s, v, pool_out);
		if (o)
			return o;
	}
	return NULL;
}

const cfg_origin *lb_affinity_lookup(const cfg_lb *lb,
				     const lb_affinity_secret *s,
				     const char *token, size_t len,
				     const cfg_pool **pool_out)
{
	const cfg_pool *pool = NULL;
	const cfg_origin *o;
	uint64_t v;

	if (!token_parse(token, len, &v))
		return NULL;
	o = find_in_list(lb->default_pools, lb->ndefault_pools, s, v, &pool);
	if (!o && lb->fallback_pool) {
		o = find_in_pool(lb->fallback_pool, s, v);
		pool = lb->fallback_pool;
	}
	if (!o)
		o = find_in_maps(lb->pop_pools, lb->npop_pools, s, v, &pool);
	if (!o)
		o = find_in_maps(lb->country_pools, lb->ncountry_pools, s, v,
				 &pool);
	if (!o)
		o = find_in_maps(lb->region_pools, lb->nregion_pools, s, v,
				 &pool);
	if (pool_out)
		*pool_out = o ? pool : NULL;
	return o;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool lb_cookie_get(const char *hdr, size_t len, const char *name, size_t nl,
		   const char **val, size_t *vlen)
{
	size_t i = 0;

	while (i < len) {
		while (i < len && (is_ows(hdr[i]) || hdr[i] == ';'))
			i++;
		size_t start = i;
		while (i < len && hdr[i] != ';')
			i++;
		/* one cookie-pair in hdr[start..i) */
		size_t end = i;
		while (end > start && is_ows(hdr[end - 1]))
			end--;
		if (end - start > nl && memcmp(hdr + start, name, nl) == 0 &&
		    hdr[start + nl] == '=') {
			const char *v = hdr + start + nl + 1;
			size_t n = end - (start + nl + 1);
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
				v++;
				n -= 2;
			}
			*val = v;
			*vlen = n;
			return true;
		}
	}
	return false;
}

bool lb_affinity_cookie_find(const char *hdr, size_t len, const char **val,
			     size_t *vlen)
{
	return lb_cookie_get(hdr, len, LB_AFF_COOKIE_NAME,
			     sizeof(LB_AFF_COOKIE_NAME) - 1, val, vlen);
}

int lb_affinity_set_cookie(const cfg_lb *lb, const char *token, bool https,
			   char *buf, size_t size)
{
	const cfg_affinity_attrs *a = &lb->session_affinity_attributes;
	bool secure = a->secure == CFG_SECURE_ALWAYS ||
		      (a->secure == CFG_SECURE_AUTO && https);
	const char *samesite;
	char maxage[32] = "";

	switch (a->samesite) {
	case CFG_SAMESITE_LAX:
		samesite = "Lax";
		break;
	case CFG_SAMESITE_NONE:
		samesite = "None";
		break;
	case CFG_SAMESITE_STRICT:
		samesite = "Strict";
		break;
	case CFG_SAMESITE_AUTO:
	default:
		samesite = secure ? "None" : "Lax";
		break;
	}
	if (lb->session_affinity_ttl)
		snprintf(maxage, sizeof(maxage), "; Max-Age=%u",
			 lb->session_affinity_ttl);
	int n = snprintf(buf, size, "%s=%s; Path=/%s; HttpOnly; SameSite=%s%s",
			 LB_AFF_COOKIE_NAME, token, maxage, samesite,
			 secure ? "; Secure" : "");
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

/* One part of a header session's key: its value mixed in when present;
 * when absent, its position (so that {a, -} and {-, a} differ), or no key
 * at all with require_all_headers. Returns false for "no key". */
static bool key_part(uint64_t *h, size_t *found, size_t pos, bool present,
		     const char *v, size_t vl, bool require_all)
{
	if (!present) {
		*h = lb_hash_mix(*h, (uint64_t)pos);
		return !require_all;
	}
	(*found)++;
	*h = lb_hash_mix(*h, lb_hash_bytes(v, vl));
	return true;
}

bool lb_affinity_header_key(const cfg_lb *lb, lb_affinity_header_fn get,
			    void *arg, uint64_t *key)
{
	const cfg_affinity_attrs *a = &lb->session_affinity_attributes;
	uint64_t h = 0x6d6572696469616eULL; /* "meridian" */
	size_t found = 0, pos = 0;

	for (size_t i = 0; i < a->nheaders; i++) {
		const char *item = a->headers[i];
		const char *v = NULL;
		size_t vl = 0;
		if (strncasecmp(item, LB_AFF_COOKIE_ITEM,
				sizeof(LB_AFF_COOKIE_ITEM) - 1) != 0) {
			bool has = get(arg, item, &v, &vl);
			if (!key_part(&h, &found, pos++, has, v, vl,
				      a->require_all_headers))
				return false;
			continue;
		}
		/* "cookie:a,b": each named cookie is a part of its own. */
		const char *c = NULL;
		size_t cl = 0;
		bool have_cookies = get(arg, "cookie", &c, &cl);
		for (const char *n = item + sizeof(LB_AFF_COOKIE_ITEM) - 1;;) {
			const char *comma = strchr(n, ',');
			size_t nl = comma ? (size_t)(comma - n) : strlen(n);
			bool has = have_cookies &&
				   lb_cookie_get(c, cl, n, nl, &v, &vl);
			if (!key_part(&h, &found, pos++, has, v, vl,
				      a->require_all_headers))
				return false;
			if (!comma)
				break;
			n = comma + 1;
		}
	}
	if (!found)
		return false;
	*key = h;
	return true;
}

lb_affinity_action lb_affinity_check(const cfg_lb *lb, const cfg_pool *p,
				     const cfg_origin *o,
				     const lb_steer_ctx *ctx,
				     uint64_t disabled_at_ms)
{
	const cfg_affinity_attrs *a = &lb->session_affinity_attributes;
	uint64_t now = ctx ? ctx->now_ms : 0;
	const lb_origin_state *st =
	    ctx && ctx->origins ? &ctx->origins[o->index] : NULL;

	if (st && !lb_origin_routable(st, now))
		return a->zero_downtime_failover == CFG_ZDT_TEMPORARY
			   ? LB_AFF_REPICK_KEEP
			   : LB_AFF_REPICK;
	if (!o->enabled || (p && !p->enabled)) {
		uint64_t drain = (uint64_t)a->drain_duration * 1000;
		if (!drain || !disabled_at_ms || now >= disabled_at_ms + drain)
			return LB_AFF_REPICK;
	}
	if (p && lb_steer_pool_sheds(p, ctx, true))
		return LB_AFF_SHED;
	return LB_AFF_USE;
}

lb_affinity_action lb_affinity_on_failure(const cfg_lb *lb)
{
	switch (lb->session_affinity_attributes.zero_downtime_failover) {
	case CFG_ZDT_TEMPORARY:
		return LB_AFF_REPICK_KEEP;
	case CFG_ZDT_STICKY:
		return LB_AFF_REPICK;
	case CFG_ZDT_NONE:
	default:
		return LB_AFF_NO_RETRY;
	}
}

uint64_t lb_affinity_disabled_at(const cfg_pool *p, const cfg_origin *o,
				 const lb_origin_state *os,
				 const lb_pool_state *ps)
{
	uint64_t t = UINT64_MAX;

	if (!o->enabled)
		t = os ? os[o->index].disabled_at_ms : 0;
	if (p && !p->enabled) {
		uint64_t pt = ps ? ps[p->index].disabled_at_ms : 0;
		if (pt < t)
			t = pt;
	}
	return t == UINT64_MAX ? 0 : t;
}

/* The stamp of something disabled in `to`: kept while it stays disabled,
 * the swap's time when it was enabled before, 0 when it is new. */
static uint64_t stamp(bool existed, bool was_enabled, uint64_t was_at,
		      uint64_t now_ms)
{
	if (!existed)
		return 0;
	return was_enabled ? now_ms : was_at;
}

void lb_affinity_drain_carry(const cfg_snapshot *from,
			     const lb_origin_state *from_o,
			     const lb_pool_state *from_p,
			     const cfg_snapshot *to, lb_origin_state *to_o,
			     lb_pool_state *to_p, uint64_t now_ms)
{
	for (size_t i = 0; i < to->npools; i++) {
		const cfg_pool *np = &to->pools[i];
		const cfg_pool *op = NULL;
		bool looked = false;
		if (!np->enabled) {
			op = cfg_pool_by_id(from, np->id, i);
			looked = true;
			to_p[np->index].disabled_at_ms = stamp(
			    op != NULL, op && op->enabled,
			    op ? from_p[op->index].disabled_at_ms : 0, now_ms);
		}
		for (size_t j = 0; j < np->norigins; j++) {
			const cfg_origin *no = &np->origins[j];
			if (no->enabled)
				continue;
			if (!looked) {
				op = cfg_pool_by_id(from, np->id, i);
				looked = true;
			}
			const cfg_origin *oo =
			    op ? cfg_origin_by_name(op, no->name, j) : NULL;
			to_o[no->index].disabled_at_ms = stamp(
			    oo != NULL, oo && oo->enabled,
			    oo ? from_o[oo->index].disabled_at_ms : 0, now_ms);
		}
	}
}
