/* health_checker.c - the health thread; see health_checker.h.
 *
 * Everything here runs on the health thread except health_start,
 * health_stop, health_get_stats and health_states_*. The thread owns the
 * targets (one per checked origin), the probe slots and the loop; other
 * threads see only the atomics and locked fields of lb_origin_state and
 * lb_pool_state, and the stats atomics.
 *
 * A target moves IDLE (in the due heap at its next due time) -> RUNNING (a
 * slot's probe) -> RETRY (due again after HEALTH_RETRY_DELAY_MS) ->
 * RUNNING ... -> IDLE. When
 * no slot is free it waits in QUEUED, in FIFO order. Finished slots are
 * recycled in the loop's post hook, after the epoll batch, so a slot is
 * never restarted from inside its own completion.
 */
#include "health/health_checker.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_loop.h"
#include "core/core_ring.h"
#include "core/core_util.h"
#include "health/health_fsm.h"
#include "health/health_probe.h"
#include "lb/lb_select.h"

static_assert(sizeof(((lb_origin_state *)0)->reason) == HEALTH_REASON_MAX,
	      "the FSM's reason text is published as is");

enum { T_IDLE = 0, T_QUEUED, T_RUNNING, T_RETRY };

typedef struct hc_target {
	health_fsm fsm;
	struct health_checker *hc;
	const cfg_origin *origin;
	const cfg_pool *pool;
	const cfg_monitor *mon;
	lb_origin_state *st;
	struct hc_target *qnext;
	uint64_t base; /* grid point of the current interval (no jitter) */
	uint64_t due;  /* when its check was due (with jitter) */
	uint8_t phase;
	bool retrying;	  /* the next probe is a retry of the same attempt */
	health_idle idle; /* keep-alive connection between http checks */
} hc_target;

/* Origin counts of a pool, kept up to date on every change so a verdict
 * never rescans a pool of thousands of origins. */
typedef struct hc_pool {
	uint32_t enabled, healthy, unhealthy;
} hc_pool;

typedef struct hc_slot {
	health_probe probe;
	struct hc_slot *next;
	hc_target *t;
} hc_slot;

/* When a target's next probe starts: an entry of the checker's due heap
 * (see due_push). */
typedef struct hc_due {
	uint64_t at; /* ms, monotonic */
	hc_target *t;
} hc_due;

struct health_checker {
	pthread_t thread;
	bool started;
	clockid_t cpu_clock;
	bool has_cpu_clock;
	core_loop loop;
	core_io wake;
	_Atomic bool stopping, recount; /* what a wake-up is for */
	health_probe_ctx pctx;
	const cfg_snapshot *cfg;
	lb_origin_state *ostates;
	lb_pool_state *pstates;
	health_event_cb cb;
	void *cb_arg;
	hc_target *targets;
	size_t ntargets;
	hc_pool *pools; /* by cfg_pool.index */
	hc_slot *slots;
	uint32_t nslots;
	hc_slot *free_slots, *done_slots;
	hc_target *qhead, *qtail;
	/* Targets waiting for their next probe, a min-heap on `at`, and the
	 * one loop timer at its root. */
	hc_due *due;
	uint32_t ndue;
	core_timer due_timer;
	uint64_t rng;
	_Atomic uint64_t probes, attempts, missed, max_late;
	_Atomic uint64_t connects, reuses, ring_sends; /* pctx's counters */
	_Atomic bool ring; /* the loop waits in io_uring */
	_Atomic uint32_t inflight, kept;
};

/* ---- events and publication ---- */

static void emit(health_checker *hc, const health_event *ev)
{
	if (hc->cb)
		hc->cb(hc->cb_arg, ev);
}

static void pool_count(health_checker *hc, const cfg_pool *pool)
{
	hc_pool *c = &hc->pools[pool->index];
	*c = (hc_pool){0};
	for (size_t i = 0; i < pool->norigins; i++) {
		const cfg_origin *o = &pool->origins[i];
		if (!o->enabled)
			continue;
		c->enabled++;
		lb_health h = lb_origin_health(&hc->ostates[o->index]);
		c->healthy += h == LB_HEALTH_HEALTHY;
		c->unhealthy += h == LB_HEALTH_UNHEALTHY;
	}
}

