/* tun_edge.c - the edge's tunnel thread; see tun_edge.h and
 * docs/ARCHITECTURE.md "Tunnels" for the data structures and the life of
 * a request through a tunnel. This file: the thread, its listeners and
 * timers, the tunnels joined (tun_entry) and their bridge sockets;
 * tun_link.c has the connector connections, tun_bridge.c the workers'
 * side. */
#include "tunnel/tun_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg_tunnel.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge.h"

static const char *const hello_names[TUN_HELLO_NRESULT] = {
    "accepted", "unauthorized", "refused", "failed"};

const char *tun_hello_result_name(tun_hello_result r)
{
	return r < TUN_HELLO_NRESULT ? hello_names[r] : "?";
}

void tun_grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	*buf = xrealloc(*buf, n);
	*cap = n;
}

tun_link *tun_pick_link(tun_entry *en, const tun_link *avoid)
{
	tun_link *best = NULL, *tail = NULL;
	for (tun_link *l = en->links; l; l = l->next) {
		tail = l;
		if (!l->goaway && !l->closed && l != avoid &&
		    (!best || l->streams < best->streams))
			best = l;
	}
	if (best && best != tail) {
		if (best->prev)
			best->prev->next = best->next;
		else
			en->links = best->next;
		best->next->prev = best->prev;
		best->prev = tail;
		best->next = NULL;
		tail->next = best;
	}
	return best;
}

/* ---- entries ---- */

tun_entry *tun_entry_get(tun_edge *t, const char *id)
{
	for (tun_entry *en = t->entries; en; en = en->next)
		if (!strcmp(en->id, id))
			return en;
	tun_entry *en = xcalloc(1, sizeof(*en));
	en->t = t;
	snprintf(en->id, sizeof(en->id), "%s", id);
	en->lio.fd = -1;
	en->lio.cb = tun_bridge_accept_cb;
	pthread_mutex_lock(&t->lock);
	en->next = t->entries;
	t->entries = en;
	pthread_mutex_unlock(&t->lock);
	return en;
}

static void entry_listen(tun_entry *en)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cfg_tunnel_sockaddr(en->id, &ss, &len);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, BRIDGE_BACKLOG) < 0) {
		log_warn("tunnel %s: bridge socket: %s", en->id,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	en->lio.fd = fd;
	if (core_loop_add(&en->t->loop, &en->lio, true) < 0) {
		close(fd);
		en->lio.fd = -1;
	}
}

/* Bind or drop the bridge socket as links come and go; with none left,
 * idle worker connections are closed too (their next request would find
 * no connector: closed, the proxy connects again and is refused). */
void tun_entry_update(tun_entry *en)
{
	uint32_t usable = 0;
	for (tun_link *l = en->links; l; l = l->next)
		usable += !l->goaway && !l->closed;
	atomic_store_explicit(&en->usable, usable, memory_order_relaxed);
	if (usable && en->lio.fd < 0 && !en->t->stopping)
		entry_listen(en);
	if (usable)
		return;
	if (en->lio.fd >= 0) {
		close(en->lio.fd);
		en->lio.fd = -1;
	}
	for (tun_bridge *b = en->bridges, *nx; b; b = nx) {
		nx = b->next;
		if (b->state == B_HEAD && b->inoff == b->inlen && !b->link &&
		    b->outoff == b->outlen)
			tun_bridge_close(b);
	}
}

/* ---- the thread ---- */

/* Links whose tunnel is gone from the config or whose token changed. */
static void check_config(tun_edge *t)
{
	const edge_snapshot *snap = edge_acquire(t->e);
	if (snap->generation == t->generation) {
		edge_snapshot_unref(snap);
		return;
	}
	t->generation = snap->generation;
	const cfg_snapshot *cfg = snap->cfg;
	for (tun_entry *en = t->entries; en; en = en->next) {
		const cfg_tunnel *ct = NULL;
		for (size_t i = 0; i < cfg->ntunnels; i++)
			if (cfg->tunnels[i].id &&
			    !strcmp(cfg->tunnels[i].id, en->id))
				ct = &cfg->tunnels[i];
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			if (!ct)
				tun_link_close(l, "the tunnel was removed from "
						  "the config");
			else if (!ct->token || strcmp(ct->token, l->token))
				tun_link_close(l, "the tunnel's token changed");
		}
	}
	edge_snapshot_unref(snap);
}

