/* edge_dns.c - the DNS listeners of a worker: UDP batches, TCP framing, and
 * the load balancer callback. See edge_dns.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "dns/dns_answer.h"
#include "edge/edge_dns.h"
#include "lb/lb_steer.h"

#define UDP_BUF	 DNS_UDP_MAX	   /* a query or a response over UDP */
#define TCP_BUF	 (2 + DNS_TCP_MAX) /* one framed message */
#define CTRL_LEN CMSG_SPACE(sizeof(struct in6_pktinfo))
/* UDP batches per readiness event before the other sockets get a turn (the
 * rest is read from a timer due at once, after this round of events). */
#define UDP_ROUNDS 64

typedef struct dns_sock {
	core_io io;
	edge_dns *d;
	bool tcp;
	bool pktinfo; /* wildcard UDP bind: answer from the address asked */
} dns_sock;

typedef struct dns_conn {
	core_io io;
	core_timer idle;
	edge_dns *d;
	struct dns_conn *next, *prev; /* live list, or free/dead list */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	bool can_read, can_write;
	uint32_t inoff, inlen;	 /* unanswered bytes: in[inoff..inlen) */
	uint32_t outoff, outlen; /* out[outoff..outlen) still to write */
	uint8_t in[TCP_BUF];
	uint8_t out[TCP_BUF];
} dns_conn;

typedef union dns_ctrl {
	struct cmsghdr h;
	uint8_t b[CTRL_LEN];
} dns_ctrl;

struct edge_dns {
	edge_worker *w;
	dns_sock *socks;
	size_t nsocks;
	dns_conn *conns; /* live TCP connections */
	uint32_t nconns;
	dns_conn *free_conns, *dead_conns;
	core_timer reap;   /* frees closed connections after the event batch */
	core_timer resume; /* re-reads sockets left readable (see resume_cb) */
	uint8_t npub4, npub6;
	uint8_t pub4[DNS_LB_MAX_ADDRS][4];
	uint8_t pub6[DNS_LB_MAX_ADDRS][16];
	bool *literal; /* [norigins]: address is an IP literal */
	edge_dns_counters c;
	/* UDP batch: written only by this worker, reused for every batch. */
	struct mmsghdr rmsg[EDGE_DNS_BATCH], smsg[EDGE_DNS_BATCH];
	struct iovec riov[EDGE_DNS_BATCH], siov[EDGE_DNS_BATCH];
	struct sockaddr_storage names[EDGE_DNS_BATCH];
	dns_ctrl rctrl[EDGE_DNS_BATCH], sctrl[EDGE_DNS_BATCH];
	uint8_t in[EDGE_DNS_BATCH][UDP_BUF];
	uint8_t out[EDGE_DNS_BATCH][UDP_BUF];
};

/* ---------------------------------------------------------------- answers */

static void count_answer(edge_dns *d, const dns_answer_info *info)
{
	if (info->dropped) {
		d->c.dropped++;
		return;
	}
	if (info->rcode < ARRAY_LEN(d->c.rcode))
		d->c.rcode[info->rcode]++;
	else
		d->c.rcode_other++;
	d->c.truncated += info->truncated;
	d->c.ecs += info->ecs;
	d->c.lb += info->lb;
}

/* The client location an ECS option names, as a socket address. */
static bool ecs_sockaddr(const dns_ecs *ecs, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ecs->family == DNS_ECS_FAMILY_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ecs->addr, 4);
		return true;
	}
	if (ecs->family == DNS_ECS_FAMILY_IPV6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ecs->addr, 16);
		return true;
	}
	return false;
}

static void lb_addrs(edge_dns *d, const cfg_pool *p, const lb_steer_ctx *ctx,
		     dns_lb_result *r)
{
	bool any = false;
	for (size_t i = 0; i < p->norigins && !any; i++)
		any = lb_steer_origin_usable(&p->origins[i], ctx);
	bool first = true;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		/* None usable (a fallback pool): every enabled origin. */
		if (any ? !lb_steer_origin_usable(o, ctx)
			: (!o->enabled || o->weight <= 0))
			continue;
		if (!d->literal[o->index]) {
			if (first && strlen(o->address) < sizeof(r->cname)) {
				strcpy(r->cname, o->address);
				r->kind = DNS_LB_CNAME;
				return;
			}
			first = false;
			continue;
		}
		first = false;
		if (o->ss.ss_family == AF_INET && r->n4 < DNS_LB_MAX_ADDRS) {
			const struct sockaddr_in *sin =
			    (const struct sockaddr_in *)&o->ss;
			memcpy(r->addr4[r->n4++], &sin->sin_addr, 4);
		} else if (o->ss.ss_family == AF_INET6 &&
			   r->n6 < DNS_LB_MAX_ADDRS) {
			const struct sockaddr_in6 *sin6 =
			    (const struct sockaddr_in6 *)&o->ss;
			memcpy(r->addr6[r->n6++], &sin6->sin6_addr, 16);
		}
	}
	if (r->n4 || r->n6)
		r->kind = DNS_LB_ADDRS;
}

