/* core_loop.c - epoll loop and timer heap; see core_loop.h. */
#include "core/core_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

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

static void heap_swap(core_loop *l, uint32_t a, uint32_t b)
{
	core_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_idx = a;
	l->heap[b]->heap_idx = b;
}

static void heap_up(core_loop *l, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (l->heap[p]->deadline <= l->heap[i]->deadline)
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void heap_down(core_loop *l, uint32_t i)
{
	for (;;) {
		uint32_t c = 2 * i + 1, m = i;
		if (c < l->nheap && l->heap[c]->deadline < l->heap[m]->deadline)
			m = c;
		if (c + 1 < l->nheap &&
		    l->heap[c + 1]->deadline < l->heap[m]->deadline)
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

void core_timer_set(core_loop *l, core_timer *t, uint64_t deadline)
{
	if (core_timer_armed(t)) {
		uint64_t old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			heap_up(l, t->heap_idx);
		else if (deadline > old)
			heap_down(l, t->heap_idx);
		return;
	}
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? l->capheap * 2 : 256;
		l->heap = xrealloc(l->heap, l->capheap * sizeof(*l->heap));
	}
	t->deadline = deadline;
	t->heap_idx = l->nheap;
	l->heap[l->nheap++] = t;
	heap_up(l, t->heap_idx);
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
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->heap_idx = i;
	heap_up(l, i);
	heap_down(l, l->heap[i]->heap_idx);
}

static void run_timers(core_loop *l)
{
	/* Bounded: a callback that re-arms for "now" must not spin us. */
	uint32_t budget = l->nheap;
	while (l->nheap > 0 && budget-- > 0) {
		core_timer *t = l->heap[0];
		if (t->deadline > l->now)
			break;
		core_timer_cancel(l, t);
		t->cb(t);
	}
}

static int next_timeout(const core_loop *l)
{
	if (l->nheap == 0)
		return 1000;
	uint64_t d = l->heap[0]->deadline;
	if (d <= l->now)
		return 0;
	return (int)MIN(d - l->now, 1000);
}

int core_loop_run(core_loop *l)
{
	struct epoll_event evs[256];
	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_LEN(evs),
				   next_timeout(l));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		l->now = core_now_ms();
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
