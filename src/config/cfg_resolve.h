/* cfg_resolve.h - the addresses of origins given as host names.
 *
 * A cloud's load balancer is a host name whose addresses change (AWS ELB,
 * GCP ingress). An origin written as a host name is resolved (getaddrinfo,
 * so /etc/hosts and nsswitch apply) the first time a config build meets
 * it; the address is kept in a process-wide cache, which every later build
 * (API writes, previews) reads instead of resolving again. The edge's
 * resolver thread (edge_resolve.c) refreshes the cache every
 * edge.resolve_interval and rebuilds the config when an address changed.
 *
 * Which address: the first getaddrinfo gives, and then the same one for as
 * long as the name still resolves to it. Round-robin DNS rotates its
 * answers; following the rotation would rebuild the config every interval
 * and move every pooled connection for nothing. A name that stops
 * resolving keeps its last address (its origin's health check says whether
 * that still answers).
 *
 * Thread-safe: one mutex; getaddrinfo runs outside it.
 */
#ifndef MERIDIAN_CFG_RESOLVE_H
#define MERIDIAN_CFG_RESOLVE_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The address of host (port 0): the cache's, else getaddrinfo's now (then
 * cached). Returns 0, or -1 with the reason in err. */
int cfg_resolve_host(const char *host, struct sockaddr_storage *ss,
		     socklen_t *len, char *err, size_t errlen);

/* A reload's fresh lookups, made before it takes the control plane's
 * lock (edge_ctl.c): a DNS server that does not answer must hold up
 * neither the API nor a SIGTERM for the resolver's whole timeout. */
typedef struct cfg_resolve_batch cfg_resolve_batch;
cfg_resolve_batch *cfg_resolve_batch_new(void);
void cfg_resolve_batch_free(cfg_resolve_batch *b);
/* Until called again with NULL, cfg_resolve_host on this thread answers
 * a name b holds from b: its address, or its lookup's error, at once. A
 * name b lacks: with fresh, looked up now (never from the cache) and
 * added to b, the cache left alone; without, the usual way. */
void cfg_resolve_batch_use(cfg_resolve_batch *b, bool fresh);

/* Whether the cache holds host at another address than ss (ports
 * ignored): a running config built before the cache moved (its rebuild
 * failed, say) is behind. False when the cache lacks host. */
bool cfg_resolve_differs(const char *host, const struct sockaddr_storage *ss);

/* Forget every name: the next build resolves each afresh (SIGHUP). */
void cfg_resolve_forget(void);

/* Put host with the address a running config uses (port ignored) when
 * the cache does not have it (it was forgotten by a reload that then
 * failed): the resolver keeps following every name that runs. */
void cfg_resolve_seed(const char *host, const struct sockaddr_storage *ss,
		      socklen_t len);
/* cfg_resolve_seed for every origin of cfg given as a host name. */
struct cfg_snapshot;
void cfg_resolve_seed_config(const struct cfg_snapshot *cfg);

/* What cfg_resolve_refresh did to one name (for its caller's log). */
typedef struct cfg_resolve_change {
	char host[256];
	char old_ip[64], new_ip[64]; /* new_ip "": the lookup failed */
	char error[128];	     /* getaddrinfo's reason when it failed */
	bool changed;		     /* the kept address moved */
	bool failed_now;	     /* failed, after a success */
	bool recovered;		     /* resolves again, after failures */
} cfg_resolve_change;

/* Resolve every cached name again (blocking: off the data path). Names
 * for which keep(host, arg) is false are dropped first (no longer in the
 * running config). Events worth a log line (a changed address, a name that
 * failed or recovered) go to report(arg). Returns how many addresses
 * changed. report runs under the cache's lock: it may log, not call
 * cfg_resolve_*. */
size_t cfg_resolve_refresh(bool (*keep)(const char *host, void *arg),
			   void (*report)(const cfg_resolve_change *ch,
					  void *arg),
			   void *arg);

typedef struct cfg_resolve_counts {
	uint64_t lookups;  /* getaddrinfo calls */
	uint64_t failures; /* of which failed */
	uint64_t changes;  /* kept addresses that moved */
	uint64_t names;	   /* names cached now */
} cfg_resolve_counts;
void cfg_resolve_counts_get(cfg_resolve_counts *out);

/* Pure: the address to keep, given the one kept so far (len 0: none) and
 * a lookup's answer: the kept one when the answer still has it, else the
 * answer's first usable (IPv4 or IPv6) address. Ports are ignored and the
 * result's is 0. Returns false when the answer has no usable address. */
bool cfg_resolve_pick(const struct sockaddr_storage *kept, socklen_t kept_len,
		      const struct addrinfo *answer,
		      struct sockaddr_storage *out, socklen_t *out_len);

#endif
