/* edge_metrics.c - see edge_metrics.h. */
#include "cluster/clu_edge.h"
#include "edge/edge_ctl.h"
#include "config/cfg_tunnel.h"
#include "tunnel/tun_edge.h"
#include "edge/edge_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/cfg_resolve.h"
#include "core/core_util.h"
#include "edge/edge_admin.h"
#include "edge/edge_alog.h"
#include "edge/edge_dns.h"
#include "edge/edge_health.h"
#include "edge/edge_stats.h"
#include "health/health_probe.h"
#include "http/px.h"
#include "sec/sec_ratelimit.h"
#include "tls/tls.h"
#include "waf/waf.h"

typedef struct mbuf {
	char *p;
	size_t len, cap;
} mbuf;

static void reserve(mbuf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 16384;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void put(mbuf *b, const char *s)
{
	size_t n = strlen(s);
	reserve(b, n);
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

__attribute__((format(printf, 2, 3))) static void putf(mbuf *b, const char *fmt,
						       ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p ? b->p + b->len : NULL,
			  b->p ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (!b->p || (size_t)n >= b->cap - b->len) {
		reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

size_t edge_metrics_escape(char *out, const char *v)
{
	size_t o = 0;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *v;
		}
	}
	return o;
}

/* A label value, escaped; NULL is "". */
static void val(mbuf *b, const char *v)
{
	v = v ? v : "";
	size_t n = strlen(v);
	reserve(b, 2 * n);
	b->len += edge_metrics_escape(b->p + b->len, v);
	b->p[b->len] = '\0';
}

static void head(mbuf *b, const char *name, const char *type, const char *help)
{
	putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{lb="..",pool="..",origin=".." (as many as given) */
static void series(mbuf *b, const char *name, const char *k1, const char *v1,
		   const char *k2, const char *v2, const char *k3,
		   const char *v3)
{
	put(b, name);
	const char *ks[3] = {k1, k2, k3}, *vs[3] = {v1, v2, v3};
	bool first = true;
	for (int i = 0; i < 3; i++) {
		if (!ks[i])
			continue;
		putf(b, "%s%s=\"", first ? "{" : ",", ks[i]);
		val(b, vs[i]);
		put(b, "\"");
		first = false;
	}
}

static void end_u64(mbuf *b, bool labels, uint64_t v)
{
	putf(b, "%s %" PRIu64 "\n", labels ? "}" : "", v);
}

static void end_dbl(mbuf *b, bool labels, double v)
{
	putf(b, "%s %.9g\n", labels ? "}" : "", v);
}

/* A metric without labels: HELP, TYPE and its one sample. */
static void single(mbuf *b, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	head(b, name, type, help);
	putf(b, "%s %" PRIu64 "\n", name, v);
}

/* A counter with one label: HELP, TYPE and a sample per value. */
typedef struct label_count {
	const char *value;
	uint64_t n;
} label_count;

static void by_label(mbuf *b, const char *name, const char *help,
		     const char *label, const label_count *v, size_t nv)
{
	head(b, name, "counter", help);
	for (size_t i = 0; i < nv; i++) {
		series(b, name, label, v[i].value, NULL, NULL, NULL, NULL);
		end_u64(b, true, v[i].n);
	}
}

/* --- process ------------------------------------------------------------ */

/* Start time from /proc (what Prometheus client libraries report). */
static bool process_start(double *out)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return false;
	/* Field 22 (starttime); p + 2 is field 3. */
	unsigned long long start = 0;
	p += 2;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", &start) != 1)
		return false;
	f = fopen("/proc/stat", "r");
	if (!f)
		return false;
	unsigned long long btime = 0;
	char line[256];
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (!btime || hz <= 0)
		return false;
	*out = (double)btime + (double)start / (double)hz;
	return true;
}

/* --- requests ----------------------------------------------------------- */

static const char *const classes[EDGE_STATS_NCLASS] = {"1xx", "2xx", "3xx",
						       "4xx", "5xx"};
static const double bounds[EDGE_STATS_NBOUNDS] = {EDGE_STATS_BOUNDS};

static const char *lb_label(const edge_stats *st, uint32_t li)
{
	return li < st->nlbs ? st->cfg->lbs[li].name : "";
}

static void render_requests(mbuf *b, const edge_stats *st, const uint64_t *t)
{
	const cfg_snapshot *c = st->cfg;
	head(b, "meridian_requests_total", "counter",
	     "Requests answered, by load balancer, pool, origin and status "
	     "class. Answers of the edge itself have pool=\"\" and "
	     "origin=\"\" (lb=\"\" before routing: unknown host, bad "
	     "request); 499: closed before a response head was sent.");
	for (uint32_t r = 0; r < st->nroutes; r++) {
		const edge_stats_route *rt = &st->routes[r];
		for (uint32_t k = 0; k < EDGE_STATS_NCLASS; k++) {
			uint64_t v = t[edge_stats_req_cell(r, k)];
			if (!v)
				continue;
			series(b, "meridian_requests_total", "lb",
			       lb_label(st, rt->lb), "pool",
			       rt->pool >= 0 ? c->pools[rt->pool].id : "",
			       "origin",
			       rt->origin >= 0 ? c->origins[rt->origin]->name
					       : "");
			putf(b, ",code=\"%s\"", classes[k]);
			end_u64(b, true, v);
		}
	}
}

static void render_hist(mbuf *b, const edge_stats *st, const uint64_t *t,
			const char *name, const char *help, size_t cell,
			size_t sum_cell)
{
	head(b, name, "histogram", help);
	char nb[128];
	for (uint32_t li = 0; li <= st->nlbs; li++) {
		const uint64_t *h = t + st->off_lb + (size_t)li * EDGE_LBC_N;
		uint64_t cum = 0;
		for (uint32_t k = 0; k < EDGE_STATS_NBUCKETS; k++)
			cum += h[cell + k];
		if (li == st->nlbs && cum == 0)
			continue; /* nothing answered before routing */
		snprintf(nb, sizeof(nb), "%s_bucket", name);
		cum = 0;
		for (uint32_t k = 0; k < EDGE_STATS_NBUCKETS; k++) {
			cum += h[cell + k];
			series(b, nb, "lb", lb_label(st, li), NULL, NULL, NULL,
			       NULL);
			if (k < EDGE_STATS_NBOUNDS)
				putf(b, ",le=\"%g\"", bounds[k]);
			else
				put(b, ",le=\"+Inf\"");
			end_u64(b, true, cum);
		}
		snprintf(nb, sizeof(nb), "%s_sum", name);
		series(b, nb, "lb", lb_label(st, li), NULL, NULL, NULL, NULL);
		end_dbl(b, true, (double)h[sum_cell] / 1e9);
		snprintf(nb, sizeof(nb), "%s_count", name);
		series(b, nb, "lb", lb_label(st, li), NULL, NULL, NULL, NULL);
		end_u64(b, true, cum);
	}
}

static void render_lb_counter(mbuf *b, const edge_stats *st, const uint64_t *t,
			      const char *name, const char *help, size_t cell)
{
	head(b, name, "counter", help);
	for (uint32_t li = 0; li < st->nlbs; li++) {
		series(b, name, "lb", lb_label(st, li), NULL, NULL, NULL, NULL);
		end_u64(b, true,
			t[st->off_lb + (size_t)li * EDGE_LBC_N + cell]);
	}
}

static void render_rules(mbuf *b, const edge_stats *st, const uint64_t *t)
{
	static const char name[] = "meridian_rule_matches_total";
	head(b, name, "counter",
	     "Requests (and DNS-only queries) a load balancer rule matched.");
	for (uint32_t li = 0; li < st->nlbs; li++) {
		const cfg_lb *lb = &st->cfg->lbs[li];
		for (size_t k = 0; k < lb->nrules; k++) {
			char idx[24];
			series(b, name, "lb", lb_label(st, li), "rule",
			       edge_stats_rule_name(&lb->rules[k], idx,
						    sizeof(idx)),
			       NULL, NULL);
			end_u64(b, true,
				t[st->off_rule + st->rule_first[li] + k]);
		}
	}
}

/* Firewall custom rules: the requests each matched. */
static void render_waf(mbuf *b, const edge_snapshot *s, const edge_stats *st,
		       const uint64_t *t)
{
	const cfg_waf *w = &s->cfg->waf;
	if (!w->ncustom_rules)
		return;
	static const char name[] = "meridian_waf_rule_matches_total";
	head(b, name, "counter",
	     "Requests a firewall custom rule (waf.custom_rules) matched, by "
	     "rule and its action.");
	static const char *const actions[] = {"block", "log", "skip"};
	for (size_t k = 0; k < w->ncustom_rules; k++) {
		series(b, name, "rule", w->custom_rules[k].name, "action",
		       actions[w->custom_rules[k].action], NULL, NULL);
		end_u64(b, true, t[st->off_waf + k]);
	}
}

/* The managed rules: what they did (process-wide, since start) and the
 * size of the rule set in use. Shown once they have been on. */
static void render_waf_managed(mbuf *b, const edge_snapshot *s)
{
	waf_counters c;
	waf_counters_get(&c);
	if (!s->waf && !c.inspected)
		return;
	single(b, "meridian_waf_managed_rules", "gauge",
	       "Rules of the managed rule set in use (waf.managed; 0: off).",
	       waf_rules_count(s->waf));
	label_count r[] = {{"inspected", c.inspected},
			   {"blocked", c.blocked},
			   {"detected", c.detected},
			   {"body_partial", c.partial}};
	by_label(b, "meridian_waf_managed_requests_total",
		 "Requests the managed rules ran on (inspected), denied "
		 "(blocked), would have denied in mode detect (detected), and "
		 "whose body they saw only up to body_limit (body_partial).",
		 "result", r, sizeof(r) / sizeof(r[0]));
}

/* Rate limits: what went over, and the state of their tables. */
static void render_rate_limits(mbuf *b, const edge_snapshot *s,
			       const edge_stats *st, const uint64_t *t)
{
	const cfg_snapshot *c = s->cfg;
	if (!c->nrate_limits || !s->rl)
		return;
	static const char over[] = "meridian_rate_limit_exceeded_total";
	head(b, over, "counter",
	     "Requests over a rate limit's rate (blocked, or only logged "
	     "with action log).");
	for (size_t k = 0; k < c->nrate_limits; k++) {
		series(b, over, "rule", c->rate_limits[k].name, NULL, NULL,
		       NULL, NULL);
		end_u64(b, true, t[st->off_rl + k]);
	}
	uint64_t now = core_now_ns(); /* the clock of the tables' tats */
	static const char keys[] = "meridian_rate_limit_keys";
	head(b, keys, "gauge",
	     "Keys a rate limit is counting now (a bucket not full).");
	for (size_t k = 0; k < c->nrate_limits; k++) {
		series(b, keys, "rule", c->rate_limits[k].name, NULL, NULL,
		       NULL, NULL);
		end_u64(b, true, sec_rl_active(s->rl[k], now));
	}
	static const char ev[] = "meridian_rate_limit_evictions_total";
	head(b, ev, "counter",
	     "Keys still counting that a full rate-limit table forgot for a "
	     "new one (raise max_keys when it grows).");
	for (size_t k = 0; k < c->nrate_limits; k++) {
		series(b, ev, "rule", c->rate_limits[k].name, NULL, NULL, NULL,
		       NULL);
		end_u64(b, true, sec_rl_evictions(s->rl[k]));
	}
}

/* --- origins and pools ------------------------------------------------- */

typedef enum {
	O_HEALTHY,
	O_STATE,
	O_EJECTED,
	O_RTT,
	O_CONNS,
	O_OUTSTANDING,
	O_FAILURES,
	O_EJECTIONS,
	O_CHECKS,
	O_TLS_NOT_AFTER,
} origin_metric;

static const char *const origin_states[] = {"unknown", "healthy", "unhealthy"};

static void render_origin_metric(mbuf *b, const edge_snapshot *s,
				 const uint64_t *t, origin_metric m,
				 uint64_t now_ms)
{
	const cfg_snapshot *c = s->cfg;
	const edge_stats *st = s->stats;
	for (size_t p = 0; p < c->npools; p++) {
		const cfg_pool *pool = &c->pools[p];
		for (size_t j = 0; j < pool->norigins; j++) {
			const cfg_origin *o = &pool->origins[j];
			lb_origin_state *os = &s->ostates[o->index];
			const uint64_t *oc =
			    t + st->off_origin + (size_t)o->index * EDGE_OC_N;
			uint8_t h = atomic_load_explicit(&os->active,
							 memory_order_relaxed);
			const char *name = NULL;
			switch (m) {
			case O_HEALTHY:
				name = "meridian_origin_healthy";
				break;
			case O_STATE:
				name = "meridian_origin_state";
				break;
			case O_EJECTED:
				name = "meridian_origin_ejected";
				break;
			case O_RTT:
				name = "meridian_origin_rtt_seconds";
				break;
			case O_CONNS:
				name = "meridian_origin_connections";
				break;
			case O_OUTSTANDING:
				name = "meridian_origin_outstanding_requests";
				break;
			case O_FAILURES:
				name = "meridian_origin_failures_total";
				break;
			case O_EJECTIONS:
				name = "meridian_passive_ejections_total";
				break;
			case O_CHECKS:
				name = "meridian_health_checks_total";
				break;
			case O_TLS_NOT_AFTER:
				name = "meridian_origin_tls_not_after_seconds";
				break;
			}
			if (m == O_STATE) {
				for (uint8_t k = 0; k < 3; k++) {
					series(b, name, "pool", pool->id,
					       "origin", o->name, "state",
					       origin_states[k]);
					end_u64(b, true, h == k);
				}
				continue;
			}
			if (m == O_CHECKS) {
				if (!pool->monitor)
					continue;
				pthread_mutex_lock(&os->lock);
				uint64_t checks = os->checks;
				uint64_t fails = os->failures;
				pthread_mutex_unlock(&os->lock);
				series(b, name, "pool", pool->id, "origin",
				       o->name, "result", "success");
				end_u64(b, true,
					checks >= fails ? checks - fails : 0);
				series(b, name, "pool", pool->id, "origin",
				       o->name, "result", "failure");
				end_u64(b, true, fails);
				continue;
			}
			if (m == O_TLS_NOT_AFTER) {
				int64_t na = atomic_load_explicit(
				    &os->tls_not_after, memory_order_relaxed);
				if (na <= 0)
					continue; /* no https check saw one */
				series(b, name, "pool", pool->id, "origin",
				       o->name, NULL, NULL);
				end_u64(b, true, (uint64_t)na);
				continue;
			}
			if (m == O_RTT) {
				uint32_t us = atomic_load_explicit(
				    &os->rtt_us, memory_order_relaxed);
				if (!us)
					continue; /* not measured */
				series(b, name, "pool", pool->id, "origin",
				       o->name, NULL, NULL);
				end_dbl(b, true, us / 1e6);
				continue;
			}
			uint64_t v = 0;
			switch (m) {
			case O_HEALTHY:
				v = h == LB_HEALTH_HEALTHY;
				break;
			case O_EJECTED:
				v = atomic_load_explicit(&os->ejected_until,
							 memory_order_relaxed) >
				    now_ms;
				break;
			case O_CONNS: {
				int32_t n = atomic_load_explicit(
				    &os->connections, memory_order_relaxed);
				v = n > 0 ? (uint64_t)n : 0;
				break;
			}
			case O_OUTSTANDING: {
				int32_t n = atomic_load_explicit(
				    &os->outstanding, memory_order_relaxed);
				v = n > 0 ? (uint64_t)n : 0;
				break;
			}
			case O_FAILURES:
				v = oc[EDGE_OC_FAILURES];
				break;
			case O_EJECTIONS:
				v = oc[EDGE_OC_EJECTIONS];
				break;
			default:
				break;
			}
			series(b, name, "pool", pool->id, "origin", o->name,
			       NULL, NULL);
			end_u64(b, true, v);
		}
	}
}

static void render_origins(mbuf *b, const edge_snapshot *s, const uint64_t *t)
{
	uint64_t now = core_now_ms();
	static const struct {
		origin_metric m;
		const char *name, *type, *help;
	} ms[] = {
	    {O_HEALTHY, "meridian_origin_healthy", "gauge",
	     "1 when the origin's active checks say healthy, else 0 "
	     "(unknown, unhealthy)."},
	    {O_STATE, "meridian_origin_state", "gauge",
	     "1 for the origin's active health state (unknown, healthy, "
	     "unhealthy)."},
	    {O_EJECTED, "meridian_origin_ejected", "gauge",
	     "1 while passive health has ejected the origin."},
	    {O_RTT, "meridian_origin_rtt_seconds", "gauge",
	     "Moving average of the health check round trip time (only "
	     "origins with passed checks)."},
	    {O_CONNS, "meridian_origin_connections", "gauge",
	     "Open connections to the origin (busy and idle), all workers."},
	    {O_OUTSTANDING, "meridian_origin_outstanding_requests", "gauge",
	     "Requests in flight to the origin."},
	    {O_FAILURES, "meridian_origin_failures_total", "counter",
	     "Failures on live traffic (connect errors, resets, timeouts, "
	     "5xx) that count towards passive ejection."},
	    {O_EJECTIONS, "meridian_passive_ejections_total", "counter",
	     "Times passive health ejected the origin."},
	    {O_CHECKS, "meridian_health_checks_total", "counter",
	     "Active health check attempts by result (origins of pools with "
	     "a monitor)."},
	    {O_TLS_NOT_AFTER, "meridian_origin_tls_not_after_seconds", "gauge",
	     "Earliest expiry (Unix time) among the certificates of the "
	     "origin's chain, as its https monitor last saw it (only origins "
	     "whose https checks reached a certificate)."},
	};
	for (size_t i = 0; i < ARRAY_LEN(ms); i++) {
		head(b, ms[i].name, ms[i].type, ms[i].help);
		render_origin_metric(b, s, t, ms[i].m, now);
	}
}

static const char *const pool_states[] = {"unknown", "healthy", "degraded",
					  "critical"};

static void render_pools(mbuf *b, const edge_snapshot *s)
{
	const cfg_snapshot *c = s->cfg;
	head(b, "meridian_pool_healthy", "gauge",
	     "1 when the pool may take traffic (healthy or degraded), else 0.");
	for (size_t p = 0; p < c->npools; p++) {
		uint8_t h = atomic_load_explicit(&s->pstates[p].health,
						 memory_order_relaxed);
		series(b, "meridian_pool_healthy", "pool", c->pools[p].id, NULL,
		       NULL, NULL, NULL);
		end_u64(b, true, h == LB_POOL_HEALTHY || h == LB_POOL_DEGRADED);
	}
	head(b, "meridian_pool_state", "gauge",
	     "1 for the pool's health state (unknown, healthy, degraded, "
	     "critical).");
	for (size_t p = 0; p < c->npools; p++) {
		uint8_t h = atomic_load_explicit(&s->pstates[p].health,
						 memory_order_relaxed);
		for (uint8_t k = 0; k < ARRAY_LEN(pool_states); k++) {
			series(b, "meridian_pool_state", "pool", c->pools[p].id,
			       "state", pool_states[k], NULL, NULL);
			end_u64(b, true, h == k);
		}
	}
	head(b, "meridian_pool_healthy_origins", "gauge",
	     "Healthy origins of the pool.");
	for (size_t p = 0; p < c->npools; p++) {
		series(b, "meridian_pool_healthy_origins", "pool",
		       c->pools[p].id, NULL, NULL, NULL, NULL);
		end_u64(b, true,
			atomic_load_explicit(&s->pstates[p].healthy_origins,
					     memory_order_relaxed));
	}
}

/* --- edge-wide ---------------------------------------------------------- */

static void render_dns(mbuf *b, const edge *e)
{
	edge_dns_stats d;
	edge_dns_stats_sum(e, &d);
	head(b, "meridian_dns_queries_total", "counter",
	     "DNS messages received, by transport.");
	for (unsigned i = 0; i < EDGE_DNS_NTRANSPORTS; i++) {
		series(b, "meridian_dns_queries_total", "transport",
		       edge_dns_transport_name(i), NULL, NULL, NULL, NULL);
		end_u64(b, true, d.queries[i]);
	}
	head(b, "meridian_dns_responses_total", "counter",
	     "DNS queries answered, by response code.");
	for (unsigned i = 0; i < EDGE_DNS_NRCODES; i++) {
		series(b, "meridian_dns_responses_total", "rcode",
		       edge_dns_rcode_name(i), NULL, NULL, NULL, NULL);
		end_u64(b, true, d.responses[i]);
	}
	single(b, "meridian_dns_dropped_total", "counter",
	       "DNS messages not answered (malformed, QR set, oversized).",
	       d.dropped);
	single(b, "meridian_dns_truncated_total", "counter",
	       "DNS responses sent truncated (TC: the client retries over "
	       "TCP).",
	       d.truncated);
	single(b, "meridian_dns_lb_answers_total", "counter",
	       "DNS queries answered by a load balancer.", d.lb);
	single(b, "meridian_dns_ecs_queries_total", "counter",
	       "DNS queries answered that carried an EDNS Client Subnet "
	       "option.",
	       d.ecs);
	single(b, "meridian_dns_ecs_scoped_answers_total", "counter",
	       "DNS answers scoped to the client's subnet (ECS scope prefix "
	       "above 0: the answer depends on where the client is).",
	       d.ecs_scoped);
	single(b, "meridian_dns_udp_receive_dropped_total", "counter",
	       "DNS queries over UDP the kernel dropped before the edge read "
	       "them: the socket's receive buffer was full "
	       "(edge.limits.dns_receive_buffer).",
	       d.udp_receive_dropped);
	single(b, "meridian_dns_send_errors_total", "counter",
	       "DNS answers the kernel refused to send (UDP sendmmsg "
	       "errors).",
	       d.send_errors);
	const label_count rrl[] = {{"dropped", d.rrl_dropped},
				   {"truncated", d.rrl_slipped}};
	by_label(b, "meridian_dns_rate_limited_total",
		 "UDP DNS answers over edge.dns_rate_limit: dropped, or sent "
		 "truncated (slip) so the client retries over TCP.",
		 "action", rrl, ARRAY_LEN(rrl));
	const label_count tcp[] = {{"accepted", d.tcp_accepted},
				   {"evicted", d.tcp_evicted},
				   {"idle", d.tcp_idle_closed},
				   {"bad_frame", d.tcp_bad_frame}};
	by_label(b, "meridian_dns_tcp_connections_total",
		 "DNS-over-TCP connections: accepted, and closed by the edge "
		 "(evicted: the least recently active one, for a new one when "
		 "the table was full; idle: no whole message within "
		 "client_idle; bad_frame: a zero length or not a query).",
		 "event", tcp, ARRAY_LEN(tcp));
}

/* TLS termination (edge.listen.https): handshakes (process-wide counters
 * of tls_conn.c) and the expiry of each certificate served now. */
static void render_tls(mbuf *b, const edge_snapshot *s)
{
	tls_hs_stats hs;
	tls_hs_stats_get(&hs);
	single(b, "meridian_tls_handshakes_total", "counter",
	       "TLS handshakes completed with clients (resumed ones too).",
	       hs.done);
	single(b, "meridian_tls_handshakes_resumed_total", "counter",
	       "TLS handshakes that resumed a session (ticket).", hs.resumed);
	head(b, "meridian_tls_handshake_failures_total", "counter",
	     "TLS handshakes with clients that failed, by reason "
	     "(protocol_version, no_shared_cipher, unknown_sni, "
	     "certificate_rejected, closed, other).");
	for (int i = 0; i < TLS_HS_NFAIL; i++) {
		series(b, "meridian_tls_handshake_failures_total", "reason",
		       tls_hs_fail_name((tls_hs_fail)i), NULL, NULL, NULL,
		       NULL);
		end_u64(b, true, hs.failed[i]);
	}
	single(b, "meridian_tls_empty_connections_total", "counter",
	       "Client connections on https listeners closed before sending "
	       "a byte of TLS (TCP health checks, port scans); not handshake "
	       "failures.",
	       hs.empty);
	px_h2_stats h2;
	px_h2_stats_get(&h2);
	single(b, "meridian_http2_connections_total", "counter",
	       "Client connections that negotiated HTTP/2 (ALPN h2).",
	       h2.connections);
	single(b, "meridian_http2_streams_total", "counter",
	       "HTTP/2 request streams handed to the proxy (each also counts "
	       "in meridian_requests_total when it ends).",
	       h2.streams);
	head(b, "meridian_http2_connection_errors_total", "counter",
	     "HTTP/2 connections ended by the edge, by reason (rapid_reset, "
	     "flood: PING/SETTINGS/empty frames, protocol_error, "
	     "header_timeout: a header block left unfinished, stalled: the "
	     "client stopped reading).");
	for (int i = 0; i < PX_H2_NERR; i++) {
		series(b, "meridian_http2_connection_errors_total", "reason",
		       px_h2_err_name((px_h2_err)i), NULL, NULL, NULL, NULL);
		end_u64(b, true, h2.errors[i]);
	}
	label_count sr[PX_H2_NSRESET];
	for (int i = 0; i < PX_H2_NSRESET; i++)
		sr[i] = (label_count){px_h2_sreset_name((px_h2_sreset)i),
				      h2.stream_resets[i]};
	by_label(b, "meridian_http2_stream_resets_total",
		 "HTTP/2 streams the edge reset while their connection went "
		 "on, by reason (refused: over max_concurrent_streams, "
		 "REFUSED_STREAM; stalled: the client kept the stream's window "
		 "shut past client_idle).",
		 "reason", sr, PX_H2_NSRESET);
	size_t n = s->tls ? tls_server_ncerts(s->tls) : 0;
	if (!n)
		return;
	head(b, "meridian_tls_certificate_not_after_seconds", "gauge",
	     "End of validity of each served certificate "
	     "(edge.tls.certificates), in seconds since the Unix epoch.");
	for (size_t i = 0; i < n; i++) {
		const tls_cert_info *ci = tls_server_cert(s->tls, i);
		series(b, "meridian_tls_certificate_not_after_seconds", "cert",
		       ci->cert_file, NULL, NULL, NULL, NULL);
		putf(b, "} %" PRId64 "\n", ci->not_after);
	}
}

/* Tunnels (tun_edge.h): only on an edge with a tunnel listener. */
static void render_tunnels(mbuf *b, edge *e, const edge_snapshot *s)
{
	/* Joined since start, then configured and never joined (0s: a
	 * tunnel without connectors is what an alert looks for). */
	enum { CAP = 2 * CFG_MAX_TUNNELS };
	tun_edge_tunnel_stats *st = xcalloc(CAP, sizeof(*st));
	uint64_t hellos[TUN_HELLO_NRESULT];
	size_t n = tun_edge_stats(e->tunnels, st, CFG_MAX_TUNNELS, hellos);
	for (size_t i = 0, joined = n; i < s->cfg->ntunnels && n < CAP; i++) {
		const char *id = s->cfg->tunnels[i].id;
		size_t k = 0;
		while (k < joined && strcmp(st[k].id, id))
			k++;
		if (k == joined)
			snprintf(st[n++].id, sizeof(st[0].id), "%s", id);
	}
	label_count hv[TUN_HELLO_NRESULT];
	for (int i = 0; i < TUN_HELLO_NRESULT; i++)
		hv[i] = (label_count){tun_hello_result_name(i), hellos[i]};
	by_label(b, "meridian_tunnel_hellos_total",
		 "Connector connections by the outcome of their hello: "
		 "accepted, unauthorized (unknown tunnel or wrong token), "
		 "refused (malformed, another path or protocol, the edge "
		 "draining, the tunnel full), failed (TLS, closed or timed "
		 "out before a hello).",
		 "result", hv, TUN_HELLO_NRESULT);
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"meridian_tunnel_connectors", "gauge",
	     "Connector connections of a tunnel that take new requests."},
	    {"meridian_tunnel_requests_total", "counter",
	     "Requests sent through a tunnel (one HTTP/2 stream each)."},
	    {"meridian_tunnel_request_errors_total", "counter",
	     "Requests through a tunnel that ended without a whole answer "
	     "(the stream reset, or its connection lost)."},
	};
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		head(b, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < n; i++) {
			series(b, fam[f].name, "tunnel", st[i].id, NULL, NULL,
			       NULL, NULL);
			end_u64(b, true,
				f == 0	 ? st[i].connectors
				: f == 1 ? st[i].streams
					 : st[i].stream_errors);
		}
	}
	free(st);
}

