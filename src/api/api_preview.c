/* api_preview.c - see api_preview.h.
 *
 * Ownership: a preview belongs to the table from its creation until it is
 * evicted or expires, or until api_preview_stop. The runner thread works
 * on it (probes, timers, the fsm of each origin) until it marks it
 * finished; only then may the admin thread free it. `finished` is set in
 * the loop's post hook, after the epoll batch, so no event of the batch
 * can still point into a freed preview. Results (the pv_origin fields
 * under "results") and the table are guarded by R.lock; everything else
 * of a running preview is the runner's.
 */
#include "api/api_preview.h"
#include "api/api_env.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "config/cfg_json.h"
#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_loop.h"
#include "core/core_util.h"
#include "health/health_checker.h"
#include "health/health_fsm.h"
#include "health/health_probe.h"
#include "store/store.h"

/* Error codes, as api.c's (docs/API.md lists them). */
/* The id the body's monitor gets in a pool preview (it names the fields
 * of errors: "monitors[preview].timeout: ..."). */
#define PV_POOL_MONITOR_ID "preview"

typedef struct preview preview;
typedef struct pv_slot pv_slot;

typedef struct pv_origin {
	/* The runner's. */
	pv_slot *slot; /* its probe while running (retries included) */
	core_timer retry;
	health_fsm fsm;
	preview *pv;
	const cfg_origin *o; /* in pv->snap */
	struct pv_origin *qnext;
	/* Fixed at creation. */
	size_t pool; /* index in pv->pools */
	char *name, *address;
	uint16_t port;
	/* Results, under R.lock. */
	bool done, healthy;
	uint32_t rtt_us;
	int status;
	char reason[HEALTH_REASON_MAX];
} pv_origin;

/* One of PREVIEW_MAX_INFLIGHT running probes (an origin keeps it across
 * its retries). */
struct pv_slot {
	health_probe probe;
	pv_origin *po;
	pv_slot *next; /* free or done list */
};

typedef struct pv_pool {
	char *id, *name;
	uint32_t minimum_origins;
} pv_pool;

struct preview {
	char id[STORE_ID_LEN + 1];
	uint64_t created_ms; /* monotonic */
	uint64_t done_ms;    /* monotonic, under R.lock: when it finished */
	pv_pool *pools;
	size_t npools;
	pv_origin *origins;
	size_t norigins;
	/* Held while running; released by the runner when it finishes. */
	const edge_snapshot *snap;
	cfg_snapshot *mcfg; /* holds the monitor under test */
	const cfg_monitor *mon;
	preview *next; /* inbox, then the runner's active list */
	size_t ndone;  /* under R.lock */
	bool finished; /* under R.lock */
};

