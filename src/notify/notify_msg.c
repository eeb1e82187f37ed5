/* notify_msg.c - see notify_msg.h. */
#include "notify/notify_msg.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_util.h"

/* Bounds on each field once cleaned: they keep every header line and body
 * line far below RFC 5322's 998 characters. */
enum {
	ID_MAX = 256,
	STATE_MAX = 32,
	REASON_MAX = 512,
};

notify_item *notify_item_new(const notify_event *ev, const char *pool_name,
			     const cfg_notification_filter *filter)
{
	bool origin = ev->kind != NOTIFY_POOL;
	const char *pool_id = ev->pool_id ? ev->pool_id : "";
	const char *src[6] = {
	    pool_id,
	    pool_name && *pool_name ? pool_name : pool_id,
	    origin ? (ev->origin_name ? ev->origin_name : "") : NULL,
	    ev->old_state && *ev->old_state ? ev->old_state : "unknown",
	    ev->new_state && *ev->new_state ? ev->new_state : "unknown",
	    ev->reason ? ev->reason : "",
	};
	size_t lens[6], total = 0;
	for (size_t i = 0; i < 6; i++) {
		lens[i] = src[i] ? strlen(src[i]) : 0;
		total += src[i] ? lens[i] + 1 : 0;
	}
	notify_item *it = malloc(sizeof(*it) + total);
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	const char **dst[6] = {&it->pool_id,   &it->pool_name, &it->origin_name,
			       &it->old_state, &it->new_state, &it->reason};
	char *p = it->strs;
	for (size_t i = 0; i < 6; i++) {
		if (!src[i])
			continue;
		memcpy(p, src[i], lens[i] + 1);
		*dst[i] = p;
		p += lens[i] + 1;
	}
	it->kind = origin ? NOTIFY_ORIGIN : NOTIFY_POOL;
	it->new_healthy = ev->new_healthy;
	it->enablement = ev->enablement;
	it->time_ms = ev->time_ms;
	if (filter)
		it->filter = *filter;
	else
		it->filter = (cfg_notification_filter){.origin = {false, -1},
						       .pool = {false, -1}};
	return it;
}

notify_item *notify_item_with_old(const notify_item *it, const char *old_state)
{
	notify_event ev = {
	    .kind = it->kind,
	    .pool_id = it->pool_id,
	    .origin_name = it->origin_name,
	    .old_state = old_state,
	    .new_state = it->new_state,
	    .new_healthy = it->new_healthy,
	    .enablement = it->enablement,
	    .reason = it->reason,
	    .time_ms = it->time_ms,
	};
	return notify_item_new(&ev, it->pool_name, &it->filter);
}

notify_item *notify_queue_push(notify_queue *q, notify_item *it, size_t max)
{
	notify_item *dropped = NULL;
	if (max && q->len >= max) {
		dropped = q->head;
		q->head = dropped->next;
		if (!q->head)
			q->tail = NULL;
		dropped->next = NULL;
		q->len--;
	}
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
	return dropped;
}

notify_item *notify_queue_take(notify_queue *q, size_t *n)
{
	notify_item *list = q->head;
	*n = q->len;
	q->head = q->tail = NULL;
	q->len = 0;
	return list;
}

bool notify_filter_pass(const cfg_notification_filter *f, int kind,
			bool new_healthy)
{
	const cfg_notify_filter *k =
	    kind == NOTIFY_POOL ? &f->pool : &f->origin;
	if (k->disable)
		return false;
	if (k->healthy < 0)
		return true;
	return (k->healthy != 0) == new_healthy;
}

bool notify_startup_quiet(const notify_item *c)
{
	return c->first && c->new_healthy && !strcmp(c->old_state, "unknown");
}

/* Length of the valid UTF-8 sequence at p, or 0 when it is not one. Never
 * reads past a NUL. */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned char c = p[0];
	size_t n;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	/* Overlong forms, surrogates, and beyond U+10FFFF. */
	if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
	    (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
		return 0;
	return n;
}

