/* core_log.h - leveled logging to stderr, one line per message, with time
 * and the thread's role. Safe from any thread (one write per line).
 * Between core_log_start and core_log_stop a writer thread does the
 * writes, so no caller ever blocks on a stalled stderr reader: lines the
 * queue cannot hold are dropped and counted. */
#ifndef MERIDIAN_CORE_LOG_H
#define MERIDIAN_CORE_LOG_H

#include <stdint.h>

enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int core_log_level;
void core_log_set_thread_name(const char *name);
/* Start / stop the writer thread (stop writes what is queued first).
 * 0 or -1; without it every line is written by its caller. */
int core_log_start(void);
uint64_t core_log_now_ms(void); /* monotonic */
void core_log_stop(void);
void core_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A warning at most once per `ms` from this call site and thread (a
 * condition that repeats per connection must not flood the log); the
 * lines held back are counted in the next one. */
#define log_warn_every(ms, fmt, ...)                                           \
	do {                                                                   \
		static _Thread_local uint64_t last_, held_;                    \
		uint64_t now_ = core_log_now_ms();                             \
		if (last_ && now_ - last_ < (ms)) {                            \
			held_++;                                               \
			break;                                                 \
		}                                                              \
		last_ = now_;                                                  \
		core_log(LOG_WARN, fmt " (%llu like it held back)",            \
			 __VA_ARGS__, (unsigned long long)held_);              \
		held_ = 0;                                                     \
	} while (0)
#define log_error(...) core_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  core_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  core_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (core_log_level >= LOG_DEBUG)                               \
			core_log(LOG_DEBUG, __VA_ARGS__);                      \
	} while (0)

#endif
