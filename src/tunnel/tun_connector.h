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

/* Where each rule's service is: resolved once, at start (host names by
 * getaddrinfo, the first address). */
typedef struct tun_svc_addr {
	struct sockaddr_storage ss;
	socklen_t len; /* 0: not an HTTP service */
} tun_svc_addr;

/* Resolve the services of cfg's rules into out[cfg->nrules]. A name that
 * does not resolve is an error at its rule, "file:line:col: message", in
 * d. 0 or -1. */
int tun_resolve_services(const tun_config *cfg, tun_svc_addr *out, cfg_diag *d);

/* Run the connector until SIGTERM or SIGINT has drained it (GOAWAY on every
 * connection, streams finished or drain_timeout passed). Returns the exit
 * status: 0 after a drain, 1 when it cannot start. */
int tun_connector_run(const tun_config *cfg);

#endif
