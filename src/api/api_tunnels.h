/* api_tunnels.h - tunnels in the API, read-only, in the shape of
 * Cloudflare's Cloudflare Tunnel API (`/accounts/{a}/cfd_tunnel`): the
 * tunnels of the config, each with its status and the connector
 * connections this edge holds now (tun_edge_conns). Tunnels are defined in
 * the file; the API does not create them. */
#ifndef MERIDIAN_API_TUNNELS_H
#define MERIDIAN_API_TUNNELS_H

#include <jansson.h>

#include "config/cfg_model.h"

struct tun_edge;

/* One tunnel object; NULL when the config has no tunnel `id`. */
json_t *api_tunnel_json(struct tun_edge *t, const cfg_snapshot *cfg,
			const char *id);
/* Every tunnel of the config, in its order. */
json_t *api_tunnels_json(struct tun_edge *t, const cfg_snapshot *cfg);

#endif
