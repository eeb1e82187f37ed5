/* clu_edge.c - see clu_edge.h and docs/ARCHITECTURE.md, "Cluster mode". */
#include "cluster/clu_edge.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/clu_debounce.h"
#include "cluster/clu_etcd.h"
#include "cluster/clu_key.h"
#include "cluster/clu_mirror.h"
#include "cluster/clu_msg.h"
#include "cluster/clu_vote.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_ctl.h"
#include "edge/edge_health.h"
#include "health/health_fsm.h"

#define REQ_TIMEOUT_MS 2000L /* one etcd request */
#define PUBLISH_MS     250   /* how often verdicts are compared */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define DEBOUNCE_QUIET 10
#define DEBOUNCE_MAX   100
#define TXN_MAX_OPS    100  /* etcd's default limit is 128 */
#define STOP_REVOKE_MS 1000 /* the lease's revoke at a stop */

struct clu_edge {
	char **eps;
	size_t neps;
	char *prefix, *name, *region;
	uint32_t ttl_ms;
	char started[STORE_TIME_SZ];
	char *k_all, *k_all_end;   /* "<prefix>/" and its range end */
	char *k_objs, *k_objs_end; /* "<prefix>/objects/" */
	char *k_node;
	char *k_seq; /* "<prefix>/commit": every object commit puts it */
	clu_etcd admin, thr;
	clu_mirror objs; /* under the ctl lock */
	pthread_mutex_t peers_lock;
	clu_mirror peers; /* nodes/ and health/ */
	atomic_bool connected;
	_Atomic int64_t lease;
	_Atomic uint64_t changes, errors[CLU_NOPS];
	_Atomic uint32_t rebuild_req; /* the admin thread's resyncs */
	uint64_t commits;	      /* under the ctl lock */
	atomic_bool stop;
	struct edge_ctl *ctl;
	CURLM *multi;
	bool running;
	pthread_t th;
	/* The cluster thread's own. */
	bool synced;	    /* objs and peers fresh from open: no range */
	int64_t watch_from; /* the next revision to watch */
	clu_mirror pub;	    /* what this node published: key → verdict */
	int64_t pub_seq;
	clu_debounce deb;
	CURL *wh;
	struct curl_slist *whdrs;
	char *wbody;
	char *wbuf;
	size_t wlen, wcap;
	char werr[CURL_ERROR_SIZE];
	bool was_down_logged;
};

static const char *const op_names[] = {
    [CLU_OP_RANGE] = "range",	  [CLU_OP_TXN] = "txn",
    [CLU_OP_WATCH] = "watch",	  [CLU_OP_LEASE] = "lease",
    [CLU_OP_PUBLISH] = "publish",
};

const char *clu_op_name(clu_op_kind k)
{
	return (unsigned)k < CLU_NOPS ? op_names[k] : "unknown";
}

static void count_err(clu_edge *cl, clu_op_kind k)
{
	atomic_fetch_add(&cl->errors[k], 1);
}

/* ---- objects: mirror entries to the store ---------------------------- */

typedef struct pend {
	store_kind kind;
	char id[CLU_SEG_MAX];
	clu_obj o; /* body NULL: deleted */
	int64_t create_rev;
} pend;

typedef struct pends {
	clu_edge *cl;
	pend *v;
	size_t n, cap;
} pends;