static void pool_eval(health_checker *hc, const cfg_pool *pool, uint64_t wall)
{
	const hc_pool *c = &hc->pools[pool->index];
	uint32_t enabled = c->enabled, healthy = c->healthy,
		 unhealthy = c->unhealthy;
	bool mon = pool->monitor != NULL;
	lb_pool_health nh = health_pool_eval(mon, enabled, healthy, unhealthy,
					     pool->minimum_origins);
	lb_pool_state *ps = &hc->pstates[pool->index];
	atomic_store_explicit(&ps->healthy_origins, mon ? healthy : enabled,
			      memory_order_relaxed);
	lb_pool_health old =
	    atomic_load_explicit(&ps->health, memory_order_relaxed);
	if (old == nh)
		return;
	ps->since_ms = wall;
	atomic_store_explicit(&ps->health, (uint8_t)nh, memory_order_release);

	char reason[HEALTH_REASON_MAX];
	if (mon)
		snprintf(reason, sizeof(reason),
			 "%u of %u origins healthy (minimum %u)", healthy,
			 enabled, pool->minimum_origins);
	else
		snprintf(reason, sizeof(reason),
			 "no monitor: %u enabled origins (minimum %u)", enabled,
			 pool->minimum_origins);
	health_event ev = {
	    .kind = HEALTH_EV_POOL,
	    .pool_id = pool->id,
	    .pool = pool,
	    .old_state = old,
	    .new_state = nh,
	    .reason = reason,
	    .wall_ms = wall,
	};
	emit(hc, &ev);
}

static void publish(health_checker *hc, hc_target *t, const health_step *s,
		    int status)
{
	lb_origin_state *o = t->st;
	atomic_store_explicit(&o->rtt_us, t->fsm.rtt_us, memory_order_relaxed);
	/* Under the lock too, so a reader of the display fields sees a state
	 * that matches its reason. */
	const char *why = health_fsm_reason(&t->fsm);
	size_t wl = strnlen(why, sizeof(o->reason) - 1);
	pthread_mutex_lock(&o->lock);
	/* Not snprintf: this runs for every check. */
	memcpy(o->reason, why, wl);
	o->reason[wl] = '\0';
	o->since_ms = t->fsm.since_ms;
	o->checks = t->fsm.checks;
	o->failures = t->fsm.failures;
	o->up_run = t->fsm.up_run;
	o->down_run = t->fsm.down_run;
	o->response_code = status > 0 && status < 1000 ? (uint16_t)status : 0;
	atomic_store_explicit(&o->active, (uint8_t)t->fsm.state,
			      memory_order_release);
	pthread_mutex_unlock(&o->lock);
	if (s->passed) {
		/* An active pass ends a passive ejection (lb_state.h). The
		 * backoff (ejections) is left to live traffic: an origin that
		 * passes its checks but keeps failing real requests is
		 * ejected for longer each time. */
		atomic_store_explicit(&o->passive_fails, 0,
				      memory_order_relaxed);
		atomic_store_explicit(&o->ejected_until, 0,
				      memory_order_relaxed);
	}
	if (!s->changed)
		return;
	health_event ev = {
	    .kind = HEALTH_EV_ORIGIN,
	    .pool_id = t->pool->id,
	    .origin_name = t->origin->name,
	    .pool = t->pool,
	    .origin = t->origin,
	    .old_state = s->from,
	    .new_state = s->to,
	    .reason = health_fsm_reason(&t->fsm),
	    .wall_ms = t->fsm.since_ms,
	};
	emit(hc, &ev);
	/* Counted again rather than moved by from -> to: an origin the
	 * check regions' majority decides keeps its verdict in the pool. */
	pool_count(hc, t->pool);
	pool_eval(hc, t->pool, t->fsm.since_ms);
}

/* ---- scheduling ---- */

static uint64_t rand_below(health_checker *hc, uint64_t n)
{
	return n ? lb_rand(&hc->rng) % n : 0;
}

static void stat_max(_Atomic uint64_t *a, uint64_t v)
{
	if (v > atomic_load_explicit(a, memory_order_relaxed))
		atomic_store_explicit(a, v, memory_order_relaxed);
}

static void probe_done(health_probe *p, const health_result *r);

/* ---- the due heap ----
 *
 * Every target waits for its next probe (interval or retry) in a heap of
 * its own rather than as a timer on the loop: a target is in it at most
 * once and never moves or leaves early, so the heap needs no back index,
 * and sifting moves 16-byte entries inside one array. As loop timers the
 * 10,000 targets of a big edge cost a cache miss per level on every pop
 * and push, writing each moved timer's index into its target. Only the
 * root is on the loop (due_timer). The array holds ntargets entries. */
