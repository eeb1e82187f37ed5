/* edge_snapshot.c - the data plane's view of one config snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "config/cfg_load.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_stats.h"
#include "core/core_log.h"
#include "health/health_checker.h"
#include "sec/sec_ratelimit.h"
#include "tls/tls.h"
#include "waf/waf.h"

/* A stable per-edge key: cookies stay valid across restarts. With
 * edge.affinity_secret, the first 16 bytes of its SHA-256 (edges sharing
 * the secret honour each other's cookies); else derived from the edge name,
 * which clients can see (FNV-1a, spread over 16 bytes). */
static void affinity_secret(const cfg_edge *e, lb_affinity_secret *out)
{
	if (e->affinity_secret && *e->affinity_secret) {
		unsigned char md[SHA256_DIGEST_LENGTH];
		SHA256((const unsigned char *)e->affinity_secret,
		       strlen(e->affinity_secret), md);
		memcpy(out->key, md, sizeof(out->key));
		OPENSSL_cleanse(md, sizeof(md));
		return;
	}
	const char *name = e->name;
	uint64_t h = 14695981039346656037ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	for (int i = 0; i < 16; i++) {
		h = (h ^ (uint64_t)i) * 1099511628211ull;
		out->key[i] = (uint8_t)(h >> 32);
	}
}

/* Everything of edge.tls a tls_server is built from. */
static bool same_tls(const cfg_tls *a, const cfg_tls *b)
{
	if (a->ncertificates != b->ncertificates ||
	    !core_same_str(a->default_name, b->default_name) ||
	    a->sni_required != b->sni_required ||
	    a->min_version != b->min_version ||
	    a->session_tickets != b->session_tickets || a->http2 != b->http2 ||
	    a->ticket_rotation_ms != b->ticket_rotation_ms)
		return false;
	for (size_t i = 0; i < a->ncertificates; i++)
		if (!core_same_str(a->certificates[i].cert,
				   b->certificates[i].cert) ||
		    !core_same_str(a->certificates[i].key,
				   b->certificates[i].key))
			return false;
	return true;
}

/* edge.tls, when https listeners need it. 0 or -1 with err set. */
static int build_tls(const cfg_snapshot *cfg, const edge_snapshot *prev,
		     bool keep_certs, tls_server **out, char *err,
		     size_t errlen)
{
	const cfg_edge *e = &cfg->edge;
	*out = NULL;
	if (!e->nlisten_https && !e->nlisten_tunnel)
		return 0;
	if (keep_certs && prev && prev->tls &&
	    same_tls(&prev->cfg->edge.tls, &e->tls)) {
		*out = tls_server_ref(prev->tls);
		return 0;
	}
	if (!e->tls.ncertificates) {
		snprintf(err, errlen,
			 "edge.listen.%s: %s needs certificates "
			 "(edge.tls.certificates)",
			 e->nlisten_https ? "https" : "tunnel",
			 e->nlisten_https ? e->listen_https[0].text
					  : e->listen_tunnel[0].text);
		return -1;
	}
	/* ALPN offers h2 first (px_h2.c; edge.tls.http2), then http/1.1.
	 * _load: with the details of its certificates (API, /metrics). */
	if (tls_server_load(&e->tls, e->tls.http2 ? TLS_F_ALPN_H2 : 0,
			    prev ? prev->tls : NULL, out, err, errlen) < 0)
		return -1;
	for (size_t i = 0; tls_server_warning(*out, i); i++)
		log_warn("%s", tls_server_warning(*out, i));
	return 0;
}

static void free_otls(struct tls_client **otls, size_t n)
{
	for (size_t i = 0; otls && i < n; i++)
		tls_client_free(otls[i]);
	free(otls);
}

