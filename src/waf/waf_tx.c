/* waf_tx.c - engines and transactions of the managed rules (waf.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/transaction.h>

#include "core/core_util.h"
#include "waf/waf.h"
#include "waf/waf_int.h"
#include "waf/waf_msgs.h"

static atomic_uint_fast64_t n_inspected, n_blocked, n_detected, n_partial;

/* The library prints every matched rule through the server log callback,
 * or to stderr when there is none ("Server log callback is not set").
 * The rules are read from its structured messages instead (waf_msgs.h):
 * its text lines can be forged by the request they describe. */
static void log_cb(void *data, const void *msg)
{
	(void)data;
	(void)msg;
}

/* An engine's birth and death touch process-wide state of the library's
 * dependencies (libxml2's xmlInitParser / xmlCleanupParser, curl's global
 * init), which must not run in two threads at once: workers make their
 * engines on their first request, at any time. */
static pthread_mutex_t engine_lock = PTHREAD_MUTEX_INITIALIZER;

waf_engine *waf_engine_new(void)
{
	waf_engine *e = xcalloc(1, sizeof(*e));
	pthread_mutex_lock(&engine_lock);
	e->ms = msc_init();
	pthread_mutex_unlock(&engine_lock);
	msc_set_connector_info(e->ms, "meridian");
	msc_set_log_cb(e->ms, log_cb);
	return e;
}

void waf_engine_free(waf_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&engine_lock);
	msc_cleanup(e->ms);
	pthread_mutex_unlock(&engine_lock);
	free(e);
}

waf_tx *waf_tx_begin(waf_engine *e, const waf_rules *r, const waf_conn *c)
{
	waf_tx *t = xcalloc(1, sizeof(*t));
	waf_rules_ref(r);
	t->rules = r;
	t->t = msc_new_transaction(e->ms, r->rs, t);
	msc_process_connection(t->t, c->client_ip, c->client_port, c->server_ip,
			       c->server_port);
	atomic_fetch_add_explicit(&n_inspected, 1, memory_order_relaxed);
	return t;
}

/* The rules matched so far, as text for the access log (the deciding one
 * last) and whether the CRS's inbound blocking evaluation (949xxx) is
 * among them. */
static void matched(waf_tx *t)
{
	/* More than the text keeps: the deciding rule and the CRS's 949xxx
	 * come last, after every rule that scored. */
	waf_rule_hit hits[256];
	size_t n = waf_matched_rules(t->t, hits, 256);
	size_t len = 0, kept = 0;
	t->detected = false;
	t->rules_text[0] = 0;
	for (size_t i = 0; i < n; i++)
		if (hits[i].id >= 949000 && hits[i].id <= 949999)
			t->detected = true;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			if (hits[i].disruptive != (pass == 1))
				continue;
			/* Room is kept for the deciding rule. */
			if (pass == 0 && kept == WAF_TX_RULES - 1)
				break;
			kept++;
			int w = snprintf(t->rules_text + len,
					 sizeof(t->rules_text) - len, "%s%d",
					 len ? " " : "", hits[i].id);
			if (w < 0 || (size_t)w >= sizeof(t->rules_text) - len)
				break;
			len += (size_t)w;
		}
	}
}

/* The library's decision so far, into v; true when it denies. */
static bool decide(waf_tx *t, waf_verdict *v)
{
	ModSecurityIntervention it = {.status = 200};
	int disruptive = msc_intervention(t->t, &it);
	free(it.log);
	free(it.url);
	matched(t);
	v->detected = t->detected;
	v->block = disruptive != 0;
	/* A deny without status:, a redirect or a drop: the edge's 403. */
	v->status =
	    it.status >= 400 && it.status <= 599 ? (uint16_t)it.status : 403;
	return v->block;
}

/* s as a NUL-terminated string in buf (cap bytes), or a copy on the heap
 * for a longer one (*heap set: free it). */
static const char *cstr(const http_str *s, char *buf, size_t cap, char **heap)
{
	char *d = buf;
	*heap = NULL;
	if (s->len >= cap)
		d = *heap = xmalloc((size_t)s->len + 1);
	memcpy(d, s->p, s->len);
	d[s->len] = 0;
	return d;
}

bool waf_tx_head(waf_tx *t, const http_str *method, const http_str *target,
		 const char *version, const http1_header *h, uint32_t nh,
		 waf_verdict *v)
{
	char mbuf[32], tbuf[2048];
	char *mheap, *theap;
	const char *m = cstr(method, mbuf, sizeof(mbuf), &mheap);
	const char *u = cstr(target, tbuf, sizeof(tbuf), &theap);
	msc_process_uri(t->t, u, m, version);
	free(mheap);
	free(theap);
	for (uint32_t i = 0; i < nh; i++)
		msc_add_n_request_header(
		    t->t, (const unsigned char *)h[i].name.p, h[i].name.len,
		    (const unsigned char *)h[i].value.p, h[i].value.len);
	msc_process_request_headers(t->t);
	if (!decide(t, v))
		return false;
	atomic_fetch_add_explicit(&n_blocked, 1, memory_order_relaxed);
	return true;
}

void waf_tx_body(waf_tx *t, const char *p, size_t n)
{
	if (n)
		msc_append_request_body(t->t, (const unsigned char *)p, n);
}

void waf_tx_end(waf_tx *t, waf_verdict *v)
{
	msc_process_request_body(t->t);
	if (decide(t, v))
		atomic_fetch_add_explicit(&n_blocked, 1, memory_order_relaxed);
	else if (v->detected)
		atomic_fetch_add_explicit(&n_detected, 1, memory_order_relaxed);
}

const char *waf_tx_rules(const waf_tx *t)
{
	return t ? t->rules_text : "";
}

void waf_tx_free(waf_tx *t)
{
	if (!t)
		return;
	msc_transaction_cleanup(t->t);
	waf_rules_unref(t->rules);
	free(t);
}

void waf_counters_get(waf_counters *out)
{
	out->inspected =
	    atomic_load_explicit(&n_inspected, memory_order_relaxed);
	out->blocked = atomic_load_explicit(&n_blocked, memory_order_relaxed);
	out->detected = atomic_load_explicit(&n_detected, memory_order_relaxed);
	out->partial = atomic_load_explicit(&n_partial, memory_order_relaxed);
}

void waf_count_partial(void)
{
	atomic_fetch_add_explicit(&n_partial, 1, memory_order_relaxed);
}