static void due_push(health_checker *hc, hc_target *t, uint64_t at)
{
	uint32_t i = hc->ndue++;
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (hc->due[parent].at <= at)
			break;
		hc->due[i] = hc->due[parent];
		i = parent;
	}
	hc->due[i] = (hc_due){.at = at, .t = t};
	if (i == 0)
		core_timer_set(&hc->loop, &hc->due_timer, at);
}

static hc_target *due_pop(health_checker *hc)
{
	hc_target *top = hc->due[0].t;
	hc_due last = hc->due[--hc->ndue];
	uint32_t i = 0, n = hc->ndue;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && hc->due[c + 1].at < hc->due[c].at)
			c++;
		if (last.at <= hc->due[c].at)
			break;
		hc->due[i] = hc->due[c];
		i = c;
	}
	if (n)
		hc->due[i] = last;
	return top;
}

static void launch(health_checker *hc, hc_target *t);

/* Start every target that is due (bounded by the count at entry: nothing
 * started here can be due again before a later batch), then wait for the
 * next one. */
static void due_fire(core_timer *tm)
{
	health_checker *hc = container_of(tm, health_checker, due_timer);
	for (uint32_t budget = hc->ndue;
	     budget > 0 && hc->ndue > 0 && hc->due[0].at <= hc->loop.now;
	     budget--)
		launch(hc, due_pop(hc));
	if (hc->ndue)
		core_timer_set(&hc->loop, &hc->due_timer, hc->due[0].at);
}

static void start_on(health_checker *hc, hc_target *t, hc_slot *s)
{
	if (!t->retrying) {
		uint64_t now = hc->loop.now;
		uint64_t late = now > t->due ? now - t->due : 0;
		stat_max(&hc->max_late, late);
		if (late >= t->mon->interval_ms)
			atomic_fetch_add_explicit(&hc->missed, 1,
						  memory_order_relaxed);
	}
	t->phase = T_RUNNING;
	s->t = t;
	atomic_fetch_add_explicit(&hc->inflight, 1, memory_order_relaxed);
	health_probe_start_idle(&s->probe, &hc->pctx, t->mon, t->origin,
				&t->idle, probe_done, s);
}

static void launch(health_checker *hc, hc_target *t)
{
	hc_slot *s = hc->free_slots;
	if (!s) {
		t->phase = T_QUEUED;
		t->qnext = NULL;
		if (hc->qtail)
			hc->qtail->qnext = t;
		else
			hc->qhead = t;
		hc->qtail = t;
		return;
	}
	hc->free_slots = s->next;
	start_on(hc, t, s);
}

/* Due times are rounded up to HEALTH_TICK_MS, so one wake-up of the thread
 * starts every check due in that tick (at 10,000 checks a second, about 50
 * per wake-up instead of 10): each wake-up costs a scheduler round trip. */
static uint64_t tick_round(uint64_t ms)
{
	return (ms + HEALTH_TICK_MS - 1) / HEALTH_TICK_MS * HEALTH_TICK_MS;
}

/* Queue the check of grid point t->base, jittered by up to +-5% (never
 * before now), and publish the grid point for a restarted checker. */
static void schedule_at_base(health_checker *hc, hc_target *t)
{
	uint64_t iv = MAX(t->mon->interval_ms, 1u);
	uint64_t span = iv / 10; /* [-5%, +5%] */
	uint64_t due = t->base + rand_below(hc, span + 1);
	due = due >= span / 2 ? due - span / 2 : 0;
	t->due = MAX(tick_round(due), hc->loop.now);
	t->phase = T_IDLE;
	atomic_store_explicit(&t->st->next_check_ms, t->base,
			      memory_order_relaxed);
	due_push(hc, t, t->due);
}

/* Arm the check of the next interval: the next grid point, jittered by up
 * to +-5%. Grid points the last attempt overran are skipped. */
static void schedule_next(health_checker *hc, hc_target *t)
{
	uint64_t iv = MAX(t->mon->interval_ms, 1u);
	uint64_t now = hc->loop.now;
	t->base += iv;
	if (t->base <= now) {
		uint64_t skip = (now - t->base) / iv + 1;
		t->base += skip * iv;
		atomic_fetch_add_explicit(&hc->missed, skip,
					  memory_order_relaxed);
	}
	schedule_at_base(hc, t);
}