static struct {
	pthread_mutex_t lock;
	preview *table[API_PREVIEW_MAX]; /* under lock */
	preview *inbox;			 /* under lock: new, for the runner */
	bool stopping;			 /* under lock: api_preview_stop */
	bool started;			 /* admin thread / stop */
	pthread_t thread;
	core_loop loop;
	core_io wake;
	health_probe_ctx pctx;
	/* The runner's. */
	preview *active;
	pv_origin *qhead, *qtail;
	pv_slot *slots, *free_slots, *done_slots;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- previews ----------------------------------------------------------- */

/* Only for a preview no thread works on (finished, or never started). */
static void preview_release(preview *pv)
{
	edge_snapshot_unref(pv->snap);
	pv->snap = NULL;
	cfg_snapshot_free(pv->mcfg);
	pv->mcfg = NULL;
	pv->mon = NULL;
}

static void preview_free(preview *pv)
{
	if (!pv)
		return;
	preview_release(pv);
	for (size_t i = 0; i < pv->norigins; i++) {
		free(pv->origins[i].name);
		free(pv->origins[i].address);
	}
	for (size_t i = 0; i < pv->npools; i++) {
		free(pv->pools[i].id);
		free(pv->pools[i].name);
	}
	free(pv->origins);
	free(pv->pools);
	free(pv);
}

/* A running preview never expires. */
static bool expired(const preview *pv, uint64_t now)
{
	return pv->finished && now - pv->done_ms >= API_PREVIEW_TTL_MS;
}

/* Under R.lock: drop expired finished previews, then make room for one
 * more (the oldest finished goes). Returns the free slot, or -1 when every
 * slot holds a running preview. */
static int table_slot(uint64_t now)
{
	int oldest = -1, free_slot = -1;
	for (int i = 0; i < API_PREVIEW_MAX; i++) {
		preview *pv = R.table[i];
		if (pv && expired(pv, now)) {
			preview_free(pv);
			R.table[i] = pv = NULL;
		}
		if (!pv) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (pv->finished &&
		    (oldest < 0 ||
		     pv->created_ms < R.table[oldest]->created_ms))
			oldest = i;
	}
	if (free_slot >= 0)
		return free_slot;
	if (oldest >= 0) {
		preview_free(R.table[oldest]);
		R.table[oldest] = NULL;
	}
	return oldest;
}

/* ---- the runner thread -------------------------------------------------- */

static void probe_done(health_probe *p, const health_result *r);

static void probe_go(pv_origin *po)
{
	health_probe_start(&po->slot->probe, &R.pctx, po->pv->mon, po->o,
			   probe_done, po->slot);
}

static void retry_timer(core_timer *t)
{
	probe_go(container_of(t, pv_origin, retry));
}

static void probe_done(health_probe *p, const health_result *r)
{
	pv_slot *slot = p->arg;
	pv_origin *po = slot->po;
	health_step st =
	    health_fsm_feed(&po->fsm, po->pv->mon, r, core_wall_ms());
	if (st.retry) {
		/* Not from inside this callback: a timer restarts it. */
		core_timer_after(&R.loop, &po->retry, HEALTH_RETRY_DELAY_MS);
		return;
	}
	/* Free for another origin after this batch (post_batch). */
	po->slot = NULL;
	slot->po = NULL;
	slot->next = R.done_slots;
	R.done_slots = slot;
	pthread_mutex_lock(&R.lock);
	po->done = true;
	po->healthy = st.passed;
	po->rtt_us = st.passed ? r->rtt_us : 0;
	po->status = r->status;
	snprintf(po->reason, sizeof(po->reason), "%s",
		 st.passed ? "" : health_fsm_reason(&po->fsm));
	if (!st.passed && !po->reason[0])
		snprintf(po->reason, sizeof(po->reason), "%s",
			 health_reason_text(r->reason));
	po->pv->ndone++;
	pthread_mutex_unlock(&R.lock);
}

/* After each batch: start queued probes, finish complete previews. */
static void post_batch(core_loop *l, void *arg)
{
	(void)l;
	(void)arg;
	while (R.done_slots) {
		pv_slot *slot = R.done_slots;
		R.done_slots = slot->next;
		slot->next = R.free_slots;
		R.free_slots = slot;
	}
	while (R.qhead && R.free_slots) {
		pv_origin *po = R.qhead;
		R.qhead = po->qnext;
		if (!R.qhead)
			R.qtail = NULL;
		po->slot = R.free_slots;
		R.free_slots = po->slot->next;
		po->slot->po = po;
		probe_go(po);
	}
	for (preview **pp = &R.active; *pp;) {
		preview *pv = *pp;
		pthread_mutex_lock(&R.lock);
		bool complete = pv->ndone == pv->norigins;
		pthread_mutex_unlock(&R.lock);
		if (!complete) {
			pp = &pv->next;
			continue;
		}
		*pp = pv->next;
		pv->next = NULL;
		/* Still ours until finished is set: free the snapshots (maybe
		 * a whole old config) outside the lock. */
		preview_release(pv);
		pthread_mutex_lock(&R.lock);
		pv->finished = true;
		pv->done_ms = R.loop.now;
		pthread_mutex_unlock(&R.lock);
	}
}

static void wake_cb(core_io *io, uint32_t events)
{
	(void)events;
	uint64_t v;
	while (read(io->fd, &v, sizeof(v)) == sizeof(v))
		;
	pthread_mutex_lock(&R.lock);
	preview *in = R.inbox;
	R.inbox = NULL;
	bool stop = R.stopping;
	pthread_mutex_unlock(&R.lock);
	while (in) {
		preview *pv = in;
		in = pv->next;
		pv->next = R.active;
		R.active = pv;
		for (size_t i = 0; i < pv->norigins; i++) {
			pv_origin *po = &pv->origins[i];
			po->qnext = NULL;
			if (R.qtail)
				R.qtail->qnext = po;
			else
				R.qhead = po;
			R.qtail = po;
		}
	}
	if (stop)
		R.loop.stop = true;
}

static void *runner_main(void *arg)
{
	(void)arg;
	core_log_set_thread_name("preview");
	pthread_setname_np(pthread_self(), "preview");
	R.loop.now = core_now_ms();
	int err = core_loop_run(&R.loop);
	if (err < 0)
		log_error("preview: loop failed: %s", strerror(-err));
	return NULL;
}

/* On the admin thread, R.lock not held. 0, or -1 (logged). */
static int runner_start(void)
{
	if (R.started)
		return 0;
	R.active = NULL;
	R.qhead = R.qtail = NULL;
	R.done_slots = R.free_slots = NULL;
	R.wake.fd = -1;
	int err = core_loop_init(&R.loop);
	if (err < 0) {
		log_error("preview: epoll: %s", strerror(-err));
		return -1;
	}
	R.loop.post = post_batch;
	R.loop.post_arg = NULL;
	health_probe_ctx_init(&R.pctx, &R.loop);
	R.slots = xcalloc(PREVIEW_MAX_INFLIGHT, sizeof(*R.slots));
	for (size_t i = PREVIEW_MAX_INFLIGHT; i-- > 0;) {
		R.slots[i].probe.io.fd = -1;
		R.slots[i].next = R.free_slots;
		R.free_slots = &R.slots[i];
	}
	R.wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	R.wake.cb = wake_cb;
	if (R.wake.fd < 0 || core_loop_add(&R.loop, &R.wake, true) < 0) {
		log_error("preview: eventfd: %s", strerror(errno));
		goto fail;
	}
	/* No signals here (the main thread's signalfd takes them; a TLS
	 * write to a closed peer must not kill us). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&R.thread, NULL, runner_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error("preview: cannot start thread: %s", strerror(err));
		goto fail;
	}
	R.started = true;
	return 0;
fail:
	free(R.slots);
	R.slots = NULL;
	health_probe_ctx_destroy(&R.pctx);
	if (R.wake.fd >= 0)
		close(R.wake.fd);
	R.wake.fd = -1;
	core_loop_destroy(&R.loop);
	return -1;
}

static void runner_wake(void)
{
	uint64_t one = 1;
	if (write(R.wake.fd, &one, sizeof(one)) != sizeof(one))
		log_error("preview: cannot wake the runner: %s",
			  strerror(errno));
}

void api_preview_stop(void)
{
	if (!R.started)
		return;
	pthread_mutex_lock(&R.lock);
	R.stopping = true; /* wake_cb stops the loop */
	pthread_mutex_unlock(&R.lock);
	runner_wake();
	pthread_join(R.thread, NULL);
	/* The thread is gone: everything is ours. */
	for (size_t i = 0; i < PREVIEW_MAX_INFLIGHT; i++)
		health_probe_cancel(&R.slots[i].probe);
	pthread_mutex_lock(&R.lock);
	for (int i = 0; i < API_PREVIEW_MAX; i++) {
		preview_free(R.table[i]);
		R.table[i] = NULL;
	}
	R.inbox = NULL; /* every inbox preview is in the table */
	pthread_mutex_unlock(&R.lock);
	R.active = NULL;
	R.qhead = R.qtail = NULL;
	R.done_slots = R.free_slots = NULL;
	health_probe_ctx_destroy(&R.pctx);
	free(R.slots);
	R.slots = NULL;
	close(R.wake.fd);
	R.wake.fd = -1;
	core_loop_destroy(&R.loop);
	R.loop = (core_loop){0};
	R.stopping = false;
	R.started = false;
}

/* ---- requests ----------------------------------------------------------- */

/* The body as the monitor to try: a snapshot holding only it, or NULL with
 * the reply made. */
static cfg_snapshot *load_monitor(const api_request *rq, const char *id,
				  api_response *rs)
{
	if (!rq->body_len) {
		api_reply_err(rs, 400, API_E_BAD_JSON,
			      "a JSON object body (a monitor) is required");
		return NULL;
	}
	json_error_t je;
	json_t *body =
	    json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &je);
	if (!body) {
		api_reply_err(
		    rs, 400, API_E_BAD_JSON,
		    "request body is not valid JSON: line %d column %d: "
		    "%s",
		    je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		api_reply_err(rs, 400, API_E_BAD_JSON,
			      "request body must be a JSON object");
		return NULL;
	}
	/* As a create: what a GET shows but a client cannot set is
	 * ignored. */
	cfg_json_strip_readonly(CFG_JSON_MONITOR, body);
	json_object_del(body, "source");
	cfg_json_obj obj = {.kind = CFG_JSON_MONITOR, .id = id, .value = body};
	cfg_snapshot *mcfg = NULL;
	cfg_diag d = {0};
	if (cfg_load_merged("preview", NULL, 0, &obj, 1, &mcfg, &d) < 0)
		api_reply_diag(rs, &d, "monitor");
	cfg_diag_free(&d);
	json_decref(body);
	return mcfg;
}

static void add_pool(preview *pv, const cfg_pool *p)
{
	pv_pool *pp = &pv->pools[pv->npools++];
	pp->id = xstrdup(p->id);
	pp->name = xstrdup(p->name ? p->name : p->id);
	pp->minimum_origins = p->minimum_origins;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!o->enabled)
			continue; /* as the health checker */
		pv_origin *po = &pv->origins[pv->norigins++];
		po->pv = pv;
		po->o = o;
		po->pool = pv->npools - 1;
		po->name = xstrdup(o->name);
		po->address = xstrdup(o->address);
		po->port = o->port;
		core_timer_init(&po->retry, retry_timer);
		health_fsm_init(&po->fsm, LB_HEALTH_UNKNOWN);
	}
}