static void pends_free(pends *p)
{
	for (size_t i = 0; i < p->n; i++)
		clu_obj_clear(&p->v[i].o);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* clu_mirror_fn: an object entry that changed, as a store change. */
static void collect(void *arg, const clu_entry *e)
{
	pends *p = arg;
	clu_key_parts kp;
	if (clu_key_parse(p->cl->prefix, e->key, strlen(e->key), &kp) !=
		CLU_KEY_OBJECT ||
	    !store_id_valid(kp.a)) {
		log_warn("cluster: ignoring key %s (not an object key)",
			 e->key);
		return;
	}
	pend d = {.kind = kp.kind, .create_rev = e->create_rev};
	snprintf(d.id, sizeof(d.id), "%s", kp.a);
	if (e->value && clu_obj_decode(e->value, e->value_len, &d.o) < 0) {
		log_warn("cluster: ignoring %s: not a Meridian object value",
			 e->key);
		return;
	}
	if (d.o.body && (kp.kind == STORE_LB) != (d.o.zone != NULL)) {
		log_warn("cluster: ignoring %s: zone missing or misplaced",
			 e->key);
		clu_obj_clear(&d.o);
		return;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = d;
}

static int by_create_rev(const void *a, const void *b)
{
	const pend *x = a, *y = b;
	return x->create_rev < y->create_rev   ? -1
	       : x->create_rev > y->create_rev ? 1
					       : 0;
}

/* Write p's changes to the store (all: p is the whole mirror). */
static int pends_sync(pends *p, store *st, bool all, char *err, size_t errlen)
{
	if (all && p->n > 1)
		qsort(p->v, p->n, sizeof(*p->v), by_create_rev);
	store_sync_op *ops = xcalloc(p->n ? p->n : 1, sizeof(*ops));
	for (size_t i = 0; i < p->n; i++)
		ops[i] = (store_sync_op){.kind = p->v[i].kind,
					 .id = p->v[i].id,
					 .zone = p->v[i].o.zone,
					 .body = p->v[i].o.body,
					 .created_on = p->v[i].o.created_on,
					 .modified_on = p->v[i].o.modified_on};
	int rc = store_sync(st, ops, p->n, all, err, errlen);
	free(ops);
	return rc;
}

/* The store as the whole object mirror. */
static int sync_all(clu_edge *cl, store *st, char *err, size_t errlen)
{
	pends p = {.cl = cl};
	for (size_t i = 0; i < cl->objs.n; i++)
		if (cl->objs.e[i].value)
			collect(&p, &cl->objs.e[i]);
	int rc = pends_sync(&p, st, true, err, errlen);
	pends_free(&p);
	return rc;
}

/* ---- requests ---------------------------------------------------------- */

static int post(clu_edge *cl, clu_etcd *h, clu_op_kind op, const char *path,
		char *body, char **resp, size_t *len, char *err, size_t errlen)
{
	int rc = clu_etcd_post(h, path, body, resp, len, err, errlen);
	free(body);
	if (rc == -EPROTO) {
		/* etcd's own error: its message is in the answer. */
		char m[256] = "";
		int64_t a, b;
		if (clu_msg_lease_parse(*resp, *len, &a, &b, m, sizeof(m)) <
			0 &&
		    m[0])
			snprintf(err, errlen, "%s", m);
		free(*resp);
		*resp = NULL;
	}
	if (rc < 0)
		count_err(cl, op);
	return rc;
}

/* Range [key, end): 0 with kvs, or -errno. */
static int range(clu_edge *cl, clu_etcd *h, const char *key, const char *end,
		 clu_kv **kvs, size_t *n, int64_t *rev, char *err,
		 size_t errlen)
{
	char *resp;
	size_t len;
	int rc = post(cl, h, CLU_OP_RANGE, "/v3/kv/range",
		      clu_msg_range(key, end), &resp, &len, err, errlen);
	if (rc < 0)
		return rc;
	rc = clu_msg_range_parse(resp, len, kvs, n, rev, err, errlen);
	free(resp);
	if (rc < 0)
		count_err(cl, CLU_OP_RANGE);
	return rc;
}

static int txn(clu_edge *cl, clu_etcd *h, clu_op_kind op, const clu_cmp *cmp,
	       size_t ncmp, const clu_op *ops, size_t nops,
	       const char *fail_key, bool *ok, int64_t *rev, clu_kv **kvs,
	       size_t *nkv, char *err, size_t errlen)
{
	char *resp;
	size_t len;
	int rc = post(cl, h, op, "/v3/kv/txn",
		      clu_msg_txn(cmp, ncmp, ops, nops, fail_key), &resp, &len,
		      err, errlen);
	if (rc < 0)
		return rc;
	rc = clu_msg_txn_parse(resp, len, ok, rev, kvs, nkv, err, errlen);
	free(resp);
	if (rc < 0)
		count_err(cl, op);
	return rc;
}

static int lease_call(clu_edge *cl, clu_etcd *h, const char *path, char *body,
		      int64_t *id, int64_t *ttl, char *err, size_t errlen)
{
	char *resp;
	size_t len;
	int rc =
	    post(cl, h, CLU_OP_LEASE, path, body, &resp, &len, err, errlen);
	if (rc < 0)
		return rc;
	rc = clu_msg_lease_parse(resp, len, id, ttl, err, errlen);
	free(resp);
	if (rc < 0)
		count_err(cl, CLU_OP_LEASE);
	return rc;
}

/* A lease (granted when there is none) and the node's key with it: -EEXIST
 * when another live node has the name. */
static int claim(clu_edge *cl, clu_etcd *h, char *err, size_t errlen)
{
	int64_t id = atomic_load(&cl->lease), ttl = 0;
	if (!id) {
		int rc = lease_call(cl, h, "/v3/lease/grant",
				    clu_msg_lease_grant(cl->ttl_ms / 1000), &id,
				    &ttl, err, errlen);
		if (rc < 0)
			return rc;
		if (!id || ttl <= 0) {
			snprintf(err, errlen, "etcd granted no lease");
			count_err(cl, CLU_OP_LEASE);
			return -EIO;
		}
		atomic_store(&cl->lease, id);
	}
	char *v = clu_node_encode(cl->name, cl->region, MERIDIAN_VERSION,
				  cl->started);
	clu_cmp cmp = {.key = cl->k_node, .create = true, .rev = 0};
	clu_op put = {
	    .key = cl->k_node, .value = v, .value_len = strlen(v), .lease = id};
	bool ok = false;
	int64_t rev;
	clu_kv *kvs = NULL;
	size_t n = 0;
	int rc = txn(cl, h, CLU_OP_TXN, &cmp, 1, &put, 1, cl->k_node, &ok, &rev,
		     &kvs, &n, err, errlen);
	if (rc == 0 && !ok) {
		if (n && kvs[0].lease == id) {
			/* Ours already (a reconnect within the lease). */
			rc = 0;
		} else {
			json_t *j = n ? json_loadb(kvs[0].value,
						   kvs[0].value_len, 0, NULL)
				      : NULL;
			const char *since =
			    json_string_value(json_object_get(j, "started"));
			snprintf(
			    err, errlen,
			    "edge.name %s is in use by a live node of the "
			    "cluster (key %s, started %s): each edge needs "
			    "its own edge.name (a node that died goes when "
			    "its lease ends, edge.cluster.lease_ttl)",
			    cl->name, cl->k_node, since ? since : "?");
			json_decref(j);
			rc = -EEXIST;
		}
	}
	clu_kvs_free(kvs, n);
	free(v);
	return rc;
}

static void lease_revoke(clu_edge *cl, clu_etcd *h)
{
	int64_t id = atomic_exchange(&cl->lease, 0), a, b;
	char err[256];
	if (id)
		lease_call(cl, h, "/v3/lease/revoke", clu_msg_lease_id(id), &a,
			   &b, err, sizeof(err));
}

/* kvs of the whole prefix into the mirrors (objects under the ctl lock,
 * held by the caller) and the store. Returns the object changes. */
static int load(clu_edge *cl, store *st, clu_kv *kvs, size_t n, int64_t rev,
		char *err, size_t errlen)
{
	size_t lo = strlen(cl->k_objs), no = 0;
	clu_kv *ov = xcalloc(n ? n : 1, sizeof(*ov));
	clu_kv *pv = xcalloc(n ? n : 1, sizeof(*pv));
	size_t np = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(kvs[i].key, cl->k_objs, lo))
			ov[no++] = kvs[i];
		else
			pv[np++] = kvs[i];
	}
	int changed = clu_mirror_reset(&cl->objs, ov, no, rev, NULL, NULL);
	pthread_mutex_lock(&cl->peers_lock);
	clu_mirror_reset(&cl->peers, pv, np, rev, NULL, NULL);
	pthread_mutex_unlock(&cl->peers_lock);
	free(ov);
	free(pv);
	int rc = sync_all(cl, st, err, errlen);
	return rc < 0 ? rc : changed;
}

/* ---- start-up ---------------------------------------------------------- */

