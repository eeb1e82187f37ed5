/* core_log.c - see core_log.h. */
#include "core/core_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int core_log_level = LOG_INFO;
static _Thread_local char thread_name[16] = "main";

#define LOG_LINE_MAX 1024
#define LOG_QUEUE    256 /* lines waiting for the writer thread */

/* While the writer thread runs (core_log_start), lines go through this
 * queue: a worker never waits on stderr, whose reader may stall (a full
 * pipe blocks write(2)). A full queue drops the line and counts it; the
 * writer reports the count. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char (*lines)[LOG_LINE_MAX];
	uint16_t lens[LOG_QUEUE];
	unsigned head, count;
	uint64_t dropped;
	bool running, stop;
	pthread_t th;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *writer_main(void *arg)
{
	(void)arg;
	static char line[LOG_LINE_MAX];
	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (!q.count && !q.dropped && !q.stop)
			pthread_cond_wait(&q.cv, &q.mu);
		if (!q.count && !q.dropped && q.stop)
			break;
		size_t len = 0;
		if (q.count) {
			len = q.lens[q.head];
			memcpy(line, q.lines[q.head], len);
			q.head = (q.head + 1) % LOG_QUEUE;
			q.count--;
		} else {
			len =
			    (size_t)snprintf(line, sizeof(line),
					     "(%llu log lines dropped: stderr "
					     "did not keep up)\n",
					     (unsigned long long)q.dropped);
			q.dropped = 0;
		}
		pthread_mutex_unlock(&q.mu);
		ssize_t w = write(STDERR_FILENO, line, len);
		(void)w;
		pthread_mutex_lock(&q.mu);
	}
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

uint64_t core_log_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int core_log_start(void)
{
	if (q.running)
		return 0;
	q.lines = calloc(LOG_QUEUE, sizeof(*q.lines));
	if (!q.lines)
		return -1;
	q.head = q.count = 0;
	q.dropped = 0;
	q.stop = false;
	if (pthread_create(&q.th, NULL, writer_main, NULL) != 0) {
		free(q.lines);
		q.lines = NULL;
		return -1;
	}
	pthread_mutex_lock(&q.mu);
	q.running = true;
	pthread_mutex_unlock(&q.mu);
	return 0;
}

void core_log_stop(void)
{
	pthread_mutex_lock(&q.mu);
	if (!q.running) {
		pthread_mutex_unlock(&q.mu);
		return;
	}
	q.running = false; /* new lines are written directly again */
	q.stop = true;
	pthread_cond_signal(&q.cv);
	pthread_mutex_unlock(&q.mu);
	pthread_join(q.th, NULL); /* it writes what is queued first */
	free(q.lines);
	q.lines = NULL;
}

void core_log_set_thread_name(const char *name)
{
	snprintf(thread_name, sizeof(thread_name), "%s", name);
}

void core_log(int level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	if (level > core_log_level)
		return;
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(
	    line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, names[level], thread_name);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	pthread_mutex_lock(&q.mu);
	if (q.running) {
		if (q.count < LOG_QUEUE) {
			unsigned i = (q.head + q.count) % LOG_QUEUE;
			memcpy(q.lines[i], line, len);
			q.lens[i] = (uint16_t)len;
			q.count++;
		} else {
			q.dropped++;
		}
		pthread_cond_signal(&q.cv);
		pthread_mutex_unlock(&q.mu);
		return;
	}
	pthread_mutex_unlock(&q.mu);
	/* One write so lines from several threads do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
