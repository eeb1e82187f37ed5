/* Unit tests for the store: objects (CRUD, creation order, ids, timestamps,
 * change-set atomicity), reopen, files that are not a Meridian store,
 * health events (filters, retention), the asynchronous writer (batching,
 * full queue, failed batches, running beside the object connection), and
 * durability: a child process writes in a loop and is SIGKILLed at random
 * points; everything it acknowledged must be there, and the store must
 * open clean and pass PRAGMA integrity_check.
 *
 * Files live in a fresh directory under /tmp, removed at the end. The kill
 * test's seed is printed; MERIDIAN_TEST_SEED replays it. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/core_util.h"
#include "store/store.h"

static char tmpdir[64];

/* tmpdir/name, with any previous file of that name (and its -wal, -shm)
 * removed, so each test starts from nothing. */
static const char *fresh(const char *name)
{
	static char path[4][256];
	static int k;
	char *p = path[k++ % 4];
	char aux[300];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	unlink(p);
	snprintf(aux, sizeof(aux), "%s-wal", p);
	unlink(aux);
	snprintf(aux, sizeof(aux), "%s-shm", p);
	unlink(aux);
	return p;
}

static store *open_ok(const char *path, const store_opts *o)
{
	store *s = NULL;
	char err[256] = "";
	int r = store_open(path, o, &s, err, sizeof(err));
	if (r)
		print_error("store_open: %d %s\n", r, err);
	assert_int_equal(r, 0);
	assert_non_null(s);
	return s;
}

