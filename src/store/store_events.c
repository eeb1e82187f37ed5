/* store_events.c - health events: insert with retention, the filtered
 * query, and the asynchronous writer the health thread submits to.
 *
 * The writer is a bounded ring of event copies under one mutex, and a
 * thread with its own connection. The mutex is only ever held to move
 * events in or out of the ring (never across I/O), so submit costs a copy
 * and a short lock, whatever the disk does. The thread takes everything
 * queued (up to WRITER_BATCH) and writes it in one transaction: a burst of
 * changes (a whole pool going down) costs one fsync, not one per origin.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "store/store_int.h"

enum { WRITER_BATCH = 512 };

static bool event_valid(const store_event *ev)
{
	if (!ev->pool_id || !ev->old_state || !ev->new_state)
		return false;
	if (ev->kind == STORE_EV_ORIGIN)
		return ev->origin_name != NULL;
	return ev->kind == STORE_EV_POOL && ev->origin_name == NULL;
}

static sqlite3_int64 clamp_i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

/* Keep the newest events_max (by id, i.e. by arrival) and nothing older
 * than events_max_age_ms (by the event's time). Runs inside the insert's
 * transaction, so the table never holds more than the limit on disk. */
static int trim(store *s)
{
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_OK;
	if (s->opts.events_max) {
		rc = sqlite3_prepare_v2(
		    s->db,
		    "DELETE FROM events WHERE id <= (SELECT id FROM events "
		    "ORDER BY id DESC LIMIT 1 OFFSET ?1)",
		    -1, &st, NULL);
		if (rc == SQLITE_OK) {
			/* The (max + 1)-th newest and all before it. */
			sqlite3_bind_int64(st, 1,
					   clamp_i64(s->opts.events_max));
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc != SQLITE_DONE)
			return rc;
		rc = SQLITE_OK;
	}
	uint64_t now = core_wall_ms();
	if (s->opts.events_max_age_ms && now > s->opts.events_max_age_ms) {
		rc = sqlite3_prepare_v2(s->db,
					"DELETE FROM events WHERE time_ms < ?1",
					-1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(
			    st, 1, clamp_i64(now - s->opts.events_max_age_ms));
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	return rc;
}

int store_events_add(store *s, const store_event *evs, size_t n)
{
	sqlite3_stmt *st = NULL;
	char err[256];
	int r, rc = SQLITE_OK;
	for (size_t i = 0; i < n; i++)
		if (!event_valid(&evs[i]))
			return -EINVAL;
	if (!n)
		return 0;
	if ((r = store_exec(s, "BEGIN IMMEDIATE", "insert events: begin", err,
			    sizeof(err))))
		goto fail;
	rc = sqlite3_prepare_v2(
	    s->db,
	    "INSERT INTO events (kind, pool_id, pool_name, origin_name, "
	    "old_state, new_state, healthy, reason, time_ms) VALUES (?1, ?2, "
	    "?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	    -1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		const store_event *ev = &evs[i];
		sqlite3_bind_int(st, 1, (int)ev->kind);
		sqlite3_bind_text(st, 2, ev->pool_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, ev->pool_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, ev->origin_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, ev->old_state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, ev->new_state, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 7, ev->healthy ? 1 : 0);
		sqlite3_bind_text(st, 8, ev->reason ? ev->reason : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 9, clamp_i64(ev->time_ms));
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = trim(s);
	if (rc != SQLITE_OK) {
		snprintf(err, sizeof(err), "store %s: insert events: %s",
			 s->path, sqlite3_errmsg(s->db));
		r = store_errno(rc);
		r = r ? r : -EIO;
		goto fail;
	}
	if (!(r = store_exec(s, "COMMIT", "commit events", err, sizeof(err))))
		return 0;
fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	log_error("%s", err);
	return r;
}

/* ---- query ---- */

/* A WHERE clause and its parameters, built from the filter. */
typedef struct where {
	char sql[512];
	size_t len;
	int nb;
	struct {
		const char *text; /* NULL: an integer */
		sqlite3_int64 i;
	} b[12];
} where;

static void w_add(where *w, const char *cond)
{
	int k =
	    snprintf(w->sql + w->len, sizeof(w->sql) - w->len, " AND %s", cond);
	if (k > 0)
		w->len += (size_t)k;
}

static void w_text(where *w, const char *t)
{
	w->b[w->nb].text = t;
	w->nb++;
}

static void w_int(where *w, sqlite3_int64 i)
{
	w->b[w->nb].text = NULL;
	w->b[w->nb].i = i;
	w->nb++;
}

/* oldest_ms: events older than this are past their age (they are only
 * deleted at the next insert); 0: no bound. */
static void build_where(where *w, const store_event_filter *f,
			uint64_t oldest_ms)
{
	memset(w, 0, sizeof(*w));
	w->len = (size_t)snprintf(w->sql, sizeof(w->sql), "WHERE 1");
	uint64_t since = MAX(f->since_ms, oldest_ms);
	if (since) {
		w_add(w, "time_ms >= ?");
		w_int(w, clamp_i64(since));
	}
	if (f->until_ms) {
		w_add(w, "time_ms <= ?");
		w_int(w, clamp_i64(f->until_ms));
	}
	if (f->pool_id) {
		w_add(w, "pool_id = ?");
		w_text(w, f->pool_id);
	}
	if (f->pool_name) {
		w_add(w, "pool_name = ?");
		w_text(w, f->pool_name);
	}
	if (f->origin_name) {
		w_add(w, "kind = 0 AND origin_name = ?");
		w_text(w, f->origin_name);
	}
	bool oh = f->origin_healthy != STORE_ANY;
	bool ph = f->pool_healthy != STORE_ANY;
	if (oh && ph) {
		w_add(w, "((kind = 0 AND healthy = ?) OR (kind = 1 AND healthy "
			 "= ?))");
		w_int(w, f->origin_healthy == STORE_YES);
		w_int(w, f->pool_healthy == STORE_YES);
	} else if (oh) {
		w_add(w, "kind = 0 AND healthy = ?");
		w_int(w, f->origin_healthy == STORE_YES);
	} else if (ph) {
		w_add(w, "kind = 1 AND healthy = ?");
		w_int(w, f->pool_healthy == STORE_YES);
	}
}

static void bind_where(sqlite3_stmt *st, const where *w)
{
	for (int i = 0; i < w->nb; i++) {
		if (w->b[i].text)
			sqlite3_bind_text(st, i + 1, w->b[i].text, -1,
					  SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, i + 1, w->b[i].i);
	}
}

/* One block per event for its strings: a result is freed with one free(),
 * and a queued copy in the writer likewise. */
static void event_copy(store_event *dst, const store_event *src)
{
	const char *in[6] = {src->pool_id,     src->pool_name,
			     src->origin_name, src->old_state,
			     src->new_state,   src->reason ? src->reason : ""};
	size_t len[6], total = 0;
	for (int i = 0; i < 6; i++) {
		len[i] = in[i] ? strlen(in[i]) + 1 : 0;
		total += len[i];
	}
	char *mem = xmalloc(total);
	const char *outp[6];
	char *p = mem;
	for (int i = 0; i < 6; i++) {
		if (in[i]) {
			memcpy(p, in[i], len[i]);
			outp[i] = p;
			p += len[i];
		} else {
			outp[i] = NULL;
		}
	}
	*dst = *src;
	dst->pool_id = outp[0];
	dst->pool_name = outp[1];
	dst->origin_name = outp[2];
	dst->old_state = outp[3];
	dst->new_state = outp[4];
	dst->reason = outp[5];
	dst->mem_ = mem;
}

static void row_to_event(sqlite3_stmt *st, store_event *ev)
{
	store_event tmp = {
	    .id = sqlite3_column_int64(st, 0),
	    .kind = sqlite3_column_int(st, 1) ? STORE_EV_POOL : STORE_EV_ORIGIN,
	    .pool_id = (const char *)sqlite3_column_text(st, 2),
	    .pool_name = (const char *)sqlite3_column_text(st, 3),
	    .origin_name = (const char *)sqlite3_column_text(st, 4),
	    .old_state = (const char *)sqlite3_column_text(st, 5),
	    .new_state = (const char *)sqlite3_column_text(st, 6),
	    .reason = (const char *)sqlite3_column_text(st, 7),
	    .healthy = sqlite3_column_int(st, 8) != 0,
	    .time_ms = (uint64_t)sqlite3_column_int64(st, 9),
	};
	/* NOT NULL columns; "" keeps callers from ever seeing NULL there. */
	if (!tmp.pool_id)
		tmp.pool_id = "";
	if (!tmp.old_state)
		tmp.old_state = "";
	if (!tmp.new_state)
		tmp.new_state = "";
	event_copy(ev, &tmp);
}

void store_events_free(store_event *evs, size_t n)
{
	for (size_t i = 0; evs && i < n; i++)
		free(evs[i].mem_);
	free(evs);
}

int store_events_query(store *s, const store_event_filter *f, store_event **out,
		       size_t *n, size_t *total)
{
	static const store_event_filter all = {0};
	sqlite3_stmt *st = NULL;
	store_event *v = NULL;
	size_t len = 0, cap = 0;
	char sql[768], err[256];
	where w;
	int r, rc;
	*out = NULL;
	*n = 0;
	if (total)
		*total = 0;
	if (!f)
		f = &all;
	/* The age limit holds for what is answered too, whether or not an
	 * insert has trimmed the table lately. */
	uint64_t now = core_wall_ms(), oldest = 0;
	if (s->opts.events_max_age_ms && now > s->opts.events_max_age_ms)
		oldest = now - s->opts.events_max_age_ms;
	build_where(&w, f, oldest);
	/* One read transaction: the count and the page see the same rows
	 * while the writer keeps inserting. */
	if ((r = store_exec(s, "BEGIN", "begin", err, sizeof(err))))
		goto fail_log;
	if (total) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM events %s",
			 w.sql);
		rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK) {
			bind_where(st, &w);
			rc = sqlite3_step(st);
		}
		if (rc != SQLITE_ROW)
			goto sqlerr;
		*total = (size_t)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		st = NULL;
	}
	snprintf(sql, sizeof(sql),
		 "SELECT id, kind, pool_id, pool_name, origin_name, "
		 "old_state, new_state, reason, healthy, time_ms FROM events "
		 "%s ORDER BY time_ms DESC, id DESC LIMIT ? OFFSET ?",
		 w.sql);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlerr;
	bind_where(st, &w);
	sqlite3_bind_int64(st, w.nb + 1,
			   f->limit ? clamp_i64(f->limit) : (sqlite3_int64)-1);
	sqlite3_bind_int64(st, w.nb + 2, clamp_i64(f->offset));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		row_to_event(st, &v[len++]);
	}
	if (rc != SQLITE_DONE)
		goto sqlerr;
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (!len) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = len;
	return 0;
