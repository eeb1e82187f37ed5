/* edge_ctl.c - see edge_ctl.h. */
#include "edge/edge_ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/clu_edge.h"
#include "config/cfg_diag.h"
#include "config/cfg_resolve.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "edge/edge.h"

static void diag_add(cfg_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void diag_add(cfg_diag *d, const char *fmt, ...)
{
	if (!d)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cfg_diag_push(d, xstrdup(buf));
}

static cfg_json_kind json_kind(store_kind k)
{
	return k == STORE_MONITOR ? CFG_JSON_MONITOR
	       : k == STORE_POOL  ? CFG_JSON_POOL
				  : CFG_JSON_LB;
}

/* The store's objects, in an array of cfg_json_obj over store_obj. */
typedef struct ctl_objs {
	store_obj *o[3];
	size_t n[3];
	cfg_json_obj *list;
	size_t nlist;
} ctl_objs;

static void objs_free(ctl_objs *co)
{
	for (int k = 0; k < 3; k++)
		store_objs_free(co->o[k], co->n[k]);
	free(co->list);
	memset(co, 0, sizeof(*co));
}

/* Load every stored object; ops (may be NULL) are applied on top in
 * memory, as the store would after store_apply. */
static int objs_load(store *st, const store_op *ops, size_t nops, ctl_objs *co,
		     char *err, size_t errlen)
{
	memset(co, 0, sizeof(*co));
	for (int k = 0; k < 3; k++) {
		int rc =
		    store_list(st, (store_kind)k, NULL, &co->o[k], &co->n[k]);
		if (rc < 0) {
			snprintf(err, errlen, "store: cannot list objects: %s",
				 strerror(-rc));
			objs_free(co);
			return rc;
		}
	}
	size_t cap = co->n[0] + co->n[1] + co->n[2] + nops;
	co->list = xcalloc(cap ? cap : 1, sizeof(*co->list));
	/* Monitors first, then pools, then load balancers: the loader
	 * resolves references after everything is read, but keeping the
	 * file's order of kinds keeps messages in a natural order. */
	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; i < co->n[k]; i++) {
			const store_obj *o = &co->o[k][i];
			const char *body = o->body;
			bool gone = false;
			for (size_t j = 0; j < nops; j++) {
				if (ops[j].kind != (store_kind)k ||
				    strcmp(ops[j].id, o->id))
					continue;
				if (ops[j].type == STORE_DELETE)
					gone = true;
				else
					body = ops[j].body;
			}
			if (gone)
				continue;
			co->list[co->nlist++] = (cfg_json_obj){
			    .kind = json_kind((store_kind)k),
			    .id = o->id,
			    .json = body,
			};
		}
		for (size_t j = 0; j < nops; j++)
			if (ops[j].type == STORE_CREATE &&
			    ops[j].kind == (store_kind)k)
				co->list[co->nlist++] = (cfg_json_obj){
				    .kind = json_kind((store_kind)k),
				    .id = ops[j].id,
				    .json = ops[j].body,
				};
	}
	return 0;
}

static int open_store(edge_ctl *c, const cfg_snapshot *file_cfg, cfg_diag *diag)
{
	const char *path = file_cfg->edge.store;
	if (!path || !*path) {
		path = EDGE_STORE_DEFAULT;
		/* Our default directory: create it (the admin's own paths
		 * must exist). */
		if (mkdir("/var/lib/meridian", 0750) < 0 && errno != EEXIST) {
			diag_add(diag,
				 "store: cannot create /var/lib/meridian: %s "
				 "(set edge.store)",
				 strerror(errno));
			return -1;
		}
	}
	/* One edge per store: a second one would run objects the first
	 * deleted, and miss those it creates (each reads the store at start
	 * and on its own writes only). The lock file lives beside the store
	 * (flock, released by the kernel however the process ends). */
	char lpath[4096];
	snprintf(lpath, sizeof(lpath), "%s.lock", path);
	c->store_lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->store_lock >= 0 && flock(c->store_lock, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(c->store_lock);
		c->store_lock = -1;
		if (e == EWOULDBLOCK) {
			diag_add(diag,
				 "edge.store: %s is in use by another meridian "
				 "edge (each edge needs its own store)",
				 path);
			return -1;
		}
	}
	char err[512] = "";
	int rc = store_open(path, NULL, &c->st, err, sizeof(err));
	if (rc < 0) {
		diag_add(diag, "edge.store: %s", err);
		return -1;
	}
	c->store_path = xstrdup(path);
	c->events = store_events_writer_start(path, NULL, 0, err, sizeof(err));
	if (!c->events) {
		diag_add(diag, "edge.store (events): %s", err);
		return -1;
	}
	return 0;
}