int clu_edge_open(const cfg_snapshot *file_cfg, store *st, clu_edge **out,
		  char *err, size_t errlen)
{
	const cfg_edge *e = &file_cfg->edge;
	const cfg_cluster *cc = &e->cluster;
	*out = NULL;
	clu_edge *cl = xcalloc(1, sizeof(*cl));
	cl->neps = cc->netcd;
	cl->eps = xcalloc(cc->netcd, sizeof(*cl->eps));
	for (size_t i = 0; i < cc->netcd; i++)
		cl->eps[i] = xstrdup(cc->etcd[i]);
	cl->prefix = xstrdup(cc->prefix);
	cl->name = xstrdup(e->name);
	cl->region = e->region ? xstrdup(e->region) : NULL;
	cl->ttl_ms = cc->lease_ttl_ms;
	store_time_format(core_wall_ms() * 1000, cl->started);
	cl->k_all = xmalloc(strlen(cl->prefix) + 2);
	sprintf(cl->k_all, "%s/", cl->prefix);
	cl->k_all_end = clu_key_range_end(cl->k_all, strlen(cl->k_all));
	cl->k_objs = clu_key_dir(cl->prefix, "objects");
	cl->k_objs_end = clu_key_range_end(cl->k_objs, strlen(cl->k_objs));
	cl->k_node = clu_key_node(cl->prefix, cl->name);
	cl->k_seq = xmalloc(strlen(cl->prefix) + 8);
	sprintf(cl->k_seq, "%s/commit", cl->prefix);
	clu_etcd_open(&cl->admin, (const char *const *)cl->eps, cl->neps,
		      REQ_TIMEOUT_MS);
	clu_etcd_open(&cl->thr, (const char *const *)cl->eps, cl->neps,
		      REQ_TIMEOUT_MS);
	/* A stop ends the requests in flight (a frozen etcd would hold it
	 * for REQ_TIMEOUT_MS per endpoint and request). */
	cl->admin.abort = &cl->stop;
	cl->thr.abort = &cl->stop;
	clu_mirror_init(&cl->objs);
	clu_mirror_init(&cl->peers);
	clu_mirror_init(&cl->pub);
	pthread_mutex_init(&cl->peers_lock, NULL);
	clu_debounce_init(&cl->deb, DEBOUNCE_QUIET, DEBOUNCE_MAX);
	cl->multi = curl_multi_init();
	if (!cl->multi)
		abort();

	char why[512] = "";
	int rc = claim(cl, &cl->admin, why, sizeof(why));
	if (rc == -EEXIST) {
		snprintf(err, errlen, "edge.cluster: %s", why);
		lease_revoke(cl, &cl->admin);
		clu_edge_close(cl);
		return -EEXIST;
	}
	clu_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev = 0;
	if (rc == 0)
		rc = range(cl, &cl->admin, cl->k_all, cl->k_all_end, &kvs, &n,
			   &rev, why, sizeof(why));
	if (rc == 0) {
		rc = load(cl, st, kvs, n, rev, why, sizeof(why));
		clu_kvs_free(kvs, n);
		if (rc < 0) {
			snprintf(err, errlen, "edge.cluster: %s", why);
			lease_revoke(cl, &cl->admin);
			clu_edge_close(cl);
			return rc;
		}
		cl->synced = true;
		cl->watch_from = rev + 1;
		/* Writes may start at once: their compares need no watch
		 * (which the thread sets up as soon as the edge runs). */
		atomic_store(&cl->connected, true);
		log_info("cluster: node %s joined through %s (%zu objects, "
			 "revision %" PRId64 ")",
			 cl->name, clu_etcd_endpoint(&cl->admin), cl->objs.live,
			 rev);
	} else {
		log_warn("cluster: etcd unreachable (%s): starting from the "
			 "objects last known (edge.store); API writes are "
			 "refused until it is back, retrying in the "
			 "background",
			 why);
		cl->was_down_logged = true;
	}
	*out = cl;
	return 0;
}

/* ---- the cluster thread ------------------------------------------------ */

static size_t on_watch_data(char *p, size_t size, size_t n, void *arg)
{
	clu_edge *cl = arg;
	size_t add = size * n;
	if (cl->wlen + add + 1 > cl->wcap) {
		size_t cap = cl->wcap ? cl->wcap : 16384;
		while (cap < cl->wlen + add + 1)
			cap *= 2;
		cl->wbuf = xrealloc(cl->wbuf, cap);
		cl->wcap = cap;
	}
	memcpy(cl->wbuf + cl->wlen, p, add);
	cl->wlen += add;
	return add;
}

static void watch_stop(clu_edge *cl)
{
	if (!cl->wh)
		return;
	curl_multi_remove_handle(cl->multi, cl->wh);
	curl_easy_cleanup(cl->wh);
	curl_slist_free_all(cl->whdrs);
	free(cl->wbody);
	cl->wh = NULL;
	cl->whdrs = NULL;
	cl->wbody = NULL;
	cl->wlen = 0;
}

static void watch_start(clu_edge *cl)
{
	char url[1024];
	snprintf(url, sizeof(url), "%s/v3/watch", clu_etcd_endpoint(&cl->thr));
	cl->wbody = clu_msg_watch(cl->k_all, cl->k_all_end, cl->watch_from);
	cl->whdrs = curl_slist_append(NULL, "Content-Type: application/json");
	cl->wh = curl_easy_init();
	if (!cl->wh)
		abort();
	cl->werr[0] = '\0';
	CURL *h = cl->wh;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, cl->wbody);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(cl->wbody));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, cl->whdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_watch_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, cl);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cl->werr);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 2L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_multi_add_handle(cl->multi, h);
}

static void go_down(clu_edge *cl, const char *why)
{
	watch_stop(cl);
	cl->synced = false;
	if (atomic_exchange(&cl->connected, false) || !cl->was_down_logged)
		log_warn("cluster: lost etcd (%s): serving the running "
			 "config; API writes are refused until it is back",
			 why);
	cl->was_down_logged = true;
}

