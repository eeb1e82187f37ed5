/* store.c - opening the store (file checks, identification, schema) and the
 * API objects. Health events and their writer are in store_events.c.
 *
 * Every write is one explicit BEGIN IMMEDIATE transaction: taking the write
 * lock up front means the busy handler waits for the other connection
 * (the event writer) instead of SQLite failing a read transaction that
 * later needs to write (SQLITE_BUSY_SNAPSHOT, which no timeout retries).
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "store/store_int.h"

/* Version 1. Objects keep their creation order in seq (the rowid): a new
 * row gets max(seq) + 1, so it sorts after every object present, and a
 * replace updates the row in place. Events use AUTOINCREMENT so an id is
 * never reused once retention has deleted it (clients page by id). */
static const char schema_v1[] =
    "CREATE TABLE objects ("
    " seq INTEGER PRIMARY KEY,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 2),"
    " id TEXT NOT NULL,"
    " zone TEXT,"
    " body TEXT NOT NULL,"
    " created_on TEXT NOT NULL,"
    " modified_on TEXT NOT NULL,"
    " UNIQUE (kind, id));"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind INTEGER NOT NULL CHECK (kind IN (0, 1)),"
    " pool_id TEXT NOT NULL,"
    " pool_name TEXT,"
    " origin_name TEXT,"
    " old_state TEXT NOT NULL,"
    " new_state TEXT NOT NULL,"
    " healthy INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL);"
    "CREATE INDEX events_time ON events (time_ms, id);"
    "CREATE INDEX events_pool ON events (pool_id, time_ms, id);";

void store_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int store_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_NOTADB:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int store_exec(store *s, const char *sql, const char *what, char *err,
	       size_t errlen)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		store_errf(err, errlen, "store %s: %s: %s", s->path, what,
			   sqlite3_errmsg(s->db));
		return store_errno(rc);
	}
	return 0;
}

void store_opts_init(store_opts *o)
{
	o->events_max = STORE_EVENTS_MAX_DEFAULT;
	o->events_max_age_ms = STORE_EVENTS_MAX_AGE_DEFAULT_MS;
	o->busy_timeout_ms = STORE_BUSY_TIMEOUT_DEFAULT_MS;
}

const char *store_kind_name(store_kind k)
{
	switch (k) {
	case STORE_MONITOR:
		return "monitor";
	case STORE_POOL:
		return "pool";
	case STORE_LB:
		return "load balancer";
	}
	return "object";
}

/* ---- open ---- */

/* SQLite's own "unable to open database file" names neither the file nor
 * the reason, so look first: the directory must exist and be writable
 * (WAL mode creates path-wal and path-shm beside the file), and an
 * existing path must be a readable and writable file. */