size_t notify_clean(const char *in, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)(in ? in : "");
	size_t o = 0;
	while (*p) {
		size_t n = utf8_seq(p);
		size_t w = n ? n : 1;
		if (o + w >= size)
			break;
		if (!n) {
			out[o++] = '?';
		} else if (n == 1 && (*p < 0x20 || *p == 0x7f)) {
			bool space = *p == '\t' || *p == '\r' || *p == '\n';
			out[o++] = space ? ' ' : '?';
		} else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += w;
	}
	out[o] = '\0';
	return o;
}

static bool wall_tm(uint64_t wall_ms, struct tm *tm)
{
	time_t t = (time_t)(wall_ms / 1000u);
	return gmtime_r(&t, tm) != NULL;
}

size_t notify_iso8601(uint64_t wall_ms, char *buf, size_t size)
{
	struct tm tm;
	if (!wall_tm(wall_ms, &tm))
		memset(&tm, 0, sizeof(tm));
	int n =
	    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000u));
	return n < 0 ? 0 : MIN((size_t)n, size ? size - 1 : 0);
}

size_t notify_rfc5322_date(uint64_t wall_ms, char *buf, size_t size)
{
	/* HTTP's IMF-fixdate is RFC 5322's date-time, in GMT: the zone
	 * written as a number. */
	char d[30];
	core_http_date_fmt((int64_t)(wall_ms / 1000u), d);
	int n = snprintf(buf, size, "%.25s +0000", d);
	return n < 0 ? 0 : MIN((size_t)n, size ? size - 1 : 0);
}

/* The cleaned fields of one change. */
typedef struct clean_item {
	char pool_id[ID_MAX], pool_name[ID_MAX], origin[ID_MAX];
	const char *pool; /* what texts call the pool (pool_label) */
	char old_state[STATE_MAX], new_state[STATE_MAX];
	char reason[REASON_MAX];
	char time[32];
} clean_item;

/* A pool made through the API has a generated id, 32 hex digits, that
 * says nothing to a reader: texts call it by its name. A pool of the file
 * is called by the id its operator wrote. */
static const char *pool_label(const char *id, const char *name)
{
	size_t n = strlen(id);
	if (n != 32 || !name[0])
		return id;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'f')))
			return id;
	return name;
}

static void clean_fields(const notify_item *c, clean_item *k)
{
	notify_clean(c->pool_id, k->pool_id, sizeof(k->pool_id));
	notify_clean(c->pool_name, k->pool_name, sizeof(k->pool_name));
	notify_clean(c->origin_name, k->origin, sizeof(k->origin));
	notify_clean(c->old_state, k->old_state, sizeof(k->old_state));
	notify_clean(c->new_state, k->new_state, sizeof(k->new_state));
	notify_clean(c->reason, k->reason, sizeof(k->reason));
	notify_iso8601(c->time_ms, k->time, sizeof(k->time));
	k->pool = pool_label(k->pool_id, k->pool_name);
}

static size_t subject_of(const notify_item *c, const clean_item *k, char *buf,
			 size_t size)
{
	int n;
	if (c->kind == NOTIFY_POOL)
		n = snprintf(buf, size, "[Meridian] pool %s is %s", k->pool,
			     k->new_state);
	else
		n = snprintf(buf, size, "[Meridian] origin %s in pool %s is %s",
			     k->origin, k->pool, k->new_state);
	return n < 0 ? 0 : MIN((size_t)n, size ? size - 1 : 0);
}

size_t notify_subject(const notify_item *c, char *buf, size_t size)
{
	clean_item k;
	clean_fields(c, &k);
	return subject_of(c, &k, buf, size);
}

/* A growing string. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, MIN((size_t)n, sizeof(tmp) - 1));
}

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static void sb_base64(sbuf *b, const unsigned char *in, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
	    "wxyz0123456789+/";
	char out[4];
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[0] = tab[(v >> 18) & 63];
		out[1] = tab[(v >> 12) & 63];
		out[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[3] = i + 2 < n ? tab[v & 63] : '=';
		sb_add(b, out, 4);
	}
}

/* A header value: as is when ASCII, else RFC 2047 encoded words of at most
 * 45 input bytes (cut on character boundaries), folded. The value is clean
 * UTF-8 (notify_clean). */
