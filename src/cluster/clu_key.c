/* clu_key.c - see clu_key.h. */
#include "cluster/clu_key.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

static const char *const kinds[] = {
    [STORE_MONITOR] = "monitors",
    [STORE_POOL] = "pools",
    [STORE_LB] = "load_balancers",
};

const char *clu_kind_seg(store_kind k)
{
	return (unsigned)k < ARRAY_LEN(kinds) ? kinds[k] : "unknown";
}

/* Append s escaped. */
static void put_seg(char **p, const char *s)
{
	for (; *s; s++) {
		if (*s == '%' || *s == '/') {
			sprintf(*p, "%%%02X", (unsigned char)*s);
			*p += 3;
		} else {
			*(*p)++ = *s;
		}
	}
	**p = '\0';
}

/* prefix + "/" + dir + "/" + each segment escaped, joined by "/"; a
 * trailing "/" when slash. */
static char *join(const char *prefix, const char *dir, const char *const *segs,
		  size_t n, bool slash)
{
	size_t len = strlen(prefix) + strlen(dir) + 4;
	for (size_t i = 0; i < n; i++)
		len += 3 * strlen(segs[i]) + 1;
	char *out = xmalloc(len);
	char *p = out;
	p += sprintf(p, "%s/%s/", prefix, dir);
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = '/';
		put_seg(&p, segs[i]);
	}
	if (slash && n)
		*p++ = '/';
	*p = '\0';
	return out;
}

char *clu_key_dir(const char *prefix, const char *dir)
{
	return join(prefix, dir, NULL, 0, false);
}

char *clu_key_object(const char *prefix, store_kind k, const char *id)
{
	const char *segs[] = {clu_kind_seg(k), id};
	return join(prefix, "objects", segs, 2, false);
}

char *clu_key_node(const char *prefix, const char *name)
{
	return join(prefix, "nodes", &name, 1, false);
}

char *clu_key_health(const char *prefix, const char *node, const char *pool,
		     const char *origin)
{
	const char *segs[] = {node, pool, origin};
	if (!origin)
		return join(prefix, "health", segs, 1, true);
	return join(prefix, "health", segs, 3, false);
}

char *clu_key_range_end(const char *p, size_t len)
{
	char *e = xmalloc(len + 1);
	memcpy(e, p, len);
	e[len] = '\0';
	/* Our prefixes end in '/', never 0xff. */
	if (len)
		e[len - 1] = (char)((unsigned char)e[len - 1] + 1);
	return e;
}