static int rm_one(const char *p, const struct stat *sb, int flag,
		  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/meridian-store-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "2014-01-01T05:20:00.123456Z" -> µs since the epoch; asserts the shape. */
static uint64_t parse_time(const char *t)
{
	struct tm tm = {0};
	assert_int_equal(strlen(t), 27);
	const char *end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(end);
	assert_int_equal(end[0], '.');
	for (int i = 1; i <= 6; i++)
		assert_true(end[i] >= '0' && end[i] <= '9');
	assert_string_equal(end + 7, "Z");
	return (uint64_t)timegm(&tm) * 1000000u +
	       (uint64_t)strtoul(end + 1, NULL, 10);
}

static void assert_recent(const char *t, uint64_t before, uint64_t after)
{
	uint64_t v = parse_time(t);
	assert_true(v + 1 >= before); /* µs resolution both sides */
	assert_true(v <= after + 1);
}

/* ---- ids and time ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_ids_and_time(void **state)
{
	(void)state;
	enum { N = 1000 };
	static char ids[N][STORE_ID_LEN + 1];
	for (int i = 0; i < N; i++) {
		assert_int_equal(store_id_new(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), 32);
		for (int j = 0; j < 32; j++)
			assert_non_null(strchr("0123456789abcdef", ids[i][j]));
		assert_true(store_id_valid(ids[i]));
	}
	qsort(ids, N, sizeof(ids[0]), cmp_str);
	for (int i = 1; i < N; i++)
		assert_true(strcmp(ids[i - 1], ids[i]) != 0);

	assert_true(store_id_valid("a"));
	assert_true(store_id_valid("my-pool_1.v2"));
	assert_false(store_id_valid(NULL));
	assert_false(store_id_valid(""));
	assert_false(store_id_valid("a/b"));
	assert_false(store_id_valid("a b"));
	assert_false(store_id_valid("caf\xc3\xa9"));
	char longid[STORE_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid));
	longid[STORE_ID_MAX] = '\0';
	assert_true(store_id_valid(longid));
	longid[STORE_ID_MAX] = 'a';
	longid[STORE_ID_MAX + 1] = '\0';
	assert_false(store_id_valid(longid));

	char t[STORE_TIME_SZ];
	store_time_format(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00.000000Z");
	store_time_format(1388553600123456ull, t);
	assert_string_equal(t, "2014-01-01T05:20:00.123456Z");
	assert_int_equal(parse_time(t), 1388553600123456ull);
}

/* ---- objects ---- */

static int apply1(store *s, store_op_type type, store_kind kind, const char *id,
		  const char *zone, const char *body, store_op *out)
{
	store_op op = {
	    .type = type, .kind = kind, .id = id, .zone = zone, .body = body};
	char err[256] = "";
	int r = store_apply(s, &op, 1, err, sizeof(err));
	if (out)
		*out = op;
	return r;
}

static void test_crud(void **state)
{
	(void)state;
	store *s = open_ok(fresh("crud.db"), NULL);
	char mid[33], pid[33], lid[33];
	store_id_new(mid);
	store_id_new(pid);
	store_id_new(lid);
	store_op op;
	store_obj o;

	uint64_t t0 = now_us();
	assert_int_equal(apply1(s, STORE_CREATE, STORE_MONITOR, mid, NULL,
				"{\"type\":\"http\"}", &op),
			 0);
	uint64_t t1 = now_us();
	assert_recent(op.created_on, t0, t1);
	assert_string_equal(op.created_on, op.modified_on);
	assert_int_equal(apply1(s, STORE_CREATE, STORE_POOL, pid, NULL,
				"{\"name\":\"gcp\"}", NULL),
			 0);
	assert_int_equal(apply1(s, STORE_CREATE, STORE_LB, lid, "example.com",
				"{\"name\":\"www.example.com\"}", NULL),
			 0);

	assert_int_equal(store_get(s, STORE_MONITOR, mid, &o), 0);
	assert_int_equal(o.kind, STORE_MONITOR);
	assert_string_equal(o.id, mid);
	assert_null(o.zone);
	assert_string_equal(o.body, "{\"type\":\"http\"}");
	assert_string_equal(o.created_on, op.created_on);
	assert_string_equal(o.modified_on, op.modified_on);
	store_obj_clear(&o);
	assert_null(o.id);

	assert_int_equal(store_get(s, STORE_LB, lid, &o), 0);
	assert_string_equal(o.zone, "example.com");
	store_obj_clear(&o);

	/* Kinds are separate namespaces. */
	assert_int_equal(store_get(s, STORE_POOL, mid, &o), -ENOENT);
	assert_int_equal(store_get(s, STORE_MONITOR, "nope", &o), -ENOENT);

	/* Replace: new body, same created_on, later modified_on. */
	usleep(2000);
	store_op rep;
	t0 = now_us();
	assert_int_equal(apply1(s, STORE_REPLACE, STORE_MONITOR, mid, NULL,
				"{\"type\":\"tcp\"}", &rep),
			 0);
	t1 = now_us();
	assert_string_equal(rep.created_on, op.created_on);
	assert_recent(rep.modified_on, t0, t1);
	assert_true(strcmp(rep.modified_on, rep.created_on) > 0);
	assert_int_equal(store_get(s, STORE_MONITOR, mid, &o), 0);
	assert_string_equal(o.body, "{\"type\":\"tcp\"}");
	assert_string_equal(o.created_on, op.created_on);
	assert_string_equal(o.modified_on, rep.modified_on);
	store_obj_clear(&o);

	/* Errors. */
	assert_int_equal(
	    apply1(s, STORE_CREATE, STORE_MONITOR, mid, NULL, "{}", &op),
	    -EEXIST);
	assert_string_equal(op.created_on, "");
	assert_int_equal(
	    apply1(s, STORE_REPLACE, STORE_POOL, mid, NULL, "{}", NULL),
	    -ENOENT);
	assert_int_equal(
	    apply1(s, STORE_DELETE, STORE_POOL, mid, NULL, NULL, NULL),
	    -ENOENT);
	assert_int_equal(
	    apply1(s, STORE_CREATE, STORE_LB, "x1", NULL, "{}", NULL), -EINVAL);
	assert_int_equal(apply1(s, STORE_CREATE, STORE_POOL, "x1",
				"example.com", "{}", NULL),
			 -EINVAL);
	assert_int_equal(
	    apply1(s, STORE_CREATE, STORE_POOL, "x/1", NULL, "{}", NULL),
	    -EINVAL);
	assert_int_equal(
	    apply1(s, STORE_CREATE, STORE_POOL, "x1", NULL, NULL, NULL),
	    -EINVAL);
	assert_int_equal(
	    apply1(s, (store_op_type)7, STORE_POOL, "x1", NULL, "{}", NULL),
	    -EINVAL);
	assert_int_equal(
	    apply1(s, STORE_CREATE, (store_kind)9, "x1", NULL, "{}", NULL),
	    -EINVAL);
	char err[256] = "";
	op = (store_op){.type = STORE_REPLACE,
			.kind = STORE_POOL,
			.id = "missing",
			.body = "{}"};
	assert_int_equal(store_apply(s, &op, 1, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "op 0: replace pool missing: no such pool");

	/* Delete. */
	assert_int_equal(
	    apply1(s, STORE_DELETE, STORE_MONITOR, mid, NULL, NULL, &op), 0);
	assert_string_equal(op.created_on, "");
	assert_int_equal(store_get(s, STORE_MONITOR, mid, &o), -ENOENT);
	store_obj *v;
	size_t n;
	assert_int_equal(store_list(s, STORE_MONITOR, NULL, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	assert_int_equal(store_list(s, STORE_POOL, NULL, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, pid);
	store_objs_free(v, n);

	/* An empty change set is a no-op. */
	assert_int_equal(store_apply(s, NULL, 0, NULL, 0), 0);
	store_close(s);
}

static void test_order(void **state)
{
	(void)state;
	enum { N = 40 };
	store *s = open_ok(fresh("order.db"), NULL);
	char ids[N + 10][33];
	for (int i = 0; i < N; i++) {
		store_id_new(ids[i]);
		char body[32];
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		assert_int_equal(apply1(s, STORE_CREATE, STORE_POOL, ids[i],
					NULL, body, NULL),
				 0);
	}
	/* Delete every fifth, including the newest; replace a few. */
	for (int i = 0; i < N; i += 5)
		assert_int_equal(apply1(s, STORE_DELETE, STORE_POOL, ids[i],
					NULL, NULL, NULL),
				 0);
	assert_int_equal(
	    apply1(s, STORE_DELETE, STORE_POOL, ids[N - 1], NULL, NULL, NULL),
	    0);
	assert_int_equal(apply1(s, STORE_REPLACE, STORE_POOL, ids[3], NULL,
				"{\"n\":3,\"v\":2}", NULL),
			 0);
	for (int i = N; i < N + 10; i++) {
		store_id_new(ids[i]);
		assert_int_equal(apply1(s, STORE_CREATE, STORE_POOL, ids[i],
					NULL, "{}", NULL),
				 0);
	}
	store_obj *v;
	size_t n, k = 0;
	assert_int_equal(store_list(s, STORE_POOL, NULL, &v, &n), 0);
	char prev[STORE_TIME_SZ] = "";
	for (int i = 0; i < N + 10; i++) {
		if ((i < N && i % 5 == 0) || i == N - 1)
			continue;
		assert_true(k < n);
		assert_string_equal(v[k].id, ids[i]);
		assert_true(strcmp(v[k].created_on, prev) >= 0);
		memcpy(prev, v[k].created_on, sizeof(prev));
		k++;
	}
	assert_int_equal(k, n);
	store_objs_free(v, n);

	/* Load balancers by zone, each list in creation order. */
	const char *zones[] = {"a.example", "b.example", "a.example",
			       "c.example", "a.example"};
	char lids[5][33];
	for (int i = 0; i < 5; i++) {
		store_id_new(lids[i]);
		assert_int_equal(apply1(s, STORE_CREATE, STORE_LB, lids[i],
					zones[i], "{}", NULL),
				 0);
	}
	assert_int_equal(store_list(s, STORE_LB, "a.example", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, lids[0]);
	assert_string_equal(v[1].id, lids[2]);
	assert_string_equal(v[2].id, lids[4]);
	store_objs_free(v, n);
	assert_int_equal(store_list(s, STORE_LB, NULL, &v, &n), 0);
	assert_int_equal(n, 5);
	store_objs_free(v, n);
	assert_int_equal(store_list(s, STORE_LB, "zzz", &v, &n), 0);
	assert_int_equal(n, 0);
	/* A replace may move a load balancer to another zone. */
	assert_int_equal(apply1(s, STORE_REPLACE, STORE_LB, lids[1],
				"a.example", "{}", NULL),
			 0);
	assert_int_equal(store_list(s, STORE_LB, "a.example", &v, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[1].id, lids[1]); /* kept its place */
	store_objs_free(v, n);
	store_close(s);
}

static void assert_count(store *s, store_kind k, size_t want)
{
	store_obj *v;
	size_t n;
	assert_int_equal(store_list(s, k, NULL, &v, &n), 0);
	assert_int_equal(n, want);
	store_objs_free(v, n);
}

/* Cluster mode's cache (store_sync): objects as etcd has them, with
 * their timestamps; in place when known, appended when new; deletes of
 * absent ones are no error; replace_all drops what ops do not name. */
static void test_sync(void **state)
{
	(void)state;
	store *s = open_ok(fresh("sync.db"), NULL);
	char err[256];
	store_sync_op ops[] = {
	    {STORE_POOL, "a", NULL, "{\"n\":1}", "T1", "T2"},
	    {STORE_POOL, "b", NULL, "{\"n\":2}", "T1", "T1"},
	    {STORE_LB, "l", "example.com", "{}", "T3", "T3"},
	    {STORE_MONITOR, "gone", NULL, NULL, NULL, NULL},
	};
	assert_int_equal(store_sync(s, ops, 4, false, err, sizeof(err)), 0);
	store_obj *v;
	size_t n;
	assert_int_equal(store_list(s, STORE_POOL, NULL, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "a");
	assert_string_equal(v[0].created_on, "T1");
	assert_string_equal(v[0].modified_on, "T2");
	store_objs_free(v, n);
	/* a changes in place; c is new (last); b is gone with replace_all. */
	store_sync_op all[] = {
	    {STORE_POOL, "c", NULL, "{}", "T5", "T5"},
	    {STORE_POOL, "a", NULL, "{\"n\":9}", "T1", "T6"},
	    {STORE_LB, "l", "example.com", "{}", "T3", "T3"},
	};
	assert_int_equal(store_sync(s, all, 3, true, err, sizeof(err)), 0);
	assert_int_equal(store_list(s, STORE_POOL, NULL, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "a");
	assert_string_equal(v[0].body, "{\"n\":9}");
	assert_string_equal(v[0].modified_on, "T6");
	assert_string_equal(v[1].id, "c");
	store_objs_free(v, n);
	assert_int_equal(store_list(s, STORE_LB, NULL, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].zone, "example.com");
	store_objs_free(v, n);
	/* A bad op changes nothing. */
	store_sync_op bad[] = {{STORE_POOL, "x", NULL, "{}", "T", "T"},
			       {STORE_POOL, "no spaces", NULL, "{}", "T", "T"}};
	assert_int_equal(store_sync(s, bad, 2, true, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(store_list(s, STORE_POOL, NULL, &v, &n), 0);
	assert_int_equal(n, 2);
	store_objs_free(v, n);
	store_close(s);
}

static void test_apply_atomic(void **state)
{
	(void)state;
	store *s = open_ok(fresh("atomic.db"), NULL);
	char err[256];
	store_obj o;

	/* The third op fails: the two creates before it are rolled back. */
	store_op ops[3] = {
	    {.type = STORE_CREATE,
	     .kind = STORE_MONITOR,
	     .id = "m1",
	     .body = "{}"},
	    {.type = STORE_CREATE,
	     .kind = STORE_POOL,
	     .id = "p1",
	     .body = "{\"monitor\":\"m1\"}"},
	    {.type = STORE_CREATE,
	     .kind = STORE_MONITOR,
	     .id = "m1",
	     .body = "{}"},
	};
	assert_int_equal(store_apply(s, ops, 3, err, sizeof(err)), -EEXIST);
	assert_string_equal(
	    err, "op 2: create monitor m1: a monitor with this id exists");
	for (int i = 0; i < 3; i++)
		assert_string_equal(ops[i].created_on, "");
	assert_count(s, STORE_MONITOR, 0);
	assert_count(s, STORE_POOL, 0);

	/* Without the duplicate it goes through, one timestamp for all. */
	assert_int_equal(store_apply(s, ops, 2, err, sizeof(err)), 0);
	assert_string_equal(ops[0].created_on, ops[1].created_on);
	assert_count(s, STORE_MONITOR, 1);
	assert_count(s, STORE_POOL, 1);

	/* A failing replace after a delete: the delete is undone. */
	store_op ops2[3] = {
	    {.type = STORE_DELETE, .kind = STORE_POOL, .id = "p1"},
	    {.type = STORE_CREATE,
	     .kind = STORE_POOL,
	     .id = "p2",
	     .body = "{}"},
	    {.type = STORE_REPLACE,
	     .kind = STORE_MONITOR,
	     .id = "m9",
	     .body = "{}"},
	};
	assert_int_equal(store_apply(s, ops2, 3, err, sizeof(err)), -ENOENT);
	assert_int_equal(store_get(s, STORE_POOL, "p1", &o), 0);
	store_obj_clear(&o);
	assert_int_equal(store_get(s, STORE_POOL, "p2", &o), -ENOENT);

	/* A bad op anywhere is refused before anything runs. */
	ops2[2] = (store_op){
	    .type = STORE_CREATE, .kind = STORE_LB, .id = "l1", .body = "{}"};
	assert_int_equal(store_apply(s, ops2, 3, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "op 2: load balancer l1: a load balancer "
				 "needs its zone");
	assert_int_equal(store_get(s, STORE_POOL, "p1", &o), 0);
	store_obj_clear(&o);

	/* "Delete monitor" as the API does it: drop the reference from the
	 * pool and delete the monitor, together. */
	store_op del[2] = {
	    {.type = STORE_REPLACE,
	     .kind = STORE_POOL,
	     .id = "p1",
	     .body = "{}"},
	    {.type = STORE_DELETE, .kind = STORE_MONITOR, .id = "m1"},
	};
	assert_int_equal(store_apply(s, del, 2, err, sizeof(err)), 0);
	assert_count(s, STORE_MONITOR, 0);
	assert_int_equal(store_get(s, STORE_POOL, "p1", &o), 0);
	assert_string_equal(o.body, "{}");
	store_obj_clear(&o);

	/* Create and delete of the same id in one set. */
	store_op cd[2] = {
	    {.type = STORE_CREATE,
	     .kind = STORE_MONITOR,
	     .id = "m2",
	     .body = "{}"},
	    {.type = STORE_DELETE, .kind = STORE_MONITOR, .id = "m2"},
	};
	assert_int_equal(store_apply(s, cd, 2, err, sizeof(err)), 0);
	assert_count(s, STORE_MONITOR, 0);
	store_close(s);
}

static void test_reopen(void **state)
{
	(void)state;
	const char *path = fresh("reopen.db");
	store *s = open_ok(path, NULL);
	store_op op;
	assert_int_equal(apply1(s, STORE_CREATE, STORE_POOL, "p1", NULL,
				"{\"origins\":[{\"name\":\"b\"},{\"name\":"
				"\"a\"}]}",
				&op),
			 0);
	assert_int_equal(
	    apply1(s, STORE_CREATE, STORE_LB, "l1", "example.com", "{}", NULL),
	    0);
	store_event ev = {.kind = STORE_EV_POOL,
			  .pool_id = "p1",
			  .old_state = "unknown",
			  .new_state = "healthy",
			  .healthy = true,
			  .time_ms = core_wall_ms()};
	assert_int_equal(store_events_add(s, &ev, 1), 0);
	store_close(s);

	/* The WAL was checkpointed and removed by the last close. */
	char wal[300];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(access(wal, F_OK), -1);

	s = open_ok(path, NULL);
	store_obj o;
	assert_int_equal(store_get(s, STORE_POOL, "p1", &o), 0);
	assert_string_equal(
	    o.body, "{\"origins\":[{\"name\":\"b\"},{\"name\":\"a\"}]}");
	assert_string_equal(o.created_on, op.created_on);
	assert_string_equal(o.modified_on, op.modified_on);
	store_obj_clear(&o);
	assert_int_equal(store_get(s, STORE_LB, "l1", &o), 0);
	assert_string_equal(o.zone, "example.com");
	store_obj_clear(&o);
	store_event *evs;
	size_t n;
	assert_int_equal(store_events_query(s, NULL, &evs, &n, NULL), 0);
	assert_int_equal(n, 1);
	store_events_free(evs, n);
	assert_int_equal(store_integrity_check(s, NULL, 0), 0);
	store_close(s);

	/* The markers a later version checks. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), STORE_APPLICATION_ID);
	sqlite3_finalize(st);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc(*len ? *len : 1);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_bad_files(void **state)
{
	(void)state;
	store *s = (store *)1;
	char err[256], path[300];

	/* Text: SQLite's "file is not a database". */
	const char *txt = fresh("notes.txt");
	static const char junk[] =
	    "listen: 0.0.0.0:80\nthis is a YAML file, not a database at all, "
	    "and it is long enough for SQLite to read a header from it.\n";
	write_file(txt, junk, sizeof(junk) - 1);
	assert_int_equal(store_open(txt, NULL, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "not a Meridian store"));
	assert_non_null(strstr(err, "not an SQLite database"));
	assert_non_null(strstr(err, txt));
	/* Left as it was. */
	size_t len;
	char *back = read_file(txt, &len);
	assert_int_equal(len, sizeof(junk) - 1);
	assert_memory_equal(back, junk, len);
	free(back);

	/* Another application's SQLite database: refused, not converted. */
	const char *other = fresh("other.db");
	raw_exec(other, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
	char *before = read_file(other, &len);
	size_t len2;
	assert_int_equal(store_open(other, NULL, &s, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "not a Meridian store"));
	char *after = read_file(other, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(before, after, len);
	free(before);
	free(after);
	snprintf(path, sizeof(path), "%s-wal", other);
	assert_int_equal(access(path, F_OK), -1);

	/* Our store with a newer schema version. */
	const char *newer = fresh("newer.db");
	s = open_ok(newer, NULL);
	store_close(s);
	raw_exec(newer, "PRAGMA user_version = 99");
	assert_int_equal(store_open(newer, NULL, &s, err, sizeof(err)),
			 -ENOTSUP);
	assert_non_null(strstr(err, "schema version 99 is newer"));

	/* Directory missing, path a directory, parent a file. */
	snprintf(path, sizeof(path), "%s/no/such/dir/store.db", tmpdir);
	assert_int_equal(store_open(path, NULL, &s, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "does not exist"));
	snprintf(path, sizeof(path), "%s/adir", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(store_open(path, NULL, &s, err, sizeof(err)), -EISDIR);
	snprintf(path, sizeof(path), "%s/store.db", txt);
	assert_int_equal(store_open(path, NULL, &s, err, sizeof(err)),
			 -ENOTDIR);
	assert_int_equal(store_open("", NULL, &s, err, sizeof(err)), -EINVAL);

	/* An empty file is a new store. */
	const char *empty = fresh("empty.db");
	write_file(empty, "", 0);
	s = open_ok(empty, NULL);
	store_close(s);

	/* The writer reports the same reasons. */
	assert_null(store_events_writer_start(txt, NULL, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "not a Meridian store"));
}

/* ---- events ---- */

static store_event oev(const char *pool, const char *origin, bool healthy,
		       uint64_t t)
{
	return (store_event){.kind = STORE_EV_ORIGIN,
			     .pool_id = pool,
			     .pool_name = pool,
			     .origin_name = origin,
			     .old_state = healthy ? "unhealthy" : "healthy",
			     .new_state = healthy ? "healthy" : "unhealthy",
			     .reason = healthy ? NULL : "timeout",
			     .healthy = healthy,
			     .time_ms = t};
}

static store_event pev(const char *pool, const char *new_state, uint64_t t)
{
	return (store_event){.kind = STORE_EV_POOL,
			     .pool_id = pool,
			     .old_state = "healthy",
			     .new_state = new_state,
			     .reason = "1 of 2 origins healthy (minimum 1)",
			     .healthy = strcmp(new_state, "critical") != 0,
			     .time_ms = t};
}

static size_t query(store *s, const store_event_filter *f, store_event **v)
{
	size_t n, total;
	assert_int_equal(store_events_query(s, f, v, &n, &total), 0);
	if (!f || (!f->limit && !f->offset))
		assert_int_equal(n, total);
	return n;
}

static void test_events_filters(void **state)
{
	(void)state;
	store *s = open_ok(fresh("events.db"), NULL);
	uint64_t t = core_wall_ms() - 60000;
	store_event evs[] = {
	    oev("gcp", "gke-1", false, t + 1000), /* id 1 */
	    pev("gcp", "degraded", t + 1000),	  /* id 2, same time */
	    oev("gcp", "gke-2", false, t + 2000), /* 3 */
	    pev("gcp", "critical", t + 2000),	  /* 4 */
	    oev("aws", "ec2-1", true, t + 3000),  /* 5 */
	    oev("gcp", "gke-1", true, t + 4000),  /* 6 */
	    pev("gcp", "degraded", t + 4000),	  /* 7 */
	    oev("aws", "ec2-1", false, t + 500),  /* 8: arrived late */
	};
	size_t nev = sizeof(evs) / sizeof(evs[0]);
	assert_int_equal(store_events_add(s, evs, nev), 0);

	store_event *v;
	size_t n = query(s, NULL, &v);
	/* Newest first: time, then id. */
	static const int64_t order[] = {7, 6, 5, 4, 3, 2, 1, 8};
	assert_int_equal(n, nev);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].id, order[i]);
	/* Fields round-trip; reason NULL reads back "", pool_name NULL. */
	assert_int_equal(v[1].kind, STORE_EV_ORIGIN);
	assert_string_equal(v[1].pool_id, "gcp");
	assert_string_equal(v[1].pool_name, "gcp");
	assert_string_equal(v[1].origin_name, "gke-1");
	assert_string_equal(v[1].old_state, "unhealthy");
	assert_string_equal(v[1].new_state, "healthy");
	assert_string_equal(v[1].reason, "");
	assert_true(v[1].healthy);
	assert_int_equal(v[1].time_ms, t + 4000);
	assert_int_equal(v[0].kind, STORE_EV_POOL);
	assert_null(v[0].origin_name);
	assert_null(v[0].pool_name);
	assert_string_equal(v[0].reason, "1 of 2 origins healthy (minimum 1)");
	store_events_free(v, n);

	store_event_filter f = {.pool_id = "aws"};
	n = query(s, &f, &v);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 5);
	assert_int_equal(v[1].id, 8);
	store_events_free(v, n);

	f = (store_event_filter){.pool_name = "gcp"}; /* origin events only */
	n = query(s, &f, &v);
	assert_int_equal(n, 3);
	store_events_free(v, n);

	f = (store_event_filter){.since_ms = t + 2000, .until_ms = t + 3000};
	n = query(s, &f, &v);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].id, 5);
	assert_int_equal(v[1].id, 4);
	assert_int_equal(v[2].id, 3);
	store_events_free(v, n);

	f = (store_event_filter){.origin_name = "gke-1"};
	n = query(s, &f, &v);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, 6);
	assert_int_equal(v[1].id, 1);
	store_events_free(v, n);

	f = (store_event_filter){.origin_healthy = STORE_NO};
	n = query(s, &f, &v);
	assert_int_equal(n, 3); /* 3, 1, 8 */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].kind, STORE_EV_ORIGIN);
		assert_false(v[i].healthy);
	}
	store_events_free(v, n);

	f = (store_event_filter){.pool_healthy = STORE_YES};
	n = query(s, &f, &v);
	assert_int_equal(n, 2); /* 7, 2: degraded counts as healthy */
	assert_int_equal(v[0].id, 7);
	assert_int_equal(v[1].id, 2);
	store_events_free(v, n);

	f = (store_event_filter){.origin_healthy = STORE_YES,
				 .pool_healthy = STORE_NO};
	n = query(s, &f, &v);
	assert_int_equal(n, 3); /* 6, 5 (origins up), 4 (pool critical) */
	assert_int_equal(v[0].id, 6);
	assert_int_equal(v[1].id, 5);
	assert_int_equal(v[2].id, 4);
	store_events_free(v, n);

	f = (store_event_filter){
	    .pool_id = "gcp", .origin_healthy = STORE_NO, .since_ms = t + 1500};
	n = query(s, &f, &v);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, 3);
	store_events_free(v, n);

	/* Paging: limit and offset; total ignores both. */
	f = (store_event_filter){.limit = 3, .offset = 2};
	size_t total;
	assert_int_equal(store_events_query(s, &f, &v, &n, &total), 0);
	assert_int_equal(n, 3);
	assert_int_equal(total, nev);
	assert_int_equal(v[0].id, 5);
	assert_int_equal(v[2].id, 3);
	store_events_free(v, n);
	f = (store_event_filter){.limit = 3, .offset = 100};
	assert_int_equal(store_events_query(s, &f, &v, &n, &total), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	assert_int_equal(total, nev);

	f = (store_event_filter){.pool_id = "nope"};
	assert_int_equal(query(s, &f, &v), 0);
	/* Hostile strings are data, not SQL. */
	f = (store_event_filter){.pool_id = "x' OR '1'='1"};
	assert_int_equal(query(s, &f, &v), 0);

	/* Invalid events are refused whole. */
	store_event bad[2] = {oev("gcp", "gke-1", true, t),
			      oev("gcp", NULL, true, t)};
	assert_int_equal(store_events_add(s, bad, 2), -EINVAL);
	bad[1] = pev("gcp", "healthy", t);
	bad[1].origin_name = "gke-1";
	assert_int_equal(store_events_add(s, bad, 2), -EINVAL);
	bad[1] = pev(NULL, "healthy", t);
	assert_int_equal(store_events_add(s, bad, 2), -EINVAL);
	assert_int_equal(query(s, NULL, &v), nev);
	store_events_free(v, nev);
	store_close(s);
}

static void test_events_retention(void **state)
{
	(void)state;
	store_opts o;
	store_opts_init(&o);
	assert_int_equal(o.events_max, 10000);
	assert_int_equal(o.events_max_age_ms, 7ull * 24 * 3600 * 1000);
	o.events_max = 5;
	store *s = open_ok(fresh("retention.db"), &o);
	uint64_t now = core_wall_ms();
	for (int i = 0; i < 8; i++) {
		store_event ev = oev("p", "o", i % 2, now - 1000 + (uint64_t)i);
		assert_int_equal(store_events_add(s, &ev, 1), 0);
	}
	store_event *v;
	size_t n = query(s, NULL, &v);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].id, 8 - (int64_t)i);
	store_events_free(v, n);

	/* A batch larger than the limit keeps its newest. */
	store_event batch[7];
	for (int i = 0; i < 7; i++)
		batch[i] = oev("q", "o", true, now + (uint64_t)i);
	assert_int_equal(store_events_add(s, batch, 7), 0);
	n = query(s, NULL, &v);
	assert_int_equal(n, 5);
	assert_int_equal(v[0].id, 15);
	assert_int_equal(v[4].id, 11);
	store_events_free(v, n);

	/* Age: older than 7 days goes at the next insert, 6 days stays. */
	const uint64_t day = 24 * 3600 * 1000ull;
	store_event aged[2] = {oev("old", "o", true, now - 8 * day),
			       oev("six", "o", true, now - 6 * day)};
	assert_int_equal(store_events_add(s, aged, 2), 0);
	store_event_filter f = {.pool_id = "old"};
	assert_int_equal(query(s, &f, &v), 0);
	f.pool_id = "six";
	n = query(s, &f, &v);
	assert_int_equal(n, 1);
	/* Ids are never reused after a trim. */
	assert_int_equal(v[0].id, 17);
	store_events_free(v, n);
	store_close(s);

	/* Age is also kept at a query: an edge with no new events for a
	 * week no longer answers its week-old ones (nothing inserted, so
	 * nothing trimmed). Here the age limit is 300 ms, the event is
	 * 100 ms old when added, and the query waits for it to be older
	 * than the limit by the wall clock. */
	o.events_max = 10;
	o.events_max_age_ms = 300;
	s = open_ok(fresh("aging.db"), &o);
	uint64_t t0 = core_wall_ms() - 100;
	store_event young = oev("young", "o", true, t0);
	assert_int_equal(store_events_add(s, &young, 1), 0);
	for (int i = 0; i < 5000 && core_wall_ms() <= t0 + 300; i++)
		usleep(1000);
	assert_true(core_wall_ms() > t0 + 300);
	assert_int_equal(query(s, NULL, &v), 0);
	store_close(s);

	/* 0 turns a limit off. */
	o.events_max = 0;
	o.events_max_age_ms = 0;
	s = open_ok(fresh("unlimited.db"), &o);
	store_event many[50];
	for (int i = 0; i < 50; i++)
		many[i] = oev("p", "o", true, (uint64_t)i + 1); /* 1970 */
	assert_int_equal(store_events_add(s, many, 50), 0);
	assert_int_equal(query(s, NULL, &v), 50);
	store_events_free(v, 50);
	store_close(s);
}

/* ---- the writer ---- */

static void test_writer(void **state)
{
	(void)state;
	enum { N = 3000 };
	const char *path = fresh("writer.db");
	char err[256] = "";
	store_events_writer *w =
	    store_events_writer_start(path, NULL, 0, err, sizeof(err));
	assert_non_null(w);
	uint64_t t = core_wall_ms();
	for (int i = 0; i < N; i++) {
		char origin[32];
		snprintf(origin, sizeof(origin), "o-%d", i);
		store_event ev = oev("p", origin, i % 2, t + (uint64_t)i);
		store_events_submit(w, &ev); /* strings copied: origin dies */
	}
	store_event bad = oev("p", NULL, true, t);
	store_events_submit(w, &bad);
	store_events_submit(NULL, &bad);
	assert_int_equal(store_events_writer_flush(w, 10000), 0);
	store_writer_stats st;
	store_events_writer_stats(w, &st);
	assert_int_equal(st.submitted, N);
	assert_int_equal(st.written, N);
	assert_int_equal(st.dropped, 1); /* the invalid one */
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.queued, 0);

	/* Visible to the other connection at once. */
	store *s = open_ok(path, NULL);
	store_event *v;
	size_t n = query(s, NULL, &v);
	assert_int_equal(n, N);
	assert_string_equal(v[0].origin_name, "o-2999");
	assert_string_equal(v[N - 1].origin_name, "o-0");
	store_events_free(v, n);

	/* stop writes what is still queued. */
	for (int i = 0; i < 100; i++) {
		store_event ev = oev("late", "o", true, t);
		store_events_submit(w, &ev);
	}
	store_events_writer_stop(w);
	store_events_writer_stop(NULL);
	store_event_filter f = {.pool_id = "late"};
	n = query(s, &f, &v);
	assert_int_equal(n, 100);
	store_events_free(v, n);
	store_close(s);
}

static sqlite3 *lock_db(const char *path)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	return db;
}

static void unlock_db(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
}

/* Poll the stats until pred holds (the writer thread works on its own
 * time), at most 10 s. */
static void wait_stats(store_events_writer *w, store_writer_stats *st,
		       bool (*pred)(const store_writer_stats *))
{
	for (int i = 0; i < 10000; i++) {
		store_events_writer_stats(w, st);
		if (pred(st))
			return;
		usleep(1000);
	}
	fail_msg("writer stats never got there");
}

static bool queue_empty(const store_writer_stats *st)
{
	return st->queued == 0;
}

static bool three_failed(const store_writer_stats *st)
{
	return st->failed == 3;
}

static void test_writer_queue_full(void **state)
{
	(void)state;
	enum { CAP = 16 };
	const char *path = fresh("full.db");
	char err[256] = "";
	store_opts o;
	store_opts_init(&o);
	o.busy_timeout_ms = 20000;
	store_events_writer *w =
	    store_events_writer_start(path, &o, CAP, err, sizeof(err));
	assert_non_null(w);

	/* Someone holds the write lock: the writer's first batch waits in
	 * the busy handler, and the queue behind it fills up. */
	sqlite3 *db = lock_db(path);
	uint64_t t = core_wall_ms();
	store_event ev = oev("p", "first", true, t);
	store_events_submit(w, &ev);
	store_writer_stats st;
	wait_stats(w, &st, queue_empty); /* taken into a batch */

	uint64_t t0 = core_now_ms();
	for (int i = 0; i < CAP + 5; i++) {
		char origin[16];
		snprintf(origin, sizeof(origin), "o-%d", i);
		ev = oev("p", origin, true, t + 1 + (uint64_t)i);
		store_events_submit(w, &ev);
	}
	/* Submit never waited for the disk. */
	assert_true(core_now_ms() - t0 < 500);
	store_events_writer_stats(w, &st);
	assert_int_equal(st.submitted, CAP + 6);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(st.queued, CAP);
	assert_int_equal(st.written, 0);
	/* flush times out while the lock is held. */
	assert_int_equal(store_events_writer_flush(w, 50), -ETIMEDOUT);

	unlock_db(db);
	assert_int_equal(store_events_writer_flush(w, 20000), 0);
	store_events_writer_stats(w, &st);
	assert_int_equal(st.written, CAP + 1);
	assert_int_equal(st.failed, 0);

	/* The oldest queued ones went: o-0..o-4. */
	store *s = open_ok(path, NULL);
	store_event *v;
	size_t n = query(s, NULL, &v);
	assert_int_equal(n, CAP + 1);
	assert_string_equal(v[0].origin_name, "o-20");
	assert_string_equal(v[CAP - 1].origin_name, "o-5");
	assert_string_equal(v[CAP].origin_name, "first");
	store_events_free(v, n);
	store_close(s);
	store_events_writer_stop(w);
}

static void test_writer_failed_batch(void **state)
{
	(void)state;
	const char *path = fresh("failed.db");
	char err[256] = "";
	store_opts o;
	store_opts_init(&o);
	o.busy_timeout_ms = 50; /* give up quickly */
	store_events_writer *w =
	    store_events_writer_start(path, &o, 0, err, sizeof(err));
	assert_non_null(w);
	sqlite3 *db = lock_db(path);
	uint64_t t = core_wall_ms();
	for (int i = 0; i < 3; i++) {
		store_event ev = oev("p", "lost", true, t);
		store_events_submit(w, &ev);
		/* One batch each: wait until it is taken. */
		store_writer_stats st;
		wait_stats(w, &st, queue_empty);
	}
	store_writer_stats st;
	wait_stats(w, &st, three_failed);
	assert_int_equal(st.written, 0);
	unlock_db(db);

	/* The writer carries on. */
	store_event ev = oev("p", "kept", true, t);
	store_events_submit(w, &ev);
	assert_int_equal(store_events_writer_flush(w, 10000), 0);
	store_events_writer_stats(w, &st);
	assert_int_equal(st.written, 1);
	assert_int_equal(st.failed, 3);
	store_events_writer_stop(w);

	store *s = open_ok(path, NULL);
	store_event *v;
	size_t n = query(s, NULL, &v);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].origin_name, "kept");
	store_events_free(v, n);
	store_close(s);
}

