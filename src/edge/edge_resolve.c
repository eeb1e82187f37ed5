/* edge_resolve.c - the resolver thread (see edge_resolve.h). */
#include "edge/edge_resolve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/cfg_resolve.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_ctl.h"

/* While edge.resolve_interval is 0, how often the thread looks whether a
 * reload set one. */
#define RESOLVE_IDLE_MS 1000

struct edge_resolve {
	edge *e;
	edge_ctl *ctl;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool stop;
	/* Under mu. in_lookup: in cfg_resolve_refresh, which touches neither
	 * e nor ctl and can block for minutes (a DNS server that does not
	 * answer); a stop then leaves the thread behind (orphan) instead of
	 * waiting, and the thread frees r when the lookups end. done: the
	 * thread has returned from its loop. */
	bool in_lookup, orphan, done;
};

/* The running config's host names (copies: no snapshot is held while
 * the lookups block), sorted, for keep(); and the events to log. */
typedef struct names {
	char **v;
	size_t n;
	cfg_resolve_change *ev;
	size_t nev;
} names;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keep(const char *host, void *arg)
{
	const names *ns = arg;
	return bsearch(&host, ns->v, ns->n, sizeof(*ns->v), cmp_name) != NULL;
}

/* Under the cache's lock: only kept, logged once the lookups are over
 * (and only while the edge runs: the log may be stopped after). */
static void report(const cfg_resolve_change *ch, void *arg)
{
	names *ns = arg;
	ns->ev = xrealloc(ns->ev, (ns->nev + 1) * sizeof(*ns->ev));
	ns->ev[ns->nev++] = *ch;
}

static void log_change(const cfg_resolve_change *ch)
{
	if (ch->changed)
		log_info("origin host %s now resolves to %s (was %s): "
			 "rebuilding the config",
			 ch->host, ch->new_ip, ch->old_ip);
	else if (ch->failed_now)
		log_warn("origin host %s: cannot resolve (%s); keeping %s",
			 ch->host, ch->error, ch->old_ip);
	else if (ch->recovered)
		log_info("origin host %s resolves again (%s)", ch->host,
			 ch->new_ip);
}

/* Collect (and seed into the cache) the host names the running config
 * uses. */
static void collect(const edge_snapshot *s, names *ns)
{
	const cfg_snapshot *cfg = s->cfg;
	ns->v = xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(*ns->v));
	ns->n = 0;
	for (size_t i = 0; i < cfg->norigins; i++)
		if (cfg->origins[i]->host)
			ns->v[ns->n++] = xstrdup(cfg->origins[i]->host);
	cfg_resolve_seed_config(cfg);
	qsort(ns->v, ns->n, sizeof(*ns->v), cmp_name);
}

static void names_free(names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	free(ns->ev);
}

static void resolve_free(edge_resolve *r)
{
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Sleep ms, or until stopped; true when stopped. */
static bool wait_ms(edge_resolve *r, uint32_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->stop &&
	       pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
		;
	bool stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	return stop;
}

/* Whether the running config is behind the cache: an address moved in
 * this refresh, or earlier and that rebuild failed (it is tried again
 * every interval until one succeeds). */
static bool running_behind(edge *e)
{
	const edge_snapshot *s = edge_acquire(e);
	const cfg_snapshot *cfg = s->cfg;
	bool behind = false;
	for (size_t i = 0; !behind && i < cfg->norigins; i++) {
		const cfg_origin *o = cfg->origins[i];
		behind = o->host && cfg_resolve_differs(o->host, &o->ss);
	}
	edge_snapshot_unref(s);
	return behind;
}

static void *resolve_main(void *arg)
{
	edge_resolve *r = arg;
	for (;;) {
		const edge_snapshot *s = edge_acquire(r->e);
		uint32_t every = s->cfg->edge.resolve_interval_ms;
		edge_snapshot_unref(s);
		if (wait_ms(r, every ? every : RESOLVE_IDLE_MS))
			break;
		if (!every)
			continue;
		s = edge_acquire(r->e);
		names ns = {0};
		collect(s, &ns);
		edge_snapshot_unref(s);
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		r->in_lookup = !stop;
		pthread_mutex_unlock(&r->mu);
		if (stop) {
			names_free(&ns);
			break;
		}
		if (ns.n)
			cfg_resolve_refresh(keep, report, &ns);
		pthread_mutex_lock(&r->mu);
		r->in_lookup = false;
		stop = r->stop;
		bool orphan = r->orphan;
		pthread_mutex_unlock(&r->mu);
		if (orphan) { /* edge_resolve_stop did not wait: e is gone */
			names_free(&ns);
			resolve_free(r);
			return NULL;
		}
		if (!stop)
			for (size_t i = 0; i < ns.nev; i++)
				log_change(&ns.ev[i]);
		names_free(&ns);
		if (stop)
			break;
		if (running_behind(r->e))
			edge_ctl_rebuild(r->ctl,
					 "origin host names resolved again");
	}
	pthread_mutex_lock(&r->mu);
	r->done = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

edge_resolve *edge_resolve_start(edge *e, edge_ctl *ctl)
{
	edge_resolve *r = xcalloc(1, sizeof(*r));
	r->e = e;
	r->ctl = ctl;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* Signals stay with the main thread's signalfd. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&r->thread, NULL, resolve_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error(
		    "resolver: cannot start thread: %s; origin host names "
		    "are resolved again only on SIGHUP",
		    strerror(err));
		resolve_free(r);
		return NULL;
	}
	return r;
}

void edge_resolve_stop(edge_resolve *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	/* Wait for the thread unless it is in its lookups, which may block
	 * for the resolver's whole timeout (a DNS server that does not
	 * answer): they touch nothing of the edge, and the thread frees r
	 * when they end, or the process exits first. */
	while (!r->done && !r->in_lookup)
		pthread_cond_wait(&r->cv, &r->mu);
	if (!r->done) {
		pthread_t t = r->thread; /* r is the thread's from here */
		r->orphan = true;
		pthread_mutex_unlock(&r->mu);
		pthread_detach(t);
		log_info("resolver: not waiting for a lookup in progress");
		return;
	}
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	resolve_free(r);
}
