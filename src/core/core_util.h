/* core_util.h - small helpers shared by every module.
 *
 * Return convention across Meridian: functions return 0 (or a count) on
 * success and a negative errno-style code on failure, unless they say
 * otherwise. Allocation failure at start-up aborts (x* wrappers).
 */
#ifndef MERIDIAN_CORE_UTIL_H
#define MERIDIAN_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)    ((a) < (b) ? (a) : (b))
#define MAX(a, b)    ((a) > (b) ? (a) : (b))
#define LIKELY(x)    __builtin_expect(!!(x), 1)
#define UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr)-offsetof(type, member)))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Both NULL, or both the same string (optional config strings). */
bool core_same_str(const char *a, const char *b);
/* n zeroed bytes, page-aligned, from mmap: pages cost memory only once
 * written (tables sized for a peak that may never come). Aborts when the
 * mapping fails, as xmalloc does. core_pages_free with the same n. */
void *core_pages_alloc(size_t n);
/* n random bytes for a table's hash key (getrandom, blocking: only
 * right after boot can it wait). 0, or -errno. */
int core_random_key(void *out, size_t n);
void core_pages_free(void *p, size_t n);
/* v in decimal into out (room for 20 digits, or width), at least width
 * digits (zero-padded), not NUL-terminated; returns the length. For hot
 * paths, where snprintf costs hundreds of instructions. */
size_t core_fmt_u64(char *out, uint64_t v, int width);

/* Monotonic clock in milliseconds. */
uint64_t core_now_ms(void);
/* CLOCK_MONOTONIC in ns (the clock of core_now_ms). */
uint64_t core_now_ns(void);
/* Wall clock in milliseconds since the epoch. */
uint64_t core_wall_ms(void);

/* An HTTP date (RFC 9110 §5.6.7, IMF-fixdate) of Unix time t, 29
 * characters ("Sun, 06 Nov 1994 08:49:37 GMT") and a NUL into out[30]. */
void core_http_date_fmt(int64_t t, char out[30]);
/* The HTTP date of now, from a per-thread cache made again only when the
 * second changes (the Date field of every answer the edge writes). */
const char *core_http_date(void);

/* Parse "500ms", "5s", "1m", "2h" or a bare number of seconds into
 * milliseconds. Returns 0 or -EINVAL. */
int core_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Case-insensitive ASCII compare of n bytes; 0 when equal. */
int core_strncaseeq(const char *a, const char *b, size_t n);
/* Replaces every control byte (< 0x20, 0x7f) of s with '?': text from a
 * peer (a server's reply, a certificate's names) that goes to a log line
 * cannot start a line of its own. */
void core_mask_controls(char *s);

/* Raise the soft RLIMIT_NOFILE to the hard limit (systemd gives services
 * 1,024 soft and 524,288 hard; a server needs the latter, as nginx's
 * worker_rlimit_nofile and Go's runtime do). *before and *after get the
 * soft limit (RLIM_INFINITY as UINT64_MAX). Returns 0, or -errno when it
 * could not be read or set (the limit is then unchanged). */
int core_raise_nofile(uint64_t *before, uint64_t *after);

/* Test hook for failures that cannot be caused from outside (a thread
 * that cannot start): with MERIDIAN_FAILPOINTS="name=P:F[,name=P:F...]"
 * in the environment, core_failpoint(name) returns true for F calls after
 * the first P. Without the variable it is false and costs one getenv. For
 * rare paths only (start-up, restarts), never per request. */
bool core_failpoint(const char *name);

/* A byte queue: bytes [start, end) of p[cap], appended at the end and
 * taken from the start. */
typedef struct core_bq {
	char *p;
	size_t start, end, cap;
} core_bq;

static inline size_t core_bq_len(const core_bq *q)
{
	return q->end - q->start;
}
/* Append n bytes: first into the room before start (the queued bytes move
 * down), else the buffer grows, doubling from first_cap. */
void core_bq_put(core_bq *q, const void *src, size_t n, size_t first_cap);
void core_bq_free(core_bq *q);

#endif