/* Cluster mode (clu_edge.h); zeros without edge.cluster. */
static void render_cluster(mbuf *b, edge *e)
{
	clu_stats cs;
	clu_edge_stats(e->ctl->clu, &cs);
	single(b, "meridian_cluster_connected", "gauge",
	       "1 while this edge is connected to etcd (watch up, lease "
	       "alive); 0 when not, or without edge.cluster.",
	       cs.connected);
	single(b, "meridian_cluster_nodes", "gauge",
	       "Live nodes of the cluster this edge sees (itself included).",
	       cs.nodes);
	single(b, "meridian_cluster_changes_applied_total", "counter",
	       "Object changes from other edges (the watch, or a re-read) "
	       "applied to this edge's copy.",
	       cs.changes_applied);
	label_count v[CLU_NOPS];
	for (int i = 0; i < CLU_NOPS; i++)
		v[i] = (label_count){clu_op_name((clu_op_kind)i), cs.errors[i]};
	by_label(b, "meridian_cluster_errors_total",
		 "Failed etcd operations, by op: range, txn, watch, lease, "
		 "publish (health reports).",
		 "op", v, CLU_NOPS);
}

static void render_edge(mbuf *b, edge *e, const edge_snapshot *s)
{
	uint64_t conns = 0, idle = 0;
	for (size_t i = 0; i < s->cfg->norigins; i++) {
		int32_t n = atomic_load_explicit(&s->ostates[i].connections,
						 memory_order_relaxed);
		conns += n > 0 ? (uint64_t)n : 0;
	}
	for (uint32_t i = 0; i < e->nworkers; i++)
		idle += atomic_load_explicit(&e->workers[i].idle_upstreams,
					     memory_order_relaxed);
	single(b, "meridian_client_connections", "gauge",
	       "Open client connections.", atomic_load(&e->nconns));
	static const char refused[] =
	    "meridian_client_connections_refused_total";
	head(b, refused, "counter",
	     "Client connections refused at accept: over "
	     "edge.limits.max_connections, or over "
	     "max_connections_per_client.");
	series(b, refused, "reason", "max_connections", NULL, NULL, NULL, NULL);
	end_u64(b, true, atomic_load(&e->refused_max));
	series(b, refused, "reason", "per_client", NULL, NULL, NULL, NULL);
	end_u64(b, true, atomic_load(&e->refused_per_client));
	single(b, "meridian_client_connections_untracked_total", "counter",
	       "Client connections let through without a per-client count: "
	       "the table sized from max_connections at start had no room.",
	       atomic_load(&e->untracked));
	head(b, "meridian_upstream_connections", "gauge",
	     "Open connections to origins: active (serving a request or "
	     "connecting) and idle (pooled for keep-alive).");
	series(b, "meridian_upstream_connections", "state", "active", NULL,
	       NULL, NULL, NULL);
	end_u64(b, true, conns > idle ? conns - idle : 0);
	series(b, "meridian_upstream_connections", "state", "idle", NULL, NULL,
	       NULL, NULL);
	end_u64(b, true, idle);

	/* The health thread (replaced on a config swap: under swap_lock). */
	health_stats hs = {0};
	bool hc_up = false;
	notify_counters nc = {0};
	pthread_mutex_lock(&e->swap_lock);
	if (e->health && e->health->checker) {
		health_get_stats(e->health->checker, &hs);
		hc_up = true;
	}
	if (e->health)
		edge_health_notify_counters(e->health, &nc);
	pthread_mutex_unlock(&e->swap_lock);
	const label_count ndel[] = {{"sent", nc.sent}, {"failed", nc.failed}};
	by_label(b, "meridian_notification_deliveries_total",
		 "Notification deliveries (one per email, one per webhook): "
		 "sent, or failed (given up after the retries).",
		 "result", ndel, ARRAY_LEN(ndel));
	single(b, "meridian_notification_retries_total", "counter",
	       "Notification delivery attempts that were retries.", nc.retried);
	single(b, "meridian_notification_recipients_refused_total", "counter",
	       "Email recipients the SMTP server refused while it took the "
	       "message for the others (the log names them and the reply).",
	       nc.rcpt_refused);
	const label_count nev[] = {{"submitted", nc.submitted},
				   {"dropped", nc.dropped},
				   {"debounced", nc.debounced},
				   {"filtered", nc.filtered}};
	by_label(b, "meridian_notification_events_total",
		 "Health changes handed to the notifier (submitted), and "
		 "those not sent: dropped (queue full, or pending at a stop), "
		 "debounced (flapped back), filtered (notification_filter, or "
		 "a first healthy verdict).",
		 "outcome", nev, ARRAY_LEN(nev));
	single(b, "meridian_notifications_pending", "gauge",
	       "Notification events, changes and deliveries not finished yet.",
	       nc.pending);
	single(b, "meridian_health_checker_up", "gauge",
	       "1 while the health thread runs; 0 when it could not start "
	       "(after a config change: verdicts are frozen, alert on it; "
	       "retried every 2 s).",
	       hc_up);
	single(b, "meridian_health_check_targets", "gauge",
	       "Origins the health thread checks.", hs.targets);
	single(b, "meridian_health_probes_in_flight", "gauge",
	       "Health probes running now.", hs.inflight);
	single(b, "meridian_health_kept_connections", "gauge",
	       "Keep-alive connections the health thread holds between "
	       "checks (at most edge.limits.health_connections).",
	       hs.kept);
	single(b, "meridian_health_io_uring", "gauge",
	       "1 when the health thread's kept plain-http connections are "
	       "served through io_uring, 0 on epoll alone (edge.io_uring).",
	       hs.io_uring);
	uint64_t tls_full, tls_resumed;
	health_probe_tls_counts(&tls_full, &tls_resumed);
	single(b, "meridian_health_tls_handshakes_total", "counter",
	       "TLS handshakes made by https checks (resumed ones too; a "
	       "kept connection needs none).",
	       tls_full + tls_resumed);
	single(b, "meridian_health_tls_handshakes_resumed_total", "counter",
	       "TLS handshakes of https checks that resumed the origin's "
	       "previous session.",
	       tls_resumed);

	if (edge_dns_enabled(e))
		render_dns(b, e);
	if (e->tunnels)
		render_tunnels(b, e, s);
	render_cluster(b, e);

	edge_alog_counters ac;
	edge_alog_counters_get(e->alog, &ac);
	single(b, "meridian_access_log_lines_total", "counter",
	       "Access log lines queued for writing.", ac.lines);
	single(b, "meridian_access_log_dropped_total", "counter",
	       "Access log lines dropped because the writer was behind.",
	       ac.dropped);
	single(b, "meridian_access_log_write_errors_total", "counter",
	       "Failed writes of the access log.", ac.write_errors);
	single(b, "meridian_access_log_reopens_total", "counter",
	       "Times the access log file was reopened (SIGUSR1).", ac.reopens);
	cfg_resolve_counts rc;
	cfg_resolve_counts_get(&rc);
	single(b, "meridian_origin_resolve_lookups_total", "counter",
	       "Lookups of origin host names (getaddrinfo), failed ones "
	       "included.",
	       rc.lookups);
	single(b, "meridian_origin_resolve_failures_total", "counter",
	       "Lookups of origin host names that failed (the last address "
	       "is kept).",
	       rc.failures);
	single(b, "meridian_origin_resolve_changes_total", "counter",
	       "Times an origin host name's address changed, each followed "
	       "by a config rebuild.",
	       rc.changes);
	single(b, "meridian_origin_resolve_names", "gauge",
	       "Origin host names being resolved again every "
	       "edge.resolve_interval.",
	       rc.names);
	single(b, "meridian_admin_connections_refused_total", "counter",
	       "Admin listener connections answered 503 because 32 were "
	       "open.",
	       edge_admin_refused_total());
}

