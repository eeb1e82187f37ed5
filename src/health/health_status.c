/* health_status.c - the health table, text and JSON; see health_status.h.
 *
 * Output goes through a small appender that keeps counting past the end of
 * the buffer, so callers learn the size they need (snprintf semantics).
 * JSON is written by hand (jansson is not a dependency yet) with every
 * string escaped by json_str().
 */
#include "health/health_status.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/core_util.h"
#include "health/health_fsm.h"

typedef struct sbuf {
	char *p;
	size_t size, len; /* len counts everything, written or not */
	bool grow;	  /* p is malloc'd and grows to fit */
} sbuf;

/* Room for n more bytes and the NUL, when the buffer may grow. */
static void sb_reserve(sbuf *b, size_t n)
{
	if (!b->grow || b->len + n < b->size)
		return;
	size_t size = MAX(b->size * 2, b->len + n + 1);
	b->p = xrealloc(b->p, size);
	b->size = size;
}

static void sb_mem(sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->len < b->size) {
		size_t room = b->size - b->len - 1;
		memcpy(b->p + b->len, s, MIN(n, room));
	}
	b->len += n;
}

static void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		sb_mem(b, tmp, (size_t)n);
		return;
	}
	/* Longer than tmp (long names): format straight into place. */
	sb_reserve(b, (size_t)n);
	if (b->len < b->size) {
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void sb_str(sbuf *b, const char *s)
{
	sb_mem(b, s, strlen(s));
}

static void json_str(sbuf *b, const char *s)
{
	if (!s) {
		sb_str(b, "null");
		return;
	}
	sb_mem(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			char e[2] = {'\\', (char)*c};
			sb_mem(b, e, 2);
		} else if (*c == '\n') {
			sb_str(b, "\\n");
		} else if (*c == '\r') {
			sb_str(b, "\\r");
		} else if (*c == '\t') {
			sb_str(b, "\\t");
		} else if (*c < 0x20 || *c == 0x7f) {
			sb_printf(b, "\\u%04x", *c);
		} else {
			sb_mem(b, (const char *)c, 1);
		}
	}
	sb_mem(b, "\"", 1);
}

/* "2024-05-01T10:00:00.123Z", or "" for 0 (never). */
static void iso8601(uint64_t ms, char *out, size_t size)
{
	out[0] = '\0';
	if (ms == 0)
		return;
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&sec, &tm))
		return;
	char tmp[32];
	strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03uZ", tmp, (unsigned)(ms % 1000));
}

/* One consistent copy of an origin's state. */
typedef struct origin_view {
	lb_health health;
	uint32_t rtt_us;
	int64_t tls_not_after;
	uint64_t since_ms, checks, failures;
	char reason[sizeof(((lb_origin_state *)0)->reason)];
} origin_view;

static void view_origin(const lb_origin_state *s, origin_view *v)
{
	/* The lock is logically mutable: reading does not change the state. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&s->lock;
	pthread_mutex_lock(lock);
	v->health = (lb_health)atomic_load(&s->active);
	v->since_ms = s->since_ms;
	v->checks = s->checks;
	v->failures = s->failures;
	memcpy(v->reason, s->reason, sizeof(v->reason));
	pthread_mutex_unlock(lock);
	v->reason[sizeof(v->reason) - 1] = '\0';
	v->rtt_us = atomic_load(&s->rtt_us);
	v->tls_not_after = atomic_load(&s->tls_not_after);
}

static uint32_t enabled_origins(const cfg_pool *p)
{
	uint32_t n = 0;
	for (size_t i = 0; i < p->norigins; i++)
		n += p->origins[i].enabled;
	return n;
}

static void addr_text(const cfg_origin *o, char *out, size_t size)
{
	const char *a = o->address ? o->address : "?";
	bool v6 = strchr(a, ':') && a[0] != '[';
	snprintf(out, size, v6 ? "[%s]:%u" : "%s:%u", a, o->port);
}

static void format_json(sbuf *b, const cfg_snapshot *cfg,
			const lb_origin_state *os, const lb_pool_state *ps)
{
	char when[40];
	sb_str(b, "{\"pools\":[");
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		const lb_pool_state *s = &ps[p->index];
		if (i)
			sb_mem(b, ",", 1);
		sb_str(b, "{\"id\":");
		json_str(b, p->id);
		sb_str(b, ",\"name\":");
		json_str(b, p->name);
		sb_printf(b, ",\"enabled\":%s,\"monitor\":",
			  p->enabled ? "true" : "false");
		json_str(b, p->monitor ? p->monitor->id : NULL);
		sb_str(b, ",\"health\":");
		json_str(b, health_pool_state_name(
				(lb_pool_health)atomic_load(&s->health)));
		sb_printf(b,
			  ",\"healthy_origins\":%u,\"enabled_origins\":%u,"
			  "\"minimum_origins\":%u,\"since\":",
			  atomic_load(&s->healthy_origins), enabled_origins(p),
			  p->minimum_origins);
		iso8601(s->since_ms, when, sizeof(when));
		json_str(b, when[0] ? when : NULL);
		sb_str(b, ",\"origins\":[");
		for (size_t j = 0; j < p->norigins; j++) {
			const cfg_origin *o = &p->origins[j];
			origin_view v;
			view_origin(&os[o->index], &v);
			if (j)
				sb_mem(b, ",", 1);
			sb_str(b, "{\"name\":");
			json_str(b, o->name);
			sb_str(b, ",\"address\":");
			json_str(b, o->address);
			sb_printf(b, ",\"port\":%u,\"enabled\":%s,\"health\":",
				  o->port, o->enabled ? "true" : "false");
			json_str(b, health_state_name(v.health));
			if (p->ncheck_regions) {
				/* Cluster mode: the check regions' majority,
				 * which steering follows when there is one. */
				lb_health c = (lb_health)atomic_load(
				    &os[o->index].cluster);
				sb_str(b, ",\"cluster_health\":");
				json_str(b, c == LB_HEALTH_UNKNOWN
						? NULL
						: health_state_name(c));
			}
			sb_str(b, ",\"reason\":");
			json_str(b, v.reason);
			if (v.rtt_us)
				sb_printf(b, ",\"rtt_ms\":%.3f",
					  v.rtt_us / 1000.0);
			else
				sb_str(b, ",\"rtt_ms\":null");
			sb_str(b, ",\"since\":");
			iso8601(v.since_ms, when, sizeof(when));
			json_str(b, when[0] ? when : NULL);
			sb_str(b, ",\"tls_not_after\":");
			iso8601(v.tls_not_after > 0
				    ? (uint64_t)v.tls_not_after * 1000
				    : 0,
				when, sizeof(when));
			json_str(b, when[0] ? when : NULL);
			sb_printf(b, ",\"checks\":%llu,\"failures\":%llu}",
				  (unsigned long long)v.checks,
				  (unsigned long long)v.failures);
		}
		sb_str(b, "]}");
	}
	sb_str(b, "]}\n");
}

