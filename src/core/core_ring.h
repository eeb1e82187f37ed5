/* core_ring.h - an io_uring beside a core_loop, so that many socket
 * operations share one kernel entry.
 *
 * Why: on a kernel with page-table isolation every syscall costs about a
 * microsecond before it does any work (bench/RESULTS.md). A loop that
 * queues its sends and receives as submission entries pays one
 * io_uring_enter per batch instead of one syscall per operation.
 *
 * How it sits in the loop: once attached, core_loop_run waits in
 * io_uring_enter instead of epoll_wait. The epoll fd itself is watched by
 * a multishot poll on the ring, so every core_io keeps working unchanged;
 * when it fires, the loop collects the epoll events with a zero-timeout
 * epoll_wait. Queued entries are submitted by that same wait. The poll
 * fires on new readiness only, so every fd on the epoll set must be
 * edge-triggered (core_loop_add registers them so): a level-triggered fd
 * left ready would not wake the loop again. When io_uring_enter fails for
 * a passing reason (no memory for requests, dropped completions), that
 * iteration waits in epoll_wait instead and the next one tries again.
 *
 * Operations: the caller fills an SQE from core_ring_sqe() and points its
 * user_data at a core_op (core_ring_set_op). The op's callback runs from
 * the loop with the result (and, for receives from the provided-buffer
 * group CORE_RING_BGID, the buffer, which must be given back with
 * core_ring_buf_put before the callback returns or later). An op's memory
 * must stay valid until its last completion: a cancelled or failed op
 * still completes.
 *
 * Requirements: Linux 6.1 (single issuer, deferred task running,
 * multishot receive, provided-buffer rings). core_ring_attach fails with
 * -errno elsewhere (or when io_uring is disabled, e.g. by seccomp or
 * kernel.io_uring_disabled) and the loop stays on epoll alone.
 *
 * Threading: attach, use and run from the loop's thread only (the ring is
 * created with IORING_SETUP_SINGLE_ISSUER); core_ring_detach may run on
 * another thread once the loop has stopped.
 */
#ifndef MERIDIAN_CORE_RING_H
#define MERIDIAN_CORE_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core_loop.h"

struct io_uring_sqe;

#define CORE_RING_BGID 0 /* the provided-buffer group of receives */

typedef struct core_op core_op;
/* res is the CQE's result, flags its flags (IORING_CQE_F_MORE: the
 * multishot op stays armed); buf/bid are set when a provided buffer was
 * filled (res bytes), else NULL. */
typedef void (*core_op_cb)(core_op *op, int res, uint32_t flags, char *buf,
			   uint16_t bid);
struct core_op {
	core_op_cb cb;
};

/* Create the ring (entries SQEs) with nbufs provided buffers of bufsize
 * bytes (nbufs a power of two) and attach it to l. 0 or -errno. */
int core_ring_attach(core_loop *l, unsigned entries, unsigned nbufs,
		     unsigned bufsize);
/* Tear down (completions not yet seen are dropped) and return l to
 * epoll alone. No-op when nothing is attached. */
void core_ring_detach(core_loop *l);

static inline bool core_ring_on(const core_loop *l)
{
	return l->ring != 0;
}

/* A free submission entry; submits the queue first when it is full.
 * NULL only when even that fails (the kernel refuses submissions): the
 * caller then does without the ring for this operation. */
struct io_uring_sqe *core_ring_sqe(core_loop *l);
void core_ring_set_op(struct io_uring_sqe *sqe, core_op *op);
/* Room for n more entries (submitting what is queued when needed).
 * false: the kernel takes nothing now. */
bool core_ring_reserve(core_loop *l, unsigned n);
/* Submit what is queued now (before closing a descriptor that queued
 * entries name, so a reused number never receives them). 0 when nothing
 * is left queued, else -errno. */
int core_ring_flush(core_loop *l);
/* Give a provided buffer back to the group. */
void core_ring_buf_put(core_loop *l, uint16_t bid);

/* The loop's wait (from core_loop_run): submit what is queued, wait up
 * to timeout_ms for completions, run the ops' callbacks and, when the
 * epoll fd is ready, fill evs. Returns the number of epoll events or
 * -errno. */
struct epoll_event;
int core_ring_wait(core_loop *l, struct epoll_event *evs, int max,
		   int timeout_ms);

#endif
