/* health_checker.h - the health thread: runs the monitors of every origin
 * and publishes the verdicts into the shared lb_origin_state/lb_pool_state.
 *
 * Which origins: every enabled origin of every enabled pool that has a
 * monitor. Origins of pools without a monitor are never touched and stay
 * LB_HEALTH_UNKNOWN (routable); such a pool is set Healthy at start (or
 * Critical with fewer enabled origins than minimum_origins). Disabled pools
 * are left as they are.
 *
 * Schedule: each origin has one timer in the thread's heap. The first check
 * runs at a random point of [0, min(interval, 1 s)), the later ones every
 * interval on a fixed grid (start + k * interval), each jittered by up to
 * +-5% of the interval, so checks neither drift nor synchronise. Due
 * times are rounded up to a multiple of HEALTH_TICK_MS, so one wake-up of
 * the thread starts all the checks of a tick (a wake-up costs more than a
 * check's own work; max_late_ms and missed count from the rounded time).
 * Retries of a failed probe run HEALTH_RETRY_DELAY_MS later. At most
 * HEALTH_MAX_INFLIGHT probes run at once (the rest wait in a FIFO), each
 * with a preallocated slot and a pooled buffer, so steady-state checking
 * allocates nothing (https probes excepted: OpenSSL allocates its SSL
 * object).
 * An attempt (probe + retries) that overruns its interval skips the
 * intervals it covered (counted as missed in health_stats). Each target's
 * next grid point is published in lb_origin_state.next_check_ms; a checker
 * started on states that hold one (carried over a config change) goes on
 * from that grid instead of the random first check, so a change does not
 * check every origin at once (an attempt the change abandoned runs again
 * at once).
 *
 * Publication after each decided attempt: lb_origin_state.active and rtt_us
 * (atomics), then reason/since_ms/checks/failures/up_run/down_run under
 * `lock`; a passed
 * attempt also clears passive_fails, ejected_until and ejections. Pool
 * health (lb_pool_state) is re-evaluated when one of its origins changes.
 *
 * Initial state: the checker starts from what ostates/pstates hold (verdict,
 * RTT, reason, counts, the runs towards consecutive_up/down and the grid:
 * a restart on a config change loses nothing but an attempt in progress),
 * so the
 * owner zeroes them (all unknown) and initialises each `lock` before
 * health_start (health_states_init does both). cfg, ostates and pstates must
 * outlive the checker.
 */
#ifndef MERIDIAN_HEALTH_CHECKER_H
#define MERIDIAN_HEALTH_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "health/health_status.h"
#include "lb/lb_state.h"

#define HEALTH_MAX_INFLIGHT   1024 /* concurrent probes (fds) */
#define HEALTH_RETRY_DELAY_MS 100
#define HEALTH_TICK_MS	      5 /* checks start on a 5 ms grid */

typedef struct health_checker health_checker;

typedef enum health_event_kind {
	HEALTH_EV_ORIGIN = 0,
	HEALTH_EV_POOL,
} health_event_kind;

/* One health change. Strings point into the snapshot or the checker and
 * are valid only during the callback: copy what you keep. */
typedef struct health_event {
	health_event_kind kind;
	const char *pool_id;
	const char *origin_name; /* NULL for a pool event */
	const cfg_pool *pool;
	const cfg_origin *origin; /* NULL for a pool event */
	/* lb_health for origins, lb_pool_health for pools; name them with
	 * health_state_name / health_pool_state_name. */
	int old_state, new_state;
	/* Origins: the failure ("timeout: no response within 5000 ms"), ""
	 * when becoming healthy. Pools: "2 of 3 origins healthy (minimum
	 * 2)". */
	const char *reason;
	uint64_t wall_ms; /* when the change was decided, ms since the epoch */
} health_event;

/* Called on the health thread, for every origin state change and every pool
 * health change, an origin's before its pool's. It must not block (no
 * network, no disk, no waiting on locks held for long): checks of every
 * origin wait while it runs. Queue the event and return (the notifier and
 * the events store do their I/O on their own threads). The first verdict of
 * each origin and pool is reported too (old_state unknown); a notifier that
 * only wants real changes filters those out. */
typedef void (*health_event_cb)(void *arg, const health_event *ev);

/* Start the health thread. cb may be NULL. Returns NULL (and logs why) if
 * the thread or its loop cannot be created. */