static int hexv(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Unescape s[0..n) into out (CLU_SEG_MAX); false when malformed, empty or
 * too long. */
static bool get_seg(const char *s, size_t n, char out[CLU_SEG_MAX])
{
	size_t o = 0;
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int h = hexv(s[i + 1]), l = hexv(s[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (!c || o + 1 >= CLU_SEG_MAX)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

clu_key_type clu_key_parse(const char *prefix, const char *key, size_t len,
			   clu_key_parts *out)
{
	memset(out, 0, sizeof(*out));
	size_t pl = strlen(prefix);
	if (len <= pl + 1 || memcmp(key, prefix, pl) || key[pl] != '/')
		return CLU_KEY_OTHER;
	const char *p = key + pl + 1, *end = key + len;
	/* Split into at most 4 segments. */
	const char *seg[5];
	size_t slen[5], n = 0;
	while (p <= end && n < 5) {
		const char *q = memchr(p, '/', (size_t)(end - p));
		if (!q)
			q = end;
		seg[n] = p;
		slen[n++] = (size_t)(q - p);
		p = q + 1;
	}
	if (p <= end)
		return CLU_KEY_OTHER; /* more than 5 */
#define SEG_IS(i, s) (slen[i] == strlen(s) && !memcmp(seg[i], s, slen[i]))
	if (n == 3 && SEG_IS(0, "objects")) {
		for (size_t k = 0; k < ARRAY_LEN(kinds); k++)
			if (SEG_IS(1, kinds[k]) &&
			    get_seg(seg[2], slen[2], out->a)) {
				out->kind = (store_kind)k;
				return out->type = CLU_KEY_OBJECT;
			}
		return CLU_KEY_OTHER;
	}
	if (n == 2 && SEG_IS(0, "nodes") && get_seg(seg[1], slen[1], out->a))
		return out->type = CLU_KEY_NODE;
	if (n == 4 && SEG_IS(0, "health") && get_seg(seg[1], slen[1], out->a) &&
	    get_seg(seg[2], slen[2], out->pool) &&
	    get_seg(seg[3], slen[3], out->origin))
		return out->type = CLU_KEY_HEALTH;
#undef SEG_IS
	memset(out, 0, sizeof(*out));
	return CLU_KEY_OTHER;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *clu_b64_encode(const void *in, size_t n)
{
	const unsigned char *p = in;
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	size_t i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64v(unsigned char c)
{
	return c >= 'A' && c <= 'Z'   ? c - 'A'
	       : c >= 'a' && c <= 'z' ? c - 'a' + 26
	       : c >= '0' && c <= '9' ? c - '0' + 52
	       : c == '+' || c == '-' ? 62
	       : c == '/' || c == '_' ? 63
				      : -1;
}

char *clu_b64_decode(const char *s, size_t n, size_t *outlen)
{
	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return NULL;
	char *out = xmalloc(n / 4 * 3 + 3), *o = out;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64v((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)((acc >> bits) & 0xff);
		}
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

#define DUMP_FLAGS                                                             \
	(JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

static char *dump(json_t *j)
{
	char *s = json_dumps(j, DUMP_FLAGS);
	json_decref(j);
	if (!s)
		abort();
	return s;
}

char *clu_obj_encode(const char *zone, const char *body, const char *created,
		     const char *modified)
{
	json_t *b = json_loads(body, JSON_DECODE_ANY, NULL);
	if (!b)
		return NULL;
	json_t *j = json_object();
	json_object_set_new(j, "zone", zone ? json_string(zone) : json_null());
	json_object_set_new(j, "created_on", json_string(created));
	json_object_set_new(j, "modified_on", json_string(modified));
	json_object_set_new(j, "body", b);
	return dump(j);
}

int clu_obj_decode(const char *v, size_t n, clu_obj *out)
{
	memset(out, 0, sizeof(*out));
	json_t *j = json_loadb(v, n, 0, NULL);
	json_t *zone = json_object_get(j, "zone");
	json_t *body = json_object_get(j, "body");
	const char *c = json_string_value(json_object_get(j, "created_on"));
	const char *m = json_string_value(json_object_get(j, "modified_on"));
	if (!json_is_object(j) || !body || !c || !m ||
	    (zone && !json_is_null(zone) && !json_is_string(zone)) ||
	    strlen(c) >= STORE_TIME_SZ || strlen(m) >= STORE_TIME_SZ) {
		json_decref(j);
		return -EINVAL;
	}
	if (json_is_string(zone))
		out->zone = xstrdup(json_string_value(zone));
	snprintf(out->created_on, sizeof(out->created_on), "%s", c);
	snprintf(out->modified_on, sizeof(out->modified_on), "%s", m);
	out->body = json_dumps(body, DUMP_FLAGS | JSON_ENCODE_ANY);
	json_decref(j);
	if (!out->body)
		abort();
	return 0;
}

void clu_obj_clear(clu_obj *o)
{
	free(o->zone);
	free(o->body);
	memset(o, 0, sizeof(*o));
}

char *clu_node_encode(const char *name, const char *region, const char *version,
		      const char *started)
{
	json_t *j = json_object();
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "region",
			    region ? json_string(region) : json_null());
	json_object_set_new(j, "version", json_string(version));
	json_object_set_new(j, "started", json_string(started));
	return dump(j);
}

char *clu_report_encode(const clu_report *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "healthy",
			    r->healthy < 0 ? json_null()
					   : json_boolean(r->healthy));
	json_object_set_new(j, "state", json_string(r->state));
	json_object_set_new(j, "rtt_ms",
			    r->rtt_ms < 0 ? json_null() : json_real(r->rtt_ms));
	json_object_set_new(j, "reason",
			    json_string(r->reason ? r->reason : ""));
	char t[STORE_TIME_SZ];
	store_time_format(r->time_ms * 1000, t);
	json_object_set_new(j, "time", json_string(t));
	return dump(j);
}