sqlerr:
	snprintf(err, sizeof(err), "store %s: query events: %s", s->path,
		 sqlite3_errmsg(s->db));
	r = store_errno(rc);
	r = r ? r : -EIO;
	sqlite3_finalize(st);
	store_events_free(v, len);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (total)
		*total = 0;
fail_log:
	log_error("%s", err);
	return r;
}

/* ---- the writer ---- */

struct store_events_writer {
	store *s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* to the thread: queued, or stopping */
	pthread_cond_t done; /* to flushers: a batch is finished */
	/* Under lock. */
	store_event *ring;
	size_t cap, head, len;
	bool stopping;
	/* Flush compares these: events ever pushed into the ring, and events
	 * ever done with (written, failed, or dropped from the ring). */
	uint64_t pushed, finished;
	_Atomic uint64_t submitted, written, dropped, failed;
};

static void *writer_main(void *arg)
{
	store_events_writer *w = arg;
	store_event *batch = xmalloc(WRITER_BATCH * sizeof(*batch));
	core_log_set_thread_name("store");
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->len && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (!w->len)
			break; /* stopping, and everything is written */
		size_t k = 0;
		while (w->len && k < WRITER_BATCH) {
			batch[k++] = w->ring[w->head];
			w->head = (w->head + 1) % w->cap;
			w->len--;
		}
		pthread_mutex_unlock(&w->lock);

		int r = store_events_add(w->s, batch, k);
		if (r == 0) {
			atomic_fetch_add(&w->written, k);
		} else {
			/* Logged by store_events_add. Not retried: the
			 * busy timeout already waited, and a history
			 * that keeps up beats a complete one that
			 * falls behind. */
			atomic_fetch_add(&w->failed, k);
		}
		for (size_t i = 0; i < k; i++)
			free(batch[i].mem_);

		pthread_mutex_lock(&w->lock);
		w->finished += k;
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	free(batch);
	return NULL;
}