health_checker *health_start(const cfg_snapshot *cfg, lb_origin_state *ostates,
			     lb_pool_state *pstates, health_event_cb cb,
			     void *cb_arg);
/* Stop the thread (running probes are abandoned), join it and free the
 * checker. NULL is a no-op. The states keep the last verdicts. */
void health_stop(health_checker *hc);
/* The check regions' majority of some origins changed
 * (lb_origin_state.cluster): the health thread counts the pools with
 * check_regions again, emitting their health changes. Any thread; hc NULL
 * is fine. */
void health_recount(health_checker *hc);

/* Counters, for tests, benchmarks and later /metrics. Safe from any
 * thread. */
typedef struct health_stats {
	uint64_t probes;      /* probes finished, retries included */
	uint64_t attempts;    /* attempts decided */
	uint64_t missed;      /* intervals whose check started an interval late
			       * or was skipped */
	uint64_t max_late_ms; /* worst start delay after the due time */
	uint64_t cpu_ns;      /* CPU time used by the health thread */
	uint64_t connects;    /* TCP connections opened */
	uint64_t reuses;      /* probes sent on a kept-alive connection */
	uint64_t ring_sends;  /* of reuses: sent through io_uring */
	uint32_t inflight;    /* probes running now */
	uint32_t targets;     /* origins being checked */
	uint32_t kept;	      /* keep-alive connections parked now */
	uint32_t kept_max;    /* how many may be parked */
	bool io_uring;	      /* the thread's loop waits in io_uring */
} health_stats;

void health_get_stats(health_checker *hc, health_stats *out);

/* Zero n origin states and m pool states and initialise their locks;
 * health_states_destroy releases the locks. */
void health_states_init(lb_origin_state *o, size_t n, lb_pool_state *p,
			size_t m);
void health_states_destroy(lb_origin_state *o, size_t n);

/* Copy the live state of every origin and pool present in both configs
 * from `from` to `to`, so a config change does not flap unchanged origins
 * to unknown. An origin is the same when its pool id, name, address and
 * port are; it keeps its passive state (ejection) and, still over TLS, its
 * certificate expiry. Its active-check verdict (state, RTT, reason, since,
 * checks, failures) is kept only when it was checked before and is checked
 * after by a monitor that tests the same (health_monitor_tests_same; its
 * interval, timeout, retries and consecutive_up/down may differ, and then
 * the check grid starts anew): pool and origin enabled in both; or when it
 * is not checked after (pool or origin disabled now) and the monitor tests
 * the same: the last
 * verdict stays for the sessions it drains (drain_duration). Otherwise it
 * starts unknown, as a new origin does (for a pool without a monitor:
 * routable, never checked).
 * Pool states are copied by pool id; the new checker re-evaluates them.
 * The `to` states must be initialised and not yet in use; the `from` ones
 * may still be written (each origin is copied under its lock). Returns the
 * number of origins whose verdict was carried over. */
size_t health_states_carry(const cfg_snapshot *from, lb_origin_state *from_o,
			   const lb_pool_state *from_p, const cfg_snapshot *to,
			   lb_origin_state *to_o, lb_pool_state *to_p);

/* An origin or pool that a config change enabled or disabled. */
typedef struct health_enablement {
	const cfg_pool *pool;	  /* as in the new config */
	const cfg_origin *origin; /* as in the new config; NULL: the pool */
	bool enabled;		  /* now */
} health_enablement;

typedef void (*health_enablement_cb)(void *arg, const health_enablement *e);

/* Call cb for every pool (same id) and every origin (same pool id and
 * name) present in both configs whose `enabled` differs, pools in the new
 * config's order, each pool before its origins. Returns how many. */
size_t health_enablement_diff(const cfg_snapshot *from, const cfg_snapshot *to,
			      health_enablement_cb cb, void *arg);

/* Whether two monitors check the same way: same id and every setting that
 * changes a check or a verdict (all but the description). false when
 * either is NULL. */
bool health_monitor_same(const cfg_monitor *a, const cfg_monitor *b);

/* Whether two monitors test the same thing: as health_monitor_same but
 * for the cadence and tolerance (interval, timeout, retries,
 * consecutive_up, consecutive_down). */
bool health_monitor_tests_same(const cfg_monitor *a, const cfg_monitor *b);

#endif