/* Lease (kept or granted again), node key, range, watch. */
static int connect_etcd(clu_edge *cl)
{
	char err[512] = "";
	int64_t id = atomic_load(&cl->lease), ttl = 0, rid;
	int krc =
	    id ? lease_call(cl, &cl->thr, "/v3/lease/keepalive",
			    clu_msg_lease_id(id), &rid, &ttl, err, sizeof(err))
	       : 0;
	if (krc == -EIO)
		goto fail;
	/* etcd answered, but not with the lease: it no longer has it. */
	if (id && (krc < 0 || ttl <= 0)) {
		/* It expired meanwhile: its keys went with it. */
		atomic_store(&cl->lease, 0);
		clu_mirror_free(&cl->pub);
		clu_mirror_init(&cl->pub);
	}
	if (!atomic_load(&cl->lease)) {
		clu_mirror_free(&cl->pub);
		clu_mirror_init(&cl->pub);
	}
	int rc = claim(cl, &cl->thr, err, sizeof(err));
	if (rc == -EEXIST) {
		log_error("cluster: %s", err);
		goto fail;
	}
	if (rc < 0)
		goto fail;
	if (!cl->synced) {
		clu_kv *kvs = NULL;
		size_t n = 0;
		int64_t rev = 0;
		if (range(cl, &cl->thr, cl->k_all, cl->k_all_end, &kvs, &n,
			  &rev, err, sizeof(err)) < 0)
			goto fail;
		pthread_mutex_lock(&cl->ctl->lock);
		int changed =
		    load(cl, cl->ctl->st, kvs, n, rev, err, sizeof(err));
		pthread_mutex_unlock(&cl->ctl->lock);
		clu_kvs_free(kvs, n);
		if (changed < 0) {
			log_error("cluster: %s", err);
			goto fail;
		}
		if (changed > 0) {
			atomic_fetch_add(&cl->changes, (uint64_t)changed);
			clu_debounce_note(&cl->deb, core_now_ms(),
					  (uint32_t)changed);
		}
		cl->watch_from = rev + 1;
		cl->synced = true;
	}
	watch_start(cl);
	return 0;
fail:
	if (!cl->was_down_logged)
		log_warn("cluster: etcd unreachable (%s); retrying", err);
	cl->was_down_logged = true;
	return -1;
}

/* One watch message. false: the watch must be set up again. */
static bool on_message(clu_edge *cl, const char *s, size_t n)
{
	clu_watch_msg m;
	char err[512] = "";
	if (clu_msg_watch_parse(s, n, &m, err, sizeof(err)) < 0) {
		count_err(cl, CLU_OP_WATCH);
		go_down(cl, err);
		return false;
	}
	if (m.canceled || m.compact_rev > 0) {
		log_warn("cluster: the watch was %s; reading everything again",
			 m.compact_rev > 0 ? "compacted" : "cancelled");
		count_err(cl, CLU_OP_WATCH);
		clu_watch_msg_clear(&m);
		go_down(cl, "watch cancelled");
		return false;
	}
	if (m.created) {
		atomic_store(&cl->connected, true);
		log_info("cluster: connected to etcd %s (watching from "
			 "revision %" PRId64 ")",
			 clu_etcd_endpoint(&cl->thr), cl->watch_from);
		cl->was_down_logged = false;
	}
	size_t lo = strlen(cl->k_objs);
	pends p = {.cl = cl};
	int changed = 0;
	bool objs = false;
	for (size_t i = 0; i < m.nev; i++)
		if (!strncmp(m.ev[i].kv.key, cl->k_objs, lo))
			objs = true;
	if (objs)
		pthread_mutex_lock(&cl->ctl->lock);
	pthread_mutex_lock(&cl->peers_lock);
	for (size_t i = 0; i < m.nev; i++) {
		const clu_event *ev = &m.ev[i];
		if (ev->kv.mod_rev >= cl->watch_from)
			cl->watch_from = ev->kv.mod_rev + 1;
		if (!strncmp(ev->kv.key, cl->k_objs, lo))
			changed += clu_mirror_event(&cl->objs, ev, collect, &p);
		else
			clu_mirror_event(&cl->peers, ev, NULL, NULL);
	}
	pthread_mutex_unlock(&cl->peers_lock);
	if (objs) {
		if (p.n &&
		    pends_sync(&p, cl->ctl->st, false, err, sizeof(err)) < 0)
			log_error("cluster: local store: %s", err);
		pthread_mutex_unlock(&cl->ctl->lock);
	}
	pends_free(&p);
	if (changed > 0) {
		atomic_fetch_add(&cl->changes, (uint64_t)changed);
		clu_debounce_note(&cl->deb, core_now_ms(), (uint32_t)changed);
	}
	clu_watch_msg_clear(&m);
	return true;
}

static void drain_watch(clu_edge *cl)
{
	size_t off = 0, skip;
	while (cl->wh && off < cl->wlen) {
		size_t n = clu_msg_split(cl->wbuf + off, cl->wlen - off, &skip);
		if (!n)
			break;
		if (!on_message(cl, cl->wbuf + off + skip, n))
			return; /* the buffer went with the watch */
		off += skip + n;
	}
	if (off) {
		memmove(cl->wbuf, cl->wbuf + off, cl->wlen - off);
		cl->wlen -= off;
	}
}

/* This node's verdicts, compared with what it published: the changes in
 * one transaction (or a few: etcd caps the ops of one) with the lease. */