/* The health thread's side of test_concurrent: bursts of events. */
typedef struct burst_arg {
	store_events_writer *w;
	int n;
} burst_arg;

static void *burst_main(void *arg)
{
	burst_arg *b = arg;
	uint64_t t = core_wall_ms();
	for (int i = 0; i < b->n; i++) {
		store_event ev = oev("p", "o", i % 2, t + (uint64_t)i);
		store_events_submit(b->w, &ev);
		if (i % 50 == 49)
			usleep(1000);
	}
	return NULL;
}

/* Both connections write the file at once; with the busy timeout neither
 * ever fails. */
static void test_concurrent(void **state)
{
	(void)state;
	enum { EVENTS = 4000, APPLIES = 150 };
	const char *path = fresh("concurrent.db");
	char err[256] = "";
	store *s = open_ok(path, NULL);
	store_events_writer *w =
	    store_events_writer_start(path, NULL, 0, err, sizeof(err));
	assert_non_null(w);
	burst_arg b = {.w = w, .n = EVENTS};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, burst_main, &b), 0);
	for (int i = 0; i < APPLIES; i++) {
		char id[33];
		store_id_new(id);
		store_op ops[2] = {
		    {.type = STORE_CREATE,
		     .kind = STORE_POOL,
		     .id = id,
		     .body = "{}"},
		    {.type = STORE_REPLACE,
		     .kind = STORE_POOL,
		     .id = id,
		     .body = "{\"v\":2}"},
		};
		int r = store_apply(s, ops, 2, err, sizeof(err));
		if (r)
			print_error("apply %d: %d %s\n", i, r, err);
		assert_int_equal(r, 0);
		if (i % 10 == 0) {
			store_event *v;
			size_t n;
			store_event_filter f = {.limit = 20};
			assert_int_equal(
			    store_events_query(s, &f, &v, &n, NULL), 0);
			store_events_free(v, n);
		}
	}
	pthread_join(th, NULL);
	assert_int_equal(store_events_writer_flush(w, 20000), 0);
	store_writer_stats st;
	store_events_writer_stats(w, &st);
	assert_int_equal(st.written, EVENTS);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.dropped, 0);
	store_events_writer_stop(w);
	assert_count(s, STORE_POOL, APPLIES);
	store_event *v;
	size_t n = query(s, NULL, &v);
	assert_int_equal(n, EVENTS);
	store_events_free(v, n);
	store_close(s);
}