static int check_path(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct stat st;
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

	if (stat(dir, &st) != 0) {
		int e = errno;
		if (e == ENOENT)
			store_errf(err, errlen,
				   "store %s: directory %s does not exist",
				   path, dir);
		else
			store_errf(err, errlen, "store %s: directory %s: %s",
				   path, dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		store_errf(err, errlen, "store %s: %s is not a directory", path,
			   dir);
		return -ENOTDIR;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		store_errf(err, errlen,
			   "store %s: directory %s is not writable (the store "
			   "keeps its -wal and -shm files beside it)",
			   path, dir);
		return -EACCES;
	}
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			store_errf(err, errlen, "store %s: is a directory",
				   path);
			return -EISDIR;
		}
		if (access(path, R_OK | W_OK) != 0) {
			store_errf(err, errlen,
				   "store %s: file is not readable and "
				   "writable",
				   path);
			return -EACCES;
		}
	} else if (errno != ENOENT) {
		int e = errno;
		store_errf(err, errlen, "store %s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

typedef struct store_ident {
	int64_t app_id, version, tables;
} store_ident;

static int identify(store *s, store_ident *id, char *err, size_t errlen)
{
	int rc = query_int(s->db, "PRAGMA application_id", &id->app_id);
	if (rc == SQLITE_OK)
		rc = query_int(s->db, "PRAGMA user_version", &id->version);
	if (rc == SQLITE_OK)
		rc = query_int(s->db, "SELECT count(*) FROM sqlite_master",
			       &id->tables);
	if ((rc & 0xff) == SQLITE_NOTADB) {
		store_errf(err, errlen,
			   "store %s: not a Meridian store (the file is not "
			   "an SQLite database)",
			   s->path);
		return -EINVAL;
	}
	if (rc != SQLITE_OK) {
		store_errf(err, errlen, "store %s: cannot read: %s", s->path,
			   sqlite3_errmsg(s->db));
		return store_errno(rc);
	}
	return 0;
}

/* Refuse what is not ours (or too new) before anything is written to the
 * file: a wrong edge.store path must not convert someone's database. */
static int check_ident(store *s, const store_ident *id, char *err,
		       size_t errlen)
{
	bool empty = id->app_id == 0 && id->version == 0 && id->tables == 0;
	if (!empty && id->app_id != STORE_APPLICATION_ID) {
		store_errf(err, errlen,
			   "store %s: not a Meridian store (an SQLite database "
			   "with application_id 0x%08llx and %lld tables)",
			   s->path, (unsigned long long)(uint32_t)id->app_id,
			   (long long)id->tables);
		return -EINVAL;
	}
	if (id->version > STORE_SCHEMA_VERSION) {
		store_errf(err, errlen,
			   "store %s: schema version %lld is newer than this "
			   "Meridian understands (%d); run a newer meridian or "
			   "restore a backup",
			   s->path, (long long)id->version,
			   STORE_SCHEMA_VERSION);
		return -ENOTSUP;
	}
	if (id->app_id == STORE_APPLICATION_ID && id->version < 1) {
		store_errf(err, errlen,
			   "store %s: damaged Meridian store (no schema "
			   "version)",
			   s->path);
		return -EINVAL;
	}
	return 0;
}

/* Create or migrate the schema inside one write transaction. The checks are
 * repeated under the lock: the event writer's connection may be opening
 * the same new file at the same moment. */
static int ensure_schema(store *s, char *err, size_t errlen)
{
	store_ident id;
	int r = store_exec(s, "BEGIN IMMEDIATE", "begin", err, errlen);
	if (r)
		return r;
	if ((r = identify(s, &id, err, errlen)) ||
	    (r = check_ident(s, &id, err, errlen)))
		goto out;
	if (id.version == 0) {
		char sql[sizeof(schema_v1) + 128];
		snprintf(sql, sizeof(sql),
			 "%sPRAGMA application_id = %d; PRAGMA user_version = "
			 "1;",
			 schema_v1, STORE_APPLICATION_ID);
		if ((r = store_exec(s, sql, "create schema", err, errlen)))
			goto out;
		id.version = 1;
	}
	/* Migrations from version N to N + 1 go here, in order. */
	r = store_exec(s, "COMMIT", "commit schema", err, errlen);
out:
	if (r && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int store_open_conn(const char *path, const store_opts *opts, bool sync_full,
		    store **out, char *err, size_t errlen)
{
	store *s = NULL;
	store_ident id;
	int r;
	*out = NULL;
	if (!path || !*path) {
		store_errf(err, errlen, "store: no path");
		return -EINVAL;
	}
	if ((r = check_path(path, err, errlen)))
		return r;
	s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(path);
	if (opts)
		s->opts = *opts;
	else
		store_opts_init(&s->opts);

	/* NOMUTEX: each connection belongs to one thread at a time (see
	 * store.h), so SQLite's per-connection mutex would only cost. */
	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		store_errf(err, errlen, "store %s: cannot open: %s", path,
			   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		r = rc == SQLITE_CANTOPEN ? -EACCES : store_errno(rc);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(
	    s->db, (int)MIN(s->opts.busy_timeout_ms, (unsigned)INT_MAX));

	if ((r = identify(s, &id, err, errlen)) ||
	    (r = check_ident(s, &id, err, errlen)))
		goto fail;

	/* WAL: readers never block the writer and the writer never blocks
	 * readers; a commit is one append + fsync of the -wal file. The mode
	 * is persistent in the file, so this is a no-op after the first
	 * open. */
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(st, 0);
		if (!mode || strcmp(mode, "wal") != 0)
			log_warn("store %s: journal mode %s, not wal (file "
				 "system without shared memory?); writes "
				 "stay atomic but readers wait for writers",
				 path, mode ? mode : "?");
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK) {
		store_errf(err, errlen, "store %s: cannot set WAL mode: %s",
			   path, sqlite3_errmsg(s->db));
		r = store_errno(rc);
		goto fail;
	}
	if ((r = store_exec(s,
			    sync_full ? "PRAGMA synchronous = FULL"
				      : "PRAGMA synchronous = NORMAL",
			    "set synchronous", err, errlen)))
		goto fail;
	if (id.version < STORE_SCHEMA_VERSION &&
	    (r = ensure_schema(s, err, errlen)))
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return r;
}

int store_open(const char *path, const store_opts *opts, store **out, char *err,
	       size_t errlen)
{
	return store_open_conn(path, opts, true, out, err, errlen);
}

void store_close(store *s)
{
	if (!s)
		return;
	/* close_v2: never leaves the handle half-open on unfinalized
	 * statements (there should be none: every function finalizes). */
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

int store_integrity_check(store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int r = 0;
	int rc =
	    sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);
		if (!res || strcmp(res, "ok") != 0) {
			store_errf(err, errlen, "store %s: integrity check: %s",
				   s->path, res ? res : "?");
			r = -EIO;
		}
	} else {
		store_errf(err, errlen, "store %s: integrity check: %s",
			   s->path, sqlite3_errmsg(s->db));
		r = store_errno(rc);
		if (!r)
			r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- ids and time ---- */

int store_id_new(char out[STORE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[STORE_ID_LEN / 2];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t k = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			out[0] = '\0';
			return -errno;
		}
		got += (size_t)k;
	}
	for (size_t i = 0; i < sizeof(rnd); i++) {
		out[2 * i] = hex[rnd[i] >> 4];
		out[2 * i + 1] = hex[rnd[i] & 15];
	}
	out[STORE_ID_LEN] = '\0';
	return 0;
}

bool store_id_valid(const char *id)
{
	size_t n = 0;
	if (!id)
		return false;
	for (; id[n]; n++) {
		char c = id[n];
		if (n >= STORE_ID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.'))
			return false;
	}
	return n > 0;
}

void store_time_format(uint64_t unix_us, char out[STORE_TIME_SZ])
{
	time_t secs = (time_t)(unix_us / 1000000u);
	unsigned us = (unsigned)(unix_us % 1000000u);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t k = strftime(out, STORE_TIME_SZ, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, STORE_TIME_SZ - k, ".%06uZ", us);
}

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- objects ---- */

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

static void col_time(sqlite3_stmt *st, int i, char out[STORE_TIME_SZ])
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, STORE_TIME_SZ, "%s", t ? (const char *)t : "");
}

/* Columns: id, zone, body, created_on, modified_on. */
#define OBJ_COLS "id, zone, body, created_on, modified_on"

static void row_to_obj(sqlite3_stmt *st, store_kind k, store_obj *o)
{
	o->kind = k;
	o->id = col_dup(st, 0);
	o->zone = col_dup(st, 1);
	o->body = col_dup(st, 2);
	if (!o->body)
		o->body = xstrdup("");
	col_time(st, 3, o->created_on);
	col_time(st, 4, o->modified_on);
}

void store_obj_clear(store_obj *o)
{
	if (!o)
		return;
	free(o->id);
	free(o->zone);
	free(o->body);
	memset(o, 0, sizeof(*o));
}

void store_objs_free(store_obj *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++)
		store_obj_clear(&o[i]);
	free(o);
}

static bool kind_ok(store_kind k)
{
	return k == STORE_MONITOR || k == STORE_POOL || k == STORE_LB;
}

int store_list(store *s, store_kind k, const char *zone, store_obj **out,
	       size_t *n)
{
	sqlite3_stmt *st = NULL;
	store_obj *v = NULL;
	size_t len = 0, cap = 0;
	int r = 0, rc;
	*out = NULL;
	*n = 0;
	if (!kind_ok(k))
		return -EINVAL;
	rc = sqlite3_prepare_v2(s->db,
				"SELECT " OBJ_COLS " FROM objects WHERE kind = "
				"?1 AND (?2 IS NULL OR zone = ?2) ORDER BY seq",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlerr;
	sqlite3_bind_int(st, 1, (int)k);
	sqlite3_bind_text(st, 2, zone, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		row_to_obj(st, k, &v[len++]);
	}
	if (rc != SQLITE_DONE)
		goto sqlerr;
	sqlite3_finalize(st);
	if (!len) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = len;
	return 0;
sqlerr:
	log_error("store %s: list %ss: %s", s->path, store_kind_name(k),
		  sqlite3_errmsg(s->db));
	r = store_errno(rc);
	sqlite3_finalize(st);
	store_objs_free(v, len);
	return r ? r : -EIO;
}

int store_get(store *s, store_kind k, const char *id, store_obj *out)
{
	sqlite3_stmt *st = NULL;
	int r;
	memset(out, 0, sizeof(*out));
	if (!kind_ok(k) || !id)
		return -EINVAL;
	int rc = sqlite3_prepare_v2(s->db,
				    "SELECT " OBJ_COLS " FROM objects WHERE "
				    "kind = ?1 AND id = ?2",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(st, 1, (int)k);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		row_to_obj(st, k, out);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	} else {
		log_error("store %s: get %s %s: %s", s->path,
			  store_kind_name(k), id, sqlite3_errmsg(s->db));
		r = store_errno(rc);
		if (!r)
			r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

/* The checks that need no database, all done before the transaction so a
 * malformed change set never takes the write lock. */
static int op_check(const store_op *op, size_t i, char *err, size_t errlen)
{
	if (op->type != STORE_CREATE && op->type != STORE_REPLACE &&
	    op->type != STORE_DELETE) {
		store_errf(err, errlen, "op %zu: unknown operation %d", i,
			   (int)op->type);
		return -EINVAL;
	}
	if (!kind_ok(op->kind)) {
		store_errf(err, errlen, "op %zu: unknown kind %d", i,
			   (int)op->kind);
		return -EINVAL;
	}
	if (!store_id_valid(op->id)) {
		store_errf(err, errlen, "op %zu: invalid %s id", i,
			   store_kind_name(op->kind));
		return -EINVAL;
	}
	if (op->type == STORE_DELETE)
		return 0;
	if (!op->body) {
		store_errf(err, errlen, "op %zu: %s %s: no body", i,
			   store_kind_name(op->kind), op->id);
		return -EINVAL;
	}
	if ((op->kind == STORE_LB) != (op->zone != NULL) ||
	    (op->zone && !*op->zone)) {
		store_errf(err, errlen, "op %zu: %s %s: %s", i,
			   store_kind_name(op->kind), op->id,
			   op->kind == STORE_LB
			       ? "a load balancer needs its zone"
			       : "only load balancers have a zone");
		return -EINVAL;
	}
	return 0;
}

static const char *const op_sql[] = {
    [STORE_CREATE] = "INSERT INTO objects (kind, id, zone, body, "
		     "created_on, modified_on) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    /* max(): a wall clock stepped back never makes an object modified
     * before it was created (same fixed-width format, so text order is
     * time order). */
    [STORE_REPLACE] = "UPDATE objects SET zone = ?3, body = ?4, "
		      "modified_on = max(?5, created_on) WHERE kind = ?1 AND "
		      "id = ?2 RETURNING created_on, modified_on",
    [STORE_DELETE] = "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
};

static const char *const op_name[] = {
    [STORE_CREATE] = "create",
    [STORE_REPLACE] = "replace",
    [STORE_DELETE] = "delete",
};

/* One op inside the open transaction. */
static int op_run(store *s, sqlite3_stmt *st, store_op *op, size_t i,
		  const char *now, char *err, size_t errlen)
{
	int r = 0;
	sqlite3_bind_int(st, 1, (int)op->kind);
	sqlite3_bind_text(st, 2, op->id, -1, SQLITE_STATIC);
	if (op->type != STORE_DELETE) {
		sqlite3_bind_text(st, 3, op->zone, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, op->body, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
	}
	int rc = sqlite3_step(st);
	if (op->type == STORE_REPLACE && rc == SQLITE_ROW) {
		col_time(st, 0, op->created_on);
		col_time(st, 1, op->modified_on);
		rc = sqlite3_step(st);
	} else if (op->type == STORE_REPLACE && rc == SQLITE_DONE) {
		r = -ENOENT;
	} else if (op->type == STORE_DELETE && rc == SQLITE_DONE &&
		   sqlite3_changes(s->db) == 0) {
		r = -ENOENT;
	} else if (op->type == STORE_CREATE && rc == SQLITE_DONE) {
		snprintf(op->created_on, STORE_TIME_SZ, "%s", now);
		snprintf(op->modified_on, STORE_TIME_SZ, "%s", now);
	}
	if (!r && rc != SQLITE_DONE) {
		if (rc == SQLITE_CONSTRAINT_UNIQUE ||
		    rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
			store_errf(err, errlen,
				   "op %zu: create %s %s: a %s with this id "
				   "exists",
				   i, store_kind_name(op->kind), op->id,
				   store_kind_name(op->kind));
			r = -EEXIST;
		} else {
			store_errf(err, errlen, "op %zu: %s %s %s: %s", i,
				   op_name[op->type], store_kind_name(op->kind),
				   op->id, sqlite3_errmsg(s->db));
			r = store_errno(rc);
			if (!r)
				r = -EIO;
		}
	} else if (r == -ENOENT) {
		store_errf(err, errlen, "op %zu: %s %s %s: no such %s", i,
			   op_name[op->type], store_kind_name(op->kind), op->id,
			   store_kind_name(op->kind));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

int store_apply(store *s, store_op *ops, size_t n, char *err, size_t errlen)
{
	sqlite3_stmt *st[ARRAY_LEN(op_sql)] = {NULL};
	char now[STORE_TIME_SZ];
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		ops[i].created_on[0] = ops[i].modified_on[0] = '\0';
		if ((r = op_check(&ops[i], i, err, errlen)))
			return r;
	}
	if (!n)
		return 0;
	if ((r = store_exec(s, "BEGIN IMMEDIATE", "begin", err, errlen)))
		return r;
	/* Taken under the write lock, so two change sets never see their
	 * timestamps in the opposite order of their commits. */
	store_time_format(wall_us(), now);
	for (size_t i = 0; i < n; i++) {
		store_op *op = &ops[i];
		if (!st[op->type]) {
			int rc = sqlite3_prepare_v2(s->db, op_sql[op->type], -1,
						    &st[op->type], NULL);
			if (rc != SQLITE_OK) {
				store_errf(err, errlen, "store %s: %s: %s",
					   s->path, op_name[op->type],
					   sqlite3_errmsg(s->db));
				r = store_errno(rc);
				goto out;
			}
		}
		if ((r = op_run(s, st[op->type], op, i, now, err, errlen)))
			goto out;
	}
	/* Finalize before COMMIT: nothing may keep a statement pending. */
	for (size_t i = 0; i < ARRAY_LEN(st); i++) {
		sqlite3_finalize(st[i]);
		st[i] = NULL;
	}
	/* With synchronous=FULL the WAL is fsynced before COMMIT returns:
	 * the acknowledgement the API gives is a durable one. */
	r = store_exec(s, "COMMIT", "commit", err, errlen);
out:
	for (size_t i = 0; i < ARRAY_LEN(st); i++)
		sqlite3_finalize(st[i]);
	if (r) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		for (size_t i = 0; i < n; i++)
			ops[i].created_on[0] = ops[i].modified_on[0] = '\0';
	}
	return r;
}

/* Keys of every object: (kind, id) pairs, for store_sync's replace_all. */
static int list_keys(store *s, store_kind **kinds, char ***ids, size_t *n)
{
	sqlite3_stmt *st = NULL;
	size_t len = 0, cap = 0;
	*kinds = NULL;
	*ids = NULL;
	int rc = sqlite3_prepare_v2(s->db, "SELECT kind, id FROM objects", -1,
				    &st, NULL);
	if (rc != SQLITE_OK)
		return store_errno(rc) ? store_errno(rc) : -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			*kinds = xrealloc(*kinds, cap * sizeof(**kinds));
			*ids = xrealloc(*ids, cap * sizeof(**ids));
		}
		(*kinds)[len] = (store_kind)sqlite3_column_int(st, 0);
		(*ids)[len++] = col_dup(st, 1);
	}
	sqlite3_finalize(st);
	*n = len;
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_sync(store *s, const store_sync_op *ops, size_t n, bool replace_all,
	       char *err, size_t errlen)
{
	static const char *const put_sql =
	    "INSERT INTO objects (kind, id, zone, body, created_on, "
	    "modified_on) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kind, "
	    "id) DO UPDATE SET zone = excluded.zone, body = excluded.body, "
	    "created_on = excluded.created_on, modified_on = "
	    "excluded.modified_on";
	sqlite3_stmt *put = NULL, *del = NULL;
	store_kind *kinds = NULL;
	char **ids = NULL;
	size_t nkeys = 0;
	int r;
	for (size_t i = 0; i < n; i++)
		if (!kind_ok(ops[i].kind) || !store_id_valid(ops[i].id) ||
		    (ops[i].body &&
		     (!ops[i].created_on || !ops[i].modified_on))) {
			store_errf(err, errlen, "sync op %zu: invalid", i);
			return -EINVAL;
		}
	if ((r = store_exec(s, "BEGIN IMMEDIATE", "begin", err, errlen)))
		return r;
	int rc = sqlite3_prepare_v2(s->db, put_sql, -1, &put, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
		    s->db, "DELETE FROM objects WHERE kind = ?1 AND id = ?2",
		    -1, &del, NULL);
	if (rc != SQLITE_OK)
		goto sqlerr;
	if (replace_all) {
		if ((r = list_keys(s, &kinds, &ids, &nkeys)))
			goto fail;
		for (size_t k = 0; k < nkeys; k++) {
			bool named = false;
			for (size_t i = 0; !named && i < n; i++)
				named = ops[i].kind == kinds[k] &&
					!strcmp(ops[i].id, ids[k]);
			if (named)
				continue;
			sqlite3_bind_int(del, 1, (int)kinds[k]);
			sqlite3_bind_text(del, 2, ids[k], -1, SQLITE_STATIC);
			rc = sqlite3_step(del);
			sqlite3_reset(del);
			if (rc != SQLITE_DONE)
				goto sqlerr;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const store_sync_op *o = &ops[i];
		sqlite3_stmt *st = o->body ? put : del;
		sqlite3_bind_int(st, 1, (int)o->kind);
		sqlite3_bind_text(st, 2, o->id, -1, SQLITE_STATIC);
		if (o->body) {
			sqlite3_bind_text(st, 3, o->zone, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, o->body, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, o->created_on, -1,
					  SQLITE_STATIC);
			sqlite3_bind_text(st, 6, o->modified_on, -1,
					  SQLITE_STATIC);
		}
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_DONE)
			goto sqlerr;
	}
	sqlite3_finalize(put);
	sqlite3_finalize(del);
	put = del = NULL;
	r = store_exec(s, "COMMIT", "commit", err, errlen);
	goto out;
sqlerr:
	store_errf(err, errlen, "store %s: sync: %s", s->path,
		   sqlite3_errmsg(s->db));
	r = store_errno(rc);
	if (!r)
		r = -EIO;
fail:
	sqlite3_finalize(put);
	sqlite3_finalize(del);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
	if (r && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t k = 0; k < nkeys; k++)
		free(ids[k]);
	free(ids);
	free(kinds);
	return r;
}