char *edge_metrics_render(edge *e, size_t *len)
{
	mbuf b = {0};
	reserve(&b, 65536);
	b.p[0] = '\0';
	const edge_snapshot *s = edge_acquire(e);
	const edge_stats *st = s->stats;
	uint64_t *t = xmalloc(st->ncells * sizeof(*t));
	edge_stats_sum(st, t);

	head(&b, "meridian_build_info", "gauge",
	     "Build information; the value is always 1.");
	put(&b, "meridian_build_info{version=\"");
	val(&b, MERIDIAN_VERSION);
	put(&b, "\"} 1\n");
	double start;
	if (process_start(&start)) {
		head(&b, "process_start_time_seconds", "gauge",
		     "Start time of the process since the Unix epoch in "
		     "seconds.");
		putf(&b, "process_start_time_seconds %.3f\n", start);
	}
	single(&b, "meridian_config_generation", "gauge",
	       "Generation of the running configuration (1 at start, +1 per "
	       "change).",
	       s->generation);
	if (e->ctl) {
		const label_count rl[] = {
		    {"ok", atomic_load(&e->ctl->reloads_ok)},
		    {"failed", atomic_load(&e->ctl->reloads_failed)}};
		by_label(&b, "meridian_config_reloads_total",
			 "Config file reloads (SIGHUP) since start: applied, "
			 "or refused (the running config stayed; the log "
			 "says why).",
			 "result", rl, ARRAY_LEN(rl));
		single(&b, "meridian_config_last_reload_successful", "gauge",
		       "1 when the last SIGHUP reload was applied (or none "
		       "was asked yet), 0 when it was refused: alert on 0.",
		       atomic_load(&e->ctl->last_reload_ok) ? 1 : 0);
	}
	head(&b, "meridian_edge_info", "gauge",
	     "This edge's name (edge.name); the value is always 1.");
	series(&b, "meridian_edge_info", "edge", s->cfg->edge.name, NULL, NULL,
	       NULL, NULL);
	end_u64(&b, true, 1);

	render_requests(&b, st, t);
	render_hist(&b, st, t, "meridian_request_duration_seconds",
		    "Time from the parsed request head to the last response "
		    "byte written, by load balancer.",
		    EDGE_LBC_DUR, EDGE_LBC_DUR_SUM);
	render_hist(&b, st, t, "meridian_upstream_response_duration_seconds",
		    "Time from the parsed request head to the origin's "
		    "response head (connects and retries included), by load "
		    "balancer.",
		    EDGE_LBC_UP, EDGE_LBC_UP_SUM);
	render_lb_counter(&b, st, t, "meridian_retries_total",
			  "Requests sent again to another origin (connect "
			  "failures, resets before a response, 502/503 with "
			  "edge.retries.on_5xx).",
			  EDGE_LBC_RETRIES);
	render_lb_counter(&b, st, t, "meridian_failovers_total",
			  "Retries that moved to another pool "
			  "(adaptive_routing.failover_across_pools).",
			  EDGE_LBC_FAILOVERS);
	render_rules(&b, st, t);
	render_waf(&b, s, st, t);
	render_waf_managed(&b, s);
	render_rate_limits(&b, s, st, t);
	render_origins(&b, s, t);
	render_pools(&b, s);
	render_edge(&b, e, s);
	if (s->cfg->edge.nlisten_https)
		render_tls(&b, s);

	free(t);
	edge_snapshot_unref(s);
	*len = b.len;
	return b.p;
}