/* dns_lb_cb: see edge_dns.h. Runs on the worker, allocates nothing. */
static void lb_answer(void *arg, const dns_lb_query *q, dns_lb_result *r)
{
	edge_dns *d = arg;
	edge_worker *w = d->w;
	const cfg_lb *lb = q->lb;
	if (!lb->enabled)
		return;
	r->ttl = lb->ttl;
	if (lb->proxied) {
		r->n4 = d->npub4;
		r->n6 = d->npub6;
		memcpy(r->addr4, d->pub4, sizeof(d->pub4[0]) * d->npub4);
		memcpy(r->addr6, d->pub6, sizeof(d->pub6[0]) * d->npub6);
		if (r->n4 || r->n6)
			r->kind = DNS_LB_ADDRS;
		return;
	}
	const struct sockaddr *loc = q->client ? q->client->addr : NULL;
	struct sockaddr_storage ecs_ss;
	bool use_ecs = q->ecs && q->ecs->source > 0 &&
		       lb->location_strategy.prefer_ecs != CFG_ECS_NEVER &&
		       ecs_sockaddr(q->ecs, &ecs_ss);
	if (use_ecs)
		loc = (const struct sockaddr *)&ecs_ss;
	geo_result g;
	memset(&g, 0, sizeof(g));
	if (loc)
		geo_lookup(w->snap->geo, loc, &g);
	lb_steer_ctx ctx = {
	    .edge = &w->snap->cfg->edge,
	    .country = g.country,
	    .region = g.region,
	    .client = loc,
	    .origins = w->snap->ostates,
	    .now_ms = w->loop.now,
	    .rng = &w->rng,
	};
	const cfg_pool *p = lb_steer_pool(lb, &ctx, NULL, 0);
	if (!p)
		return;
	lb_addrs(d, p, &ctx, r);
	if (use_ecs && lb_steer_policy(lb) == CFG_STEER_GEO)
		r->ecs_scope = q->ecs->source;
}

static size_t answer(edge_dns *d, const uint8_t *q, size_t qlen,
		     const struct sockaddr *peer, socklen_t peerlen,
		     uint8_t *out, size_t outcap, bool tcp)
{
	dns_client client = {.addr = peer, .addrlen = peerlen};
	dns_answer_info info;
	size_t n = dns_answer(d->w->snap->zones, q, qlen, &client, lb_answer, d,
			      out, outcap, tcp, &info);
	count_answer(d, &info);
	return n;
}

/* ---------------------------------------------------------------- UDP */

/* The source address for the reply: the destination of the query. */
static void reply_ctrl(const struct msghdr *rm, struct msghdr *sm,
		       dns_ctrl *ctrl)
{
	sm->msg_control = NULL;
	sm->msg_controllen = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(rm); c;
	     c = CMSG_NXTHDR((struct msghdr *)rm, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			struct in_pktinfo out = {.ipi_spec_dst = pi.ipi_addr};
			memset(ctrl, 0, sizeof(*ctrl));
			sm->msg_control = ctrl->b;
			sm->msg_controllen = CMSG_SPACE(sizeof(out));
			struct cmsghdr *s = CMSG_FIRSTHDR(sm);
			s->cmsg_level = IPPROTO_IP;
			s->cmsg_type = IP_PKTINFO;
			s->cmsg_len = CMSG_LEN(sizeof(out));
			memcpy(CMSG_DATA(s), &out, sizeof(out));
			return;
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			memset(ctrl, 0, sizeof(*ctrl));
			sm->msg_control = ctrl->b;
			sm->msg_controllen = CMSG_SPACE(sizeof(pi));
			struct cmsghdr *s = CMSG_FIRSTHDR(sm);
			s->cmsg_level = IPPROTO_IPV6;
			s->cmsg_type = IPV6_PKTINFO;
			s->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(s), &pi, sizeof(pi));
			return;
		}
	}
}

/* One recvmmsg batch answered with one sendmmsg. Returns the number of
 * datagrams read, or -errno. */
