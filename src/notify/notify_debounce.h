/* notify_debounce.h - debounce of health changes against flapping (pure:
 * the time is passed in, no locks, no I/O).
 *
 * One entry per origin (pool id + origin name) or pool (pool id) remembers
 * the last state that was notified - at first the old state of the first
 * event seen, or, when that event is a first verdict that is healthy
 * ("unknown" -> a healthy state), its new state at once (the baseline:
 * start-up is not news) - and at most one pending change. A change becomes
 * pending when an event leaves the notified state and is released once it has
 * held for the debounce window. An event back to the notified state inside the
 * window cancels the pending change (a flap: nothing is sent); an event to
 * a third state replaces it, restarts the window, and the released change
 * reads "notified state -> latest state".
 *
 * Pending entries are kept in a list in due order (every window has the
 * same length and time does not go back), so the next due time and each
 * release are O(1).
 */
#ifndef MERIDIAN_NOTIFY_DEBOUNCE_H
#define MERIDIAN_NOTIFY_DEBOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "notify/notify_msg.h"

typedef struct notify_db notify_db;

typedef enum notify_db_result {
	NOTIFY_DB_PENDING = 0, /* a new change waits for its window */
	NOTIFY_DB_REPLACED,    /* a pending change was superseded */
	NOTIFY_DB_FLAP,	       /* a pending change was cancelled: flap */
	NOTIFY_DB_SAME,	       /* no change from the notified state */
	NOTIFY_DB_BASELINE,    /* an entity's first event, unknown -> healthy:
				* taken as its notified state, nothing sent */
} notify_db_result;

notify_db *notify_db_new(uint64_t debounce_ms);
void notify_db_free(notify_db *db);

/* Change the window (a new notifier taking over db): later changes wait
 * debounce_ms; a pending change due later than now + debounce_ms is due
 * then (the list stays in due order). */
void notify_db_set_debounce(notify_db *db, uint64_t debounce_ms, uint64_t now);

/* Feed one event seen at now (monotonic ms); takes ownership of it. */
notify_db_result notify_db_feed(notify_db *db, notify_item *it, uint64_t now);

/* The earliest due time of a pending change, or UINT64_MAX when none. */
uint64_t notify_db_next_due(const notify_db *db);

/* Release one change whose window has passed at now, or NULL. The item
 * (owned by the caller) reads "last notified state -> new state"; that new
 * state becomes the notified state. item->first is set on the entity's
 * first released change. */
notify_item *notify_db_pop_due(notify_db *db, uint64_t now);

/* Cancel every pending change (stop). Returns how many there were. */
size_t notify_db_drop_pending(notify_db *db);

/* Forget entities with nothing pending and no event for idle_ms (pools
 * and origins long removed would otherwise be kept for the life of the
 * process). Nothing is lost: with nothing pending, the notified state is
 * the entity's current one, which its next event carries as its old
 * state, and a fresh entity starts from exactly that. Returns how many
 * were forgotten; O(entities). */
size_t notify_db_expire(notify_db *db, uint64_t now, uint64_t idle_ms);

/* Pending changes, and entities tracked. */
size_t notify_db_pending(const notify_db *db);
size_t notify_db_entities(const notify_db *db);

#endif
