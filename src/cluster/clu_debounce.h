/* clu_debounce.h - when the cluster thread rebuilds after changes from
 * the watch (SPEC §4.9), pure: time is passed in (ms, monotonic).
 *
 * A burst of changes (a client creating a pool and its load balancer) is
 * one rebuild: due quiet_ms after the last change, but never later than
 * max_ms after the first, so a steady trickle still gets applied.
 */
#ifndef MERIDIAN_CLU_DEBOUNCE_H
#define MERIDIAN_CLU_DEBOUNCE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct clu_debounce {
	uint32_t quiet_ms, max_ms;
	bool pending;
	uint64_t first_ms, last_ms;
	uint32_t changes; /* noted since the last rebuild */
} clu_debounce;

void clu_debounce_init(clu_debounce *d, uint32_t quiet_ms, uint32_t max_ms);
/* n changes at now. */
void clu_debounce_note(clu_debounce *d, uint64_t now, uint32_t n);
/* Milliseconds until due (0: due now), or -1 when nothing is pending. */
int64_t clu_debounce_wait(const clu_debounce *d, uint64_t now);
/* Due now: clears the pending state and returns the changes it held
 * (0: not due). */
uint32_t clu_debounce_take(clu_debounce *d, uint64_t now);

#endif