static int publish(clu_edge *cl)
{
	const edge_snapshot *s = edge_acquire(cl->ctl->e);
	const cfg_snapshot *cfg = s->cfg;
	int64_t lease = atomic_load(&cl->lease);
	clu_mirror cur;
	clu_mirror_init(&cur);
	size_t cap = 16, nops = 0;
	clu_op *ops = xcalloc(cap, sizeof(*ops));
	char **mem = xcalloc(cap * 2, sizeof(*mem));
	size_t nmem = 0;
	uint64_t now = core_wall_ms();
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		for (size_t j = 0; j < p->norigins; j++) {
			const cfg_origin *o = &p->origins[j];
			lb_origin_state *os = &s->ostates[o->index];
			uint8_t h = atomic_load(&os->active);
			uint32_t rtt = atomic_load(&os->rtt_us);
			char reason[sizeof(os->reason)];
			pthread_mutex_lock(&os->lock);
			memcpy(reason, os->reason, sizeof(reason));
			pthread_mutex_unlock(&os->lock);
			clu_report r = {
			    .healthy = !p->monitor || h == LB_HEALTH_UNKNOWN
					   ? -1
					   : h == LB_HEALTH_HEALTHY,
			    .state = health_state_name(h),
			    .rtt_ms = rtt ? rtt / 1000.0 : -1,
			    .reason = reason[0] ? reason : "No failures",
			    .time_ms = now};
			char *key = clu_key_health(cl->prefix, cl->name, p->id,
						   o->name);
			char sig[sizeof(reason) + 64];
			snprintf(sig, sizeof(sig), "%d|%s|%s", r.healthy,
				 r.state, r.reason);
			clu_kv kv = {.key = key,
				     .value = sig,
				     .value_len = strlen(sig),
				     .mod_rev = 1};
			clu_mirror_put(&cur, &kv, NULL, NULL);
			const clu_entry *was = clu_mirror_get(&cl->pub, key);
			if (was && !strcmp(was->value, sig)) {
				free(key);
				continue;
			}
			if (nops == cap) {
				cap *= 2;
				ops = xrealloc(ops, cap * sizeof(*ops));
				mem = xrealloc(mem, cap * 2 * sizeof(*mem));
			}
			char *v = clu_report_encode(&r);
			ops[nops++] = (clu_op){.key = key,
					       .value = v,
					       .value_len = strlen(v),
					       .lease = lease};
			mem[nmem++] = key;
			mem[nmem++] = v;
		}
	}
	edge_snapshot_unref(s);
	for (size_t i = 0; i < cl->pub.n; i++) {
		const clu_entry *e = &cl->pub.e[i];
		if (!e->value || clu_mirror_get(&cur, e->key))
			continue;
		if (nops == cap) {
			cap *= 2;
			ops = xrealloc(ops, cap * sizeof(*ops));
			mem = xrealloc(mem, cap * 2 * sizeof(*mem));
		}
		ops[nops++] = (clu_op){.del = true, .key = e->key};
	}
	int rc = 0;
	char err[512] = "";
	for (size_t off = 0; off < nops && rc == 0; off += TXN_MAX_OPS) {
		size_t k = MIN(nops - off, (size_t)TXN_MAX_OPS);
		bool ok;
		int64_t rev;
		rc = txn(cl, &cl->thr, CLU_OP_PUBLISH, NULL, 0, ops + off, k,
			 NULL, &ok, &rev, NULL, NULL, err, sizeof(err));
	}
	if (rc == 0) {
		/* What now stands published. */
		for (size_t i = 0; i < nops; i++) {
			if (ops[i].del) {
				clu_mirror_del(&cl->pub, ops[i].key,
					       ++cl->pub_seq, NULL, NULL);
				continue;
			}
			const clu_entry *c = clu_mirror_get(&cur, ops[i].key);
			clu_kv kv = {.key = c->key,
				     .value = c->value,
				     .value_len = c->value_len,
				     .mod_rev = ++cl->pub_seq};
			clu_mirror_put(&cl->pub, &kv, NULL, NULL);
		}
	} else {
		go_down(cl, err);
	}
	for (size_t i = 0; i < nmem; i++)
		free(mem[i]);
	free(mem);
	free(ops);
	clu_mirror_free(&cur);
	return rc;
}

static int keepalive(clu_edge *cl)
{
	char err[512] = "";
	int64_t id = atomic_load(&cl->lease), rid, ttl = 0;
	int rc = lease_call(cl, &cl->thr, "/v3/lease/keepalive",
			    clu_msg_lease_id(id), &rid, &ttl, err, sizeof(err));
	if (rc == -EIO) {
		go_down(cl, err);
		return -1;
	}
	if (rc < 0 || ttl <= 0) {
		log_warn("cluster: this node's lease expired; joining again");
		count_err(cl, CLU_OP_LEASE);
		atomic_store(&cl->lease, 0);
		go_down(cl, "lease expired");
		return -1;
	}
	return 0;
}

/* ---- the check regions' majority (SPEC 4.2) ---- */

typedef struct vote_row {
	uint32_t origin; /* cfg_origin.index */
	clu_vote_report r;
} vote_row;

static int vote_row_cmp(const void *a, const void *b)
{
	uint32_t x = ((const vote_row *)a)->origin,
		 y = ((const vote_row *)b)->origin;
	return x < y ? -1 : x > y;
}

static const cfg_origin *origin_named(const cfg_pool *p, const char *name)
{
	for (size_t i = 0; p && i < p->norigins; i++)
		if (!strcmp(p->origins[i].name, name))
			return &p->origins[i];
	return NULL;
}

/* Into the running snapshot's lb_origin_state.cluster: for each origin of
 * a pool with check_regions, the majority of those regions (clu_vote.h)
 * over the live nodes' reports and this node's own verdicts; nothing when
 * etcd is out of reach (up false: the reports may be stale). When one
 * moved, the health thread counts pool health again. */