static void tick_cb(core_timer *tm)
{
	tun_edge *t = (tun_edge *)((char *)tm - offsetof(tun_edge, tick));
	uint64_t now = t->loop.now;
	for (tun_link *l = t->all, *nx; l; l = nx) {
		nx = l->next;
		if (now - l->born >= HELLO_TIMEOUT_MS) {
			if (l->state == L_HELLO)
				atomic_fetch_add_explicit(
				    &t->hellos[TUN_HELLO_FAILED], 1,
				    memory_order_relaxed);
			tun_link_close(l, "no hello within 10 s");
		}
	}
	for (tun_entry *en = t->entries; en; en = en->next)
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			if (now - l->last_rx >= DEAD_AFTER_MS) {
				tun_link_close(l, "nothing heard for 45 s");
				continue;
			}
			if (now - l->last_tx >= PING_IDLE_MS) {
				nghttp2_submit_ping(l->h2, NGHTTP2_FLAG_NONE,
						    NULL);
				tun_link_flush(l);
			}
		}
	check_config(t);
	/* Connections an accept batch left (EMFILE, ...). */
	for (size_t i = 0; i < t->nlisteners; i++)
		if (t->listeners[i].io.fd >= 0)
			tun_listener_cb(&t->listeners[i].io, EPOLLIN);
	for (tun_entry *en = t->entries; en; en = en->next)
		if (en->lio.fd >= 0)
			tun_bridge_accept_cb(&en->lio, EPOLLIN);
	core_timer_after(&t->loop, tm, TICK_MS);
}

static void post_cb(core_loop *lp, void *arg)
{
	(void)lp;
	tun_edge *t = arg;
	for (int guard = 0; t->kicks && guard < 4096; guard++) {
		tun_bridge *b = t->kicks;
		t->kicks = b->kick_next;
		b->kicked = false;
		if (!b->closed)
			tun_bridge_process(b);
	}
	for (tun_bridge *b = t->kicks; b; b = b->kick_next)
		b->kicked = false; /* past the guard: dropped, not dangling */
	t->kicks = NULL;
	tun_bridges_flush(t);
	for (tun_bridge *b = t->flushq; b; b = b->flush_next)
		b->flush_queued = false;
	t->flushq = NULL;
	while (t->dead_bridges) {
		tun_bridge *b = t->dead_bridges;
		t->dead_bridges = b->dead_next;
		free(b->in);
		free(b->head);
		free(b->out);
		free(b);
	}
	while (t->dead_links) {
		tun_link *l = t->dead_links;
		t->dead_links = l->dead_next;
		free(l->hello);
		free(l->out);
		free(l->token);
		free(l);
	}
}

static void stop_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_edge *t = (tun_edge *)((char *)io - offsetof(tun_edge, stop_io));
	uint64_t v;
	if (read(io->fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
		return;
	t->stopping = true;
	/* The workers are gone: no stream is in flight. Tell each
	 * connector (GOAWAY, so it reconnects elsewhere at once) and
	 * close. */
	for (tun_entry *en = t->entries; en; en = en->next)
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			nghttp2_submit_goaway(l->h2, NGHTTP2_FLAG_NONE, 0,
					      NGHTTP2_NO_ERROR, NULL, 0);
			tun_link_flush(l);
			tun_link_close(l, "the edge is stopping");
		}
	for (tun_link *l = t->all, *nx; l; l = nx) {
		nx = l->next;
		tun_link_close(l, "the edge is stopping");
	}
	t->loop.stop = true;
}

static void *tun_main(void *arg)
{
	tun_edge *t = arg;
	core_log_set_thread_name("tunnel");
	core_loop_run(&t->loop);
	return NULL;
}