static void probe_done(health_probe *p, const health_result *r)
{
	hc_slot *s = p->arg;
	hc_target *t = s->t;
	health_checker *hc = t->hc;

	s->t = NULL;
	s->next = hc->done_slots;
	hc->done_slots = s;
	atomic_fetch_sub_explicit(&hc->inflight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hc->probes, 1, memory_order_relaxed);
	atomic_store_explicit(&hc->connects, hc->pctx.nconnect,
			      memory_order_relaxed);
	atomic_store_explicit(&hc->reuses, hc->pctx.nreuse,
			      memory_order_relaxed);
	atomic_store_explicit(&hc->ring_sends, hc->pctx.nring,
			      memory_order_relaxed);
	atomic_store_explicit(&hc->kept, hc->pctx.nidle, memory_order_relaxed);
	if (r->tls_not_after)
		atomic_store_explicit(
		    &hc->ostates[t->origin->index].tls_not_after,
		    r->tls_not_after, memory_order_relaxed);

	health_step st = health_fsm_feed(&t->fsm, t->mon, r, core_wall_ms());
	if (st.retry) {
		t->retrying = true;
		t->phase = T_RETRY;
		due_push(hc, t, hc->loop.now + HEALTH_RETRY_DELAY_MS);
		return;
	}
	t->retrying = false;
	atomic_fetch_add_explicit(&hc->attempts, 1, memory_order_relaxed);
	if (st.changed || r->reason != HEALTH_OK)
		log_debug("health: %s/%s %s -> %s %s", t->pool->id,
			  t->origin->name, health_state_name(st.from),
			  health_state_name(st.to), health_fsm_reason(&t->fsm));
	publish(hc, t, &st, r->status);
	schedule_next(hc, t);
}

/* After each batch: recycle finished slots, then feed the queue. */
static void post_batch(core_loop *l, void *arg)
{
	health_checker *hc = arg;
	while (hc->done_slots) {
		hc_slot *s = hc->done_slots;
		hc->done_slots = s->next;
		s->next = hc->free_slots;
		hc->free_slots = s;
	}
	while (hc->free_slots && hc->qhead) {
		hc_target *t = hc->qhead;
		hc->qhead = t->qnext;
		if (!hc->qhead)
			hc->qtail = NULL;
		hc_slot *s = hc->free_slots;
		hc->free_slots = s->next;
		start_on(hc, t, s);
	}
}

static void wake_cb(core_io *io, uint32_t events)
{
	health_checker *hc = container_of(io, health_checker, wake);
	uint64_t v;
	while (read(io->fd, &v, sizeof(v)) == sizeof(v))
		;
	if (atomic_exchange(&hc->recount, false)) {
		/* The check regions' majority moved (health_recount): pool
		 * health again, from lb_origin_health. */
		uint64_t wall = core_wall_ms();
		for (size_t i = 0; i < hc->cfg->npools; i++) {
			const cfg_pool *p = &hc->cfg->pools[i];
			if (!p->ncheck_regions)
				continue;
			pool_count(hc, p);
			pool_eval(hc, p, wall);
		}
	}
	if (atomic_load(&hc->stopping))
		hc->loop.stop = true;
}

/* ---- the thread ---- */

/* The ring: room for a tick's sends and re-armed receives (more are
 * submitted as it fills), and receive buffers for the answers of one
 * batch (a longer answer takes several; when they run out the bytes wait
 * in the socket). 128 KiB in all, small enough to stay in cache. */
#define HEALTH_RING_ENTRIES  1024
#define HEALTH_RING_BUFS     64
#define HEALTH_RING_BUF_SIZE 2048

/* Which I/O path the checker uses, said once per process (the checker
 * restarts on configuration changes). */
static void log_once_ring(int err)
{
	static atomic_int said = -1;
	int want = err == 0 ? 1 : 0;
	if (atomic_exchange(&said, want) == want)
		return;
	if (err == 0)
		log_info("health: kept-alive checks use io_uring");
	else
		log_info("health: io_uring unavailable (%s): checks use epoll "
			 "alone",
			 strerror(-err));
}

