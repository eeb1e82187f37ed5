/* store.h - the durable embedded store (SQLite): API objects (monitors,
 * pools, load balancers) and health events (SPEC §4.6, issue 5).
 *
 * One file, two tables:
 *   objects  kind, id, zone, body (the JSON text the API accepted, opaque
 *            here), created_on, modified_on, and a creation sequence so
 *            lists come back in creation order;
 *   events   origin and pool health changes with an autoincrement id,
 *            trimmed to the newest events_max and to events_max_age_ms.
 *
 * Durability: WAL journal, synchronous=FULL on the object connection, and
 * every change set in one transaction (store_apply): when store_apply
 * returns 0 the change is on disk and survives kill -9 (and power loss,
 * within SQLite's guarantees); when it fails nothing of it happened.
 *
 * Threads: a `store` is one SQLite connection, used by one thread at a time
 * (the admin thread). Health events come from the health thread, which must
 * never block: it hands them to a store_events_writer, which owns its own
 * connection and thread and inserts them in batches. Both connections may
 * write the same file at once; they wait for each other's short
 * transactions (busy_timeout_ms) instead of failing.
 *
 * Return convention: 0 (or a count) on success, a negative errno-style code
 * on failure; functions taking err/errlen also write one line saying why.
 *   -EINVAL   bad argument; or the file is not a Meridian store
 *   -ENOTSUP  the store was written by a newer Meridian (schema version)
 *   -ENOENT   no such object; or the store's directory does not exist
 *   -EEXIST   create of an id that exists
 *   -EBUSY    the other connection held the lock past busy_timeout_ms
 *   -ENOSPC, -EROFS, -EACCES, -EISDIR, -ENOTDIR, -ENOMEM  as their names say
 *   -EIO      anything else SQLite reports (corruption, I/O error)
 */
#ifndef MERIDIAN_STORE_H
#define MERIDIAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PRAGMA user_version this build writes and understands; older stores are
 * migrated on open, newer ones refused. */
#define STORE_SCHEMA_VERSION 1
/* PRAGMA application_id of a Meridian store ("MRDN"): tells our file from
 * any other SQLite database. */
#define STORE_APPLICATION_ID 0x4d52444e

#define STORE_ID_LEN  32 /* ids from store_id_new: 32 lowercase hex */
#define STORE_ID_MAX  64 /* longest id store_id_valid accepts */
#define STORE_TIME_SZ 32 /* "2014-01-01T05:20:00.123456Z" + NUL, rounded */

#define STORE_EVENTS_MAX_DEFAULT	10000u
#define STORE_EVENTS_MAX_AGE_DEFAULT_MS (7ull * 24 * 3600 * 1000)
#define STORE_BUSY_TIMEOUT_DEFAULT_MS	5000u
#define STORE_WRITER_QUEUE_DEFAULT	4096u

typedef struct store store;

typedef struct store_opts {
	/* Keep at most this many health events (the newest); 0: no limit. */
	uint64_t events_max;
	/* Drop events whose time is older than this; 0: no limit. */
	uint64_t events_max_age_ms;
	/* How long a statement waits for the other connection's lock. */
	unsigned busy_timeout_ms;
} store_opts;

/* The defaults above. store_open(.., NULL, ..) uses them too. */
void store_opts_init(store_opts *o);

/* Open (creating when missing) the store at path: the file, its schema,
 * WAL mode. Fails with a one-line reason in err when the directory is
 * missing or not writable, the file is not an SQLite database or is a
 * database of something else, or its schema version is newer than
 * STORE_SCHEMA_VERSION. A foreign file is never modified. */
int store_open(const char *path, const store_opts *opts, store **out, char *err,
	       size_t errlen);
/* Close the connection (the last one checkpoints the WAL). s may be NULL. */
void store_close(store *s);

/* Run PRAGMA integrity_check: 0 when "ok", else -EIO with SQLite's first
 * complaint in err. */
int store_integrity_check(store *s, char *err, size_t errlen);

/* ---- API objects ---- */