static int udp_batch(edge_dns *d, dns_sock *s)
{
	for (int i = 0; i < EDGE_DNS_BATCH; i++) {
		d->riov[i] = (struct iovec){d->in[i], UDP_BUF};
		d->rmsg[i].msg_hdr = (struct msghdr){
		    .msg_name = &d->names[i],
		    .msg_namelen = sizeof(d->names[i]),
		    .msg_iov = &d->riov[i],
		    .msg_iovlen = 1,
		    .msg_control = s->pktinfo ? d->rctrl[i].b : NULL,
		    .msg_controllen = s->pktinfo ? sizeof(d->rctrl[i]) : 0,
		};
		d->rmsg[i].msg_len = 0;
	}
	int n = recvmmsg(s->io.fd, d->rmsg, EDGE_DNS_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0)
		return -errno;
	unsigned ns = 0;
	for (int i = 0; i < n; i++) {
		struct msghdr *rm = &d->rmsg[i].msg_hdr;
		d->c.udp_queries++;
		if (rm->msg_flags & MSG_TRUNC) { /* over UDP_BUF: not ours */
			d->c.dropped++;
			continue;
		}
		size_t len =
		    answer(d, d->in[i], d->rmsg[i].msg_len,
			   (const struct sockaddr *)&d->names[i],
			   rm->msg_namelen, d->out[ns], UDP_BUF, false);
		if (!len)
			continue;
		d->siov[ns] = (struct iovec){d->out[ns], len};
		struct msghdr *sm = &d->smsg[ns].msg_hdr;
		*sm = (struct msghdr){
		    .msg_name = &d->names[i],
		    .msg_namelen = rm->msg_namelen,
		    .msg_iov = &d->siov[ns],
		    .msg_iovlen = 1,
		};
		if (s->pktinfo)
			reply_ctrl(rm, sm, &d->sctrl[ns]);
		ns++;
	}
	/* Best effort: a datagram the socket buffer cannot take is lost, as
	 * it would be on the wire. */
	for (unsigned off = 0; off < ns;) {
		int k =
		    sendmmsg(s->io.fd, d->smsg + off, ns - off, MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == ENOBUFS) { /* full: the rest is lost */
				d->c.send_errors += ns - off;
				break;
			}
			d->c.send_errors++;
			off++; /* e.g. an unreachable source: skip it */
			continue;
		}
		off += (unsigned)k;
	}
	return n;
}

/* Arms the resume timer at now + ms unless it is due sooner. */
static void resume_after(edge_dns *d, uint64_t ms)
{
	core_loop *l = &d->w->loop;
	if (!core_timer_armed(&d->resume) || d->resume.deadline > l->now + ms)
		core_timer_after(l, &d->resume, ms);
}

static void udp_cb(core_io *io, uint32_t ev)
{
	dns_sock *s = container_of(io, dns_sock, io);
	/* Edge-triggered: read until EAGAIN. Other errors (a pending ICMP
	 * error, ENOMEM) are passed over, a bounded number of times. A flood
	 * is read in rounds so that TCP and HTTP are served meanwhile. */
	int errs = 0;
	for (int round = 0; round < UDP_ROUNDS; round++) {
		int n = udp_batch(s->d, s);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return;
		if (n < 0 && n != -EINTR && ++errs >= 16) {
			resume_after(s->d, 100); /* e.g. ENOMEM: later */
			return;
		}
	}
	resume_after(s->d, 0);
}

/* ---------------------------------------------------------------- TCP */

static void reap_cb(core_timer *t)
{
	edge_dns *d = container_of(t, edge_dns, reap);
	while (d->dead_conns) {
		dns_conn *c = d->dead_conns;
		d->dead_conns = c->next;
		c->next = d->free_conns;
		d->free_conns = c;
	}
}

static void conn_close(dns_conn *c)
{
	edge_dns *d = c->d;
	if (c->io.fd < 0)
		return;
	close(c->io.fd);
	c->io.fd = -1;
	core_timer_cancel(&d->w->loop, &c->idle);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->nconns--;
	/* Events for it may follow in this batch: reused only after it. */
	c->prev = NULL;
	c->next = d->dead_conns;
	d->dead_conns = c;
	core_timer_after(&d->w->loop, &d->reap, 0);
}

static void conn_idle_cb(core_timer *t)
{
	dns_conn *c = container_of(t, dns_conn, idle);
	c->d->c.tcp_idle_closed++;
	conn_close(c);
}

static void conn_touch(dns_conn *c)
{
	core_loop *l = &c->d->w->loop;
	core_timer_after(l, &c->idle,
			 c->d->w->snap->cfg->edge.timeouts.client_idle_ms);
}