/* A TLS client per origin reached over TLS (cfg_origin.tls). */
static int build_otls(const cfg_snapshot *cfg, struct tls_client ***out,
		      char *err, size_t errlen)
{
	*out = xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(**out));
	for (size_t i = 0; i < cfg->norigins; i++) {
		const cfg_origin *o = cfg->origins[i];
		if (!o->tls)
			continue;
		char why[256];
		if (tls_client_new(o->tls->ca, !o->tls->allow_insecure,
				   &(*out)[o->index], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "origin %s: %s", o->name, why);
			free_otls(*out, cfg->norigins);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

/* Whether two rate limits count the same way: their counts carry over
 * (a reload, or an API write elsewhere, forgives no one). The action,
 * expression, mitigation and response may change under the counts. */
static bool same_count(const cfg_rate_limit *a, const cfg_rate_limit *b)
{
	if (strcmp(a->name, b->name) ||
	    a->requests_per_period != b->requests_per_period ||
	    a->period_ms != b->period_ms || a->burst != b->burst ||
	    a->max_keys != b->max_keys ||
	    a->ipv4_prefix_length != b->ipv4_prefix_length ||
	    a->ipv6_prefix_length != b->ipv6_prefix_length ||
	    a->ncharacteristics != b->ncharacteristics)
		return false;
	for (size_t i = 0; i < a->ncharacteristics; i++)
		if (!core_same_str(a->characteristics[i],
				   b->characteristics[i]))
			return false;
	return true;
}

static void free_rl(struct sec_rl **rl, size_t n)
{
	for (size_t i = 0; rl && i < n; i++)
		sec_rl_unref(rl[i]);
	free(rl);
}

/* A table per rate limit: the previous snapshot's when it counts the
 * same, else a new one under a random key; and its rate. */
static int build_rl(const cfg_snapshot *cfg, const edge_snapshot *prev,
		    struct sec_rl ***out, sec_rl_rate **rates, char *err,
		    size_t errlen)
{
	*out = NULL;
	*rates = NULL;
	if (!cfg->nrate_limits)
		return 0;
	struct sec_rl **rl = xcalloc(cfg->nrate_limits, sizeof(*rl));
	sec_rl_rate *rate = xcalloc(cfg->nrate_limits, sizeof(*rate));
	for (size_t i = 0; i < cfg->nrate_limits; i++) {
		const cfg_rate_limit *r = &cfg->rate_limits[i];
		rate[i] = sec_rl_rate_of(r->requests_per_period, r->period_ms,
					 r->burst, r->mitigation_timeout_ms);
		for (size_t j = 0;
		     prev && prev->rl && !rl[i] && j < prev->cfg->nrate_limits;
		     j++)
			if (same_count(r, &prev->cfg->rate_limits[j]))
				rl[i] = sec_rl_ref(prev->rl[j]);
		if (rl[i])
			continue;
		uint8_t key[16];
		int kerr = core_random_key(key, sizeof(key));
		if (kerr < 0) {
			snprintf(err, errlen, "rate limits: getrandom: %s",
				 strerror(-kerr));
			free_rl(rl, cfg->nrate_limits);
			free(rate);
			return -1;
		}
		rl[i] = sec_rl_new(r->max_keys, key);
		/* A rule that keeps its name but not its count: its
		 * evictions_total goes on from the old table's. */
		for (size_t j = 0;
		     prev && prev->rl && j < prev->cfg->nrate_limits; j++)
			if (!strcmp(r->name, prev->cfg->rate_limits[j].name))
				sec_rl_add_evictions(
				    rl[i], sec_rl_evictions(prev->rl[j]));
	}
	*out = rl;
	*rates = rate;
	return 0;
}

/* waf.managed's rules: none when off; the previous snapshot's when
 * keep (an API write) and loaded from the same keys; else loaded now. */
static int build_waf(const cfg_snapshot *cfg, const edge_snapshot *prev,
		     bool keep, waf_rules **out, char *err, size_t errlen)
{
	const cfg_waf_managed *m = &cfg->waf.managed;
	*out = NULL;
	if (!m->enabled)
		return 0;
	if (keep && prev && prev->waf && waf_rules_same(prev->waf, m)) {
		waf_rules_ref(prev->waf);
		*out = prev->waf;
		return 0;
	}
	*out = waf_rules_load(m, err, errlen);
	return *out ? 0 : -1;
}

edge_snapshot *edge_snapshot_new(cfg_snapshot *cfg, const edge_snapshot *prev,
				 bool keep_certs, uint32_t buf_size,
				 uint32_t nworkers, char *err, size_t errlen)
{
	waf_rules *waf;
	if (build_waf(cfg, prev, keep_certs, &waf, err, errlen) < 0)
		return NULL;
	tls_server *tls;
	if (build_tls(cfg, prev, keep_certs, &tls, err, errlen) < 0) {
		waf_rules_unref(waf);
		return NULL;
	}
	struct tls_client **otls;
	if (build_otls(cfg, &otls, err, errlen) < 0) {
		tls_server_unref(tls);
		waf_rules_unref(waf);
		return NULL;
	}
	struct sec_rl **rl;
	sec_rl_rate *rl_rate;
	if (build_rl(cfg, prev, &rl, &rl_rate, err, errlen) < 0) {
		free_otls(otls, cfg->norigins);
		tls_server_unref(tls);
		waf_rules_unref(waf);
		return NULL;
	}
	geo_db *geo = geo_open(&cfg->geo, err, errlen);
	if (!geo) {
		free_rl(rl, cfg->nrate_limits);
		free(rl_rate);
		free_otls(otls, cfg->norigins);
		tls_server_unref(tls);
		waf_rules_unref(waf);
		return NULL;
	}
	/* DNS zone data (issue 4): built once here, shared by the workers. */
	dns_zoneset *zones = NULL;
	cfg_diag diag = {0};
	dns_zoneset_opts zopts = {.serial = (uint32_t)time(NULL)};
	if (dns_zoneset_build(cfg, &zopts, &zones, &diag) < 0) {
		snprintf(err, errlen, "%s",
			 diag.n ? diag.msgs[0] : "zones: invalid");
		cfg_diag_free(&diag);
		geo_close(geo);
		free_rl(rl, cfg->nrate_limits);
		free(rl_rate);
		free_otls(otls, cfg->norigins);
		tls_server_unref(tls);
		waf_rules_unref(waf);
		return NULL;
	}
	cfg_diag_free(&diag);
	edge_snapshot *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->generation = 1;
	s->geo = geo;
	s->zones = zones; /* issue 4 */
	s->tls = tls;
	s->otls = otls;
	s->rl = rl;
	s->rl_rate = rl_rate;
	s->waf = waf;
	affinity_secret(&cfg->edge, &s->aff_secret);
	const cfg_limits *lim = &cfg->edge.limits;
	s->cfg = cfg;
	s->router = lb_router_build(cfg);
	s->req_limits = (http1_limits){
	    .max_head_bytes = lim->max_header_bytes,
	    .max_headers = MIN(lim->max_headers, HTTP1_MAX_HEADERS),
	    /* Like nginx's 8k line buffer: longer targets get 414. */
	    .max_target = MIN(8192u, lim->max_header_bytes),
	};
	s->ostates =
	    xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(*s->ostates));
	s->pstates =
	    xcalloc(cfg->npools ? cfg->npools : 1, sizeof(*s->pstates));
	health_states_init(s->ostates, cfg->norigins, s->pstates, cfg->npools);
	s->stats = edge_stats_new(cfg, nworkers); /* /metrics counters */
	/* Origin heads must fit the buffer with room for our rewrite. */
	s->resp_limits = (http1_limits){
	    .max_head_bytes = buf_size - 1024,
	    .max_headers = HTTP1_MAX_HEADERS,
	    .max_target = 0,
	};
	return s;
}

static void edge_snapshot_free(edge_snapshot *s)
{
	if (!s)
		return;
	if (s->retire_into) {
		/* Requests that finished on s after the swap: into the
		 * current snapshot's base (only what s counted since its last
		 * carry moves). The edge outlives its snapshots. */
		edge *e = s->retire_into;
		pthread_mutex_lock(&e->carry_lock);
		edge_snapshot *cur = edge_current(e);
		if (cur && cur != s)
			edge_stats_carry(s, cur);
		pthread_mutex_unlock(&e->carry_lock);
	}
	lb_router_free(s->router);
	geo_close(s->geo);
	dns_zoneset_free(s->zones); /* issue 4 */
	tls_server_unref(s->tls);   /* TLS connections may hold it on */
	free_otls(s->otls, s->cfg->norigins);
	free_rl(s->rl, s->cfg->nrate_limits);
	free(s->rl_rate);
	waf_rules_unref(s->waf);
	edge_stats_free(s->stats);
	health_states_destroy(s->ostates, s->cfg->norigins);
	free(s->ostates);
	free(s->pstates);
	cfg_snapshot_free(s->cfg);
	free(s);
}

void edge_snapshot_ref(const edge_snapshot *s)
{
	/* The count is the one mutable field of an otherwise read-only
	 * object, hence the cast. */
	atomic_fetch_add_explicit(&((edge_snapshot *)s)->refs, 1,
				  memory_order_relaxed);
}

void edge_snapshot_unref(const edge_snapshot *s)
{
	if (!s)
		return;
	edge_snapshot *m = (edge_snapshot *)s;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		edge_snapshot_free(m);
}