typedef enum store_kind { STORE_MONITOR = 0, STORE_POOL, STORE_LB } store_kind;

/* "monitor", "pool", "load balancer" (for messages). */
const char *store_kind_name(store_kind k);

/* An object as stored. Results own their strings (free with
 * store_obj_clear / store_objs_free). */
typedef struct store_obj {
	store_kind kind;
	char *id;
	char *zone; /* load balancers: their zone's name; else NULL */
	char *body; /* JSON text, as given to store_apply */
	char created_on[STORE_TIME_SZ], modified_on[STORE_TIME_SZ];
} store_obj;

/* Objects of kind k in creation order (a replace keeps an object's place);
 * for STORE_LB, zone (exact match) narrows the list, NULL lists all.
 * *out is NULL when *n is 0. */
int store_list(store *s, store_kind k, const char *zone, store_obj **out,
	       size_t *n);
/* One object; -ENOENT when absent. */
int store_get(store *s, store_kind k, const char *id, store_obj *out);
void store_obj_clear(store_obj *o);
void store_objs_free(store_obj *o, size_t n);

typedef enum store_op_type {
	STORE_CREATE = 0, /* -EEXIST when the id exists */
	STORE_REPLACE,	  /* new body/zone, same place; -ENOENT when absent */
	STORE_DELETE,	  /* -ENOENT when absent */
} store_op_type;

/* One change of a change set. The store copies nothing it keeps beyond
 * store_apply; created_on/modified_on are outputs. */
typedef struct store_op {
	store_op_type type;
	store_kind kind;
	const char *id;	  /* store_id_valid */
	const char *zone; /* create/replace: required for STORE_LB, else NULL */
	const char *body; /* create/replace: required */
	/* Cluster mode (src/cluster/): the etcd mod_revision of the object
	 * this change was computed from (a PATCH's merge), so the commit
	 * fails when another edge changed it meanwhile; 0: the revision the
	 * validation saw. The store itself ignores it. */
	int64_t base_rev;
	/* Out, on success: the object's timestamps after the change (create:
	 * both the store's clock; replace: created_on unchanged). Empty for a
	 * delete and after a failure. */
	char created_on[STORE_TIME_SZ], modified_on[STORE_TIME_SZ];
} store_op;

/* Apply ops[0..n) in order in ONE transaction with one timestamp: all of
 * them or none (a failing op rolls back the ones before it; err names
 * it: "op 2: replace pool 1f..: no such pool"). Returns once the commit is
 * durable. */
int store_apply(store *s, store_op *ops, size_t n, char *err, size_t errlen);

/* An object as another source has it (cluster mode: etcd), for
 * store_sync. body NULL: the object is gone. */
typedef struct store_sync_op {
	store_kind kind;
	const char *id;
	const char *zone;
	const char *body;
	const char *created_on, *modified_on;
} store_sync_op;

/* Make the store hold the objects as ops say, with their timestamps, in
 * one transaction: a new object goes after the others (lists keep the
 * order of ops), a known one is replaced in place, one with body NULL is
 * deleted (absent: nothing to do). With replace_all, every object that
 * ops do not name is deleted too. 0, or a negative errno with err set
 * (nothing changed). */
int store_sync(store *s, const store_sync_op *ops, size_t n, bool replace_all,
	       char *err, size_t errlen);

/* A fresh random id: 32 lowercase hex digits (128 bits from getrandom)
 * and a NUL. 0 or -errno. */
int store_id_new(char out[STORE_ID_LEN + 1]);
/* 1..STORE_ID_MAX characters of [A-Za-z0-9_.-]: what store_apply accepts
 * (ids land in URLs and messages). */
bool store_id_valid(const char *id);

/* unix_us (µs since the epoch) as "2014-01-01T05:20:00.123456Z". */
void store_time_format(uint64_t unix_us, char out[STORE_TIME_SZ]);

/* ---- health events ---- */

typedef enum store_event_kind {
	STORE_EV_ORIGIN = 0,
	STORE_EV_POOL,
} store_event_kind;

/* One origin or pool health change. As input only read (copied by
 * store_events_submit); as a query result the strings live in mem_. */