/* Writes what is pending. Returns false when the connection closed. */
static bool conn_flush(dns_conn *c)
{
	while (c->outoff < c->outlen && c->can_write) {
		ssize_t k = send(c->io.fd, c->out + c->outoff,
				 c->outlen - c->outoff, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->can_write = false;
				break;
			}
			conn_close(c);
			return false;
		}
		c->outoff += (uint32_t)k;
		conn_touch(c);
		/* A short write: wait for EPOLLOUT. */
		if (c->outoff < c->outlen)
			c->can_write = false;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	return true;
}

/* Answers the first framed query in in[] when it is complete. Returns 1
 * when one was answered, 0 when more bytes are needed, -1 when the
 * connection was closed. */
static int conn_answer(dns_conn *c)
{
	edge_dns *d = c->d;
	const uint8_t *p = c->in + c->inoff;
	uint32_t have = c->inlen - c->inoff;
	if (have < 2)
		return 0;
	uint32_t qlen = dns_get16(p);
	if (qlen == 0) {
		d->c.tcp_bad_frame++;
		conn_close(c);
		return -1;
	}
	if (have < 2 + qlen)
		return 0;
	d->c.tcp_queries++;
	size_t n = answer(d, p + 2, qlen, (const struct sockaddr *)&c->peer,
			  c->peerlen, c->out + 2, DNS_TCP_MAX, true);
	if (!n) { /* not a query: the stream cannot be trusted further */
		d->c.tcp_bad_frame++;
		conn_close(c);
		return -1;
	}
	c->out[0] = (uint8_t)(n >> 8);
	c->out[1] = (uint8_t)n;
	c->outoff = 0;
	c->outlen = (uint32_t)(2 + n);
	c->inoff += 2 + qlen;
	if (c->inoff == c->inlen)
		c->inoff = c->inlen = 0;
	conn_touch(c);
	return 1;
}

static void conn_pump(dns_conn *c)
{
	for (int guard = 0; guard < 1 << 20; guard++) {
		if (!conn_flush(c))
			return;
		if (c->outlen) /* one response in flight at a time */
			return;
		int r = conn_answer(c);
		if (r < 0)
			return;
		if (r > 0)
			continue;
		if (!c->can_read)
			return;
		if (c->inoff) { /* a partial query: to the front */
			memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
			c->inlen -= c->inoff;
			c->inoff = 0;
		}
		ssize_t k = recv(c->io.fd, c->in + c->inlen,
				 sizeof(c->in) - c->inlen, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->can_read = false;
				return;
			}
			conn_close(c);
			return;
		}
		if (k == 0) { /* the client is done (answers all sent) */
			conn_close(c);
			return;
		}
		c->inlen += (uint32_t)k;
		conn_touch(c);
	}
}

static void conn_cb(core_io *io, uint32_t ev)
{
	dns_conn *c = container_of(io, dns_conn, io);
	if (ev & (EPOLLERR | EPOLLHUP)) {
		conn_close(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP))
		c->can_read = true;
	if (ev & EPOLLOUT)
		c->can_write = true;
	conn_pump(c);
}

static void conn_accept(edge_dns *d, int fd, const struct sockaddr_storage *ss,
			socklen_t sslen)
{
	dns_conn *c = d->free_conns;
	if (c)
		d->free_conns = c->next;
	else
		c = xmalloc(sizeof(*c));
	c->d = d;
	c->io.fd = fd;
	c->io.cb = conn_cb;
	core_timer_init(&c->idle, conn_idle_cb);
	c->peer = *ss;
	c->peerlen = sslen;
	c->can_read = c->can_write = false;
	c->inoff = c->inlen = c->outoff = c->outlen = 0;
	c->prev = NULL;
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	d->nconns++;
	d->c.tcp_accepted++;
	conn_touch(c);
	if (core_loop_add(&d->w->loop, &c->io, false) < 0)
		conn_close(c);
}

static void tcp_listen_cb(core_io *io, uint32_t ev)
{
	dns_sock *s = container_of(io, dns_sock, io);
	edge_dns *d = s->d;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* EMFILE and friends: the backlog waits. */
				log_warn("dns accept: %s; retrying in 100ms",
					 strerror(errno));
				resume_after(d, 100);
			}
			return;
		}
		if (d->nconns >= EDGE_DNS_TCP_CONNS) {
			d->c.tcp_refused++;
			close(fd);
			continue;
		}
		conn_accept(d, fd, &ss, len);
	}
}

/* ---------------------------------------------------------------- set-up */

