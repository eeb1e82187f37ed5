/* clu_debounce.c - see clu_debounce.h. */
#include "cluster/clu_debounce.h"

#include <string.h>

void clu_debounce_init(clu_debounce *d, uint32_t quiet_ms, uint32_t max_ms)
{
	memset(d, 0, sizeof(*d));
	d->quiet_ms = quiet_ms;
	d->max_ms = max_ms < quiet_ms ? quiet_ms : max_ms;
}

void clu_debounce_note(clu_debounce *d, uint64_t now, uint32_t n)
{
	if (!n)
		return;
	if (!d->pending) {
		d->pending = true;
		d->first_ms = now;
		d->changes = 0;
	}
	d->last_ms = now;
	d->changes += n;
}

int64_t clu_debounce_wait(const clu_debounce *d, uint64_t now)
{
	if (!d->pending)
		return -1;
	uint64_t due = d->last_ms + d->quiet_ms;
	uint64_t cap = d->first_ms + d->max_ms;
	if (cap < due)
		due = cap;
	return due <= now ? 0 : (int64_t)(due - now);
}

uint32_t clu_debounce_take(clu_debounce *d, uint64_t now)
{
	if (clu_debounce_wait(d, now) != 0)
		return 0;
	uint32_t n = d->changes;
	d->pending = false;
	d->changes = 0;
	return n ? n : 1;
}
