/* px_stats.c - see px_stats.h. */
#include "http/px_stats.h"

#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "core/core_sock.h"
#include "edge/edge_alog.h"
#include "edge/edge_stats.h"
#include "http/px.h"

/* Longest escaped field values in an access log line; with the fixed text
 * they stay well inside EDGE_ALOG_LINE_MAX. */
#define MAX_METHOD 32
#define MAX_HOST   256
#define MAX_PATH   2048
#define MAX_NAME   256

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return t ? t : 1;
}

/* The first half of the access log line: what the request head said. */
static void line_begin(px_client *cl, edge_alog *a, const http1_request *req)
{
	px_req_stats *st = &cl->st;
	if (!st->line)
		st->line = edge_alog_line_get(a, cl->w->id);
	edge_alog_buf b = {st->line, 0, EDGE_ALOG_LINE_MAX - 2};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	EDGE_ALOG_LIT(&b, "{\"time\":");
	edge_alog_put_time(&b, edge_alog_second(a, cl->w->id, ts.tv_sec),
			   ts.tv_nsec);
	EDGE_ALOG_LIT(&b, ",\"method\":");
	edge_alog_put_str(&b, req ? req->method.p : NULL,
			  req ? req->method.len : 0, MAX_METHOD);
	EDGE_ALOG_LIT(&b, ",\"host\":");
	edge_alog_put_str(&b, req ? req->host.p : NULL, req ? req->host.len : 0,
			  MAX_HOST);
	EDGE_ALOG_LIT(&b, ",\"path\":");
	edge_alog_put_str(&b, req ? req->target.p : NULL,
			  req ? req->target.len : 0, MAX_PATH);
	st->len = (uint16_t)b.len;
}

static void put_name(edge_alog_buf *b, const char *name)
{
	edge_alog_put_str(b, name, name ? strlen(name) : 0, MAX_NAME);
}

const char *px_client_ip(const px_client *cl, char *buf, size_t len)
{
	if (!cl->use_client)
		return cl->ip;
	core_sock_ip_text((const struct sockaddr *)&cl->client, buf, len);
	return buf;
}

/* The rest of the line, queued for the writer. */
static void line_end(px_client *cl, edge_alog *a, int status, uint64_t dur_ns)
{
	px_req_stats *st = &cl->st;
	edge_alog_buf b = {st->line, st->len, EDGE_ALOG_LINE_MAX - 2};
	char ip[INET6_ADDRSTRLEN];
	const char *client = px_client_ip(cl, ip, sizeof(ip));
	EDGE_ALOG_LIT(&b, ",\"client\":");
	edge_alog_put_str(&b, client, strlen(client), MAX_NAME);
	EDGE_ALOG_LIT(&b, ",\"status\":");
	edge_alog_put_u64(&b, (uint64_t)status);
	EDGE_ALOG_LIT(&b, ",\"bytes\":");
	edge_alog_put_u64(&b, st->bytes);
	EDGE_ALOG_LIT(&b, ",\"duration\":");
	edge_alog_put_secs(&b, dur_ns);
	EDGE_ALOG_LIT(&b, ",\"upstream_time\":");
	if (st->up_ns)
		edge_alog_put_secs(&b, st->up_ns);
	else
		EDGE_ALOG_LIT(&b, "null");
	EDGE_ALOG_LIT(&b, ",\"lb\":");
	put_name(&b, cl->lb ? cl->lb->name : NULL);
	EDGE_ALOG_LIT(&b, ",\"pool\":");
	put_name(&b, cl->pool ? cl->pool->id : NULL);
	EDGE_ALOG_LIT(&b, ",\"origin\":");
	put_name(&b, cl->origin ? cl->origin->name : NULL);
	EDGE_ALOG_LIT(&b, ",\"retries\":");
	edge_alog_put_u64(&b, st->retries);
	EDGE_ALOG_LIT(&b, ",\"edge\":");
	put_name(&b, cl->snap->cfg->edge.name);
	if (cl->rule) {
		EDGE_ALOG_LIT(&b, ",\"rule\":");
		char idx[24];
		put_name(&b, edge_stats_rule_name(cl->rule, idx, sizeof(idx)));
	}
	if (cl->waf_rule) {
		EDGE_ALOG_LIT(&b, ",\"waf_rule\":");
		put_name(&b, cl->waf_rule->name);
	}
	if (cl->waf_action != PX_WAF_NONE) {
		static const char *const act[] = {"", "pass", "log", "detect",
						  "block"};
		EDGE_ALOG_LIT(&b, ",\"waf_managed\":");
		put_name(&b, act[cl->waf_action]);
		if (cl->waf_matched[0]) {
			EDGE_ALOG_LIT(&b, ",\"waf_managed_rules\":");
			put_name(&b, cl->waf_matched);
		}
	}
	if (cl->rate_limit) {
		EDGE_ALOG_LIT(&b, ",\"rate_limit\":");
		put_name(&b, cl->rate_limit->name);
	}
	if (cl->req_id_len) {
		EDGE_ALOG_LIT(&b, ",\"request_id\":");
		edge_alog_put_str(&b, cl->req_id, cl->req_id_len,
				  PX_REQ_ID_MAX);
	}
	/* cap left two bytes for these. */
	b.p[b.len++] = '}';
	b.p[b.len++] = '\n';
	edge_alog_push(a, cl->w->id, b.p, b.len);
	edge_alog_line_put(a, cl->w->id, st->line);
	st->line = NULL;
}