/* ---- durability under SIGKILL ---- */

#define COUNTER_ID "c0"
enum { KILL_ROUNDS = 6, KILL_MAX_ACKS = 250, ACK_WAIT_MS = 10000 };

/* Transaction i: create monitor i and pool i, move the counter load
 * balancer to {"last": i}, and when i % 10 == 0 delete monitor and pool
 * i - 5 (freed pages, a shrinking table). */
static int child_tx(store *s, uint64_t i)
{
	char id[33], old[33], body[512], last[64];
	snprintf(id, sizeof(id), "%032" PRIx64, i);
	snprintf(old, sizeof(old), "%032" PRIx64, i - 5);
	snprintf(body, sizeof(body), "{\"n\":%" PRIu64 ",\"pad\":\"%0400d\"}",
		 i, 0);
	snprintf(last, sizeof(last), "{\"last\":%" PRIu64 "}", i);
	store_op ops[5] = {
	    {.type = STORE_CREATE,
	     .kind = STORE_MONITOR,
	     .id = id,
	     .body = body},
	    {.type = STORE_CREATE, .kind = STORE_POOL, .id = id, .body = body},
	    {.type = STORE_REPLACE,
	     .kind = STORE_LB,
	     .id = COUNTER_ID,
	     .zone = "example.com",
	     .body = last},
	    {.type = STORE_DELETE, .kind = STORE_MONITOR, .id = old},
	    {.type = STORE_DELETE, .kind = STORE_POOL, .id = old},
	};
	return store_apply(s, ops, i % 10 == 0 ? 5 : 3, NULL, 0);
}