/* Cluster mode: the objects of co->list that diag's errors name
 * ("pools[<id>]...") and ops do not touch are dropped from co->list (and
 * logged): they conflict with this edge's file, which wins here. The
 * number dropped. */
static size_t drop_conflicts(ctl_objs *co, const store_op *ops, size_t nops,
			     const cfg_diag *diag)
{
	static const char *const lists[] = {"monitors[", "pools[",
					    "load_balancers["};
	size_t dropped = 0;
	for (size_t m = 0; m < diag->n; m++) {
		const char *msg = diag->msgs[m];
		for (int k = 0; k < 3; k++) {
			size_t ll = strlen(lists[k]);
			const char *end = strchr(msg, ']');
			if (strncmp(msg, lists[k], ll) || !end)
				continue;
			const char *id = msg + ll;
			size_t idl = (size_t)(end - id);
			bool touched = false;
			for (size_t j = 0; j < nops; j++)
				touched |= json_kind(ops[j].kind) ==
					       (cfg_json_kind)k &&
					   strlen(ops[j].id) == idl &&
					   !strncmp(ops[j].id, id, idl);
			for (size_t i = 0; !touched && i < co->nlist; i++) {
				cfg_json_obj *o = &co->list[i];
				if (o->kind != (cfg_json_kind)k ||
				    strlen(o->id) != idl ||
				    strncmp(o->id, id, idl))
					continue;
				log_warn("cluster: not applied on this edge "
					 "(it conflicts with this edge's "
					 "config): %s",
					 msg);
				co->list[i] = co->list[--co->nlist];
				dropped++;
				break;
			}
		}
	}
	return dropped;
}

/* Build the merged config from text + the store (+ ops). */
static int build(edge_ctl *c, const char *name, const char *yaml, size_t len,
		 const store_op *ops, size_t nops, cfg_snapshot **out,
		 cfg_diag *diag)
{
	ctl_objs co;
	char err[512];
	if (objs_load(c->st, ops, nops, &co, err, sizeof(err)) < 0) {
		diag_add(diag, "%s", err);
		return -1;
	}
	int rc = cfg_load_merged(name, yaml, len, co.list, co.nlist, out, diag);
	/* Cluster mode: objects other edges made that conflict with this
	 * edge's file (a host name the file has) are left out here, so
	 * they hold up neither this edge's start nor later changes; each
	 * round may uncover those that referred to them. */
	for (int round = 0; rc < 0 && c->clu && round < 8; round++) {
		if (!drop_conflicts(&co, ops, nops, diag))
			break;
		cfg_diag_free(diag);
		rc = cfg_load_merged(name, yaml, len, co.list, co.nlist, out,
				     diag);
	}
	objs_free(&co);
	return rc;
}

/* The file alone, as `meridian check` loads it: it must be valid on its
 * own (its objects may not refer to the API's), at start-up and on every
 * SIGHUP alike, so a file that reloads also starts. It says where the
 * store is. */
static int load_file_alone(const char *name, const char *yaml, size_t len,
			   cfg_snapshot **file_cfg, cfg_diag *diag)
{
	if (cfg_load_string(name, yaml, len, file_cfg, diag) < 0)
		return -1;
	/* It loaded, so diag holds warnings only, which the merged build
	 * gives again. */
	cfg_diag_free(diag);
	return 0;
}

static int open_common(edge_ctl *c, const char *name, edge_ctl **ctl,
		       cfg_snapshot **out, cfg_diag *diag)
{
	cfg_snapshot *file_cfg = NULL;
	if (load_file_alone(name, c->yaml, c->yaml_len, &file_cfg, diag) < 0)
		goto fail;
	int rc = open_store(c, file_cfg, diag);
	if (rc == 0 && file_cfg->edge.cluster.netcd) {
		/* Cluster mode: the objects come from etcd into the store
		 * (or, etcd unreachable, the store has the last known). */
		char err[1024] = "";
		rc = clu_edge_open(file_cfg, c->st, &c->clu, err, sizeof(err));
		if (rc < 0)
			diag_add(diag, "%s", err);
	}
	cfg_snapshot_free(file_cfg);
	if (rc < 0)
		goto fail;
	if (build(c, name, c->yaml, c->yaml_len, NULL, 0, out, diag) < 0)
		goto fail;
	*ctl = c;
	return 0;
fail:
	edge_ctl_close(c);
	*out = NULL;
	*ctl = NULL;
	return -1;
}

