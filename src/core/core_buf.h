/* core_buf.h - fixed-size I/O buffers from a per-thread free list.
 *
 * A buffer holds bytes [start, end) of data[cap]. Connections take a buffer
 * when bytes arrive and give it back as soon as it is empty, so idle
 * connections hold none. The pool is not thread-safe: one per worker.
 */
#ifndef MERIDIAN_CORE_BUF_H
#define MERIDIAN_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct core_buf {
	struct core_buf *next_free;
	uint32_t start, end, cap;
	char data[];
} core_buf;

typedef struct core_buf_pool {
	core_buf *free;
	uint32_t nfree, max_free; /* free list bounded; the rest go to free() */
	uint32_t buf_size;
	uint32_t in_use;
} core_buf_pool;

void core_buf_pool_init(core_buf_pool *p, uint32_t buf_size, uint32_t max_free);
void core_buf_pool_destroy(core_buf_pool *p);
core_buf *core_buf_get(core_buf_pool *p); /* never NULL (aborts on OOM) */
void core_buf_put(core_buf_pool *p, core_buf *b); /* NULL is a no-op */

static inline uint32_t core_buf_len(const core_buf *b)
{
	return b->end - b->start;
}
static inline uint32_t core_buf_space(const core_buf *b)
{
	return b->cap - b->end;
}
static inline char *core_buf_head(core_buf *b)
{
	return b->data + b->start;
}
static inline char *core_buf_tail(core_buf *b)
{
	return b->data + b->end;
}
static inline void core_buf_consume(core_buf *b, uint32_t n)
{
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}
/* Move the unread bytes to the front to make room at the tail. */
void core_buf_compact(core_buf *b);

#endif