static void __attribute__((noreturn))
child_main(const char *path, uint64_t first, int wfd)
{
	store *s = NULL;
	if (store_open(path, NULL, &s, NULL, 0))
		_exit(2);
	for (uint64_t i = first;; i++) {
		if (child_tx(s, i))
			_exit(3);
		/* Acknowledged: the commit returned. */
		if (write(wfd, &i, sizeof(i)) != (ssize_t)sizeof(i))
			_exit(4);
	}
}

/* What the store must hold after transactions 1..last: present[i] for
 * monitor and pool i. */
static void model_apply(uint8_t *present, uint64_t i, uint8_t on)
{
	present[i] = on;
	if (i % 10 == 0 && i >= 5)
		present[i - 5] = !on;
}

static bool store_matches(const uint8_t *present, uint64_t upto,
			  const store_obj *m, size_t nm)
{
	size_t want = 0;
	for (uint64_t i = 1; i <= upto; i++)
		want += present[i];
	if (nm != want)
		return false;
	for (size_t k = 0; k < nm; k++) {
		uint64_t i = strtoull(m[k].id, NULL, 16);
		if (i == 0 || i > upto || !present[i])
			return false;
	}
	return true;
}

static uint64_t lb_last(store *s)
{
	store_obj o;
	assert_int_equal(store_get(s, STORE_LB, COUNTER_ID, &o), 0);
	uint64_t v = 0;
	assert_int_equal(sscanf(o.body, "{\"last\":%" SCNu64 "}", &v), 1);
	store_obj_clear(&o);
	return v;
}

