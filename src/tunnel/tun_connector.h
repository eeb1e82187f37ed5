/* tun_connector.h - the tunnel connector (`meridian tunnel -c FILE`): dials
 * out to the edges, serves HTTP/2 over each connection with the roles
 * reversed, and proxies every stream to a local HTTP/1.1 service chosen by
 * the ingress rules. One thread, one epoll loop. See docs/ARCHITECTURE.md
 * "Tunnels" (protocol, "Connector") and docs/TUNNEL.md.
 *
 * Return convention: 0 / negative errno-style codes unless said otherwise.
 */
#ifndef MERIDIAN_TUN_CONNECTOR_H
#define MERIDIAN_TUN_CONNECTOR_H

#include <stddef.h>
#include <sys/socket.h>

#include "config/cfg_load.h"
#include "tunnel/tun_config.h"

/* Resolve the services of cfg's rules into out[cfg->nrules]. A name that
 * does not resolve is an error at its rule, "file:line:col: message", in
 * d. 0 or -1. */
int tun_resolve_services(const tun_config *cfg, tun_svc_addr *out, cfg_diag *d);

/* Run the connector until SIGTERM or SIGINT has drained it (GOAWAY on every
 * connection, streams finished or drain_timeout passed). Returns the exit
 * status: 0 after a drain, 1 when it cannot start. */
int tun_connector_run(const tun_config *cfg);

/* Live rules (the ingress controller): another thread publishes rule sets
 * that the running connector swaps in between streams; streams in flight
 * keep the set they started with. */
struct tun_ruleset;
typedef struct tun_live tun_live;
tun_live *tun_live_new(void); /* NULL when no eventfd */
/* After the connector has returned. */
void tun_live_free(tun_live *l);
/* Any thread: rs (its reference handed over) becomes the connector's set
 * at its next turn; a set published before it was taken is dropped. */
void tun_live_publish(tun_live *l, struct tun_ruleset *rs);
/* Edge connections up now (HTTP/2 after the 101). */
unsigned tun_live_up(tun_live *l);

/* As tun_connector_run, with the rule set rs (its reference handed over;
 * the services already resolved) and, when live is not NULL, the sets
 * published there. With live, rs may be NULL: the edges are then dialled
 * only once the first set is published, so a connector that cannot
 * route yet takes no request (the edges use the tunnel's other
 * connectors, or other origins). */
int tun_connector_run_live(const tun_config *cfg, struct tun_ruleset *rs,
			   tun_live *live);

#endif