static void votes(clu_edge *cl, bool up)
{
	edge *e = cl->ctl->e;
	const edge_snapshot *s = edge_acquire(e);
	const cfg_snapshot *cfg = s->cfg;
	size_t cap = 0, n = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].ncheck_regions)
			cap += cfg->pools[i].norigins;
	if (!cap) {
		edge_snapshot_unref(s);
		return;
	}
	vote_row *rows = NULL;
	if (up) {
		/* Live nodes and their regions, then their reports. */
		size_t nn = 0, ncap = 8;
		struct node_region {
			char name[CLU_SEG_MAX];
			int region;
		} *nodes = xcalloc(ncap, sizeof(*nodes));
		pthread_mutex_lock(&cl->peers_lock);
		for (size_t i = 0; i < cl->peers.n; i++) {
			const clu_entry *en = &cl->peers.e[i];
			clu_key_parts kp;
			if (!en->value ||
			    clu_key_parse(cl->prefix, en->key, strlen(en->key),
					  &kp) != CLU_KEY_NODE ||
			    !strcmp(kp.a, cl->name))
				continue;
			json_t *j =
			    json_loadb(en->value, en->value_len, 0, NULL);
			const char *reg =
			    json_string_value(json_object_get(j, "region"));
			if (nn == ncap) {
				ncap *= 2;
				nodes = xrealloc(nodes, ncap * sizeof(*nodes));
			}
			snprintf(nodes[nn].name, sizeof(nodes[nn].name), "%s",
				 kp.a);
			nodes[nn++].region = clu_vote_region_index(reg);
			json_decref(j);
		}
		size_t rcap = cap * (nn + 1);
		rows = xcalloc(rcap, sizeof(*rows));
		for (size_t i = 0; i < cl->peers.n; i++) {
			const clu_entry *en = &cl->peers.e[i];
			clu_key_parts kp;
			if (!en->value ||
			    clu_key_parse(cl->prefix, en->key, strlen(en->key),
					  &kp) != CLU_KEY_HEALTH ||
			    !strcmp(kp.a, cl->name))
				continue;
			const cfg_pool *p = cfg_pool_by_id(cfg, kp.pool, 0);
			const cfg_origin *o = origin_named(p, kp.origin);
			if (!o || !p->ncheck_regions || n == rcap)
				continue;
			int region = -1;
			for (size_t k = 0; k < nn; k++)
				if (!strcmp(nodes[k].name, kp.a))
					region = nodes[k].region;
			if (region < 0)
				continue; /* its node key is gone: not live */
			json_t *j =
			    json_loadb(en->value, en->value_len, 0, NULL);
			json_t *h = json_object_get(j, "healthy");
			rows[n++] = (vote_row){o->index,
					       {region, json_is_boolean(h)
							    ? json_is_true(h)
							    : -1}};
			json_decref(j);
		}
		pthread_mutex_unlock(&cl->peers_lock);
		free(nodes);
		/* This node's own verdicts. */
		int mine = clu_vote_region_index(cl->region);
		for (size_t i = 0; i < cfg->npools && mine >= 0; i++) {
			const cfg_pool *p = &cfg->pools[i];
			if (!p->ncheck_regions)
				continue;
			for (size_t j = 0; j < p->norigins && n < rcap; j++) {
				uint8_t h = atomic_load(
				    &s->ostates[p->origins[j].index].active);
				rows[n++] = (vote_row){
				    p->origins[j].index,
				    {mine, !p->monitor || h == LB_HEALTH_UNKNOWN
					       ? -1
					       : h == LB_HEALTH_HEALTHY}};
			}
		}
		qsort(rows, n, sizeof(*rows), vote_row_cmp);
	}
	bool moved = false;
	/* Origins come in index order below, as rows are sorted: one cursor
	 * walks the rows once. */
	clu_vote_report *rep = xcalloc(n ? n : 1, sizeof(*rep));
	size_t at = 0;
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		if (!p->ncheck_regions)
			continue;
		uint32_t check =
		    clu_vote_regions(p->check_regions, p->ncheck_regions);
		for (size_t j = 0; j < p->norigins; j++) {
			const cfg_origin *o = &p->origins[j];
			lb_health v = LB_HEALTH_UNKNOWN;
			if (up) {
				while (at < n && rows[at].origin < o->index)
					at++;
				size_t k = 0;
				for (; at < n && rows[at].origin == o->index;
				     at++)
					rep[k++] = rows[at].r;
				v = clu_vote(rep, k, check);
			}
			lb_origin_state *os = &s->ostates[o->index];
			uint8_t was = atomic_exchange(&os->cluster, (uint8_t)v);
			if (was == v)
				continue;
			moved = true;
			if (v != LB_HEALTH_UNKNOWN)
				log_info("cluster: origin %s of pool %s: the "
					 "check regions say %s",
					 o->name, p->id, health_state_name(v));
			else
				log_info("cluster: origin %s of pool %s: no "
					 "majority of the check regions; this "
					 "edge's checks decide",
					 o->name, p->id);
		}
	}
	free(rows);
	free(rep);
	if (moved) {
		pthread_mutex_lock(&e->swap_lock);
		edge_health_recount(e->health);
		pthread_mutex_unlock(&e->swap_lock);
	}
	edge_snapshot_unref(s);
}

static void *thread_main(void *arg)
{
	clu_edge *cl = arg;
	core_log_set_thread_name("cluster");
	bool up = false;
	uint64_t backoff = BACKOFF_MIN_MS, next_try = 0, next_ka = 0,
		 next_pub = 0;
	while (!atomic_load(&cl->stop)) {
		uint64_t now = core_now_ms();
		if (!up && now >= next_try) {
			if (connect_etcd(cl) == 0) {
				up = true;
				backoff = BACKOFF_MIN_MS;
				next_ka = now + cl->ttl_ms / 3;
				next_pub = now;
			} else {
				next_try = now + backoff;
				backoff = MIN(backoff * 2, BACKOFF_MAX_MS);
			}
		}
		uint32_t req = atomic_exchange(&cl->rebuild_req, 0);
		clu_debounce_note(&cl->deb, now, req);
		if (up && now >= next_ka) {
			next_ka = now + cl->ttl_ms / 3;
			if (keepalive(cl) < 0)
				up = false;
		}
		if (up && now >= next_pub) {
			next_pub = now + PUBLISH_MS;
			if (publish(cl) < 0)
				up = false;
			votes(cl, up);
		} else if (!up && now >= next_pub) {
			next_pub = now + PUBLISH_MS;
			votes(cl, false); /* reports may be stale: own checks */
		}
		uint32_t n = clu_debounce_take(&cl->deb, now);
		if (n) {
			char why[96];
			snprintf(why, sizeof(why),
				 "cluster: %u change%s from etcd", n,
				 n == 1 ? "" : "s");
			edge_ctl_rebuild(cl->ctl, why);
		}
		now = core_now_ms();
		uint64_t due = up ? MIN(next_ka, next_pub) : next_try;
		int64_t wait = due > now ? (int64_t)(due - now) : 0;
		int64_t dw = clu_debounce_wait(&cl->deb, now);
		if (dw >= 0 && dw < wait)
			wait = dw;
		if (wait > 1000)
			wait = 1000;
		curl_multi_poll(cl->multi, NULL, 0, (int)wait, NULL);
		int running = 0;
		curl_multi_perform(cl->multi, &running);
		drain_watch(cl);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(cl->multi, &left))) {
			if (msg->msg != CURLMSG_DONE ||
			    msg->easy_handle != cl->wh)
				continue;
			char why[CURL_ERROR_SIZE + 64];
			snprintf(why, sizeof(why), "watch ended: %s",
				 cl->werr[0]
				     ? cl->werr
				     : curl_easy_strerror(msg->data.result));
			count_err(cl, CLU_OP_WATCH);
			clu_etcd_next(&cl->thr);
			go_down(cl, why);
			break;
		}
		if (up && !cl->wh) {
			up = false;
			next_try = core_now_ms() + backoff;
			backoff = MIN(backoff * 2, BACKOFF_MAX_MS);
		}
	}
	watch_stop(cl);
	atomic_store(&cl->connected, false);
	return NULL;
}

int clu_edge_start(clu_edge *cl, struct edge_ctl *ctl)
{
	cl->ctl = ctl;
	int err = pthread_create(&cl->th, NULL, thread_main, cl);
	if (err)
		return -err;
	cl->running = true;
	return 0;
}

void clu_edge_stop(clu_edge *cl)
{
	if (!cl)
		return;
	if (cl->running) {
		atomic_store(&cl->stop, true);
		curl_multi_wakeup(cl->multi);
		pthread_join(cl->th, NULL);
		cl->running = false;
	}
	/* The node's key and reports go now, not a lease_ttl later: one
	 * short try, the stop does not wait for an etcd that is not
	 * answering. */
	cl->thr.abort = NULL;
	cl->thr.deadline_ms = core_now_ms() + STOP_REVOKE_MS;
	lease_revoke(cl, &cl->thr);
	cl->thr.deadline_ms = 0;
}