typedef struct store_event {
	/* Results: assigned by the store, grows; ignored on input. */
	int64_t id;
	store_event_kind kind;
	const char *pool_id;   /* required */
	const char *pool_name; /* NULL when not known */
	/* Origin events: required; pool events: NULL. */
	const char *origin_name;
	/* "healthy", "unhealthy", "unknown", "degraded", "critical". */
	const char *old_state, *new_state; /* required */
	const char *reason;		   /* NULL reads back as "" */
	/* Whether new_state counts as healthy (origin healthy; pool healthy
	 * or degraded): what the *_healthy filters match. */
	bool healthy;
	uint64_t time_ms; /* ms since the epoch */
	char *mem_;	  /* results: owns the strings; NULL on input */
} store_event;

/* Insert evs[0..n) in one transaction, then trim to the retention limits.
 * Synchronous (disk I/O): for the writer thread, tools and tests, never the
 * health thread. -EINVAL (nothing inserted) if an event lacks a required
 * field. */
int store_events_add(store *s, const store_event *evs, size_t n);

typedef enum store_tristate {
	STORE_ANY = 0, /* zero-initialised filters match everything */
	STORE_NO,
	STORE_YES,
} store_tristate;

/* The filters of Cloudflare's /user/load_balancing_analytics/events.
 * Every field is a further condition; zero means "no condition". */
typedef struct store_event_filter {
	uint64_t since_ms, until_ms; /* time_ms >= since, <= until; 0: open */
	const char *pool_id;	     /* exact */
	const char *pool_name;	     /* exact */
	const char *origin_name;     /* exact; set: origin events only */
	/* origin_healthy alone: origin events with that verdict; pool_healthy
	 * alone: pool events with that verdict; both: either of them. */
	store_tristate origin_healthy, pool_healthy;
	size_t offset; /* skip this many matches (paging) */
	size_t limit;  /* at most this many; 0: all */
} store_event_filter;

/* Matching events, newest first (time_ms, then id, descending). total (may
 * be NULL) gets the number of matches ignoring offset and limit, for the
 * API's result_info. f may be NULL (everything). */
int store_events_query(store *s, const store_event_filter *f, store_event **out,
		       size_t *n, size_t *total);
void store_events_free(store_event *evs, size_t n);

/* ---- the asynchronous event writer ---- */

typedef struct store_events_writer store_events_writer;

/* Counters; all grow except queued.
 *   submitted  events accepted by store_events_submit
 *   written    events committed to the store
 *   dropped    events lost because the queue was full (the oldest queued
 *              goes), or invalid
 *   failed     events lost because their batch could not be written
 *   queued     events waiting in the queue right now */
typedef struct store_writer_stats {
	uint64_t submitted, written, dropped, failed;
	uint64_t queued;
} store_writer_stats;

/* Open the store at path on a second connection (synchronous=NORMAL:
 * WAL commits survive a process crash, a power loss may take the last
 * batches) and start the writer thread. queue_max 0 means
 * STORE_WRITER_QUEUE_DEFAULT. NULL with err set on failure (the reasons of
 * store_open). */
store_events_writer *store_events_writer_start(const char *path,
					       const store_opts *opts,
					       size_t queue_max, char *err,
					       size_t errlen);

/* Copy ev into the queue and wake the writer. O(1), no I/O, never waits
 * for a write: safe from the health thread's callback. When the queue is
 * full the oldest queued event is dropped (counted). w may be NULL (the
 * event is ignored). */
void store_events_submit(store_events_writer *w, const store_event *ev);

/* Wait until everything submitted before the call is written (or failed).
 * 0, or -ETIMEDOUT after timeout_ms. */
int store_events_writer_flush(store_events_writer *w, unsigned timeout_ms);

void store_events_writer_stats(store_events_writer *w, store_writer_stats *st);

/* Write what is queued, stop the thread, close the connection. Must not
 * race with submit (stop the health thread first). w may be NULL. */
void store_events_writer_stop(store_events_writer *w);

#endif