static void format_text(sbuf *b, const cfg_snapshot *cfg,
			const lb_origin_state *os, const lb_pool_state *ps)
{
	/* Column widths from the data, within reason. */
	int wname = 11, waddr = 7;
	char addr[300], when[40], rtt[24];
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		wname = MAX(wname, (int)MIN(strlen(p->id), (size_t)40));
		for (size_t j = 0; j < p->norigins; j++) {
			addr_text(&p->origins[j], addr, sizeof(addr));
			wname =
			    MAX(wname, 2 + (int)MIN(strlen(p->origins[j].name),
						    (size_t)40));
			waddr = MAX(waddr, (int)MIN(strlen(addr), (size_t)48));
		}
	}
	sb_printf(b, "%-*s  %-*s  %-9s  %8s  %-24s  %s\n", wname, "POOL/ORIGIN",
		  waddr, "ADDRESS", "HEALTH", "RTT ms", "SINCE", "REASON");
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		const lb_pool_state *s = &ps[p->index];
		iso8601(s->since_ms, when, sizeof(when));
		char detail[128];
		if (!p->enabled)
			snprintf(detail, sizeof(detail), "pool disabled");
		else if (!p->monitor)
			snprintf(detail, sizeof(detail),
				 "no monitor (counts healthy)");
		else
			snprintf(detail, sizeof(detail),
				 "%u/%u healthy, minimum %u, monitor %s",
				 atomic_load(&s->healthy_origins),
				 enabled_origins(p), p->minimum_origins,
				 p->monitor->id);
		sb_printf(b, "%-*s  %-*s  %-9s  %8s  %-24s  %s\n", wname, p->id,
			  waddr, "",
			  p->enabled
			      ? health_pool_state_name(
				    (lb_pool_health)atomic_load(&s->health))
			      : "disabled",
			  "", when[0] ? when : "-", detail);
		for (size_t j = 0; j < p->norigins; j++) {
			const cfg_origin *o = &p->origins[j];
			origin_view v;
			view_origin(&os[o->index], &v);
			addr_text(o, addr, sizeof(addr));
			iso8601(v.since_ms, when, sizeof(when));
			if (v.rtt_us)
				snprintf(rtt, sizeof(rtt), "%.2f",
					 v.rtt_us / 1000.0);
			else
				snprintf(rtt, sizeof(rtt), "-");
			sb_printf(b, "  %-*s  %-*s  %-9s  %8s  %-24s  %s\n",
				  wname - 2, o->name, waddr, addr,
				  o->enabled ? health_state_name(v.health)
					     : "disabled",
				  rtt, when[0] ? when : "-", v.reason);
		}
	}
}

int health_format_status(const cfg_snapshot *cfg,
			 const lb_origin_state *ostates,
			 const lb_pool_state *pstates, char *buf, size_t size,
			 bool json)
{
	sbuf b = {.p = buf, .size = buf ? size : 0};
	if (json)
		format_json(&b, cfg, ostates, pstates);
	else
		format_text(&b, cfg, ostates, pstates);
	if (b.size)
		b.p[MIN(b.len, b.size - 1)] = '\0';
	if (b.len > INT_MAX)
		return -EOVERFLOW;
	return (int)b.len;
}

char *health_format_status_alloc(const cfg_snapshot *cfg,
				 const lb_origin_state *ostates,
				 const lb_pool_state *pstates, bool json,
				 size_t *len)
{
	sbuf b = {.p = xmalloc(4096), .size = 4096, .grow = true};
	if (json)
		format_json(&b, cfg, ostates, pstates);
	else
		format_text(&b, cfg, ostates, pstates);
	b.p[b.len] = '\0';
	*len = b.len;
	return b.p;
}
