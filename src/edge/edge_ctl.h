/* edge_ctl.h - the control plane's sources of configuration and the one
 * path every change takes (SPEC §3 "Where objects live", §4.6).
 *
 * A running config is built from two sources: the YAML text last loaded
 * from the file (read-only through the API, reloaded on SIGHUP) and the
 * objects created through the API, kept in the store (edge.store, SQLite).
 * Every change - start-up, SIGHUP, an API write - goes through
 * cfg_load_merged() over both, so the same validation, defaults and
 * reference checks apply whichever source an object comes from.
 *
 * An API change is validated first (the store's objects as they would be
 * after it, merged with the file), committed to the store in one
 * transaction only when valid, then swapped in (edge_swap). So an
 * acknowledged change is durable, and a rejected one changed nothing.
 *
 * Threads: edge_ctl_reload_finish (main thread, SIGHUP), edge_ctl_change (admin
 * thread) and edge_ctl_rebuild (resolver thread) serialise on the ctl's
 * lock. The store connection is only used
 * under that lock. Health events go to the store through an asynchronous
 * writer (its own connection and thread), never blocking the health
 * thread.
 */
#ifndef MERIDIAN_EDGE_CTL_H
#define MERIDIAN_EDGE_CTL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "config/cfg_json.h"
#include "config/cfg_load.h"
#include "store/store.h"

struct edge;

/* Where the store lives when edge.store is not set. */
#define EDGE_STORE_DEFAULT "/var/lib/meridian/store.db"

typedef struct edge_ctl {
	pthread_mutex_t lock;
	char *path; /* the config file */
	char *yaml; /* its text as last applied */
	size_t yaml_len;
	char *store_path;
	int store_lock; /* flock'd <store>.lock, -1: none */
	store *st;
	store_events_writer *events;
	struct edge *e; /* set once the edge runs */
	/* Cluster mode (edge.cluster, src/cluster/clu_edge.h): the objects
	 * live in etcd and the store is this edge's cache of them. NULL: the
	 * store alone. */
	struct clu_edge *clu;
	/* SIGHUP reloads since start, by outcome (/metrics), and whether the
	 * last one was applied (true before any). */
	_Atomic uint64_t reloads_ok, reloads_failed;
	_Atomic bool last_reload_ok;
} edge_ctl;

/* Start-up: load the file at path, open its store, merge the store's
 * objects in. On success *out is the config to run and *ctl the control
 * plane, and diag holds the config's warnings (diag->warns, once); on
 * failure every problem is in diag (file:line:col, store errors and API
 * object errors alike) and -1 is returned. Free diag either way. */
int edge_ctl_open(const char *path, edge_ctl **ctl, cfg_snapshot **out,
		  cfg_diag *diag);
/* Start-up from a config already loaded (meridian demo, tests): the text
 * is the YAML it was loaded from. */
int edge_ctl_open_text(const char *name, const char *yaml, size_t len,
		       edge_ctl **ctl, cfg_snapshot **out, cfg_diag *diag);
void edge_ctl_close(edge_ctl *c);

/* SIGHUP: re-read the file and swap; a bad file (or one that conflicts
 * with the API's objects) changes nothing. Logs the outcome. In two
 * halves, so that lookups of origin host names a DNS server does not
 * answer hold up neither the main thread (a SIGTERM meanwhile) nor the
 * API (the ctl's lock):
 *
 * edge_ctl_reload_start reads the file and a copy of the store's objects
 * and starts a thread that resolves every origin host name they give
 * afresh, holding no lock. NULL when there is nothing to wait for (the
 * file cannot be read, or the config is not a file: logged). Else *fd is
 * readable once the lookups are over: then edge_ctl_reload_finish builds
 * the config under the lock from those answers and swaps it in, and
 * frees r. edge_ctl_reload_abandon (a SIGTERM meanwhile) does not wait
 * for the lookups: the thread frees r when they end. */
typedef struct edge_reload edge_reload;
edge_reload *edge_ctl_reload_start(edge_ctl *c, int *fd);
void edge_ctl_reload_finish(edge_ctl *c, edge_reload *r);
void edge_ctl_reload_abandon(edge_reload *r);

/* The resolver (edge_resolve.c): rebuild the running config from the
 * same sources (the file's text as last applied, the store), now that an
 * origin host name resolves to another address (cfg_resolve.h), and swap
 * it in. why goes into the log line. 0, or -1 (logged; nothing changed). */
int edge_ctl_rebuild(edge_ctl *c, const char *why);

/* One API change: ops as for store_apply (bodies are JSON text). Validates
 * the result merged with the file, commits it, swaps it in. 0 on success
 * (the ops' timestamps are filled; diag->warns has the new config's
 * warnings); -1 with the problems in diag (nothing changed), or -2 with
 * err set when the store or the swap failed. Cluster mode adds, err set:
 * -3 etcd is unreachable (nothing changed), -4 other edges kept changing
 * the same objects (after a few tries on fresh data), -5 an op's base_rev
 * is stale (the caller merges its PATCH again). Free diag either way. */
int edge_ctl_change(edge_ctl *c, store_op *ops, size_t n, cfg_diag *diag,
		    char *err, size_t errlen);

/* Under the ctl's lock (inside edge_ctl_with_store): the revision of an
 * object in cluster mode, for store_op.base_rev; 0 without a cluster. */
int64_t edge_ctl_object_rev(edge_ctl *c, store_kind k, const char *id);

/* Run fn with the store under the ctl's lock (reads for the API). */
int edge_ctl_with_store(edge_ctl *c, int (*fn)(store *st, void *arg),
			void *arg);

#endif
