/* notify_msg.h - the pure part of the notifier: the queued item, the
 * notification_filter, message formatting (subject, RFC 5322 email, JSON
 * webhook body), retry policy. No I/O, no clock: time is passed in, so
 * everything here is unit-tested directly.
 */
#ifndef MERIDIAN_NOTIFY_MSG_H
#define MERIDIAN_NOTIFY_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "notify/notify.h"

/* A copied event (or a debounced change ready to send). One allocation holds
 * the struct and its strings; free with free(). */
typedef struct notify_item {
	struct notify_item *next; /* queue / list link */
	int kind;		  /* NOTIFY_ORIGIN or NOTIFY_POOL */
	const char *pool_id;
	const char *pool_name;	 /* the pool's name; pool_id when unknown */
	const char *origin_name; /* NULL for NOTIFY_POOL */
	const char *old_state, *new_state;
	const char *reason; /* "" when none */
	bool new_healthy;
	bool enablement;  /* enabled/disabled, not a health change */
	bool first;	  /* the entity's first change out of the debounce */
	uint64_t time_ms; /* wall clock of the change */
	cfg_notification_filter filter;
	char strs[];
} notify_item;

/* Copy ev. pool_name NULL means pool_id; filter NULL means "notify all".
 * Missing strings become "" ("unknown" for states). Returns NULL only when
 * malloc fails (the caller on the traffic side must not abort). */
notify_item *notify_item_new(const notify_event *ev, const char *pool_name,
			     const cfg_notification_filter *filter);
/* The same change with another old state (debounce: last notified state). */
notify_item *notify_item_with_old(const notify_item *it, const char *old_state);

/* The bounded FIFO between notify_submit and the notifier thread (the
 * caller holds the lock). */
typedef struct notify_queue {
	notify_item *head, *tail;
	size_t len;
} notify_queue;

/* Append it. When the queue already holds max items the oldest is unlinked
 * and returned (the caller frees and counts it); else NULL. */
notify_item *notify_queue_push(notify_queue *q, notify_item *it, size_t max);
/* Unlink every item: returns the list (oldest first), *n its length. */
notify_item *notify_queue_take(notify_queue *q, size_t *n);

/* Whether a change of `kind` that makes the entity healthy (new_healthy)
 * passes the pool's filter: disable -> never; healthy 1 -> only when it
 * becomes healthy; 0 -> only when it becomes unhealthy; -1 -> always. */
bool notify_filter_pass(const cfg_notification_filter *f, int kind,
			bool new_healthy);

/* Whether a released change is start-up noise: the entity's first change,
 * from "unknown" to a healthy state (the first verdict after start-up is
 * news only when it is bad - also when it was bad for less than the
 * debounce window: unknown -> unhealthy -> healthy). */
bool notify_startup_quiet(const notify_item *c);

/* The facts shared by every message of one edge. */
typedef struct notify_site {
	const char *edge;	/* edge name */
	const char *account_id; /* api.account_id */
	const char *from;	/* bare address, as validated by the config */
	const char *const *to;
	size_t nto;
} notify_site;

/* Copy `in` to out (size > 0) as valid UTF-8 without control characters
 * (each invalid byte or control character becomes '?', tab and newlines a
 * space), truncated on a character boundary. Returns the length. */
size_t notify_clean(const char *in, char *out, size_t size);

/* "2024-10-01T12:00:00.123Z". Returns the length (buf >= 25 bytes). */
size_t notify_iso8601(uint64_t wall_ms, char *buf, size_t size);
/* RFC 5322 date, "Tue, 01 Oct 2024 12:00:00 +0000". */
size_t notify_rfc5322_date(uint64_t wall_ms, char *buf, size_t size);

/* "[Meridian] origin gke-1 in pool gcp is unhealthy" or
 * "[Meridian] pool gcp is critical". Returns the length (truncated). */
size_t notify_subject(const notify_item *c, char *buf, size_t size);

/* The whole RFC 5322 message (CRLF line ends) for c, composed at now_ms
 * (Date header); seq and pid make the Message-ID unique. malloc'd; *len set.
 */
char *notify_email_build(const notify_item *c, const notify_site *s,
			 uint64_t now_ms, uint64_t seq, long pid, size_t *len);

/* The webhook body: Cloudflare's generic webhook shape
 * {name, text, data{...}, ts, account_id, alert_type, alert_event};
 * alert_type load_balancing_health_alert, or for an enablement
 * load_balancing_pool_enablement_alert with data.enabled in place of
 * old_health/new_health/healthy.
 * malloc'd (free()); *len set. NULL only on allocation failure. */
char *notify_json_build(const notify_item *c, const notify_site *s,
			size_t *len);

/* Retry policy. */
#define NOTIFY_MAX_ATTEMPTS	  5u
#define NOTIFY_CONNECT_TIMEOUT_MS 5000L
#define NOTIFY_TOTAL_TIMEOUT_MS	  15000L

/* Delay before attempt number attempt + 1 after attempt `attempt` (1-based)
 * failed: 1 s, 2 s, 4 s, 8 s. */
uint64_t notify_backoff_ms(unsigned attempt);

typedef enum notify_outcome {
	NOTIFY_DELIVERED = 0,
	NOTIFY_RETRY,	  /* transient: try again later */
	NOTIFY_PERMANENT, /* retrying cannot help (bad URL, 4xx) */
} notify_outcome;

/* Classify a finished transfer: curl_code is a CURLcode, status the HTTP
 * status for webhooks, the last SMTP reply code for email (0: none); a
 * failed email with a 5yz reply is permanent, with 4yz transient. */
notify_outcome notify_classify(int curl_code, bool http, long status);

#endif
