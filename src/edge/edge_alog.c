/* edge_alog.c - see edge_alog.h. */
#include "edge/edge_alog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_util.h"

/* One worker's ring. The producer (the worker) owns head and its line
 * cache, the consumer (the writer thread) owns tail; each on its own cache
 * line. Positions only grow; the byte of position p is buf[p & mask]. */
typedef struct alog_ring {
	_Alignas(64) char *buf; /* immutable after start */
	uint64_t size, mask;
	/* Producer. */
	_Alignas(64) _Atomic uint64_t head;
	uint64_t tail_seen; /* last tail read: used space is at most this */
	_Atomic uint64_t lines, dropped;
	void *free_lines; /* recycled line buffers */
	time_t sec;	  /* second cached in sec_text */
	char sec_text[20];
	/* Consumer. */
	_Alignas(64) _Atomic uint64_t tail;
	_Atomic uint32_t kicked; /* the producer woke the writer */
} alog_ring;

struct edge_alog {
	char *path; /* NULL: standard output */
	int fd;
	bool regular;		/* fd is a regular file (writes never block) */
	uint64_t stop_deadline; /* ms: a blocked pipe is given up then */
	int efd;		/* eventfd: kicks, reopen, stop */
	pthread_t thread;
	_Atomic bool stop, reopen;
	_Atomic uint64_t bytes, write_errors, reopens; /* writer only */
	uint32_t nrings;
	alog_ring *rings;
};

static bool is_regular(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* A pipe or socket (not a regular file) can block a write for as long as
 * its reader likes: wait for room in slices, give up once stopping has
 * taken longer than STOP_GRACE_MS. Returns true when fd may be written. */
#define STOP_GRACE_MS 2000

static bool wait_writable(edge_alog *a)
{
	for (;;) {
		struct pollfd p = {.fd = a->fd, .events = POLLOUT};
		int r = poll(&p, 1, 100);
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
		if (atomic_load(&a->stop) && core_now_ms() >= a->stop_deadline)
			return false;
	}
}

/* write(2) all of iov; false on an error (the bytes are lost). */
static bool write_all(edge_alog *a, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n;
		if (a->regular) {
			n = writev(a->fd, iov, cnt);
		} else {
			/* At most PIPE_BUF once there is room: never blocks
			 * on a pipe. */
			if (!wait_writable(a))
				return false;
			n = write(a->fd, iov->iov_base,
				  MIN(iov->iov_len, (size_t)PIPE_BUF));
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return false;
		}
		size_t left = (size_t)n;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return true;
}

static void drain(edge_alog *a, alog_ring *r)
{
	atomic_store_explicit(&r->kicked, 0, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	if (h == t)
		return;
	uint64_t n = h - t, off = t & r->mask;
	uint64_t first = MIN(n, r->size - off);
	struct iovec iov[2] = {{r->buf + off, first}, {r->buf, n - first}};
	if (write_all(a, iov, n > first ? 2 : 1))
		atomic_store_explicit(
		    &a->bytes,
		    atomic_load_explicit(&a->bytes, memory_order_relaxed) + n,
		    memory_order_relaxed);
	else
		atomic_store_explicit(
		    &a->write_errors,
		    atomic_load_explicit(&a->write_errors,
					 memory_order_relaxed) +
			1,
		    memory_order_relaxed);
	atomic_store_explicit(&r->tail, h, memory_order_release);
}

static void reopen_now(edge_alog *a)
{
	if (!a->path)
		return;
	int fd = open_log(a->path);
	if (fd < 0) {
		log_error("access log: cannot reopen %s: %s; writing on to the "
			  "old file",
			  a->path, strerror(-fd));
		return;
	}
	close(a->fd);
	a->fd = fd;
	a->regular = is_regular(fd);
	atomic_store_explicit(
	    &a->reopens,
	    atomic_load_explicit(&a->reopens, memory_order_relaxed) + 1,
	    memory_order_relaxed);
	log_info("access log: reopened %s", a->path);
}

static void *writer_main(void *arg)
{
	edge_alog *a = arg;
	core_log_set_thread_name("access-log");
	for (;;) {
		struct pollfd p = {.fd = a->efd, .events = POLLIN};
		if (poll(&p, 1, EDGE_ALOG_FLUSH_MS) > 0) {
			uint64_t v;
			ssize_t n = read(a->efd, &v, sizeof(v));
			(void)n;
		}
		bool stop = atomic_load(&a->stop);
		if (atomic_exchange(&a->reopen, false)) {
			/* Lines queued before the signal go to the old file. */
			for (uint32_t i = 0; i < a->nrings; i++)
				drain(a, &a->rings[i]);
			reopen_now(a);
		}
		for (uint32_t i = 0; i < a->nrings; i++)
			drain(a, &a->rings[i]);
		if (stop)
			break;
	}
	return NULL;
}

static void wake(edge_alog *a)
{
	uint64_t one = 1;
	ssize_t n = write(a->efd, &one, sizeof(one));
	(void)n;
}

static void free_rings(edge_alog *a)
{
	for (uint32_t i = 0; a->rings && i < a->nrings; i++) {
		alog_ring *r = &a->rings[i];
		free(r->buf);
		while (r->free_lines) {
			void *next;
			memcpy(&next, r->free_lines, sizeof(next));
			free(r->free_lines);
			r->free_lines = next;
		}
	}
	free(a->rings);
}

int edge_alog_start(const cfg_access_log *cfg, uint32_t nworkers,
		    edge_alog **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!cfg->path)
		return 0;
	edge_alog *a = xcalloc(1, sizeof(*a));
	a->efd = -1;
	if (strcmp(cfg->path, "-") == 0) {
		a->fd = STDOUT_FILENO;
	} else {
		a->path = xstrdup(cfg->path);
		a->fd = open_log(a->path);
		if (a->fd < 0) {
			int e = a->fd;
			snprintf(err, errlen, "access log: cannot open %s: %s",
				 a->path, strerror(-e));
			free(a->path);
			free(a);
			return e;
		}
	}
	a->regular = is_regular(a->fd);
	uint64_t size = 65536;
	while (size < cfg->buffer && size < (1ull << 30))
		size <<= 1;
	a->nrings = nworkers ? nworkers : 1;
	void *rings = NULL;
	if (posix_memalign(&rings, 64, a->nrings * sizeof(alog_ring)) != 0)
		abort();
	memset(rings, 0, a->nrings * sizeof(alog_ring));
	a->rings = rings;
	for (uint32_t i = 0; i < a->nrings; i++) {
		a->rings[i].buf = xmalloc(size);
		a->rings[i].size = size;
		a->rings[i].mask = size - 1;
		a->rings[i].sec = -1;
	}
	int e = 0;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0)
		e = -errno;
	else if ((e = -pthread_create(&a->thread, NULL, writer_main, a)) != 0)
		close(a->efd);
	if (e < 0) {
		snprintf(err, errlen, "access log: cannot start the writer: %s",
			 strerror(-e));
		if (a->path)
			close(a->fd);
		free_rings(a);
		free(a->path);
		free(a);
		return e;
	}
	log_info("access log: %s", a->path ? a->path : "standard output");
	*out = a;
	return 0;
}

