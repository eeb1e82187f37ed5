/* core_util.c - see core_util.h. */
#include "core/core_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

static void oom(void)
{
	fputs("meridian: out of memory\n", stderr);
	abort();
}

void core_bq_put(core_bq *q, const void *src, size_t n, size_t first_cap)
{
	if (q->start == q->end)
		q->start = q->end = 0;
	if (q->cap - q->end < n && q->start) {
		memmove(q->p, q->p + q->start, q->end - q->start);
		q->end -= q->start;
		q->start = 0;
	}
	if (q->cap - q->end < n) {
		size_t cap = q->cap ? q->cap : first_cap;
		while (cap - q->end < n)
			cap *= 2;
		q->p = xrealloc(q->p, cap);
		q->cap = cap;
	}
	memcpy(q->p + q->end, src, n);
	q->end += n;
}

void core_bq_free(core_bq *q)
{
	free(q->p);
	*q = (core_bq){0};
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}

uint64_t core_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t core_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t core_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void two_digits(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void core_http_date_fmt(int64_t t, char out[30])
{
	/* Not strftime: %a and %b follow the locale. */
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
					"Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
					   "May", "Jun", "Jul", "Aug",
					   "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		memcpy(out, "Thu, 01 Jan 1970 00:00:00 GMT", 30);
		return;
	}
	/* "Sun, 06 Nov 1994 08:49:37 GMT", laid out by hand: the fields'
	 * ranges are known, which snprintf cannot see. */
	int year = tm.tm_year + 1900;
	memcpy(out, days[tm.tm_wday % 7], 3);
	memcpy(out + 3, ", ", 2);
	two_digits(out + 5, tm.tm_mday);
	out[7] = ' ';
	memcpy(out + 8, months[tm.tm_mon % 12], 3);
	out[11] = ' ';
	two_digits(out + 12, year / 100);
	two_digits(out + 14, year % 100);
	out[16] = ' ';
	two_digits(out + 17, tm.tm_hour);
	out[19] = ':';
	two_digits(out + 20, tm.tm_min);
	out[22] = ':';
	two_digits(out + 23, tm.tm_sec);
	memcpy(out + 25, " GMT", 5);
}

const char *core_http_date(void)
{
	static __thread char cached[30];
	static __thread int64_t cached_s = -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if ((int64_t)ts.tv_sec != cached_s) {
		cached_s = (int64_t)ts.tv_sec;
		core_http_date_fmt(cached_s, cached);
	}
	return cached;
}

int core_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	if (!s || !*s)
		return -EINVAL;
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	uint64_t mult;
	if (*p == '\0' || strcmp(p, "s") == 0)
		mult = 1000;
	else if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (strcmp(p, "m") == 0)
		mult = 60000;
	else if (strcmp(p, "h") == 0)
		mult = 3600000;
	else
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -EINVAL;
	*out_ms = v * mult;
	return 0;
}

void core_mask_controls(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

int core_strncaseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return 1;
	}
	return 0;
}

int core_raise_nofile(uint64_t *before, uint64_t *after)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*before = *after =
	    rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*after =
	    rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return 0;
}

bool core_failpoint(const char *name)
{
	static struct {
		char name[32];
		unsigned calls; /* under mu */
	} seen[8];
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	const char *spec = getenv("MERIDIAN_FAILPOINTS");
	if (!spec)
		return false;
	size_t nl = strlen(name);
	unsigned pass = 0, fail = 0;
	bool found = false;
	for (const char *p = spec; p && *p;
	     p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		if (!strncmp(p, name, nl) && p[nl] == '=' &&
		    sscanf(p + nl + 1, "%u:%u", &pass, &fail) == 2) {
			found = true;
			break;
		}
	}
	if (!found || nl >= sizeof(seen[0].name))
		return false;
	unsigned n = 0;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ARRAY_LEN(seen); i++) {
		if (!seen[i].name[0]) {
			memcpy(seen[i].name, name, nl + 1);
		} else if (strcmp(seen[i].name, name)) {
			continue;
		}
		n = seen[i].calls++;
		break;
	}
	pthread_mutex_unlock(&mu);
	return n >= pass && n < pass + fail;
}

size_t core_fmt_u64(char *out, uint64_t v, int width)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while ((v || (int)n < width) && n < sizeof(tmp));
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

int core_random_key(void *out, size_t n)
{
	ssize_t got;
	do
		got = getrandom(out, n, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	return (size_t)got == n ? 0 : -EIO;
}

void *core_pages_alloc(size_t n)
{
	void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		abort();
	return p;
}

void core_pages_free(void *p, size_t n)
{
	if (p)
		munmap(p, n ? n : 1);
}

bool core_same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
