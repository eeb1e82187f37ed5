/* cfg_tunnel.h - tunnels in the config (`tunnels[]`) and origins reached
 * through one (`address: tunnel:ID`). The tunnel endpoint itself is
 * src/tunnel/tun_edge. */
#ifndef MERIDIAN_CFG_TUNNEL_H
#define MERIDIAN_CFG_TUNNEL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config/cfg_schema.h"

#define CFG_MAX_TUNNELS	     256
#define CFG_TUNNEL_ID_MAX    63
#define CFG_TUNNEL_TOKEN_MIN 32

/* The tunnels[] table's hook: the id's characters, the token's length. */
void cfg_finish_tunnel(cfg_ctx *c, const cfg_node *node, void *base);
/* Across the list (cfg_finish_root): unique ids, the count. */
void cfg_finish_tunnels(cfg_ctx *c, const cfg_node *list);

/* For cfg_finish_origin: when the address is `tunnel:ID`, look the tunnel
 * up (tunnels[] is applied before pools), point o->tunnel at it and o->ss
 * at the edge's bridge to it. Returns true when the address was a tunnel
 * (errors reported), false for any other address. */
bool cfg_origin_tunnel(cfg_ctx *c, const cfg_node *node, cfg_origin *o);

/* The AF_UNIX address (abstract, private to this process) the edge's
 * tunnel thread listens on for requests to tunnel `id` while one of its
 * connectors is connected; the workers connect to it as to any origin. */
void cfg_tunnel_sockaddr(const char *id, struct sockaddr_storage *ss,
			 socklen_t *len);

/* Whether `id` is a valid tunnel id. */
bool cfg_tunnel_id_ok(const char *id);

#endif