static void test_kill9(void **state)
{
	(void)state;
	const char *path = fresh("kill.db");
	unsigned seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 8);
	const char *env = getenv("MERIDIAN_TEST_SEED");
	if (env)
		seed = (unsigned)strtoul(env, NULL, 10);
	print_message("kill9: seed %u (MERIDIAN_TEST_SEED replays it)\n", seed);
	srand(seed);

	store *s = open_ok(path, NULL);
	assert_int_equal(apply1(s, STORE_CREATE, STORE_LB, COUNTER_ID,
				"example.com", "{\"last\":0}", NULL),
			 0);
	store_close(s);

	size_t cap = 1024;
	uint8_t *present = calloc(cap, 1);
	uint64_t last = 0; /* highest transaction the store holds */
	uint64_t total_acks = 0;
	int inflight = 0; /* kills after a commit, before its ack */
	for (int round = 0; round < KILL_ROUNDS; round++) {
		int pfd[2];
		assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
		unsigned kill_after = 1 + (unsigned)rand() % KILL_MAX_ACKS;
		unsigned delay_us = (unsigned)rand() % 4000;
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child_main(path, last + 1, pfd[1]);
		}
		close(pfd[1]);

		/* Read acknowledgements until kill_after, then kill after a
		 * random delay so the kill lands anywhere in a commit. */
		uint64_t acked = last, got;
		unsigned n = 0;
		bool timed_out = false;
		while (n < kill_after) {
			struct pollfd p = {.fd = pfd[0], .events = POLLIN};
			if (poll(&p, 1, ACK_WAIT_MS) <= 0) {
				timed_out = true;
				break;
			}
			ssize_t k = read(pfd[0], &got, sizeof(got));
			if (k != (ssize_t)sizeof(got))
				break; /* child died on its own */
			assert_int_equal(got, acked + 1);
			acked = got;
			n++;
		}
		usleep(delay_us);
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Acks written before the kill are still in the pipe. */
		ssize_t k;
		while ((k = read(pfd[0], &got, sizeof(got))) ==
		       (ssize_t)sizeof(got)) {
			assert_int_equal(got, acked + 1);
			acked = got;
		}
		close(pfd[0]);
		if (timed_out || !WIFSIGNALED(status))
			fail_msg("round %d: child %s (status 0x%x)", round,
				 timed_out ? "stalled" : "exited", status);
		total_acks += acked - last;

		while (acked + 2 >= cap) {
			present = realloc(present, cap * 2);
			memset(present + cap, 0, cap);
			cap *= 2;
		}
		for (uint64_t i = last + 1; i <= acked; i++)
			model_apply(present, i, 1);

		/* Reopen: clean open, integrity ok, every acknowledged
		 * transaction there, and at most the one in flight beyond:
		 * whole (monitor, pool and counter together) or not at
		 * all. */
		s = open_ok(path, NULL);
		char err[256] = "";
		int r = store_integrity_check(s, err, sizeof(err));
		if (r)
			fail_msg("round %d: %s", round, err);
		store_obj *m, *p;
		size_t nm, np;
		assert_int_equal(store_list(s, STORE_MONITOR, NULL, &m, &nm),
				 0);
		assert_int_equal(store_list(s, STORE_POOL, NULL, &p, &np), 0);
		assert_int_equal(nm, np);
		for (size_t i = 0; i < nm; i++)
			assert_string_equal(m[i].id, p[i].id);
		uint64_t lb = lb_last(s);
		if (lb == acked + 1) {
			model_apply(present, acked + 1, 1);
			assert_true(store_matches(present, acked + 1, m, nm));
			last = acked + 1;
			inflight++;
		} else {
			assert_int_equal(lb, acked);
			assert_true(store_matches(present, acked, m, nm));
			last = acked;
		}
		/* Creation order survived too. */
		for (size_t i = 1; i < nm; i++)
			assert_true(strcmp(m[i - 1].id, m[i].id) < 0);
		store_objs_free(m, nm);
		store_objs_free(p, np);
		store_close(s);
	}
	print_message("kill9: %d kills, %" PRIu64 " acknowledged "
		      "transactions, all present (%d kills between a commit "
		      "and its ack)\n",
		      KILL_ROUNDS, total_acks, inflight);
	free(present);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids_and_time),
	    cmocka_unit_test(test_crud),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_apply_atomic),
	    cmocka_unit_test(test_sync),
	    cmocka_unit_test(test_reopen),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_events_filters),
	    cmocka_unit_test(test_events_retention),
	    cmocka_unit_test(test_writer),
	    cmocka_unit_test(test_writer_queue_full),
	    cmocka_unit_test(test_writer_failed_batch),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_kill9),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
