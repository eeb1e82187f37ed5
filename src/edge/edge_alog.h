/* edge_alog.h - the JSON access log (edge.access_log).
 *
 * One JSON object a line per request, written without ever blocking a
 * worker:
 *   - each worker builds its line in a line buffer of EDGE_ALOG_LINE_MAX
 *     bytes (recycled through a per-worker free list) and copies it, whole,
 *     into its own single-producer/single-consumer byte ring
 *     (edge.access_log.buffer bytes). When the ring has no room the line is
 *     dropped and counted; the worker never waits;
 *   - one writer thread empties the rings with write(2) every
 *     EDGE_ALOG_FLUSH_MS, or at once when a ring is a quarter full (the
 *     worker then writes an eventfd, at most once per writer pass);
 *   - edge_alog_reopen (SIGUSR1) makes the writer open the path again, so
 *     logrotate can rename the file and signal; `-` (standard output) is
 *     never reopened.
 * The formatting helpers below are pure (unit-tested): strings are
 * JSON-escaped (control characters as \u00XX, valid UTF-8 kept, any other
 * byte as the Latin-1 code point) and cut short rather than overflow.
 */
#ifndef MERIDIAN_EDGE_ALOG_H
#define MERIDIAN_EDGE_ALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config/cfg_model.h"

#define EDGE_ALOG_LINE_MAX 4096
#define EDGE_ALOG_FLUSH_MS 50

typedef struct edge_alog edge_alog;

typedef struct edge_alog_counters {
	uint64_t lines;	       /* queued by the workers */
	uint64_t dropped;      /* not queued: the writer was behind */
	uint64_t bytes;	       /* written */
	uint64_t write_errors; /* failed writes (their lines are lost) */
	uint64_t reopens;
} edge_alog_counters;

/* Open cfg->path (append, create 0644) and start the writer thread. *out
 * stays NULL when the access log is off. Returns 0, or -errno with err set
 * (the file cannot be opened). */
int edge_alog_start(const cfg_access_log *cfg, uint32_t nworkers,
		    edge_alog **out, char *err, size_t errlen);
/* Write what is queued, stop the writer, close the file. NULL is fine.
 * Call after the workers have stopped. */
void edge_alog_stop(edge_alog *a);
/* Ask the writer to reopen the file (any thread; NULL is fine). */
void edge_alog_reopen(edge_alog *a);
void edge_alog_counters_get(const edge_alog *a, edge_alog_counters *out);

/* Worker side (worker is the edge_worker id; one thread per worker). */
char *edge_alog_line_get(edge_alog *a, uint32_t worker);
void edge_alog_line_put(edge_alog *a, uint32_t worker, char *line);
/* Queue a whole line (with its newline). false: dropped and counted. */
bool edge_alog_push(edge_alog *a, uint32_t worker, const char *line,
		    size_t len);
/* The worker's cached "YYYY-MM-DDTHH:MM:SS" for the current second. */
const char *edge_alog_second(edge_alog *a, uint32_t worker, time_t sec);

/* --- formatting (pure) ------------------------------------------------ */

typedef struct edge_alog_buf {
	char *p;
	size_t len, cap; /* len < cap always: p stays NUL-terminated */
} edge_alog_buf;

/* Escape up to n bytes of s into out (cap bytes), never cutting an escape
 * or a UTF-8 sequence; returns the bytes written, *used the input
 * consumed. */
size_t edge_alog_escape(char *out, size_t cap, const char *s, size_t n,
			size_t *used);
void edge_alog_put(edge_alog_buf *b, const char *raw);
void edge_alog_putn(edge_alog_buf *b, const char *raw, size_t n);
/* A string literal, without strlen. */
#define EDGE_ALOG_LIT(b, lit) edge_alog_putn((b), (lit), sizeof(lit) - 1)
/* A JSON string of at most max escaped bytes ("..." marks a cut), or null
 * when s is NULL. */
void edge_alog_put_str(edge_alog_buf *b, const char *s, size_t n, size_t max);
void edge_alog_put_u64(edge_alog_buf *b, uint64_t v);
/* Seconds with microseconds: 0.000123. */
void edge_alog_put_secs(edge_alog_buf *b, uint64_t ns);
/* "2024-05-01T12:34:56.789Z" from a "YYYY-MM-DDTHH:MM:SS" second. */
void edge_alog_put_time(edge_alog_buf *b, const char *second, long nsec);
/* Format a second (gmtime) as "YYYY-MM-DDTHH:MM:SS" (20 bytes with NUL). */
void edge_alog_fmt_second(time_t sec, char out[20]);

#endif
