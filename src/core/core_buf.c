/* core_buf.c - see core_buf.h. */
#include "core/core_buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

void core_buf_pool_init(core_buf_pool *p, uint32_t buf_size, uint32_t max_free)
{
	*p = (core_buf_pool){.buf_size = buf_size, .max_free = max_free};
}

void core_buf_pool_destroy(core_buf_pool *p)
{
	while (p->free) {
		core_buf *b = p->free;
		p->free = b->next_free;
		free(b);
	}
	p->nfree = 0;
}

core_buf *core_buf_get(core_buf_pool *p)
{
	core_buf *b = p->free;
	if (b) {
		p->free = b->next_free;
		p->nfree--;
	} else {
		b = xmalloc(sizeof(*b) + p->buf_size);
		b->cap = p->buf_size;
	}
	b->next_free = NULL;
	b->start = b->end = 0;
	p->in_use++;
	return b;
}

void core_buf_put(core_buf_pool *p, core_buf *b)
{
	if (!b)
		return;
	p->in_use--;
	if (p->nfree >= p->max_free) {
		free(b);
		return;
	}
	b->next_free = p->free;
	p->free = b;
	p->nfree++;
}

void core_buf_compact(core_buf *b)
{
	if (b->start == 0)
		return;
	uint32_t n = b->end - b->start;
	memmove(b->data, b->data + b->start, n);
	b->start = 0;
	b->end = n;
}
