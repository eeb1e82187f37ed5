/* api_tunnels.c - see api_tunnels.h.
 *
 * status, as Cloudflare's: "inactive" (no connector has joined since the
 * edge started), "down" (none connected now), "degraded" (one connection:
 * no redundancy), "healthy" (two or more that take requests). */
#include "api/api_tunnels.h"

#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "tunnel/tun_edge.h"

enum { MAX_CONNS = 64 };

static json_t *time_or_null(uint64_t ms)
{
	if (!ms)
		return json_null();
	char ts[STORE_TIME_SZ];
	store_time_format(ms * 1000, ts);
	return json_string(ts);
}

json_t *api_tunnel_json(struct tun_edge *t, const cfg_snapshot *cfg,
			const char *id)
{
	const cfg_tunnel *ct = NULL;
	for (size_t i = 0; i < cfg->ntunnels && !ct; i++)
		if (cfg->tunnels[i].id && !strcmp(cfg->tunnels[i].id, id))
			ct = &cfg->tunnels[i];
	if (!ct)
		return NULL;
	tun_edge_conn_info conns[MAX_CONNS];
	uint64_t up = 0, down = 0;
	int n = tun_edge_conns(t, id, conns, MAX_CONNS, &up, &down);
	int active = 0;
	json_t *arr = json_array();
	for (int i = 0; i < n; i++) {
		const tun_edge_conn_info *c = &conns[i];
		active += !c->draining;
		json_t *o = json_object();
		char cid[64];
		snprintf(cid, sizeof(cid), "%s-%llu", cfg->edge.name,
			 (unsigned long long)c->id);
		json_object_set_new(o, "id", json_string(cid));
		json_object_set_new(o, "colo_name",
				    json_string(cfg->edge.name));
		json_object_set_new(o, "client_id", json_string(c->connector));
		json_object_set_new(o, "origin_ip", json_string(c->origin_ip));
		json_object_set_new(o, "opened_at", time_or_null(c->opened_ms));
		json_object_set_new(o, "is_pending_reconnect",
				    json_boolean(c->draining));
		json_array_append_new(arr, o);
	}
	const char *status = n < 0	   ? "inactive"
			     : active == 0 ? "down"
			     : active == 1 ? "degraded"
					   : "healthy";
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(ct->id));
	json_object_set_new(o, "name", json_string(ct->id));
	json_object_set_new(
	    o, "account_tag",
	    json_string(cfg->api.account_id ? cfg->api.account_id : "default"));
	json_object_set_new(o, "tun_type", json_string("cfd_tunnel"));
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "remote_config", json_false());
	json_object_set_new(o, "conns_active_at",
			    active ? time_or_null(up) : json_null());
	json_object_set_new(o, "conns_inactive_at",
			    active ? json_null() : time_or_null(down));
	json_t *meta = json_object();
	if (ct->description)
		json_object_set_new(meta, "description",
				    json_string(ct->description));
	json_object_set_new(o, "metadata", meta);
	json_object_set_new(o, "connections", arr);
	return o;
}

json_t *api_tunnels_json(struct tun_edge *t, const cfg_snapshot *cfg)
{
	json_t *all = json_array();
	for (size_t i = 0; i < cfg->ntunnels; i++)
		if (cfg->tunnels[i].id)
			json_array_append_new(
			    all, api_tunnel_json(t, cfg, cfg->tunnels[i].id));
	return all;
}