static void *health_main(void *arg)
{
	health_checker *hc = arg;
	core_log_set_thread_name("health");
	/* Visible in top -H, perf and /proc: the thread to watch. */
	pthread_setname_np(pthread_self(), "health");
	hc->loop.now = core_now_ms();

	/* Initial pool verdicts: pools without a monitor (Healthy), pools
	 * with no enabled origin (Critical). Monitored ones stay Unknown
	 * until their origins have one. */
	uint64_t wall = core_wall_ms();
	for (size_t i = 0; i < hc->cfg->npools; i++) {
		if (!hc->cfg->pools[i].enabled)
			continue;
		pool_count(hc, &hc->cfg->pools[i]);
		pool_eval(hc, &hc->cfg->pools[i], wall);
	}

	for (size_t i = 0; i < hc->ntargets; i++) {
		hc_target *t = &hc->targets[i];
		/* An origin carried over from the previous checker keeps its
		 * grid (a config change does not check every origin at
		 * once; a check the change abandoned runs now). */
		uint64_t next = atomic_load_explicit(&t->st->next_check_ms,
						     memory_order_relaxed);
		if (next) {
			t->base = next;
			schedule_at_base(hc, t);
			continue;
		}
		uint64_t spread = MIN((uint64_t)t->mon->interval_ms, 1000u);
		t->base = hc->loop.now + rand_below(hc, spread);
		t->due = tick_round(t->base);
		atomic_store_explicit(&t->st->next_check_ms, t->base,
				      memory_order_relaxed);
		due_push(hc, t, t->due);
	}

	/* The ring is the thread's own (single issuer): made here. */
	if (hc->cfg->edge.io_uring) {
		int e =
		    core_ring_attach(&hc->loop, HEALTH_RING_ENTRIES,
				     HEALTH_RING_BUFS, HEALTH_RING_BUF_SIZE);
		if (e == 0)
			atomic_store(&hc->ring, true);
		log_once_ring(e);
	}

	int err = core_loop_run(&hc->loop);
	if (err < 0)
		log_error("health: loop failed: %s", strerror(-err));
	for (uint32_t i = 0; i < hc->nslots; i++)
		health_probe_cancel(&hc->slots[i].probe);
	/* The ring only takes submissions from this thread: close the kept
	 * connections and let it go here. */
	if (core_ring_on(&hc->loop)) {
		for (size_t i = 0; i < hc->ntargets; i++)
			health_idle_close(&hc->pctx, &hc->targets[i].idle);
		core_ring_detach(&hc->loop);
		atomic_store(&hc->ring, false);
	}
	return NULL;
}