void clu_edge_close(clu_edge *cl)
{
	if (!cl)
		return;
	clu_edge_stop(cl);
	clu_etcd_close(&cl->admin);
	clu_etcd_close(&cl->thr);
	clu_mirror_free(&cl->objs);
	clu_mirror_free(&cl->peers);
	clu_mirror_free(&cl->pub);
	pthread_mutex_destroy(&cl->peers_lock);
	if (cl->multi)
		curl_multi_cleanup(cl->multi);
	free(cl->wbuf);
	for (size_t i = 0; i < cl->neps; i++)
		free(cl->eps[i]);
	free(cl->eps);
	free(cl->prefix);
	free(cl->name);
	free(cl->region);
	free(cl->k_all);
	free(cl->k_all_end);
	free(cl->k_objs);
	free(cl->k_objs_end);
	free(cl->k_node);
	free(cl->k_seq);
	free(cl);
}

/* ---- the API's side ---------------------------------------------------- */

int64_t clu_edge_object_rev(clu_edge *cl, store_kind k, const char *id)
{
	char *key = clu_key_object(cl->prefix, k, id);
	int64_t r = clu_mirror_rev(&cl->objs, key);
	free(key);
	return r;
}

/* Read the objects again after a failed compare; the thread rebuilds.
 * -errno when etcd did not answer. */
static int refresh(clu_edge *cl, store *st)
{
	clu_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev = 0;
	char err[512];
	int rc = range(cl, &cl->admin, cl->k_objs, cl->k_objs_end, &kvs, &n,
		       &rev, err, sizeof(err));
	if (rc < 0) {
		log_warn("cluster: %s", err);
		return rc;
	}
	int changed = clu_mirror_reset(&cl->objs, kvs, n, rev, NULL, NULL);
	clu_kvs_free(kvs, n);
	if (sync_all(cl, st, err, sizeof(err)) < 0)
		log_error("cluster: local store: %s", err);
	if (changed > 0) {
		atomic_fetch_add(&cl->changes, (uint64_t)changed);
		atomic_fetch_add(&cl->rebuild_req, (uint32_t)changed);
		curl_multi_wakeup(cl->multi);
	}
	return 0;
}

/* After a commit whose answer was lost (or was a failed compare, which
 * a request that curl sent again after a dropped connection also gets):
 * did etcd take it? Read back: 1 when <prefix>/commit holds this
 * commit's token or a put key holds this commit's value (its timestamps
 * make it unique), 0 when not, -errno when etcd cannot tell us. The
 * objects mirror and the store are fresh afterwards. */
static int committed(clu_edge *cl, store *st, char **keys, const clu_op *tops,
		     size_t n, const char *token)
{
	int rc = refresh(cl, st);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const clu_entry *e = clu_mirror_get(&cl->objs, keys[i]);
		if (!tops[i].del && e && e->value_len == tops[i].value_len &&
		    !memcmp(e->value, tops[i].value, e->value_len))
			return 1;
	}
	clu_kv *kvs = NULL;
	size_t nk = 0;
	int64_t rev;
	char err[512];
	rc = range(cl, &cl->admin, cl->k_seq, NULL, &kvs, &nk, &rev, err,
		   sizeof(err));
	if (rc < 0)
		return rc;
	bool mine = nk == 1 && kvs[0].value_len == strlen(token) &&
		    !memcmp(kvs[0].value, token, kvs[0].value_len);
	clu_kvs_free(kvs, nk);
	return mine;
}

int clu_edge_commit(clu_edge *cl, store *st, store_op *ops, size_t n, char *err,
		    size_t errlen)
{
	if (!atomic_load(&cl->connected)) {
		snprintf(err, errlen,
			 "cluster: etcd (%s) is unreachable: changes are "
			 "refused until it is back (this edge keeps serving "
			 "its running config)",
			 clu_etcd_endpoint(&cl->admin));
		return -ENOTCONN;
	}
	char now[STORE_TIME_SZ];
	store_time_format(core_wall_ms() * 1000, now);
	/* One more compare and put: <prefix>/commit, which every object
	 * commit puts. Its mod_revision below the mirror's next one says no
	 * other edge committed since the state this change was validated
	 * against, which the compares of the keys it touches alone do not:
	 * a load balancer created on an edge that has not yet seen the
	 * delete of its pool touches only its own key. */
	clu_cmp *cmp = xcalloc(n + 1, sizeof(*cmp));
	clu_op *tops = xcalloc(n + 1, sizeof(*tops));
	char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	char **vals = xcalloc(n ? n : 1, sizeof(*vals));
	int64_t *crev = xcalloc(n ? n : 1, sizeof(*crev));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		store_op *op = &ops[i];
		keys[i] = clu_key_object(cl->prefix, op->kind, op->id);
		const clu_entry *e = clu_mirror_get(&cl->objs, keys[i]);
		int64_t seen = e ? e->mod_rev : 0;
		if (op->type == STORE_CREATE)
			seen = 0;
		else if (op->base_rev)
			seen = op->base_rev;
		cmp[i] = (clu_cmp){.key = keys[i], .rev = seen};
		crev[i] = e ? e->create_rev : 0;
		if (op->type == STORE_DELETE) {
			tops[i] = (clu_op){.del = true, .key = keys[i]};
			continue;
		}
		char created[STORE_TIME_SZ];
		snprintf(created, sizeof(created), "%s", now);
		clu_obj was;
		if (op->type == STORE_REPLACE && e &&
		    clu_obj_decode(e->value, e->value_len, &was) == 0) {
			snprintf(created, sizeof(created), "%s",
				 was.created_on);
			clu_obj_clear(&was);
		}
		snprintf(op->created_on, STORE_TIME_SZ, "%s", created);
		snprintf(op->modified_on, STORE_TIME_SZ, "%s", now);
		vals[i] = clu_obj_encode(op->zone, op->body, created, now);
		if (!vals[i]) {
			snprintf(err, errlen, "op %zu: body is not JSON", i);
			rc = -EINVAL;
			goto out;
		}
		tops[i] = (clu_op){.key = keys[i],
				   .value = vals[i],
				   .value_len = strlen(vals[i])};
	}
	/* Unique to this commit: how to tell it went in when its answer
	 * was lost. */
	char token[CLU_SEG_MAX + STORE_TIME_SZ + 64];
	snprintf(token, sizeof(token),
		 "{\"node\":\"%s\",\"started\":\"%s\",\"commit\":%" PRIu64 "}",
		 cl->name, cl->started, ++cl->commits);
	cmp[n] = (clu_cmp){
	    .key = cl->k_seq, .less = true, .rev = cl->objs.revision + 1};
	tops[n] = (clu_op){
	    .key = cl->k_seq, .value = token, .value_len = strlen(token)};
	bool ok = false;
	int64_t rev = 0;
	char why[512] = "";
	rc = txn(cl, &cl->admin, CLU_OP_TXN, cmp, n + 1, tops, n + 1, NULL, &ok,
		 &rev, NULL, NULL, why, sizeof(why));
	if (rc < 0 || !ok) {
		/* Its two reads within one request's time: the API's
		 * client waits, and the ctl lock is held. */
		cl->admin.deadline_ms = core_now_ms() + REQ_TIMEOUT_MS;
		int was = committed(cl, st, keys, tops, n, token);
		if (was > 0) {
			log_warn("cluster: etcd took a change whose answer "
				 "was lost (%s)",
				 rc < 0 ? why : "a request sent again");
			rc = 0;
			goto out;
		}
		if (rc < 0) {
			snprintf(err, errlen,
				 was < 0 ? "cluster: the change may or may not "
					   "have been committed to etcd (%s; "
					   "etcd cannot tell now): read it "
					   "again before you retry"
					 : "cluster: the change could not be "
					   "committed to etcd: %s",
				 why);
			rc = -EIO;
			goto out;
		}
	}
	if (!ok) {
		rc = -EAGAIN;
		for (size_t i = 0; i < n; i++)
			if (ops[i].base_rev &&
			    clu_mirror_rev(&cl->objs, keys[i]) !=
				ops[i].base_rev)
				rc = -ESTALE;
		snprintf(err, errlen,
			 "cluster: the object was changed concurrently on "
			 "another edge");
		goto out;
	}
	/* Known at rev: the watch's copy of this change is a duplicate. */
	pends p = {.cl = cl};
	for (size_t i = 0; i < n; i++) {
		if (tops[i].del) {
			clu_mirror_del(&cl->objs, keys[i], rev, collect, &p);
			continue;
		}
		clu_kv kv = {
		    .key = keys[i],
		    .key_len = strlen(keys[i]),
		    .value = vals[i],
		    .value_len = strlen(vals[i]),
		    .mod_rev = rev,
		    .create_rev =
			crev[i] && ops[i].type != STORE_CREATE ? crev[i] : rev};
		clu_mirror_put(&cl->objs, &kv, collect, &p);
	}
	if (pends_sync(&p, st, false, why, sizeof(why)) < 0)
		log_error("cluster: local store (the change is in etcd): %s",
			  why);
	pends_free(&p);
	rc = 0;