void edge_alog_stop(edge_alog *a)
{
	if (!a)
		return;
	a->stop_deadline = core_now_ms() + STOP_GRACE_MS;
	atomic_store(&a->stop, true);
	wake(a);
	pthread_join(a->thread, NULL);
	close(a->efd);
	if (a->path)
		close(a->fd);
	free_rings(a);
	free(a->path);
	free(a);
}

void edge_alog_reopen(edge_alog *a)
{
	if (!a) {
		log_info("SIGUSR1: no access log to reopen");
		return;
	}
	atomic_store(&a->reopen, true);
	wake(a);
}

void edge_alog_counters_get(const edge_alog *a, edge_alog_counters *out)
{
	*out = (edge_alog_counters){0};
	if (!a)
		return;
	for (uint32_t i = 0; i < a->nrings; i++) {
		out->lines += atomic_load_explicit(&a->rings[i].lines,
						   memory_order_relaxed);
		out->dropped += atomic_load_explicit(&a->rings[i].dropped,
						     memory_order_relaxed);
	}
	out->bytes = atomic_load_explicit(&a->bytes, memory_order_relaxed);
	out->write_errors =
	    atomic_load_explicit(&a->write_errors, memory_order_relaxed);
	out->reopens = atomic_load_explicit(&a->reopens, memory_order_relaxed);
}

/* --- worker side --------------------------------------------------------- */

static inline void bump(_Atomic uint64_t *c)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

char *edge_alog_line_get(edge_alog *a, uint32_t worker)
{
	alog_ring *r = &a->rings[worker];
	char *l = r->free_lines;
	if (!l)
		return xmalloc(EDGE_ALOG_LINE_MAX);
	memcpy(&r->free_lines, l, sizeof(void *));
	return l;
}

void edge_alog_line_put(edge_alog *a, uint32_t worker, char *line)
{
	if (!line)
		return;
	alog_ring *r = &a->rings[worker];
	memcpy(line, &r->free_lines, sizeof(void *));
	r->free_lines = line;
}

bool edge_alog_push(edge_alog *a, uint32_t worker, const char *line, size_t len)
{
	alog_ring *r = &a->rings[worker];
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (r->size - (h - r->tail_seen) < len) {
		r->tail_seen =
		    atomic_load_explicit(&r->tail, memory_order_acquire);
		if (r->size - (h - r->tail_seen) < len) {
			bump(&r->dropped);
			return false;
		}
	}
	uint64_t off = h & r->mask;
	uint64_t first = MIN((uint64_t)len, r->size - off);
	memcpy(r->buf + off, line, first);
	memcpy(r->buf, line + first, len - first);
	atomic_store_explicit(&r->head, h + len, memory_order_release);
	bump(&r->lines);
	uint64_t quarter = r->size / 4;
	if (h + len - r->tail_seen > quarter) {
		/* Maybe a quarter full: look again, and wake the writer
		 * once (it clears kicked before each pass). */
		r->tail_seen =
		    atomic_load_explicit(&r->tail, memory_order_acquire);
		if (h + len - r->tail_seen > quarter &&
		    !atomic_load_explicit(&r->kicked, memory_order_relaxed)) {
			atomic_store_explicit(&r->kicked, 1,
					      memory_order_relaxed);
			wake(a);
		}
	}
	return true;
}