static void finish(px_client *cl, int status)
{
	px_req_stats *st = &cl->st;
	uint64_t dur = now_ns() - st->t0;
	const edge_snapshot *s = cl->snap;
	if (s && s->stats)
		edge_stats_request(s->stats, cl->w->id, cl->lb, cl->pool,
				   cl->origin, status, dur,
				   st->up_ns ? (int64_t)st->up_ns : -1,
				   st->retries, st->failovers);
	edge_alog *a = cl->w->e->alog;
	if (a && st->line && s)
		line_end(cl, a, status, dur);
	st->t0 = 0;
}

void px_stats_start(px_client *cl, const http1_request *req)
{
	px_req_stats *st = &cl->st;
	st->t0 = now_ns();
	st->up_ns = 0;
	st->bytes = 0;
	st->status = 0;
	st->retries = st->failovers = 0;
	edge_alog *a = cl->w->e->alog;
	if (a)
		line_begin(cl, a, req);
}

void px_stats_head(px_client *cl, int status)
{
	px_req_stats *st = &cl->st;
	if (!st->t0)
		return;
	st->status = (uint16_t)status;
	st->up_ns = now_ns() - st->t0;
	if (!st->up_ns)
		st->up_ns = 1;
}

void px_stats_local(px_client *cl, int status)
{
	/* An answer before a request started (400, 408, 431 on the head)
	 * is a request of its own. */
	if (!cl->st.t0)
		px_stats_start(cl, NULL);
	cl->st.status = (uint16_t)status;
}

void px_stats_retry(px_client *cl)
{
	px_req_stats *st = &cl->st;
	if (st->retries < UINT8_MAX)
		st->retries++;
	st->failovers = cl->nskip; /* each pool skipped was a failover */
}

void px_stats_end(px_client *cl)
{
	if (cl->st.t0)
		finish(cl, cl->st.status ? cl->st.status : 499);
}

void px_stats_close(px_client *cl)
{
	px_stats_end(cl);
	edge_alog *a = cl->w->e->alog;
	if (cl->st.line && a)
		edge_alog_line_put(a, cl->w->id, cl->st.line);
	cl->st.line = NULL;
}

void px_stats_origin_failed(px_client *cl, const cfg_origin *o, bool ejected)
{
	if (cl->snap && cl->snap->stats)
		edge_stats_origin_failure(cl->snap->stats, cl->w->id, o,
					  ejected);
}

void px_stats_idle(edge_worker *w, int delta)
{
	uint32_t v =
	    atomic_load_explicit(&w->idle_upstreams, memory_order_relaxed);
	atomic_store_explicit(&w->idle_upstreams, v + (uint32_t)delta,
			      memory_order_relaxed);
}

void px_stats_refused(px_client *cl, int status)
{
	const edge_snapshot *s = cl->snap;
	if (s && s->stats)
		edge_stats_request(s->stats, cl->w->id, NULL, NULL, NULL,
				   status, 0, -1, 0, 0);
}