static void sb_header_text(sbuf *b, const char *v)
{
	if (is_ascii(v)) {
		sb_add(b, v, strlen(v));
		return;
	}
	const unsigned char *p = (const unsigned char *)v;
	bool first = true;
	while (*p) {
		size_t n = 0;
		while (p[n]) {
			size_t w = utf8_seq(p + n);
			w = w ? w : 1;
			if (n + w > 45)
				break;
			n += w;
		}
		if (!first)
			sb_add(b, "\r\n ", 3);
		sb_add(b, "=?UTF-8?B?", 10);
		sb_base64(b, p, n);
		sb_add(b, "?=", 2);
		first = false;
		p += n;
	}
}

char *notify_email_build(const notify_item *c, const notify_site *s,
			 uint64_t now_ms, uint64_t seq, long pid, size_t *len)
{
	clean_item k;
	clean_fields(c, &k);
	char date[64], subject[3 * ID_MAX], edge[ID_MAX], from[ID_MAX];
	notify_rfc5322_date(now_ms, date, sizeof(date));
	subject_of(c, &k, subject, sizeof(subject));
	notify_clean(s->edge ? s->edge : "", edge, sizeof(edge));
	notify_clean(s->from ? s->from : "", from, sizeof(from));
	const char *at = strrchr(from, '@');
	const char *domain = at && at[1] ? at + 1 : "meridian.invalid";

	sbuf b = {0};
	sb_printf(&b, "Date: %s\r\n", date);
	sb_printf(&b, "From: Meridian <%s>\r\n", from);
	sb_add(&b, "To: ", 4);
	for (size_t i = 0; i < s->nto; i++) {
		char to[ID_MAX];
		notify_clean(s->to[i], to, sizeof(to));
		sb_printf(&b, "%s%s", i ? ",\r\n " : "", to);
	}
	sb_add(&b, "\r\nSubject: ", 11);
	sb_header_text(&b, subject);
	sb_printf(&b, "\r\nMessage-ID: <%llu.%llu.%ld@%s>\r\n",
		  (unsigned long long)now_ms, (unsigned long long)seq, pid,
		  domain);
	sb_add(&b,
	       "MIME-Version: 1.0\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\n"
	       "Content-Transfer-Encoding: 8bit\r\n"
	       "Auto-Submitted: auto-generated\r\n",
	       strlen("MIME-Version: 1.0\r\n"
		      "Content-Type: text/plain; charset=utf-8\r\n"
		      "Content-Transfer-Encoding: 8bit\r\n"
		      "Auto-Submitted: auto-generated\r\n"));
	sb_add(&b, "X-Meridian-Edge: ", 17);
	sb_header_text(&b, edge);
	sb_add(&b, "\r\n\r\n", 4);

	if (c->kind == NOTIFY_POOL)
		sb_printf(&b, "Pool %s is now %s.\r\n\r\n", k.pool,
			  k.new_state);
	else
		sb_printf(&b, "Origin %s in pool %s is now %s.\r\n\r\n",
			  k.origin, k.pool, k.new_state);
	if (c->kind != NOTIFY_POOL)
		sb_printf(&b, "Origin:  %s\r\n", k.origin);
	if (strcmp(k.pool_name, k.pool_id))
		sb_printf(&b, "Pool:    %s (%s)\r\n", k.pool_id, k.pool_name);
	else
		sb_printf(&b, "Pool:    %s\r\n", k.pool_id);
	sb_printf(&b, "State:   %s -> %s\r\n", k.old_state, k.new_state);
	sb_printf(&b, "Reason:  %s\r\n", k.reason[0] ? k.reason : "-");
	sb_printf(&b, "Time:    %s\r\n", k.time);
	sb_printf(&b, "Edge:    %s\r\n", edge);
	sb_add(&b, "\r\n-- \r\nMeridian " MERIDIAN_VERSION "\r\n",
	       strlen("\r\n-- \r\nMeridian " MERIDIAN_VERSION "\r\n"));
	*len = b.len;
	return b.p;
}

