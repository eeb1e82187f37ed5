/* core_log.h - leveled logging to stderr, one line per message, with time
 * and the thread's role. Safe from any thread (one write per line). */
#ifndef MERIDIAN_CORE_LOG_H
#define MERIDIAN_CORE_LOG_H

enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int core_log_level;
void core_log_set_thread_name(const char *name);
void core_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) core_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  core_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  core_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (core_log_level >= LOG_DEBUG)                               \
			core_log(LOG_DEBUG, __VA_ARGS__);                      \
	} while (0)

#endif
