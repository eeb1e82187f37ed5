/* core_loop.h - one epoll event loop per worker thread, with a timer heap.
 *
 * Sockets are registered once, edge-triggered, for both directions; the
 * handler gets the raw epoll event mask and records readiness itself.
 * Timers are a binary min-heap keyed by deadline (ms, monotonic).
 */
#ifndef MERIDIAN_CORE_LOOP_H
#define MERIDIAN_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct core_loop core_loop;
typedef struct core_io core_io;
typedef struct core_timer core_timer;
typedef struct core_ring core_ring;

typedef void (*core_io_cb)(core_io *io, uint32_t events);
typedef void (*core_timer_cb)(core_timer *t);

/* An fd of -1 marks a closed io whose memory is still valid: events for it
 * later in the same epoll batch are skipped. Owners free closed objects only
 * in the loop's post-batch hook, never inside a callback. */
struct core_io {
	int fd;
	core_io_cb cb;
};

#define CORE_TIMER_IDLE UINT32_MAX

struct core_timer {
	uint64_t deadline; /* ms, monotonic */
	uint32_t heap_idx; /* CORE_TIMER_IDLE when not armed */
	core_timer_cb cb;
};

/* A heap entry: the deadline is copied in so sifting stays in the
 * array. */
typedef struct core_timer_slot {
	uint64_t deadline;
	core_timer *t;
} core_timer_slot;

struct core_loop {
	int epfd;
	uint64_t now; /* cached monotonic ms, refreshed each iteration */
	core_timer_slot *heap;
	uint32_t nheap, capheap;
	bool stop;
	/* An io_uring waited in instead of epoll_wait (core_ring.h), or
	 * NULL. */
	core_ring *ring;
	/* Called after every batch of events and timers (deferred frees). */
	void (*post)(core_loop *l, void *arg);
	void *post_arg;
};

int core_loop_init(core_loop *l);
void core_loop_destroy(core_loop *l);

/* Register fd edge-triggered for in, out and rdhup (or only in when
 * in_only). Returns 0 or -errno. */
int core_loop_add(core_loop *l, core_io *io, bool in_only);
/* Closing the fd removes it from epoll; this is for fds kept open. */
int core_loop_del(core_loop *l, core_io *io);

/* Run until l->stop is set. Returns 0 or -errno on epoll failure. */
int core_loop_run(core_loop *l);

static inline void core_timer_init(core_timer *t, core_timer_cb cb)
{
	t->deadline = 0;
	t->heap_idx = CORE_TIMER_IDLE;
	t->cb = cb;
}

static inline bool core_timer_armed(const core_timer *t)
{
	return t->heap_idx != CORE_TIMER_IDLE;
}

/* Arm (or move) a timer to fire at the absolute deadline. */
void core_timer_set(core_loop *l, core_timer *t, uint64_t deadline);
/* Arm relative to the loop's cached now. */
static inline void core_timer_after(core_loop *l, core_timer *t, uint64_t ms)
{
	core_timer_set(l, t, l->now + ms);
}
void core_timer_cancel(core_loop *l, core_timer *t);

#endif
