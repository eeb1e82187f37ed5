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

static atomic_uint_fast64_t n_inspected, n_blocked, n_detected, n_partial;

/* Keep the id named in one of the library's rule messages ("... [id
 * \"942100\"] ..."), once, up to WAF_TX_RULES of them. */
static void keep_rule_id(waf_tx *t, const char *msg)
{
	const char *id = strstr(msg, "[id \"");
	if (!id)
		return;
	id += 5;
	size_t n = strspn(id, "0123456789");
	if (!n || n > 7 || id[n] != '"')
		return;
	if (n >= 3 && !strncmp(id, "949", 3))
		t->detected = true; /* CRS's inbound blocking evaluation */
	if (t->nrules == WAF_TX_RULES)
		return;
	/* Once per id (a rule may match several variables). */
	for (const char *p = t->rules_text; *p;) {
		size_t l = strcspn(p, " ");
		if (l == n && !strncmp(p, id, n))
			return;
		p += l + (p[l] == ' ');
	}
	if (t->rules_len)
		t->rules_text[t->rules_len++] = ' ';
	memcpy(t->rules_text + t->rules_len, id, n);
	t->rules_len += (uint32_t)n;
	t->rules_text[t->rules_len] = 0;
	t->nrules++;
}

/* Each matched rule that logs (the deciding, disruptive one comes with the
 * intervention instead: decide). */
static void log_cb(void *data, const void *msg)
{
	if (data && msg)
		keep_rule_id(data, msg);
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

/* The library's decision so far, into v; true when it denies. */
static bool decide(waf_tx *t, waf_verdict *v)
{
	ModSecurityIntervention it = {.status = 200};
	int disruptive = msc_intervention(t->t, &it);
	if (disruptive && it.log)
		keep_rule_id(t, it.log);
	free(it.log);
	free(it.url);
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