int edge_ctl_open(const char *path, edge_ctl **ctl, cfg_snapshot **out,
		  cfg_diag *diag)
{
	edge_ctl *c = xcalloc(1, sizeof(*c));
	c->store_lock = -1;
	atomic_store(&c->last_reload_ok, true);
	pthread_mutex_init(&c->lock, NULL);
	c->path = xstrdup(path);
	if (cfg_read_file(path, &c->yaml, &c->yaml_len, diag) < 0) {
		edge_ctl_close(c);
		*ctl = NULL;
		*out = NULL;
		return -1;
	}
	return open_common(c, path, ctl, out, diag);
}

int edge_ctl_open_text(const char *name, const char *yaml, size_t len,
		       edge_ctl **ctl, cfg_snapshot **out, cfg_diag *diag)
{
	edge_ctl *c = xcalloc(1, sizeof(*c));
	c->store_lock = -1;
	atomic_store(&c->last_reload_ok, true);
	pthread_mutex_init(&c->lock, NULL);
	c->yaml = xmalloc(len + 1);
	memcpy(c->yaml, yaml, len);
	c->yaml[len] = '\0';
	c->yaml_len = len;
	(void)name;
	return open_common(c, name, ctl, out, diag);
}

void edge_ctl_close(edge_ctl *c)
{
	if (!c)
		return;
	clu_edge_close(c->clu);
	store_events_writer_stop(c->events);
	store_close(c->st);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c->yaml);
	free(c->store_path);
	if (c->store_lock >= 0)
		close(c->store_lock);
	free(c);
}

/* The cache of origin host names made to hold exactly the addresses the
 * running config uses: after a reload, the fresh answers it swapped in
 * (names it dropped forgotten). Under c->lock. */
static void resolve_restore(edge_ctl *c)
{
	cfg_resolve_forget();
	const edge_snapshot *s = edge_acquire(c->e);
	cfg_resolve_seed_config(s->cfg);
	edge_snapshot_unref(s);
}

/* A SIGHUP's reload under way: its file text, a copy of the store's
 * objects, and the fresh lookups its thread makes of every origin host
 * name they give, holding no lock (cfg_resolve_batch). */
struct edge_reload {
	pthread_t thread;
	pthread_mutex_t mu;
	bool done, orphan; /* under mu */
	int efd;	   /* readable once done */
	char *path, *text;
	size_t len;
	ctl_objs co;
	cfg_resolve_batch *batch;
};

static void reload_free(edge_reload *r)
{
	pthread_mutex_destroy(&r->mu);
	if (r->efd >= 0)
		close(r->efd);
	free(r->path);
	free(r->text);
	objs_free(&r->co);
	cfg_resolve_batch_free(r->batch);
	free(r);
}

/* The lookups: the loads' results are thrown away (the reload builds
 * again under the lock from the batch); only the names they resolve
 * matter. The file alone and merged with the store's objects: a file
 * that refers to the API's objects fails alone, and the objects have
 * host names of their own. Touches nothing of the edge or the ctl. */
static void *reload_main(void *arg)
{
	edge_reload *r = arg;
	cfg_resolve_batch_use(r->batch, true);
	cfg_snapshot *cfg = NULL;
	cfg_diag d = {0};
	if (cfg_load_string(r->path, r->text, r->len, &cfg, &d) == 0)
		cfg_snapshot_free(cfg);
	cfg_diag_free(&d);
	cfg = NULL;
	if (cfg_load_merged(r->path, r->text, r->len, r->co.list, r->co.nlist,
			    &cfg, &d) == 0)
		cfg_snapshot_free(cfg);
	cfg_diag_free(&d);
	cfg_resolve_batch_use(NULL, false);
	pthread_mutex_lock(&r->mu);
	r->done = true;
	bool orphan = r->orphan;
	if (!orphan) {
		uint64_t one = 1;
		ssize_t n = write(r->efd, &one, sizeof(one));
		(void)n; /* an eventfd counter does not overflow here */
	}
	pthread_mutex_unlock(&r->mu);
	if (orphan)
		reload_free(r);
	return NULL;
}

