/* cfg_tunnel.c - see cfg_tunnel.h. */
#include "config/cfg_tunnel.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/cfg_values.h"
#include "core/core_arena.h"

bool cfg_tunnel_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > CFG_TUNNEL_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	return true;
}

static const cfg_node *at(const cfg_node *map, const char *key)
{
	const cfg_node *n = cfg_node_get(map, key);
	return n ? n : map;
}

void cfg_finish_tunnel(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_tunnel *t = base;
	if (!node)
		return;
	if (t->id && !cfg_tunnel_id_ok(t->id))
		cfg_error(c, at(node, "id"),
			  "id: '%s' is not a tunnel id (letters, digits, '.', "
			  "'_', '-'; at most %d)",
			  t->id, CFG_TUNNEL_ID_MAX);
	/* The length only: the value may come from ${VAR}, and an error
	 * must not print a secret. */
	if (t->token && strlen(t->token) < CFG_TUNNEL_TOKEN_MIN)
		cfg_error(c, at(node, "token"),
			  "token: at least %d characters (this one has %zu); "
			  "e.g. `openssl rand -hex 24`",
			  CFG_TUNNEL_TOKEN_MIN, strlen(t->token));
}

void cfg_finish_tunnels(cfg_ctx *c, const cfg_node *list)
{
	const cfg_snapshot *s = c->snap;
	if (s->ntunnels > CFG_MAX_TUNNELS)
		cfg_error(c,
			  list && list->kind == CFG_NODE_SEQ &&
				  list->n > CFG_MAX_TUNNELS
			      ? list->items[CFG_MAX_TUNNELS]
			      : list,
			  "tunnels: at most %d", CFG_MAX_TUNNELS);
}

void cfg_tunnel_sockaddr(const char *id, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	memset(ss, 0, sizeof(*ss));
	un->sun_family = AF_UNIX;
	/* Abstract (a leading NUL): no file to clean up, and the pid keeps
	 * two edges on one machine apart. */
	int n = snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1,
			 "meridian/%ld/tunnel/%s", (long)getpid(), id);
	if (n < 0 || (size_t)n >= sizeof(un->sun_path) - 1)
		n = (int)sizeof(un->sun_path) - 2;
	*len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

bool cfg_origin_tunnel(cfg_ctx *c, const cfg_node *node, cfg_origin *o)
{
	static const char scheme[] = "tunnel:";
	if (strncasecmp(o->address, scheme, sizeof(scheme) - 1))
		return false;
	const cfg_node *an = at(node, "address");
	const char *id = o->address + sizeof(scheme) - 1;
	const cfg_snapshot *s = c->snap;
	if (o->tls_on) {
		cfg_error(c, at(node, "tls"),
			  "tls: a tunnel origin is reached over its "
			  "connectors' TLS connections; remove `tls`");
		return true;
	}
	for (size_t i = 0; i < s->ntunnels; i++) {
		if (s->tunnels[i].id && !strcmp(s->tunnels[i].id, id)) {
			o->tunnel = &s->tunnels[i];
			cfg_tunnel_sockaddr(id, &o->ss, &o->sslen);
			return true;
		}
	}
	if (!s->ntunnels) {
		cfg_error(c, an,
			  "address: unknown tunnel '%s' (no tunnels are "
			  "defined)",
			  id);
		return true;
	}
	const char **ids = core_arena_alloc(c->tmp, s->ntunnels * sizeof(*ids));
	for (size_t i = 0; i < s->ntunnels; i++)
		ids[i] = s->tunnels[i].id ? s->tunnels[i].id : "";
	const char *hint = cfg_suggest(id, ids, s->ntunnels);
	if (hint)
		cfg_error(c, an,
			  "address: unknown tunnel '%s'; did you mean "
			  "'tunnel:%s'?",
			  id, hint);
	else
		cfg_error(c, an, "address: unknown tunnel '%s'", id);
	return true;
}
