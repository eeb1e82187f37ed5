/* store_int.h - what store.c and store_events.c share; not for other
 * modules (they use store.h). */
#ifndef MERIDIAN_STORE_INT_H
#define MERIDIAN_STORE_INT_H

#include <sqlite3.h>
#include <stdarg.h>

#include "store/store.h"

struct store {
	sqlite3 *db;
	char *path;
	store_opts opts;
};

/* Open a connection: synchronous=FULL for the object connection (an
 * acknowledged write must survive a power loss), NORMAL for the event
 * writer (a crash loses nothing committed; a power loss may lose the last
 * batches, which is fine for a history). */
int store_open_conn(const char *path, const store_opts *opts, bool sync_full,
		    store **out, char *err, size_t errlen);

/* SQLite result code -> negative errno. */
int store_errno(int rc);

/* snprintf into err when err is not NULL. */
void store_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run sql (no results); on failure fill err with "what: sqlite message". */
int store_exec(store *s, const char *sql, const char *what, char *err,
	       size_t errlen);

#endif