void api_preview_start(const edge_snapshot *snap, const api_request *rq,
		       const cfg_monitor *mon, const cfg_pool *pool,
		       api_response *rs)
{
	if (strcmp(rq->method, "POST") != 0) {
		api_reply_method(rs, rq->method, "POST");
		return;
	}
	const cfg_snapshot *cfg = snap->cfg;
	cfg_snapshot *mcfg =
	    load_monitor(rq, mon ? mon->id : PV_POOL_MONITOR_ID, rs);
	if (!mcfg)
		return;
	preview *pv = xcalloc(1, sizeof(*pv));
	pv->mcfg = mcfg;
	pv->mon = &mcfg->monitors[mcfg->nmonitors - 1];
	if (store_id_new(pv->id) < 0) {
		preview_free(pv);
		api_reply_err(rs, 500, API_E_STORE, "cannot generate an id");
		return;
	}
	size_t npools = 0, norigins = 0;
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		if (pool ? p != pool : p->monitor != mon)
			continue;
		npools++;
		norigins += p->norigins;
	}
	pv->pools = xcalloc(npools ? npools : 1, sizeof(*pv->pools));
	pv->origins = xcalloc(norigins ? norigins : 1, sizeof(*pv->origins));
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *p = &cfg->pools[i];
		if (pool ? p == pool : p->monitor == mon)
			add_pool(pv, p);
	}
	edge_snapshot_ref(snap);
	pv->snap = snap;
	pv->created_ms = core_now_ms();

	json_t *pools = json_object();
	for (size_t i = 0; i < pv->npools; i++)
		json_object_set_new(pools, pv->pools[i].id,
				    json_string(pv->pools[i].name));
	json_t *res = json_object();
	json_object_set_new(res, "preview_id", json_string(pv->id));
	json_object_set_new(res, "pools", pools);

	if (runner_start() < 0) {
		json_decref(res);
		preview_free(pv);
		api_reply_err(rs, 500, API_E_STORE,
			      "cannot start the preview runner");
		return;
	}
	pthread_mutex_lock(&R.lock);
	int slot = table_slot(pv->created_ms);
	if (slot >= 0) {
		R.table[slot] = pv;
		pv->next = R.inbox;
		R.inbox = pv;
	}
	pthread_mutex_unlock(&R.lock);
	if (slot < 0) {
		json_decref(res);
		preview_free(pv);
		api_reply_err(
		    rs, 429, API_E_BUSY,
		    "%d previews are running: try again when one is done",
		    API_PREVIEW_MAX);
		return;
	}
	runner_wake();
	api_reply(rs, 200, res, NULL, NULL);
}

