/* core_ring.c - io_uring beside the epoll loop; see core_ring.h. */
#include "core/core_ring.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include "core/core_util.h"

/* user_data of the multishot poll on the epoll fd (ops are pointers, so
 * never 1). */
#define EPOLL_TAG 1u

struct core_ring {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	char *bufs;
	unsigned nbufs, bufsize;
	bool epoll_armed; /* the multishot poll on epfd is live */
	bool epoll_more;  /* the last epoll_wait filled evs: ask again */
};

static void arm_epoll(core_loop *l)
{
	core_ring *r = l->ring;
	struct io_uring_sqe *sqe = core_ring_sqe(l);
	if (!sqe) {
		/* Next wait polls epoll without blocking and tries again. */
		r->epoll_more = true;
		return;
	}
	io_uring_prep_poll_multishot(sqe, l->epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, EPOLL_TAG);
	r->epoll_armed = true;
}

int core_ring_attach(core_loop *l, unsigned entries, unsigned nbufs,
		     unsigned bufsize)
{
	if (l->ring)
		return 0;
	if (nbufs == 0 || (nbufs & (nbufs - 1)) || nbufs > 32768)
		return -EINVAL;
	core_ring *r = xcalloc(1, sizeof(*r));
	struct io_uring_params p = {
	    .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
	};
	int err = io_uring_queue_init_params(entries, &r->ring, &p);
	if (err < 0) {
		free(r);
		return err;
	}
	/* The buffer ring's entries must be page aligned. */
	size_t brsize = nbufs * sizeof(struct io_uring_buf);
	void *br = mmap(NULL, brsize, PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED) {
		err = -errno;
		goto fail_ring;
	}
	r->br = br;
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
				       .ring_entries = nbufs,
				       .bgid = CORE_RING_BGID};
	err = io_uring_register_buf_ring(&r->ring, &reg, 0);
	if (err < 0)
		goto fail_map;
	r->nbufs = nbufs;
	r->bufsize = bufsize;
	r->bufs = xmalloc((size_t)nbufs * bufsize);
	io_uring_buf_ring_init(r->br);
	int mask = io_uring_buf_ring_mask(nbufs);
	for (unsigned i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * bufsize,
				      bufsize, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(r->br, (int)nbufs);
	l->ring = r;
	arm_epoll(l);
	return 0;
fail_map:
	munmap(br, brsize);
fail_ring:
	io_uring_queue_exit(&r->ring);
	free(r);
	return err;
}

void core_ring_detach(core_loop *l)
{
	core_ring *r = l->ring;
	if (!r)
		return;
	io_uring_queue_exit(&r->ring);
	munmap(r->br, r->nbufs * sizeof(struct io_uring_buf));
	free(r->bufs);
	free(r);
	l->ring = NULL;
}

struct io_uring_sqe *core_ring_sqe(core_loop *l)
{
	core_ring *r = l->ring;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		/* Full: hand the queue to the kernel (SUBMIT_ALL takes it
		 * all even when an entry fails). */
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

void core_ring_set_op(struct io_uring_sqe *sqe, core_op *op)
{
	io_uring_sqe_set_data(sqe, op);
}

bool core_ring_reserve(core_loop *l, unsigned n)
{
	core_ring *r = l->ring;
	if (io_uring_sq_space_left(&r->ring) >= n)
		return true;
	io_uring_submit(&r->ring);
	return io_uring_sq_space_left(&r->ring) >= n;
}

int core_ring_flush(core_loop *l)
{
	core_ring *r = l->ring;
	if (!io_uring_sq_ready(&r->ring))
		return 0;
	int err = io_uring_submit(&r->ring);
	if (err < 0)
		return err;
	return io_uring_sq_ready(&r->ring) ? -EAGAIN : 0;
}

void core_ring_buf_put(core_loop *l, uint16_t bid)
{
	core_ring *r = l->ring;
	io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->bufsize,
			      r->bufsize, bid, io_uring_buf_ring_mask(r->nbufs),
			      0);
	io_uring_buf_ring_advance(r->br, 1);
}

int core_ring_wait(core_loop *l, struct epoll_event *evs, int max,
		   int timeout_ms)
{
	core_ring *r = l->ring;
	if (r->epoll_more)
		timeout_ms = 0;
	struct __kernel_timespec ts = {
	    .tv_sec = timeout_ms / 1000,
	    .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	int err =
	    io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
	if (err == -EAGAIN || err == -ENOMEM || err == -EBADR) {
		/* Passing (no memory for requests; completions dropped
		 * once): wait on epoll alone this time, briefly, so nothing
		 * spins and epoll's sockets are still served. */
		int n = epoll_wait(l->epfd, evs, max, MIN(timeout_ms, 10));
		l->now = core_now_ms();
		return n < 0 ? (errno == EINTR ? 0 : -errno) : n;
	}
	if (err < 0 && err != -ETIME && err != -EINTR && err != -EBUSY)
		return err;
	l->now = core_now_ms();
	bool epoll_ready = r->epoll_more;
	/* Callbacks may queue entries and even submit them (a full queue,
	 * a flush before close): the walk re-reads the tail each step and
	 * `seen` counts every entry it passed, so it stays consistent. */
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		seen++;
		uint64_t ud = cqe->user_data;
		if (ud == EPOLL_TAG) {
			epoll_ready = true;
			if (!(cqe->flags & IORING_CQE_F_MORE))
				r->epoll_armed = false;
			continue;
		}
		if (ud == 0) /* an entry whose result nobody wants */
			continue;
		core_op *op = (core_op *)(uintptr_t)ud;
		char *buf = NULL;
		uint16_t bid = 0;
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
			buf = r->bufs + (size_t)bid * r->bufsize;
		}
		op->cb(op, cqe->res, cqe->flags, buf, bid);
	}
	io_uring_cq_advance(&r->ring, seen);
	r->epoll_more = false;
	if (!r->epoll_armed)
		arm_epoll(l);
	if (!epoll_ready)
		return 0;
	int n = epoll_wait(l->epfd, evs, max, 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	r->epoll_more |= n == max;
	return n;
}
