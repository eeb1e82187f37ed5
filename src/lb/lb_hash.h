/* lb_hash.h - stable hashing for steering and session affinity, pure.
 *
 * Everything here is deterministic across processes, restarts, machines and
 * builds: it depends only on the bytes hashed (never on pointer values,
 * indexes or the order of a config file), so two edges, or one edge before
 * and after a reload, make the same choice for the same client.
 *
 *   - lb_hash_siphash(): SipHash-2-4 (Aumasson & Bernstein), a keyed 64-bit
 *     PRF. Used with a secret key as the MAC of session affinity tokens and
 *     with a fixed public key as a well-mixed general hash.
 *   - lb_hash_hrw_score(): weighted rendezvous (highest random weight)
 *     hashing, the consistent hashing behind origin_steering "hash": every
 *     (key, node) pair gets a score and the highest score wins. When a node
 *     leaves, only the keys it owned move (each to its own second choice),
 *     and the share of a node is proportional to its weight.
 *
 * No allocation; safe from any thread.
 */
#ifndef MERIDIAN_LB_HASH_H
#define MERIDIAN_LB_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* SipHash-2-4 of data[0..len) under a 128-bit key. */
uint64_t lb_hash_siphash(const uint8_t key[16], const void *data, size_t len);

/* SipHash-2-4 under Meridian's fixed public key: stable, not secret. */
uint64_t lb_hash_bytes(const void *data, size_t len);

/* Hash of a NUL-terminated string continuing from h (0 to start); the
 * terminating NUL is hashed too, so ("ab","c") and ("a","bc") differ. */
uint64_t lb_hash_str(uint64_t h, const char *s);

/* A strong 64-bit mix of two values (not commutative). */
uint64_t lb_hash_mix(uint64_t a, uint64_t b);

/* The client address of sa as a hash key: the IP only (no port), IPv4-mapped
 * IPv6 addresses hashed as their IPv4 address. 0 for NULL or a family other
 * than AF_INET/AF_INET6. */
uint64_t lb_hash_sockaddr(const struct sockaddr *sa);

/* The identity of an origin for hashing and affinity: pool id and origin
 * name, which are stable across reloads (unlike indexes). */
uint64_t lb_hash_origin_id(const char *pool_id, const char *origin_name);

/* Weighted rendezvous score of node for key: weight / -ln(u) with u in
 * (0, 1) drawn from hash(key, node). Highest wins; weight <= 0 gives 0
 * (never wins over a positive weight). */
double lb_hash_hrw_score(uint64_t key, uint64_t node, double weight);

#endif
