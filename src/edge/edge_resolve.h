/* edge_resolve.h - the resolver thread: keeps origin host names fresh.
 *
 * Every edge.resolve_interval it resolves again each origin host name of
 * the running config (cfg_resolve_refresh: getaddrinfo, blocking, which is
 * why it has a thread of its own and never runs on a worker or the health
 * thread). When an address moved, it rebuilds the config from the same
 * sources (edge_ctl_rebuild), which swaps it in as an API write would:
 * health verdicts and counters carry over, the health checks restart
 * against the new address, and workers stop reusing pooled connections of
 * the old snapshot.
 */
#ifndef MERIDIAN_EDGE_RESOLVE_H
#define MERIDIAN_EDGE_RESOLVE_H

struct edge;
struct edge_ctl;

typedef struct edge_resolve edge_resolve;

/* NULL when the thread could not start (logged; names then only change on
 * SIGHUP). */
edge_resolve *edge_resolve_start(struct edge *e, struct edge_ctl *ctl);
/* Stops and joins the thread. Lookups in progress are not waited for:
 * with a DNS server that does not answer they block for the resolver's
 * whole timeout (/etc/resolv.conf; minutes with many names), and the edge
 * would keep its listeners without serving them. The thread is then left
 * to end on its own (it touches nothing of the edge any more). A rebuild
 * in progress is waited for. NULL is a no-op. */
void edge_resolve_stop(edge_resolve *r);

#endif