static int set_str(json_t *o, const char *key, const char *v)
{
	return json_object_set_new(o, key, v ? json_string(v) : json_null());
}

char *notify_json_build(const notify_item *c, const notify_site *s, size_t *len)
{
	clean_item k;
	clean_fields(c, &k);
	char edge[ID_MAX], account[ID_MAX], text[4 * ID_MAX + REASON_MAX];
	notify_clean(s->edge ? s->edge : "", edge, sizeof(edge));
	notify_clean(s->account_id ? s->account_id : "", account,
		     sizeof(account));
	int n;
	if (c->kind == NOTIFY_POOL)
		n = snprintf(text, sizeof(text), "Pool %s is %s (was %s)",
			     k.pool, k.new_state, k.old_state);
	else
		n = snprintf(text, sizeof(text),
			     "Origin %s in pool %s is %s (was %s)", k.origin,
			     k.pool, k.new_state, k.old_state);
	if (n > 0 && k.reason[0] && (size_t)n < sizeof(text))
		snprintf(text + n, sizeof(text) - (size_t)n, ": %s", k.reason);

	char *out = NULL;
	json_t *root = json_object(), *data = json_object();
	if (!root || !data)
		goto out;
	int rc = 0;
	rc |= set_str(data, "event_source",
		      c->kind == NOTIFY_POOL ? "pool" : "origin");
	rc |= set_str(data, "pool_id", k.pool_id);
	rc |= set_str(data, "pool_name", k.pool_name);
	rc |= set_str(data, "origin_name",
		      c->kind == NOTIFY_POOL ? NULL : k.origin);
	if (c->enablement) {
		rc |= json_object_set_new(data, "enabled",
					  json_boolean(c->new_healthy));
	} else {
		rc |= set_str(data, "old_health", k.old_state);
		rc |= set_str(data, "new_health", k.new_state);
		rc |= json_object_set_new(data, "healthy",
					  json_boolean(c->new_healthy));
	}
	rc |= set_str(data, "reason", k.reason);
	rc |= set_str(data, "time", k.time);
	rc |= set_str(data, "edge", edge);

	rc |= set_str(root, "name", "Meridian health alert");
	rc |= set_str(root, "text", text);
	rc |= json_object_set(root, "data", data);
	rc |= json_object_set_new(
	    root, "ts", json_integer((json_int_t)(c->time_ms / 1000)));
	rc |= set_str(root, "account_id", account);
	rc |= set_str(root, "alert_type",
		      c->enablement ? "load_balancing_pool_enablement_alert"
				    : "load_balancing_health_alert");
	rc |= set_str(root, "alert_event",
		      c->new_healthy ? "ALERT_STATE_EVENT_END"
				     : "ALERT_STATE_EVENT_START");
	if (rc)
		goto out;
	out = json_dumps(root, JSON_COMPACT);
	if (out)
		*len = strlen(out);
out:
	json_decref(data);
	json_decref(root);
	return out;
}

uint64_t notify_backoff_ms(unsigned attempt)
{
	if (attempt < 1)
		attempt = 1;
	if (attempt > 4)
		attempt = 4;
	return 1000u << (attempt - 1);
}

notify_outcome notify_classify(int curl_code, bool http, long status)
{
	switch (curl_code) {
	case CURLE_OK:
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_LOGIN_DENIED:
	case CURLE_USE_SSL_FAILED: /* no STARTTLS, credentials to send */
		return NOTIFY_PERMANENT;
	default:
		/* SMTP: a 5yz reply is a permanent refusal (RFC 5321
		 * 4.2.1); a 4yz or no reply at all is transient. */
		if (!http && status >= 500 && status < 600)
			return NOTIFY_PERMANENT;
		return NOTIFY_RETRY;
	}
	if (!http || (status >= 200 && status < 300))
		return NOTIFY_DELIVERED;
	if (status == 408 || status == 429 || status >= 500)
		return NOTIFY_RETRY;
	return NOTIFY_PERMANENT;
}
