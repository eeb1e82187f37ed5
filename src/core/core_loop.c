/* core_loop.c - epoll loop and timer heap; see core_loop.h. */
#include "core/core_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/core_ring.h"
#include "core/core_util.h"

int core_loop_init(core_loop *l)
{
	*l = (core_loop){0};
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->now = core_now_ms();
	return 0;
}

void core_loop_destroy(core_loop *l)
{
	core_ring_detach(l);
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
	free(l->heap);
	l->heap = NULL;
	l->nheap = l->capheap = 0;
}

int core_loop_add(core_loop *l, core_io *io, bool in_only)
{
	struct epoll_event ev = {
	    .events = in_only ? (EPOLLIN | EPOLLET)
			      : (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET),
	    .data.ptr = io,
	};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	return 0;
}

int core_loop_del(core_loop *l, core_io *io)
{
	if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0)
		return -errno;
	return 0;
}

/* --- timer heap ------------------------------------------------------ */

/* The heap holds each timer's deadline beside its pointer, so sifting
 * compares within the array and touches a timer only to record its new
 * place: with 10,000 health targets a pop walks 14 levels, and reading
 * each child's deadline through its pointer was a cache miss per level.
 * Sifting moves a hole rather than swapping. */
static inline void heap_put(core_loop *l, uint32_t i, core_timer_slot e)
{
	l->heap[i] = e;
	e.t->heap_idx = i;
}

static void heap_up(core_loop *l, uint32_t i, core_timer_slot e)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (l->heap[p].deadline <= e.deadline)
			break;
		heap_put(l, i, l->heap[p]);
		i = p;
	}
	heap_put(l, i, e);
}

static void heap_down(core_loop *l, uint32_t i, core_timer_slot e)
{
	uint32_t n = l->nheap;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && l->heap[c + 1].deadline < l->heap[c].deadline)
			c++;
		if (e.deadline <= l->heap[c].deadline)
			break;
		heap_put(l, i, l->heap[c]);
		i = c;
	}
	heap_put(l, i, e);
}

/* Place e at i (a hole) where it belongs, up or down. */
static void heap_fix(core_loop *l, uint32_t i, core_timer_slot e)
{
	if (i > 0 && l->heap[(i - 1) / 2].deadline > e.deadline)
		heap_up(l, i, e);
	else
		heap_down(l, i, e);
}

void core_timer_set(core_loop *l, core_timer *t, uint64_t deadline)
{
	t->deadline = deadline;
	core_timer_slot e = {.deadline = deadline, .t = t};
	if (core_timer_armed(t)) {
		heap_fix(l, t->heap_idx, e);
		return;
	}
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? l->capheap * 2 : 256;
		l->heap = xrealloc(l->heap, l->capheap * sizeof(*l->heap));
	}
	heap_up(l, l->nheap++, e);
}

void core_timer_cancel(core_loop *l, core_timer *t)
{
	if (!core_timer_armed(t))
		return;
	uint32_t i = t->heap_idx;
	t->heap_idx = CORE_TIMER_IDLE;
	l->nheap--;
	if (i == l->nheap)
		return;
	heap_fix(l, i, l->heap[l->nheap]);
}

static void run_timers(core_loop *l)
{
	/* Bounded: a callback that re-arms for "now" must not spin us. */
	uint32_t budget = l->nheap;
	while (l->nheap > 0 && budget-- > 0) {
		if (l->heap[0].deadline > l->now)
			break;
		core_timer *t = l->heap[0].t;
		core_timer_cancel(l, t);
		t->cb(t);
	}
}

static int next_timeout(const core_loop *l)
{
	if (l->nheap == 0)
		return 1000;
	uint64_t d = l->heap[0].deadline;
	if (d <= l->now)
		return 0;
	return (int)MIN(d - l->now, 1000);
}

int core_loop_run(core_loop *l)
{
	struct epoll_event evs[256];
	while (!l->stop) {
		int n;
		if (l->ring) {
			/* Runs the ring's completions and refreshes now. */
			n = core_ring_wait(l, evs, (int)ARRAY_LEN(evs),
					   next_timeout(l));
			if (n < 0)
				return n;
		} else {
			n = epoll_wait(l->epfd, evs, (int)ARRAY_LEN(evs),
				       next_timeout(l));
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			l->now = core_now_ms();
		}
		for (int i = 0; i < n; i++) {
			core_io *io = evs[i].data.ptr;
			if (io->fd >= 0)
				io->cb(io, evs[i].events);
		}
		run_timers(l);
		if (l->post)
			l->post(l, l->post_arg);
	}
	return 0;
}