/* Under R.lock. */
static json_t *origin_json(const pv_origin *po)
{
	json_t *h = json_object();
	if (!po->done) {
		json_object_set_new(h, "pending", json_true());
	} else {
		json_object_set_new(h, "healthy", json_boolean(po->healthy));
		if (po->healthy) {
			char rtt[32];
			snprintf(rtt, sizeof(rtt), "%.1fms",
				 po->rtt_us / 1000.0);
			json_object_set_new(h, "rtt", json_string(rtt));
		}
		json_object_set_new(
		    h, "failure_reason",
		    json_string(po->healthy ? "No failures" : po->reason));
		if (po->status)
			json_object_set_new(h, "response_code",
					    json_integer(po->status));
	}
	json_object_set_new(h, "name", json_string(po->name));
	json_object_set_new(h, "port", json_integer(po->port));
	json_t *o = json_object();
	json_object_set_new(o, po->address, h);
	return o;
}

/* Under R.lock. */
static json_t *preview_json(const preview *pv)
{
	json_t *res = json_object();
	for (size_t i = 0; i < pv->npools; i++) {
		const pv_pool *pp = &pv->pools[i];
		json_t *origins = json_array();
		uint32_t n = 0, healthy = 0, unhealthy = 0, pending = 0;
		for (size_t j = 0; j < pv->norigins; j++) {
			const pv_origin *po = &pv->origins[j];
			if (po->pool != i)
				continue;
			n++;
			pending += !po->done;
			healthy += po->done && po->healthy;
			unhealthy += po->done && !po->healthy;
			json_array_append_new(origins, origin_json(po));
		}
		json_t *p = json_object();
		if (!pending) {
			lb_pool_health ph = health_pool_eval(
			    true, n, healthy, unhealthy, pp->minimum_origins);
			json_object_set_new(
			    p, "healthy",
			    json_boolean(ph == LB_POOL_HEALTHY ||
					 ph == LB_POOL_DEGRADED));
		}
		json_object_set_new(p, "origins", origins);
		json_object_set_new(res, pp->id, p);
	}
	return res;
}

void api_preview_get(const api_request *rq, const char *id, api_response *rs)
{
	if (strcmp(rq->method, "GET") != 0) {
		api_reply_method(rs, rq->method, "GET");
		return;
	}
	uint64_t now = core_now_ms();
	json_t *res = NULL, *msgs = NULL;
	pthread_mutex_lock(&R.lock);
	for (int i = 0; i < API_PREVIEW_MAX && !res; i++) {
		const preview *pv = R.table[i];
		if (!pv || strcmp(pv->id, id) != 0 || expired(pv, now))
			continue;
		res = preview_json(pv);
		if (pv->ndone < pv->norigins) {
			char m[128];
			snprintf(m, sizeof(m),
				 "preview running: %zu of %zu origins checked",
				 pv->ndone, pv->norigins);
			msgs = json_array();
			json_array_append_new(msgs,
					      api_err_obj(API_E_RUNNING, m));
		}
	}
	pthread_mutex_unlock(&R.lock);
	if (!res) {
		api_reply_err(rs, 404, API_E_NOT_FOUND,
			      "preview %s not found (previews expire after %u "
			      "minutes)",
			      id, API_PREVIEW_TTL_MS / 60000u);
		return;
	}
	api_reply(rs, 200, res, NULL, msgs);
}