static char *digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

void edge_alog_fmt_second(time_t sec, char out[20])
{
	struct tm tm;
	gmtime_r(&sec, &tm);
	char *p = digits(out, (unsigned)(tm.tm_year + 1900), 4);
	*p++ = '-';
	p = digits(p, (unsigned)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = digits(p, (unsigned)tm.tm_mday, 2);
	*p++ = 'T';
	p = digits(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = digits(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = digits(p, (unsigned)tm.tm_sec, 2);
	*p = '\0';
}

const char *edge_alog_second(edge_alog *a, uint32_t worker, time_t sec)
{
	alog_ring *r = &a->rings[worker];
	if (r->sec != sec) {
		edge_alog_fmt_second(sec, r->sec_text);
		r->sec = sec;
	}
	return r->sec_text;
}

/* --- formatting ------------------------------------------------------------
 */

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Bytes copied as they are: printable ASCII but the quote and the
 * backslash. */
#define PLAIN16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
static const bool plain_tab[256] = {
    PLAIN16(false),
    PLAIN16(false),
    /* 0x20 */ true,
    true,
    false,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    PLAIN16(true),
    PLAIN16(true),
    /* 0x50 */ true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    true,
    true,
    true,
    PLAIN16(true),
    /* 0x70 */ true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    /* 0x80.. 0xff: false */
};

static inline bool plain(unsigned char c)
{
	return plain_tab[c];
}

size_t edge_alog_escape(char *out, size_t cap, const char *s, size_t n,
			size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, i = 0;
	while (i < n) {
		/* The common case: a run of plain bytes, copied at once. */
		size_t j = i;
		while (j < n && plain(u[j]))
			j++;
		if (j > i) {
			size_t k = MIN(j - i, cap - o);
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
			if (i < j)
				break; /* full */
			continue;
		}
		unsigned c = u[i];
		char tmp[6];
		size_t tl, in = 1;
		const char *src = tmp;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			tmp[0] = '\\';
			tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			tl = 2;
		} else if (c >= 0x80 && (in = utf8_len(u + i, n - i)) > 0) {
			src = s + i;
			tl = in;
		} else {
			/* Controls, DEL, bytes that are not UTF-8: the
			 * Latin-1 code point, so the line stays valid. */
			in = 1;
			memcpy(tmp, "\\u00", 4);
			tmp[4] = hex[c >> 4];
			tmp[5] = hex[c & 15];
			tl = 6;
		}
		if (o + tl > cap)
			break;
		memcpy(out + o, src, tl);
		o += tl;
		i += in;
	}
	if (used)
		*used = i;
	return o;
}

void edge_alog_putn(edge_alog_buf *b, const char *raw, size_t n)
{
	if (n > b->cap - 1 - b->len)
		n = b->cap - 1 - b->len;
	memcpy(b->p + b->len, raw, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void edge_alog_put(edge_alog_buf *b, const char *raw)
{
	edge_alog_putn(b, raw, strlen(raw));
}

void edge_alog_put_str(edge_alog_buf *b, const char *s, size_t n, size_t max)
{
	if (!s) {
		edge_alog_putn(b, "null", 4);
		return;
	}
	/* Room for the quotes, a "..." mark and the NUL. */
	if (b->cap - b->len < 6)
		return;
	size_t room = b->cap - b->len - 6;
	if (max < room)
		room = max;
	b->p[b->len++] = '"';
	size_t used;
	b->len += edge_alog_escape(b->p + b->len, room, s, n, &used);
	if (used < n) {
		memcpy(b->p + b->len, "...", 3);
		b->len += 3;
	}
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
}

void edge_alog_put_u64(edge_alog_buf *b, uint64_t v)
{
	char tmp[24];
	edge_alog_putn(b, tmp, core_fmt_u64(tmp, v, 1));
}

void edge_alog_put_secs(edge_alog_buf *b, uint64_t ns)
{
	char tmp[32];
	uint64_t us = ns / 1000 + (ns % 1000 >= 500);
	size_t n = core_fmt_u64(tmp, us / 1000000, 1);
	tmp[n++] = '.';
	n += core_fmt_u64(tmp + n, us % 1000000, 6);
	edge_alog_putn(b, tmp, n);
}

void edge_alog_put_time(edge_alog_buf *b, const char *second, long nsec)
{
	char tmp[32];
	tmp[0] = '"';
	memcpy(tmp + 1, second, 19);
	tmp[20] = '.';
	core_fmt_u64(tmp + 21, (uint64_t)(nsec / 1000000) % 1000, 3);
	memcpy(tmp + 24, "Z\"", 2);
	edge_alog_putn(b, tmp, 26);
}
