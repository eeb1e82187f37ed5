/* core_arena.h - bump allocator: many allocations, one free.
 *
 * Used for config snapshots and per-request scratch. Built with
 * -Darena_malloc=true (the asan build), every allocation is a real malloc so
 * the sanitizers see each overflow (Varnish's habit).
 */
#ifndef MERIDIAN_CORE_ARENA_H
#define MERIDIAN_CORE_ARENA_H

#include <stddef.h>

typedef struct core_arena core_arena;

core_arena *core_arena_new(size_t chunk_size); /* 0: default 16 KiB */
void core_arena_free(core_arena *a);
/* Returns zeroed memory aligned to 16; aborts on out-of-memory. */
void *core_arena_alloc(core_arena *a, size_t size);
char *core_arena_strdup(core_arena *a, const char *s);
char *core_arena_strndup(core_arena *a, const char *s, size_t n);
/* Forget every allocation but keep the first chunk (per-request reuse). */
void core_arena_reset(core_arena *a);

#endif