out:
	cl->admin.deadline_ms = 0;
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
		free(vals[i]);
	}
	free(keys);
	free(vals);
	free(cmp);
	free(tops);
	free(crev);
	return rc;
}

void clu_edge_stats(clu_edge *cl, clu_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!cl)
		return;
	st->enabled = true;
	st->connected = atomic_load(&cl->connected);
	st->changes_applied = atomic_load(&cl->changes);
	for (int i = 0; i < CLU_NOPS; i++)
		st->errors[i] = atomic_load(&cl->errors[i]);
	pthread_mutex_lock(&cl->peers_lock);
	for (size_t i = 0; i < cl->peers.n; i++) {
		clu_key_parts kp;
		const clu_entry *e = &cl->peers.e[i];
		if (e->value &&
		    clu_key_parse(cl->prefix, e->key, strlen(e->key), &kp) ==
			CLU_KEY_NODE)
			st->nodes++;
	}
	pthread_mutex_unlock(&cl->peers_lock);
}

json_t *clu_edge_nodes(clu_edge *cl)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&cl->peers_lock);
	for (size_t i = 0; i < cl->peers.n; i++) {
		clu_key_parts kp;
		const clu_entry *e = &cl->peers.e[i];
		if (!e->value ||
		    clu_key_parse(cl->prefix, e->key, strlen(e->key), &kp) !=
			CLU_KEY_NODE)
			continue;
		json_t *j = json_loadb(e->value, e->value_len, 0, NULL);
		if (!json_is_object(j)) {
			json_decref(j);
			continue;
		}
		json_object_set_new(j, "self",
				    json_boolean(!strcmp(kp.a, cl->name)));
		json_array_append_new(arr, j);
	}
	pthread_mutex_unlock(&cl->peers_lock);
	return arr;
}

void clu_edge_pool_health(clu_edge *cl, const char *pool_id, json_t *pops)
{
	pthread_mutex_lock(&cl->peers_lock);
	for (size_t i = 0; i < cl->peers.n; i++) {
		clu_key_parts kp;
		const clu_entry *e = &cl->peers.e[i];
		if (!e->value ||
		    clu_key_parse(cl->prefix, e->key, strlen(e->key), &kp) !=
			CLU_KEY_HEALTH ||
		    strcmp(kp.pool, pool_id) || !strcmp(kp.a, cl->name))
			continue;
		json_t *r = json_loadb(e->value, e->value_len, 0, NULL);
		if (!json_is_object(r)) {
			json_decref(r);
			continue;
		}
		json_t *pop = json_object_get(pops, kp.a);
		if (!pop) {
			pop = json_object();
			json_object_set_new(pop, "healthy", json_null());
			json_object_set_new(pop, "origins", json_array());
			json_object_set_new(pops, kp.a, pop);
		}
		json_t *h = json_object_get(r, "healthy");
		if (json_is_boolean(h) &&
		    !json_is_true(json_object_get(pop, "healthy")))
			json_object_set(pop, "healthy", h);
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(kp.origin));
		json_object_set(o, "healthy", h ? h : json_null());
		json_object_set(o, "state", json_object_get(r, "state"));
		json_t *rtt = json_object_get(r, "rtt_ms");
		if (json_is_number(rtt)) {
			char s[32];
			snprintf(s, sizeof(s), "%.1fms",
				 json_number_value(rtt));
			json_object_set_new(o, "rtt", json_string(s));
		} else {
			json_object_set_new(o, "rtt", json_null());
		}
		json_object_set(o, "failure_reason",
				json_object_get(r, "reason"));
		json_object_set(o, "time", json_object_get(r, "time"));
		json_array_append_new(json_object_get(pop, "origins"), o);
		json_decref(r);
	}
	pthread_mutex_unlock(&cl->peers_lock);
}
