/* core_arena.c - bump allocator; see core_arena.h. */
#include "core/core_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
} arena_chunk;

struct core_arena {
	arena_chunk *head; /* current chunk; older ones follow */
	size_t chunk_size;
};

core_arena *core_arena_new(size_t chunk_size)
{
	core_arena *a = xcalloc(1, sizeof(*a));
	a->chunk_size = chunk_size ? chunk_size : 16384;
	return a;
}

static void chunks_free(arena_chunk *c, arena_chunk *keep)
{
	while (c && c != keep) {
		arena_chunk *next = c->next;
		free(c);
		c = next;
	}
}

void core_arena_free(core_arena *a)
{
	if (!a)
		return;
	chunks_free(a->head, NULL);
	free(a);
}

void *core_arena_alloc(core_arena *a, size_t size)
{
	size = (size + 15) & ~(size_t)15;
#ifdef MERIDIAN_ARENA_MALLOC
	/* Every allocation its own chunk, so ASan sees exact bounds. */
	arena_chunk *c = xcalloc(1, sizeof(*c) + size);
	c->size = c->used = size;
	c->next = a->head;
	a->head = c;
	return c->data;
#else
	arena_chunk *c = a->head;
	if (!c || c->size - c->used < size) {
		size_t csize = size > a->chunk_size ? size : a->chunk_size;
		arena_chunk *n = xmalloc(sizeof(*n) + csize);
		n->size = csize;
		n->used = 0;
		n->next = c;
		a->head = c = n;
	}
	void *p = c->data + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
#endif
}

char *core_arena_strndup(core_arena *a, const char *s, size_t n)
{
	char *d = core_arena_alloc(a, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *core_arena_strdup(core_arena *a, const char *s)
{
	return core_arena_strndup(a, s, strlen(s));
}

void core_arena_reset(core_arena *a)
{
	if (!a->head)
		return;
	arena_chunk *last = a->head;
	while (last->next)
		last = last->next;
	chunks_free(a->head, last);
	a->head = last;
	last->used = 0;
}