static void reload_outcome(edge_ctl *c, bool ok)
{
	atomic_fetch_add(ok ? &c->reloads_ok : &c->reloads_failed, 1);
	atomic_store(&c->last_reload_ok, ok);
}

static void reload_refused(const char *path, const cfg_diag *diag)
{
	for (size_t i = 0; i < diag->n; i++)
		log_error("%s", diag->msgs[i]);
	log_error("SIGHUP: %s has %zu error%s; the running config stays", path,
		  diag->n, diag->n == 1 ? "" : "s");
}

edge_reload *edge_ctl_reload_start(edge_ctl *c, int *fd)
{
	if (!c->path) {
		log_warn("SIGHUP: this edge's config is not a file; nothing to "
			 "reload");
		return NULL;
	}
	cfg_diag diag = {0};
	edge_reload *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->efd = -1;
	r->path = xstrdup(c->path);
	r->batch = cfg_resolve_batch_new();
	if (cfg_read_file(c->path, &r->text, &r->len, &diag) < 0) {
		reload_refused(c->path, &diag);
		goto fail;
	}
	char err[512] = "";
	pthread_mutex_lock(&c->lock);
	int rc = objs_load(c->st, NULL, 0, &r->co, err, sizeof(err));
	pthread_mutex_unlock(&c->lock);
	if (rc < 0) {
		log_error("SIGHUP: %s; the running config stays", err);
		goto fail;
	}
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->efd < 0) {
		log_error("SIGHUP: eventfd: %s; the running config stays",
			  strerror(errno));
		goto fail;
	}
	/* Signals stay with the main thread's signalfd. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int perr = pthread_create(&r->thread, NULL, reload_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (perr) {
		log_error("SIGHUP: cannot start a thread: %s; the running "
			  "config stays",
			  strerror(perr));
		goto fail;
	}
	*fd = r->efd;
	cfg_diag_free(&diag);
	return r;
fail:
	reload_outcome(c, false);
	cfg_diag_free(&diag);
	reload_free(r);
	return NULL;
}

void edge_ctl_reload_abandon(edge_reload *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	bool done = r->done;
	r->orphan = !done;
	pthread_t t = r->thread; /* once orphaned, r is the thread's */
	pthread_mutex_unlock(&r->mu);
	if (done) {
		pthread_join(t, NULL);
		reload_free(r);
		return;
	}
	/* Its lookups may block for the resolver's whole timeout; they
	 * touch nothing of the edge, and the thread frees r. */
	pthread_detach(t);
	log_info("SIGHUP: the reload's host name lookups are still under "
		 "way; not waiting for them");
}

void edge_ctl_reload_finish(edge_ctl *c, edge_reload *r)
{
	pthread_join(r->thread, NULL);
	pthread_mutex_lock(&c->lock);
	/* Every origin host name the file and the store gave was resolved
	 * afresh into r->batch: the builds take those answers (a name that
	 * failed is an error, as at start-up) and wait on DNS only for a
	 * name an API write added meanwhile. */
	cfg_resolve_batch_use(r->batch, false);
	cfg_diag diag = {0};
	const char *path = r->path;
	cfg_snapshot *cfg = NULL;
	cfg_snapshot *file_cfg = NULL;
	bool ok = true;
	if (load_file_alone(path, r->text, r->len, &file_cfg, &diag) < 0) {
		ok = false;
		/* Valid with the API's objects: it refers to some. */
		cfg_diag d2 = {0};
		if (build(c, path, r->text, r->len, NULL, 0, &cfg, &d2) == 0)
			diag_add(&diag,
				 "%s: objects of the config file may not refer "
				 "to objects created through the API (the file "
				 "must load on its own, as `meridian check` "
				 "does, or the edge would not start with it)",
				 path);
		cfg_diag_free(&d2);
		cfg_snapshot_free(cfg);
		cfg = NULL;
	}
	if (ok)
		ok = build(c, path, r->text, r->len, NULL, 0, &cfg, &diag) == 0;
	if (!ok) {
		/* Nothing changed, the cache of host names neither: the
		 * fresh answers stayed in the batch. */
		reload_refused(path, &diag);
		reload_outcome(c, false);
		goto out;
	}
	char sum[256], err[512] = "";
	cfg_summary(cfg, sum, sizeof(sum));
	if (edge_swap(c->e, cfg, false, err, sizeof(err)) < 0) {
		log_error("SIGHUP: %s", err);
		reload_outcome(c, false);
		goto out;
	}
	reload_outcome(c, true);
	/* The cache now holds what the new config runs: the fresh answers
	 * (cfg_resolve.h, "SIGHUP resolves afresh"). */
	resolve_restore(c);
	free(c->yaml);
	c->yaml = r->text;
	c->yaml_len = r->len;
	r->text = NULL;
	log_info("SIGHUP: reloaded %s (%s; config generation %llu)", path, sum,
		 (unsigned long long)edge_current(c->e)->generation);
	for (size_t i = 0; i < diag.nwarn; i++)
		log_warn("%s", diag.warns[i]);
out:
	cfg_resolve_batch_use(NULL, false);
	cfg_snapshot_free(file_cfg);
	cfg_diag_free(&diag);
	pthread_mutex_unlock(&c->lock);
	reload_free(r);
}

