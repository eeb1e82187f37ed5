/* sec_conns.h - open client connections per client network, shared by
 * every worker; pure (no I/O).
 *
 * Why: edge.limits.max_connections caps the edge as a whole, so one client
 * opening thousands of connections (or holding them idle: slowloris) takes
 * them from everyone. With max_connections_per_client each client network
 * (an IPv4 address, an IPv6 /64) may hold that many at once; the next one
 * is refused at accept, as nginx's limit_conn and HAProxy's sc_conn_cur do.
 *
 * The table: sets of four {key, count} slots, one cache line each, guarded
 * by striped mutexes; a key lives in the set its hash picks or that set's
 * pair, and its slot is freed when its count drops to 0. Counts are exact: a
 * connection releases the key it took. When both sets are full of other
 * clients the connection is let through untracked (counted, so an operator
 * sees the table is small), never refused for it. Keys are SipHash under a
 * random key, so nobody can aim a set.
 */
#ifndef MERIDIAN_SEC_CONNS_H
#define MERIDIAN_SEC_CONNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct sec_conns sec_conns;

typedef enum sec_conns_verdict {
	SEC_CONNS_TAKEN = 0, /* counted: release it when the connection ends */
	SEC_CONNS_OVER,	     /* the client holds max already: refuse */
	SEC_CONNS_UNTRACKED, /* no room to count it: let it through */
} sec_conns_verdict;

/* A table for about nclients clients at once (rounded up; at least 64). */
sec_conns *sec_conns_new(uint32_t nclients, const uint8_t key[16]);
void sec_conns_free(sec_conns *t);

/* The key of a client: its network (IPv4 address, IPv6 /64; IPv4-mapped
 * IPv6 as IPv4), never 0. */
uint64_t sec_conns_key(const sec_conns *t, const struct sockaddr *client);

/* One more connection of key, when it holds fewer than max. */
sec_conns_verdict sec_conns_take(sec_conns *t, uint64_t key, uint32_t max);
/* A connection of key that was TAKEN ends. */
void sec_conns_release(sec_conns *t, uint64_t key);
/* The connections key holds now (tests, and /metrics walks). */
uint32_t sec_conns_count(sec_conns *t, uint64_t key);

#endif