static uint32_t slot_count(size_t ntargets)
{
	uint64_t n = MIN((uint64_t)HEALTH_MAX_INFLIGHT, (uint64_t)ntargets);
	/* Leave most descriptors to the data plane. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = MIN(n, MAX((uint64_t)rl.rlim_cur / 4, 16u));
	return (uint32_t)MAX(n, 1u);
}

/* How many kept connections may be parked: the configured number, or a
 * quarter of the descriptor limit (health_probe_ctx_init's default), but
 * never so many that traffic is left fewer than 1,024 descriptors. */
static void kept_limit(health_checker *hc, uint32_t want)
{
	if (!want)
		return;
	uint64_t cap = UINT32_MAX;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		cap = rl.rlim_cur > 2048 ? rl.rlim_cur - 1024 : rl.rlim_cur / 2;
	hc->pctx.idle_max = (uint32_t)MIN((uint64_t)want, cap);
	if (want > cap)
		log_warn("health: limits.health_connections %u is more than "
			 "the open-file limit allows; keeping at most %u",
			 want, hc->pctx.idle_max);
}

static void checker_free(health_checker *hc)
{
	if (hc->nslots)
		for (uint32_t i = 0; i < hc->nslots; i++)
			health_probe_cancel(&hc->slots[i].probe);
	for (size_t i = 0; hc->targets && i < hc->ntargets; i++)
		health_idle_destroy(&hc->pctx, &hc->targets[i].idle);
	health_probe_ctx_destroy(&hc->pctx);
	if (hc->wake.fd >= 0)
		close(hc->wake.fd);
	core_loop_destroy(&hc->loop);
	free(hc->targets);
	free(hc->due);
	free(hc->pools);
	free(hc->slots);
	free(hc);
}

health_checker *health_start(const cfg_snapshot *cfg, lb_origin_state *ostates,
			     lb_pool_state *pstates, health_event_cb cb,
			     void *cb_arg)
{
	if (core_failpoint("health_start")) { /* tests: a failed start */
		log_error("health: cannot start (failpoint)");
		return NULL;
	}
	health_checker *hc = xcalloc(1, sizeof(*hc));
	hc->cfg = cfg;
	hc->ostates = ostates;
	hc->pstates = pstates;
	hc->cb = cb;
	hc->cb_arg = cb_arg;
	hc->wake.fd = -1;
	if (getrandom(&hc->rng, sizeof(hc->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(hc->rng))
		hc->rng = core_wall_ms() ^ (uint64_t)(uintptr_t)hc;
	hc->rng |= 1; /* xorshift state must not be 0 */

	size_t n = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].enabled && cfg->pools[i].monitor)
			for (size_t j = 0; j < cfg->pools[i].norigins; j++)
				n += cfg->pools[i].origins[j].enabled;
	hc->targets = xcalloc(n ? n : 1, sizeof(*hc->targets));
	hc->due = xcalloc(n ? n : 1, sizeof(*hc->due));
	core_timer_init(&hc->due_timer, due_fire);
	hc->pools = xcalloc(cfg->npools ? cfg->npools : 1, sizeof(*hc->pools));
	for (size_t i = 0; i < cfg->npools; i++) {
		const cfg_pool *pool = &cfg->pools[i];
		if (!pool->enabled || !pool->monitor)
			continue;
		for (size_t j = 0; j < pool->norigins; j++) {
			const cfg_origin *o = &pool->origins[j];
			if (!o->enabled)
				continue;
			hc_target *t = &hc->targets[hc->ntargets++];
			lb_origin_state *st = &ostates[o->index];
			t->idle = (health_idle)HEALTH_IDLE_INIT;
			/* Continue from the published state (a restarted
			 * checker keeps its verdicts). */
			health_fsm_init(&t->fsm,
					(lb_health)atomic_load(&st->active));
			t->fsm.rtt_us = atomic_load(&st->rtt_us);
			pthread_mutex_lock(&st->lock);
			t->fsm.since_ms = st->since_ms;
			t->fsm.checks = st->checks;
			t->fsm.failures = st->failures;
			t->fsm.up_run = st->up_run;
			t->fsm.down_run = st->down_run;
			/* While unhealthy the reason is shown until the next
			 * verdict, also after a pass that is not one yet. */
			memcpy(t->fsm.last_text, st->reason,
			       sizeof(t->fsm.last_text));
			t->fsm.last_text[sizeof(t->fsm.last_text) - 1] = '\0';
			pthread_mutex_unlock(&st->lock);
			t->hc = hc;
			t->origin = o;
			t->pool = pool;
			t->mon = pool->monitor;
			t->st = st;
		}
	}

	int err = core_loop_init(&hc->loop);
	if (err < 0) {
		log_error("health: epoll: %s", strerror(-err));
		hc->loop.epfd = -1;
		goto fail;
	}
	hc->loop.post = post_batch;
	hc->loop.post_arg = hc;
	health_probe_ctx_init(&hc->pctx, &hc->loop);
	kept_limit(hc, cfg->edge.limits.health_connections);
	hc->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	hc->wake.cb = wake_cb;
	if (hc->wake.fd < 0 || core_loop_add(&hc->loop, &hc->wake, true) < 0) {
		log_error("health: eventfd: %s", strerror(errno));
		goto fail;
	}
	hc->nslots = slot_count(hc->ntargets);
	hc->slots = xcalloc(hc->nslots, sizeof(*hc->slots));
	for (uint32_t i = hc->nslots; i-- > 0;) {
		hc->slots[i].probe.io.fd = -1;
		hc->slots[i].next = hc->free_slots;
		hc->free_slots = &hc->slots[i];
	}

	/* The thread takes no signals: the main thread's signalfd handles
	 * them, and a TLS write to a closed peer must not kill us. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&hc->thread, NULL, health_main, hc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error("health: cannot start thread: %s", strerror(err));
		goto fail;
	}
	hc->started = true;
	hc->has_cpu_clock =
	    pthread_getcpuclockid(hc->thread, &hc->cpu_clock) == 0;
	return hc;
fail:
	checker_free(hc);
	return NULL;
}

void health_stop(health_checker *hc)
{
	if (!hc)
		return;
	if (hc->started) {
		uint64_t one = 1;
		atomic_store(&hc->stopping, true);
		if (write(hc->wake.fd, &one, sizeof(one)) != sizeof(one))
			log_error("health: cannot wake the thread: %s",
				  strerror(errno));
		pthread_join(hc->thread, NULL);
	}
	checker_free(hc);
}

void health_recount(health_checker *hc)
{
	if (!hc || !hc->started)
		return;
	atomic_store(&hc->recount, true);
	uint64_t one = 1;
	if (write(hc->wake.fd, &one, sizeof(one)) != sizeof(one))
		log_error("health: cannot wake the thread: %s",
			  strerror(errno));
}

void health_get_stats(health_checker *hc, health_stats *out)
{
	*out = (health_stats){
	    .probes = atomic_load(&hc->probes),
	    .attempts = atomic_load(&hc->attempts),
	    .missed = atomic_load(&hc->missed),
	    .max_late_ms = atomic_load(&hc->max_late),
	    .connects = atomic_load(&hc->connects),
	    .reuses = atomic_load(&hc->reuses),
	    .ring_sends = atomic_load(&hc->ring_sends),
	    .kept_max = hc->pctx.idle_max,
	    .io_uring = atomic_load(&hc->ring),
	    .inflight = atomic_load(&hc->inflight),
	    .targets = (uint32_t)hc->ntargets,
	    .kept = atomic_load(&hc->kept),
	};
	struct timespec ts;
	if (hc->has_cpu_clock && clock_gettime(hc->cpu_clock, &ts) == 0)
		out->cpu_ns =
		    (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void health_states_init(lb_origin_state *o, size_t n, lb_pool_state *p,
			size_t m)
{
	for (size_t i = 0; i < n; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		pthread_mutex_init(&o[i].lock, NULL);
	}
	if (p)
		memset(p, 0, m * sizeof(*p));
}

void health_states_destroy(lb_origin_state *o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pthread_mutex_destroy(&o[i].lock);
}

/* An origin is "the same" across two configs when its pool id, name,
 * address and port are: then its passive state (ejection) and, over TLS,
 * its certificate expiry still describe it. Anything else starts afresh
 * (unknown, routable) and is checked within an interval. */
static const cfg_origin *same_origin(const cfg_pool *p, const cfg_origin *o,
				     size_t hint)
{
	const cfg_origin *c = cfg_origin_by_name(p, o->name, hint);
	return c && c->port == o->port && strcmp(c->address, o->address) == 0
		   ? c
		   : NULL;
}

/* The address connect() uses, which for a host name may have moved
 * (cfg_resolve): the origin is the same, the server behind it is not. */
static bool same_sockaddr(const cfg_origin *a, const cfg_origin *b)
{
	return a->sslen == b->sslen && memcmp(&a->ss, &b->ss, a->sslen) == 0;
}

static bool same_headers(const cfg_header *a, size_t na, const cfg_header *b,
			 size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (!core_same_str(a[i].name, b[i].name) ||
		    a[i].nvalues != b[i].nvalues)
			return false;
		for (size_t j = 0; j < a[i].nvalues; j++)
			if (!core_same_str(a[i].values[j], b[i].values[j]))
				return false;
	}
	return true;
}

size_t health_enablement_diff(const cfg_snapshot *from, const cfg_snapshot *to,
			      health_enablement_cb cb, void *arg)
{
	size_t n = 0;
	for (size_t i = 0; i < to->npools; i++) {
		const cfg_pool *np = &to->pools[i];
		const cfg_pool *op = cfg_pool_by_id(from, np->id, i);
		if (!op)
			continue;
		if (op->enabled != np->enabled) {
			health_enablement e = {.pool = np,
					       .enabled = np->enabled};
			cb(arg, &e);
			n++;
		}
		for (size_t j = 0; j < np->norigins; j++) {
			const cfg_origin *no = &np->origins[j];
			const cfg_origin *oo =
			    cfg_origin_by_name(op, no->name, j);
			if (!oo || oo->enabled == no->enabled)
				continue;
			health_enablement e = {
			    .pool = np, .origin = no, .enabled = no->enabled};
			cb(arg, &e);
			n++;
		}
	}
	return n;
}

bool health_monitor_tests_same(const cfg_monitor *a, const cfg_monitor *b)
{
	if (!a || !b)
		return false;
	return core_same_str(a->id, b->id) && a->type == b->type &&
	       core_same_str(a->method, b->method) &&
	       core_same_str(a->path, b->path) &&
	       same_headers(a->headers, a->nheaders, b->headers, b->nheaders) &&
	       a->port == b->port &&
	       core_same_str(a->expected_codes, b->expected_codes) &&
	       core_same_str(a->expected_body, b->expected_body) &&
	       a->follow_redirects == b->follow_redirects &&
	       a->allow_insecure == b->allow_insecure;
}

bool health_monitor_same(const cfg_monitor *a, const cfg_monitor *b)
{
	return health_monitor_tests_same(a, b) &&
	       a->timeout_ms == b->timeout_ms && a->retries == b->retries &&
	       a->interval_ms == b->interval_ms &&
	       a->consecutive_up == b->consecutive_up &&
	       a->consecutive_down == b->consecutive_down;
}

/* Whether the active-check verdict of oo (in pool op) still holds for no
 * (in pool np), under a monitor that tests the same thing (its cadence and
 * tolerance -- interval, timeout, retries, consecutive_up/down -- may have
 * changed: the verdict stands until the next check, which the new settings
 * then judge; reset to unknown, a dead origin would take traffic until
 * then):
 *   - checked after (pool and origin enabled): only when checked before
 *     too. A verdict reached under other settings, or one nobody checked,
 *     must not outlive the change: an unhealthy origin would stay
 *     unroutable for good.
 *   - not checked after (pool or origin disabled): the last verdict stays.
 *     Nothing takes new traffic there, but sessions draining from it
 *     (drain_duration) read it: reset to unknown (routable), they would
 *     go back to an origin known dead. Enabled again, it starts afresh
 *     (the first case). */
static bool verdict_holds(const cfg_pool *op, const cfg_origin *oo,
			  const cfg_pool *np, const cfg_origin *no)
{
	if (!health_monitor_tests_same(op->monitor, np->monitor))
		return false;
	if (np->enabled && no->enabled)
		return op->enabled && oo->enabled;
	return true;
}

size_t health_states_carry(const cfg_snapshot *from, lb_origin_state *from_o,
			   const lb_pool_state *from_p, const cfg_snapshot *to,
			   lb_origin_state *to_o, lb_pool_state *to_p)
{
	size_t kept = 0;
	for (size_t i = 0; i < to->npools; i++) {
		const cfg_pool *np = &to->pools[i];
		const cfg_pool *op = cfg_pool_by_id(from, np->id, i);
		if (!op)
			continue;
		const lb_pool_state *ops = &from_p[op->index];
		lb_pool_state *nps = &to_p[np->index];
		atomic_store(&nps->health, atomic_load(&ops->health));
		atomic_store(&nps->healthy_origins,
			     atomic_load(&ops->healthy_origins));
		nps->since_ms = ops->since_ms;
		for (size_t j = 0; j < np->norigins; j++) {
			const cfg_origin *no = &np->origins[j];
			const cfg_origin *oo = same_origin(op, no, j);
			if (!oo)
				continue;
			lb_origin_state *s = &from_o[oo->index];
			lb_origin_state *d = &to_o[no->index];
			/* Its host name moved to another server: what live
			 * traffic and the last certificate said was about
			 * the old one, and the new one is checked within a
			 * second (no grid). The verdict stays until then, so
			 * the origin does not flap through unknown. */
			bool moved = !same_sockaddr(oo, no);
			atomic_store(&d->ejections, atomic_load(&s->ejections));
			if (!moved) {
				atomic_store(&d->passive_fails,
					     atomic_load(&s->passive_fails));
				atomic_store(&d->ejected_until,
					     atomic_load(&s->ejected_until));
				/* The certificate seen last is still the
				 * server's while the origin speaks TLS; the
				 * next check refreshes it. */
				if (no->tls && oo->tls)
					atomic_store(
					    &d->tls_not_after,
					    atomic_load(&s->tls_not_after));
			}
			if (!verdict_holds(op, oo, np, no))
				continue;
			atomic_store(&d->active, atomic_load(&s->active));
			/* The check regions' majority: only where they still
			 * vote (clu_edge.c votes on no other pool), else it
			 * would decide the origin's health for good. */
			if (np->ncheck_regions)
				atomic_store(&d->cluster,
					     atomic_load(&s->cluster));
			atomic_store(&d->rtt_us, atomic_load(&s->rtt_us));
			/* Another interval: a new grid (the old one could
			 * put the next check a whole old interval away). */
			if (!moved &&
			    health_monitor_same(op->monitor, np->monitor))
				atomic_store(&d->next_check_ms,
					     atomic_load(&s->next_check_ms));
			pthread_mutex_lock(&s->lock);
			memcpy(d->reason, s->reason, sizeof(d->reason));
			d->since_ms = s->since_ms;
			d->checks = s->checks;
			d->failures = s->failures;
			d->up_run = s->up_run;
			d->down_run = s->down_run;
			d->response_code = s->response_code;
			pthread_mutex_unlock(&s->lock);
			kept++;
		}
	}
	return kept;
}