int edge_ctl_rebuild(edge_ctl *c, const char *why)
{
	pthread_mutex_lock(&c->lock);
	int rc = -1;
	cfg_diag diag = {0};
	cfg_snapshot *cfg = NULL;
	const char *name = c->path ? c->path : "<config>";
	char err[512] = "";
	if (build(c, name, c->yaml, c->yaml_len, NULL, 0, &cfg, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			log_error("%s", diag.msgs[i]);
		log_error("%s: the config could not be rebuilt; the running "
			  "one stays",
			  why);
	} else if (edge_swap(c->e, cfg, true, err, sizeof(err)) < 0) {
		log_error("%s: the config could not be rebuilt (%s); the "
			  "running one stays",
			  why, err);
	} else {
		log_info("%s: config generation %llu", why,
			 (unsigned long long)edge_current(c->e)->generation);
		rc = 0;
	}
	cfg_diag_free(&diag);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int edge_ctl_change(edge_ctl *c, store_op *ops, size_t n, cfg_diag *diag,
		    char *err, size_t errlen)
{
	pthread_mutex_lock(&c->lock);
	int rc = -1;
	const char *name = c->path ? c->path : "<config>";
	for (int attempt = 1;; attempt++) {
		cfg_snapshot *cfg = NULL;
		if (build(c, name, c->yaml, c->yaml_len, ops, n, &cfg, diag) <
		    0) {
			rc = -1;
			break;
		}
		/* Everything that can fail happens before the commit: the
		 * store holds only what runs. */
		/* An object write keeps the running certificates; no ops is
		 * the certificate reload (api_certs.c), which reads them
		 * again. */
		edge_snapshot *next =
		    edge_swap_prepare(c->e, cfg, n > 0, err, errlen);
		if (!next) {
			rc = -2;
			break;
		}
		if (!c->clu || !n) {
			rc = store_apply(c->st, ops, n, err, errlen) < 0 ? -2
									 : 0;
		} else {
			/* Cluster mode: one etcd transaction that fails when
			 * another edge changed what the validation read;
			 * then validate again on fresh data. */
			rc =
			    clu_edge_commit(c->clu, c->st, ops, n, err, errlen);
			rc = rc == 0	     ? 0
			     : rc == -EAGAIN ? -4
			     : rc == -ESTALE ? -5
			     : rc == -EINVAL ? -2
					     : -3;
		}
		if (rc < 0) {
			edge_snapshot_unref(next);
			if (rc == -4 && attempt < 3) {
				cfg_diag_free(diag);
				continue;
			}
			break;
		}
		edge_swap_publish(c->e, next);
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int64_t edge_ctl_object_rev(edge_ctl *c, store_kind k, const char *id)
{
	return c->clu ? clu_edge_object_rev(c->clu, k, id) : 0;
}

int edge_ctl_with_store(edge_ctl *c, int (*fn)(store *st, void *arg), void *arg)
{
	pthread_mutex_lock(&c->lock);
	int rc = fn(c->st, arg);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