static void tun_free(tun_edge *t)
{
	for (size_t i = 0; i < t->nlisteners; i++)
		if (t->listeners[i].io.fd >= 0)
			close(t->listeners[i].io.fd);
	free(t->listeners);
	/* Links the loop's last wake-up left (none when stop_cb ran last):
	 * each holds a TLS connection, and with it the snapshot's TLS
	 * server. */
	for (tun_entry *en = t->entries; en; en = en->next)
		for (tun_link *l = en->links, *nx; l; l = nx) {
			nx = l->next;
			tun_link_close(l, "the edge is stopping");
		}
	for (tun_link *l = t->all, *nx; l; l = nx) {
		nx = l->next;
		tun_link_close(l, "the edge is stopping");
	}
	post_cb(&t->loop, t);
	while (t->entries) {
		tun_entry *en = t->entries;
		t->entries = en->next;
		while (en->bridges)
			tun_bridge_close(en->bridges);
		if (en->lio.fd >= 0)
			close(en->lio.fd);
		free(en);
	}
	post_cb(&t->loop, t);
	if (t->stop_io.fd >= 0)
		close(t->stop_io.fd);
	core_loop_destroy(&t->loop);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int tun_edge_start(edge *e, const cfg_snapshot *cfg, tun_edge **out, char *err,
		   size_t errlen)
{
	*out = NULL;
	const cfg_edge *ce = &cfg->edge;
	if (!ce->nlisten_tunnel)
		return 0;
	tun_edge *t = xcalloc(1, sizeof(*t));
	t->e = e;
	t->stop_io.fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	if (core_loop_init(&t->loop) < 0) {
		snprintf(err, errlen, "tunnel thread: no event loop");
		pthread_mutex_destroy(&t->lock);
		free(t);
		return -1;
	}
	t->loop.post = post_cb;
	t->loop.post_arg = t;
	t->listeners = xcalloc(ce->nlisten_tunnel, sizeof(*t->listeners));
	for (size_t i = 0; i < ce->nlisten_tunnel; i++) {
		const cfg_addr *a = &ce->listen_tunnel[i];
		tun_listener *ls = &t->listeners[t->nlisteners];
		ls->t = t;
		ls->io.cb = tun_listener_cb;
		ls->io.fd = core_sock_listen((const struct sockaddr *)&a->ss,
					     a->len, false, 1024);
		if (ls->io.fd < 0) {
			snprintf(err, errlen, "edge.listen.tunnel: %s: %s",
				 a->text, strerror(-ls->io.fd));
			tun_free(t);
			return -1;
		}
		t->nlisteners++;
		if (core_loop_add(&t->loop, &ls->io, true) < 0) {
			snprintf(err, errlen, "edge.listen.tunnel: %s: epoll",
				 a->text);
			tun_free(t);
			return -1;
		}
	}
	t->stop_io.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->stop_io.cb = stop_cb;
	if (t->stop_io.fd < 0 || core_loop_add(&t->loop, &t->stop_io, true)) {
		snprintf(err, errlen, "tunnel thread: eventfd: %s",
			 strerror(errno));
		tun_free(t);
		return -1;
	}
	core_timer_init(&t->tick, tick_cb);
	core_timer_after(&t->loop, &t->tick, TICK_MS);
	int rc = pthread_create(&t->thread, NULL, tun_main, t);
	if (rc) {
		snprintf(err, errlen, "tunnel thread: %s", strerror(rc));
		tun_free(t);
		return -1;
	}
	for (size_t i = 0; i < ce->nlisten_tunnel; i++)
		log_info("edge %s: tunnel connectors dial in on %s (TLS)",
			 ce->name, ce->listen_tunnel[i].text);
	*out = t;
	return 0;
}

void tun_edge_stop(tun_edge *t)
{
	if (!t)
		return;
	uint64_t one = 1;
	if (write(t->stop_io.fd, &one, sizeof(one)) < 0)
		log_warn("tunnel thread: cannot wake it: %s", strerror(errno));
	pthread_join(t->thread, NULL);
	tun_free(t);
}

void tun_conns_add(tun_entry *en, const tun_link *l)
{
	pthread_mutex_lock(&en->t->lock);
	if (en->nconns < MAX_LINKS_PER_TUN) {
		tun_edge_conn_info *c = &en->conns[en->nconns++];
		memset(c, 0, sizeof(*c));
		c->id = l->conn_id;
		snprintf(c->connector, sizeof(c->connector), "%s", l->name);
		snprintf(c->origin_ip, sizeof(c->origin_ip), "%s", l->peer);
		c->opened_ms = core_wall_ms();
	}
	if (en->nconns == 1)
		en->up_since_ms = core_wall_ms();
	pthread_mutex_unlock(&en->t->lock);
}

void tun_conns_del(tun_entry *en, const tun_link *l)
{
	pthread_mutex_lock(&en->t->lock);
	for (uint32_t i = 0; i < en->nconns; i++)
		if (en->conns[i].id == l->conn_id) {
			en->conns[i] = en->conns[--en->nconns];
			break;
		}
	if (!en->nconns)
		en->down_since_ms = core_wall_ms();
	pthread_mutex_unlock(&en->t->lock);
}

void tun_conns_goaway(tun_entry *en, const tun_link *l)
{
	pthread_mutex_lock(&en->t->lock);
	for (uint32_t i = 0; i < en->nconns; i++)
		if (en->conns[i].id == l->conn_id)
			en->conns[i].draining = true;
	pthread_mutex_unlock(&en->t->lock);
}

int tun_edge_conns(tun_edge *t, const char *id, tun_edge_conn_info *out,
		   size_t cap, uint64_t *up_since, uint64_t *down_since)
{
	*up_since = *down_since = 0;
	if (!t)
		return -1;
	int n = -1;
	pthread_mutex_lock(&t->lock);
	for (tun_entry *en = t->entries; en; en = en->next) {
		if (strcmp(en->id, id))
			continue;
		n = 0;
		for (uint32_t i = 0; i < en->nconns && (size_t)n < cap; i++)
			out[n++] = en->conns[i];
		*up_since = en->up_since_ms;
		*down_since = en->down_since_ms;
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

size_t tun_edge_stats(tun_edge *t, tun_edge_tunnel_stats *out, size_t cap,
		      uint64_t hellos[TUN_HELLO_NRESULT])
{
	for (int i = 0; i < TUN_HELLO_NRESULT; i++)
		hellos[i] = t ? atomic_load_explicit(&t->hellos[i],
						     memory_order_relaxed)
			      : 0;
	if (!t)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&t->lock);
	for (tun_entry *en = t->entries; en && n < cap; en = en->next) {
		tun_edge_tunnel_stats *s = &out[n++];
		memcpy(s->id, en->id, sizeof(s->id));
		s->connectors =
		    atomic_load_explicit(&en->usable, memory_order_relaxed);
		s->streams =
		    atomic_load_explicit(&en->streams, memory_order_relaxed);
		s->stream_errors = atomic_load_explicit(&en->stream_errors,
							memory_order_relaxed);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}