store_events_writer *store_events_writer_start(const char *path,
					       const store_opts *opts,
					       size_t queue_max, char *err,
					       size_t errlen)
{
	store *s = NULL;
	if (store_open_conn(path, opts, false, &s, err, errlen))
		return NULL;
	store_events_writer *w = xcalloc(1, sizeof(*w));
	w->s = s;
	w->cap = queue_max ? queue_max : STORE_WRITER_QUEUE_DEFAULT;
	w->ring = xcalloc(w->cap, sizeof(*w->ring));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->done, &ca);
	pthread_condattr_destroy(&ca);

	/* The thread takes no process signals (the main thread waits on
	 * them with signalfd). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		store_errf(err, errlen,
			   "store %s: cannot start the event "
			   "writer thread: %s",
			   path, strerror(rc));
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w->ring);
		free(w);
		store_close(s);
		return NULL;
	}
	return w;
}

void store_events_submit(store_events_writer *w, const store_event *ev)
{
	if (!w || !ev)
		return;
	if (!event_valid(ev)) {
		atomic_fetch_add(&w->dropped, 1);
		return;
	}
	store_event copy, old = {0};
	/* The copy is made before the lock, so the lock covers only the
	 * ring update. */
	event_copy(&copy, ev);
	copy.id = 0;
	pthread_mutex_lock(&w->lock);
	if (w->len == w->cap) {
		/* Full: the disk is stuck or far behind. The oldest goes:
		 * when it catches up, the latest changes matter most. */
		old = w->ring[w->head];
		w->head = (w->head + 1) % w->cap;
		w->len--;
		w->finished++;
	}
	w->ring[(w->head + w->len) % w->cap] = copy;
	w->len++;
	w->pushed++;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_add(&w->submitted, 1);
	if (old.mem_) {
		free(old.mem_);
		atomic_fetch_add(&w->dropped, 1);
	}
}

int store_events_writer_flush(store_events_writer *w, unsigned timeout_ms)
{
	struct timespec dl;
	int r = 0;
	if (!w)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	/* Everything pushed so far must be finished (written, failed or
	 * dropped); later submissions do not extend the wait. */
	uint64_t target = w->pushed;
	while (w->finished < target) {
		if (pthread_cond_timedwait(&w->done, &w->lock, &dl) ==
		    ETIMEDOUT) {
			r = w->finished < target ? -ETIMEDOUT : 0;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

void store_events_writer_stats(store_events_writer *w, store_writer_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!w)
		return;
	st->submitted = atomic_load(&w->submitted);
	st->written = atomic_load(&w->written);
	st->dropped = atomic_load(&w->dropped);
	st->failed = atomic_load(&w->failed);
	pthread_mutex_lock(&w->lock);
	st->queued = w->len;
	pthread_mutex_unlock(&w->lock);
}

void store_events_writer_stop(store_events_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	/* The thread drained the ring before it left. */
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->ring);
	store_close(w->s);
	free(w);
}