/* Every socket is pumped again: edge-triggered readiness that was not
 * consumed (a UDP flood cut into rounds, accept after EMFILE) gives no
 * new event by itself. A socket with nothing to read costs one EAGAIN. */
static void resume_cb(core_timer *t)
{
	edge_dns *d = container_of(t, edge_dns, resume);
	for (size_t i = 0; i < d->nsocks; i++)
		if (d->socks[i].io.fd >= 0)
			d->socks[i].io.cb(&d->socks[i].io, EPOLLIN);
}

static int udp_open(const cfg_addr *a, bool *pktinfo)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
	int fd =
	    socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	*pktinfo = false;
	if (sa->sa_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)&a->ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr)) {
			if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
				       sizeof(one)) < 0)
				goto fail;
			*pktinfo = true;
		}
	} else {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)&a->ss;
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY)) {
			if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one,
				       sizeof(one)) < 0)
				goto fail;
			*pktinfo = true;
		}
	}
	if (bind(fd, sa, a->len) < 0)
		goto fail;
	return fd;
fail:;
	int err = errno;
	close(fd);
	return -err;
}

static void public_addresses(edge_dns *d, const cfg_edge *e)
{
	for (size_t i = 0; i < e->npublic_addresses; i++) {
		const char *t = e->public_addresses[i];
		if (d->npub4 < DNS_LB_MAX_ADDRS &&
		    inet_pton(AF_INET, t, d->pub4[d->npub4]) == 1)
			d->npub4++;
		else if (d->npub6 < DNS_LB_MAX_ADDRS &&
			 inet_pton(AF_INET6, t, d->pub6[d->npub6]) == 1)
			d->npub6++;
	}
}

int edge_dns_worker_init(edge_worker *w)
{
	const cfg_snapshot *cfg = w->snap->cfg;
	const cfg_edge *e = &cfg->edge;
	w->dns = NULL;
	if (!e->nlisten_dns)
		return 0;
	edge_dns *d = xcalloc(1, sizeof(*d));
	w->dns = d;
	d->w = w;
	core_timer_init(&d->reap, reap_cb);
	core_timer_init(&d->resume, resume_cb);
	public_addresses(d, e);
	d->literal =
	    xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(*d->literal));
	for (size_t i = 0; i < cfg->norigins; i++) {
		uint8_t tmp[16];
		const char *addr = cfg->origins[i]->address;
		d->literal[i] = inet_pton(AF_INET, addr, tmp) == 1 ||
				inet_pton(AF_INET6, addr, tmp) == 1;
	}
	d->nsocks = 2 * e->nlisten_dns;
	d->socks = xcalloc(d->nsocks, sizeof(*d->socks));
	for (size_t i = 0; i < d->nsocks; i++)
		d->socks[i].io.fd = -1;
	for (size_t i = 0; i < e->nlisten_dns; i++) {
		const cfg_addr *a = &e->listen_dns[i];
		dns_sock *u = &d->socks[2 * i], *t = &d->socks[2 * i + 1];
		int fd = udp_open(a, &u->pktinfo);
		if (fd >= 0) {
			u->d = d;
			u->io.fd = fd;
			u->io.cb = udp_cb;
			fd = core_sock_listen((const struct sockaddr *)&a->ss,
					      a->len, true, 1024);
		}
		if (fd < 0) {
			log_error("cannot listen on dns %s: %s", a->text,
				  strerror(-fd));
			return fd;
		}
		t->d = d;
		t->tcp = true;
		t->io.fd = fd;
		t->io.cb = tcp_listen_cb;
		int err = core_loop_add(&w->loop, &u->io, true);
		if (err >= 0)
			err = core_loop_add(&w->loop, &t->io, true);
		if (err < 0)
			return err;
	}
	return 0;
}

void edge_dns_worker_destroy(edge_worker *w)
{
	edge_dns *d = w->dns;
	if (!d)
		return;
	while (d->conns)
		conn_close(d->conns);
	core_timer_cancel(&w->loop, &d->reap);
	core_timer_cancel(&w->loop, &d->resume);
	reap_cb(&d->reap);
	while (d->free_conns) {
		dns_conn *c = d->free_conns;
		d->free_conns = c->next;
		free(c);
	}
	for (size_t i = 0; i < d->nsocks; i++)
		if (d->socks[i].io.fd >= 0)
			close(d->socks[i].io.fd);
	free(d->socks);
	free(d->literal);
	free(d);
	w->dns = NULL;
}

const edge_dns_counters *edge_dns_worker_counters(const edge_worker *w)
{
	return w->dns ? &w->dns->c : NULL;
}
