/* edge_dns.c - the DNS listeners of a worker: UDP batches, TCP framing, and
 * the load balancer callback. See edge_dns.h. */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/cfg_values.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "dns/dns_answer.h"
#include "dns/dns_rrl.h"
#include "edge/edge_dns.h"
#include "edge/edge_stats.h"
#include "geo/geo.h"
#include "lb/lb_locate.h"
#include "lb/lb_rules.h"
#include "lb/lb_steer.h"

#define UDP_BUF	 DNS_UDP_MAX	   /* a query or a response over UDP */
#define TCP_BUF	 (2 + DNS_TCP_MAX) /* one framed message */
#define CTRL_LEN CMSG_SPACE(sizeof(struct in6_pktinfo))
/* UDP batches per readiness event before the other sockets get a turn (the
 * rest is read from a timer due at once, after this round of events). */
#define UDP_ROUNDS 64
/* Client locations per worker (direct-mapped; a power of two). */
#define LOC_CACHE 256

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

/* A geo lookup of one address, as lb_locate uses it. */
typedef struct loc_entry {
	uint8_t addr[16];
	uint8_t family; /* 4 or 6; 0: empty */
	uint8_t need;	/* LB_LOC_NEED_* the lookup answered */
	uint8_t prefix; /* the network the lookup holds for (geo_result) */
	/* As a client subnet of split_src bits (0xff: not yet asked): the
	 * longest geo.networks override or special range inside it
	 * (geo_split_prefix), 0 if none. */
	uint8_t split_src, split;
	lb_loc loc;
} loc_entry;

struct edge_dns {
	edge_worker *w;
	dns_sock *socks;
	size_t nsocks;
	/* Live TCP connections, most recently active first (a connection
	 * moves to the head when it completes a query or an answer): the
	 * tail is the one to evict when the table is full. */
	dns_conn *conns, *conns_tail;
	uint32_t nconns;
	dns_conn *free_conns, *dead_conns;
	core_timer reap;   /* frees closed connections after the event batch */
	core_timer resume; /* re-reads sockets left readable (see resume_cb) */
	/* Written only by this worker (STAT_ADD), read by any thread. */
	edge_dns_stats st;
	/* geo lookups of the zone set loc_id's snapshot (locate_lookup): a
	 * resolver or a client subnet asks again and again. */
	uint64_t loc_id;
	loc_entry loc[LOC_CACHE];
	/* UDP batch: written only by this worker, reused for every batch.
	 * rmsg[i] points at names[i], riov[i] and in[i] from the start;
	 * rdirty headers were written by the kernel (udp_batch). */
	unsigned rdirty;
	bool rpktinfo;
	struct mmsghdr rmsg[EDGE_DNS_BATCH], smsg[EDGE_DNS_BATCH];
	struct iovec riov[EDGE_DNS_BATCH], siov[EDGE_DNS_BATCH];
	struct sockaddr_storage names[EDGE_DNS_BATCH];
	dns_ctrl rctrl[EDGE_DNS_BATCH], sctrl[EDGE_DNS_BATCH];
	uint8_t in[EDGE_DNS_BATCH][UDP_BUF];
	uint8_t out[EDGE_DNS_BATCH][UDP_BUF];
};

static_assert(DNS_PUBLIC_MAX <= DNS_LB_MAX_ADDRS, "public addresses fit");

/* A counter of this worker += n: a relaxed store, not a read-modify-write
 * (only this thread writes it; readers load it relaxed). */
#define STAT_ADD(d, field, n)                                                  \
	__atomic_store_n(&(d)->st.field, (d)->st.field + (n), __ATOMIC_RELAXED)

/* ---------------------------------------------------------------- counters */

static const char *const transport_names[EDGE_DNS_NTRANSPORTS] = {"udp", "tcp"};
static const char *const rcode_names[EDGE_DNS_NRCODES] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
    "NOTIMP",  "REFUSED", "BADVERS",  "other"};

const char *edge_dns_transport_name(unsigned i)
{
	return i < EDGE_DNS_NTRANSPORTS ? transport_names[i] : NULL;
}

const char *edge_dns_rcode_name(unsigned i)
{
	return i < EDGE_DNS_NRCODES ? rcode_names[i] : NULL;
}

static unsigned rcode_slot(unsigned rcode)
{
	if (rcode <= DNS_RCODE_REFUSED)
		return rcode;
	return rcode == DNS_RCODE_BADVERS ? EDGE_DNS_RC_BADVERS
					  : EDGE_DNS_RC_OTHER;
}

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

static void stats_add(edge_dns_stats *o, const edge_dns_stats *s)
{
	for (unsigned i = 0; i < EDGE_DNS_NTRANSPORTS; i++)
		o->queries[i] += LOAD(s->queries[i]);
	for (unsigned i = 0; i < EDGE_DNS_NRCODES; i++)
		o->responses[i] += LOAD(s->responses[i]);
	o->ecs += LOAD(s->ecs);
	o->ecs_scoped += LOAD(s->ecs_scoped);
	o->truncated += LOAD(s->truncated);
	o->dropped += LOAD(s->dropped);
	o->lb += LOAD(s->lb);
	o->send_errors += LOAD(s->send_errors);
	o->rrl_dropped += LOAD(s->rrl_dropped);
	o->rrl_slipped += LOAD(s->rrl_slipped);
	o->tcp_accepted += LOAD(s->tcp_accepted);
	o->tcp_evicted += LOAD(s->tcp_evicted);
	o->tcp_idle_closed += LOAD(s->tcp_idle_closed);
	o->tcp_bad_frame += LOAD(s->tcp_bad_frame);
}

/* Datagrams the kernel dropped on a UDP socket before it was read (the
 * receive buffer was full): its own counter, read here rather than per
 * datagram. A 32-bit count per socket. */
static uint64_t udp_drops(int fd)
{
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len) < 0 ||
	    len <= SK_MEMINFO_DROPS * sizeof(mi[0]))
		return 0;
	return mi[SK_MEMINFO_DROPS];
}

void edge_dns_stats_sum(const edge *e, edge_dns_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; e && i < e->nworkers; i++) {
		const edge_dns *d = e->workers[i].dns;
		if (!d)
			continue;
		stats_add(out, &d->st);
		for (size_t k = 0; k < d->nsocks; k++)
			if (!d->socks[k].tcp)
				out->udp_receive_dropped +=
				    udp_drops(d->socks[k].io.fd);
	}
}

bool edge_dns_enabled(const edge *e)
{
	return e && e->nworkers && e->workers[0].dns;
}

int edge_dns_stats_format(const edge_dns_stats *s, char *buf, size_t size,
			  bool json)
{
	char *p = buf;
	size_t left = buf ? size : 0;
	size_t total = 0;
#define OUT(...)                                                               \
	do {                                                                   \
		int k_ = snprintf(p, left, __VA_ARGS__);                       \
		if (k_ < 0)                                                    \
			return -EINVAL;                                        \
		total += (size_t)k_;                                           \
		size_t used_ = (size_t)k_ < left ? (size_t)k_ : left;          \
		p = left ? p + used_ : p;                                      \
		left -= used_;                                                 \
	} while (0)
	unsigned long long q[EDGE_DNS_NTRANSPORTS], r[EDGE_DNS_NRCODES];
	for (unsigned i = 0; i < EDGE_DNS_NTRANSPORTS; i++)
		q[i] = s->queries[i];
	for (unsigned i = 0; i < EDGE_DNS_NRCODES; i++)
		r[i] = s->responses[i];
	if (json) {
		OUT("{\"queries\":{");
		for (unsigned i = 0; i < EDGE_DNS_NTRANSPORTS; i++)
			OUT("%s\"%s\":%llu", i ? "," : "", transport_names[i],
			    q[i]);
		OUT("},\"responses\":{");
		for (unsigned i = 0; i < EDGE_DNS_NRCODES; i++)
			OUT("%s\"%s\":%llu", i ? "," : "", rcode_names[i],
			    r[i]);
		OUT("},\"ecs\":%llu,\"ecs_scoped\":%llu,\"truncated\":%llu,"
		    "\"dropped\":%llu,\"lb\":%llu,\"send_errors\":%llu,"
		    "\"rate_limited\":{\"dropped\":%llu,\"truncated\":%llu},"
		    "\"tcp\":{\"accepted\":%llu,\"evicted\":%llu,"
		    "\"idle_closed\":%llu,\"bad_frame\":%llu}}",
		    (unsigned long long)s->ecs,
		    (unsigned long long)s->ecs_scoped,
		    (unsigned long long)s->truncated,
		    (unsigned long long)s->dropped, (unsigned long long)s->lb,
		    (unsigned long long)s->send_errors,
		    (unsigned long long)s->rrl_dropped,
		    (unsigned long long)s->rrl_slipped,
		    (unsigned long long)s->tcp_accepted,
		    (unsigned long long)s->tcp_evicted,
		    (unsigned long long)s->tcp_idle_closed,
		    (unsigned long long)s->tcp_bad_frame);
	} else {
		OUT("\nDNS\n  queries      ");
		for (unsigned i = 0; i < EDGE_DNS_NTRANSPORTS; i++)
			OUT(" %s %llu", transport_names[i], q[i]);
		OUT("\n  responses    ");
		for (unsigned i = 0; i < EDGE_DNS_NRCODES; i++)
			OUT(" %s %llu", rcode_names[i], r[i]);
		OUT("\n  ecs           %llu (answers scoped to the subnet: "
		    "%llu)"
		    "\n  truncated     %llu"
		    "\n  dropped       %llu (no response: malformed)"
		    "\n  lb            %llu (answered by a load balancer)"
		    "\n  send errors   %llu"
		    "\n  rate limited  dropped %llu truncated %llu"
		    "\n  tcp           accepted %llu evicted %llu idle_closed "
		    "%llu bad_frame %llu\n",
		    (unsigned long long)s->ecs,
		    (unsigned long long)s->ecs_scoped,
		    (unsigned long long)s->truncated,
		    (unsigned long long)s->dropped, (unsigned long long)s->lb,
		    (unsigned long long)s->send_errors,
		    (unsigned long long)s->rrl_dropped,
		    (unsigned long long)s->rrl_slipped,
		    (unsigned long long)s->tcp_accepted,
		    (unsigned long long)s->tcp_evicted,
		    (unsigned long long)s->tcp_idle_closed,
		    (unsigned long long)s->tcp_bad_frame);
	}
#undef OUT
	return total > INT_MAX ? -EOVERFLOW : (int)total;
}

/* ---------------------------------------------------------------- answers */

static void count_answer(edge_dns *d, const dns_answer_info *info)
{
	if (info->dropped) {
		STAT_ADD(d, dropped, 1);
		return;
	}
	STAT_ADD(d, responses[rcode_slot(info->rcode)], 1);
	if (info->truncated)
		STAT_ADD(d, truncated, 1);
	if (info->ecs)
		STAT_ADD(d, ecs, 1);
	if (info->ecs_scoped)
		STAT_ADD(d, ecs_scoped, 1);
	if (info->lb)
		STAT_ADD(d, lb, 1);
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

static bool has_addr(const uint8_t *list, size_t n, const void *a, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(list + i * len, a, len))
			return true;
	return false;
}

static void lb_addrs(const dns_zoneset *zs, const cfg_pool *p,
		     const lb_steer_ctx *ctx, dns_lb_result *r)
{
	/* A fallback pool without a usable origin: its enabled ones
	 * whatever their health, as the proxy does (lb_steer.h). */
	bool any_health = lb_steer_pool_any_health(p, ctx);
	bool first = true;
	for (size_t i = 0; i < p->norigins; i++) {
		const cfg_origin *o = &p->origins[i];
		if (!lb_steer_origin_choosable(o, ctx, any_health) ||
		    o->tunnel) /* no address of its own to answer */
			continue;
		int fam = dns_zoneset_origin_family(zs, o->index);
		if (!fam) { /* a host name */
			if (first && strlen(o->address) < sizeof(r->cname)) {
				strcpy(r->cname, o->address);
				r->kind = DNS_LB_CNAME;
				return;
			}
			first = false;
			continue;
		}
		first = false;
		/* Origins on one address (other ports) give one record: an
		 * RRset has no duplicates (RFC 2181 5). */
		if (fam == 4 && o->ss.ss_family == AF_INET &&
		    r->n4 < DNS_LB_MAX_ADDRS) {
			const struct sockaddr_in *sin =
			    (const struct sockaddr_in *)&o->ss;
			if (!has_addr(r->addr4[0], r->n4, &sin->sin_addr, 4))
				memcpy(r->addr4[r->n4++], &sin->sin_addr, 4);
		} else if (fam == 6 && o->ss.ss_family == AF_INET6 &&
			   r->n6 < DNS_LB_MAX_ADDRS) {
			const struct sockaddr_in6 *sin6 =
			    (const struct sockaddr_in6 *)&o->ss;
			if (!has_addr(r->addr6[0], r->n6, &sin6->sin6_addr, 16))
				memcpy(r->addr6[r->n6++], &sin6->sin6_addr, 16);
		}
	}
	if (r->n4 || r->n6)
		r->kind = DNS_LB_ADDRS;
}

/* Where lb_locate's lookups go: the query's subnet and the resolver. */
typedef struct locate_arg {
	edge_dns *d;
	const geo_db *geo;
	const struct sockaddr *ecs;	 /* the subnet's address, or NULL */
	const struct sockaddr *resolver; /* the packet's source, or NULL */
	uint8_t ecs_source;		 /* the subnet's source prefix length */
	/* The scope the subnet's lookup calls for: the network it matched or
	 * a finer one inside the subnet, whichever is longer; 0: none. */
	uint8_t ecs_prefix;
} locate_arg;

/* Returns the length of the network around sa that the answers hold for
 * (geo_result.prefix; the longest when both lookups are made). */
static uint8_t geo_locate(const geo_db *geo, const struct sockaddr *sa,
			  unsigned need, lb_loc *out)
{
	uint8_t prefix = 0, pp = 0;
	if (need & LB_LOC_NEED_AREA) {
		geo_result g;
		if (geo_lookup(geo, sa, &g) == 0) {
			memcpy(out->country, g.country, sizeof(out->country));
			memcpy(out->region, g.region, sizeof(out->region));
		}
		prefix = g.prefix;
	}
	if ((need & LB_LOC_NEED_POINT) &&
	    geo_lookup_point(geo, sa, &out->lat, &out->lon, &pp) == 0)
		out->has_point = true;
	return MAX(prefix, pp);
}

/* lb_loc_lookup_fn: geo_lookup / geo_lookup_point through the worker's
 * cache. Geo data is immutable per snapshot, so an entry is good until the
 * zone set (built with each snapshot) changes. */
static void locate_lookup(void *arg, lb_loc_source src, unsigned need,
			  lb_loc *out)
{
	locate_arg *a = arg;
	edge_dns *d = a->d;
	const struct sockaddr *sa = src == LB_LOC_ECS ? a->ecs : a->resolver;
	if (!sa || !a->geo)
		return;
	uint8_t fam;
	const uint8_t *addr;
	size_t alen;
	if (sa->sa_family == AF_INET) {
		fam = 4;
		addr = (const uint8_t *)&((const struct sockaddr_in *)sa)
			   ->sin_addr;
		alen = 4;
	} else if (sa->sa_family == AF_INET6) {
		fam = 6;
		addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		alen = 16;
	} else {
		return;
	}
	uint64_t id = dns_zoneset_id(d->w->snap->zones);
	if (d->loc_id != id) {
		memset(d->loc, 0, sizeof(d->loc));
		d->loc_id = id;
	}
	uint32_t h = 2166136261u ^ fam;
	for (size_t i = 0; i < alen; i++)
		h = (h ^ addr[i]) * 16777619u;
	loc_entry *e = &d->loc[(h ^ (h >> 16)) & (LOC_CACHE - 1)];
	if (e->family == fam && (e->need & need) == need &&
	    !memcmp(e->addr, addr, alen)) {
		*out = e->loc;
	} else {
		e->prefix = geo_locate(a->geo, sa, need, out);
		memcpy(e->addr, addr, alen);
		e->family = fam;
		e->need = (uint8_t)need;
		e->split_src = 0xff;
		e->loc = *out;
	}
	if (src == LB_LOC_ECS) {
		if (e->split_src != a->ecs_source) {
			e->split = geo_split_prefix(a->geo, sa, a->ecs_source);
			e->split_src = a->ecs_source;
		}
		a->ecs_prefix = MAX(e->prefix, e->split);
	}
}

/* A DNS-only load balancer's rules (lb_rules.h): ip.src is the ECS
 * subnet's address when the query has one, else the resolver's (as
 * Cloudflare does); the load balancer they make is returned (it may be
 * *merged). *ecs_read: a rule looked at the subnet, so the answer holds
 * for that subnet only. */
static const cfg_lb *dns_rules(const dns_lb_query *q, const cfg_lb *lb,
			       locate_arg *la, cfg_lb *merged, bool *ecs_read)
{
	/* The question as text, only for rules that read it. */
	char name[DNS_MAX_NAME * 4 + 1];
	size_t len = 0;
	name[0] = '\0';
	if (lb->rule_fields &
	    ((1u << LB_F_DNS_NAME) | (1u << LB_F_DNS_NAME_LEN))) {
		int nl = dns_name_to_text(q->qname, name, sizeof(name));
		len = nl > 0 ? (size_t)nl : 0;
		if (len > 1 && name[len - 1] == '.')
			len--; /* dns.qry.name has no trailing dot */
		for (size_t i = 0; i < len; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
	}
	lb_expr_input in = {
	    .client = la->ecs ? la->ecs : la->resolver,
	    .country = "",
	    .lb_name = lb->name,
	    .lb_region = la->d->w->snap->cfg->edge.region,
	    .qname = name,
	    .qname_len = len,
	    .qtype = q->qtype,
	};
	lb_loc loc = {0};
	if (lb->rule_fields & (1u << LB_F_COUNTRY)) {
		locate_lookup(la, la->ecs ? LB_LOC_ECS : LB_LOC_RESOLVER,
			      LB_LOC_NEED_AREA, &loc);
		in.country = loc.country;
	}
	*ecs_read = la->ecs && (lb->rule_fields &
				((1u << LB_F_IP_SRC) | (1u << LB_F_COUNTRY)));
	lb_rules_result r;
	lb_rules_apply(lb, &in, merged, &r);
	const edge_snapshot *s = la->d->w->snap;
	if (r.matched && s->stats)
		edge_stats_rules(s->stats, la->d->w->id, lb, r.matched);
	return r.lb;
}

/* dns_lb_cb: see edge_dns.h. Runs on the worker, allocates nothing. */
static void lb_answer(void *arg, const dns_lb_query *q, dns_lb_result *r)
{
	edge_dns *d = arg;
	edge_worker *w = d->w;
	const dns_zoneset *zs = w->snap->zones;
	const cfg_lb *lb = q->lb;
	if (!lb->enabled)
		return;
	r->ttl = lb->ttl;
	if (lb->proxied) {
		size_t n4, n6;
		const uint8_t *a4 = dns_zoneset_public(zs, 4, &n4);
		const uint8_t *a6 = dns_zoneset_public(zs, 6, &n6);
		r->n4 = (uint8_t)n4;
		r->n6 = (uint8_t)n6;
		if (n4)
			memcpy(r->addr4, a4, 4 * n4);
		if (n6)
			memcpy(r->addr6, a6, 16 * n6);
		if (n4 || n6)
			r->kind = DNS_LB_ADDRS;
		return;
	}
	struct sockaddr_storage ecs_ss;
	locate_arg la = {
	    .d = d,
	    .geo = w->snap->geo,
	    .resolver = q->client ? q->client->addr : NULL,
	};
	if (q->ecs && q->ecs->source > 0 && ecs_sockaddr(q->ecs, &ecs_ss)) {
		la.ecs = (const struct sockaddr *)&ecs_ss;
		la.ecs_source = q->ecs->source;
	}
	cfg_lb merged;
	bool ecs_read = false;
	if (lb->nrule_order)
		lb = dns_rules(q, lb, &la, &merged, &ecs_read);
	r->ttl = lb->ttl;
	lb_loc loc;
	bool ecs_consulted;
	lb_loc_source src = lb_locate(lb, la.ecs != NULL, locate_lookup, &la,
				      &loc, &ecs_consulted);
	lb_steer_ctx ctx = {
	    .lb = lb,
	    .edge = &w->snap->cfg->edge,
	    .client = src == LB_LOC_ECS ? la.ecs : la.resolver,
	    .origins = w->snap->ostates,
	    .now_ms = w->loop.now,
	    .rng = &w->rng,
	};
	lb_locate_apply(&loc, &ctx);
	if (ecs_read || ecs_consulted) {
		/* A rule or steering read the subnet. The answer holds for
		 * the whole subnet unless the geo data is finer there: the
		 * network its lookup matched, or one inside the subnet placed
		 * otherwise (RFC 7871 §7.2.1; 0 when only ip.src was read).
		 * The answer writer caps it at the family's bits. Also when
		 * no pool or origin comes of it: that NODATA (or the static
		 * data) is this subnet's answer, not everyone's. */
		r->ecs_scope = MAX(q->ecs->source, la.ecs_prefix);
	}
	const cfg_pool *p = lb_steer_pool(lb, &ctx, NULL, 0);
	if (!p)
		return;
	lb_addrs(zs, p, &ctx, r);
}

/* edge.dns_rate_limit on a UDP answer of len bytes in out: the length to
 * send (len, its truncated form, or 0 to drop it). */
/* At most one log line per RRL_LOG_MS for the whole edge, naming the
 * network of one limited client, so an operator sees that limiting
 * happens and to whom without a line per packet (the counts are in
 * meridian_dns_rate_limited_total). */
#define RRL_LOG_MS 10000
static void limited_log(edge_dns *d, const struct sockaddr *who,
			const dns_rrl_cfg *c)
{
	static _Atomic uint64_t next_ms;
	uint64_t now = d->w->loop.now, due = atomic_load(&next_ms);
	if (now < due ||
	    !atomic_compare_exchange_strong(&next_ms, &due, now + RRL_LOG_MS))
		return;
	uint8_t a[16];
	unsigned bits;
	int fam = dns_rrl_network(c, who, a, &bits);
	char text[INET6_ADDRSTRLEN];
	if (!fam || !inet_ntop(fam, a, text, sizeof(text)))
		return;
	log_warn("dns: rate limiting answers to %s/%u (over %u a second); "
		 "at most one such line per %u s, the counts are in "
		 "meridian_dns_rate_limited_total",
		 text, bits, c->rps, RRL_LOG_MS / 1000);
}

static size_t rate_limit(edge_dns *d, const uint8_t *q, size_t qlen,
			 const struct sockaddr *peer,
			 const dns_answer_info *info, uint8_t *out, size_t len)
{
	const cfg_dns_rate_limit *rl = &d->w->snap->cfg->edge.dns_rate_limit;
	if (!rl->responses_per_second || !d->w->e->dns_rrl)
		return len;
	/* An IPv4 client on a dual-stack socket is matched as IPv4. */
	struct sockaddr_in v4;
	const struct sockaddr *who = geo_unmap(peer, &v4);
	for (size_t i = 0; i < rl->nexempt_networks; i++)
		if (cfg_cidr_contains(&rl->exempt_networks[i], who))
			return len;
	dns_rrl_cfg c = {.rps = rl->responses_per_second,
			 .slip = rl->slip,
			 .v4_prefix = (uint8_t)rl->ipv4_prefix_length,
			 .v6_prefix = (uint8_t)rl->ipv6_prefix_length};
	const uint8_t *name = NULL;
	uint16_t qtype = 0;
	size_t nl = dns_rrl_qname(q, qlen, &name, &qtype);
	dns_rrl_class cls = dns_rrl_class_of(info->rcode);
	if (cls == DNS_RRL_ANSWER && info->wildcard)
		cls = DNS_RRL_WILDCARD;
	dns_rrl_action a =
	    dns_rrl_check(d->w->e->dns_rrl, &c, peer, cls, name, nl, qtype,
			  (uint32_t)(d->w->loop.now / 1000));
	if (a == DNS_RRL_SEND)
		return len;
	limited_log(d, who, &c);
	if (a == DNS_RRL_SLIP) {
		size_t t = dns_rrl_truncate(out, len);
		if (t) {
			STAT_ADD(d, rrl_slipped, 1);
			return t;
		}
	}
	STAT_ADD(d, rrl_dropped, 1);
	return 0;
}

static size_t answer(edge_dns *d, const uint8_t *q, size_t qlen,
		     const struct sockaddr *peer, socklen_t peerlen,
		     uint8_t *out, size_t outcap, bool tcp)
{
	dns_client client = {.addr = peer, .addrlen = peerlen};
	dns_answer_info info;
	size_t n = dns_answer(d->w->snap->zones, q, qlen, &client, lb_answer, d,
			      out, outcap, tcp, &info);
	/* Counted as answered: the rate limit's own counters say what
	 * became of it. */
	count_answer(d, &info);
	if (n && !tcp)
		n = rate_limit(d, q, qlen, peer, &info, out, n);
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
	/* The kernel writes back msg_namelen, msg_controllen and msg_flags
	 * of the datagrams it returned (and not of the others): only those
	 * headers are prepared again, the rest were set once. */
	unsigned reset = s->pktinfo == d->rpktinfo ? d->rdirty : EDGE_DNS_BATCH;
	for (unsigned i = 0; i < reset; i++) {
		struct msghdr *h = &d->rmsg[i].msg_hdr;
		h->msg_namelen = sizeof(d->names[i]);
		h->msg_control = s->pktinfo ? d->rctrl[i].b : NULL;
		h->msg_controllen = s->pktinfo ? sizeof(d->rctrl[i]) : 0;
		h->msg_flags = 0;
	}
	d->rpktinfo = s->pktinfo;
	int n = recvmmsg(s->io.fd, d->rmsg, EDGE_DNS_BATCH, MSG_DONTWAIT, NULL);
	d->rdirty = n > 0 ? MIN((unsigned)n + 1, EDGE_DNS_BATCH) : 1;
	if (n < 0)
		return -errno;
	unsigned ns = 0;
	for (int i = 0; i < n; i++) {
		struct msghdr *rm = &d->rmsg[i].msg_hdr;
		STAT_ADD(d, queries[EDGE_DNS_UDP], 1);
		if (rm->msg_flags & MSG_TRUNC) { /* over UDP_BUF: not ours */
			STAT_ADD(d, dropped, 1);
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
				STAT_ADD(d, send_errors, ns - off);
				break;
			}
			STAT_ADD(d, send_errors, 1);
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
		/* A short batch emptied the queue (MSG_DONTWAIT stops only
		 * there, unconnected UDP sockets queue no errors): a datagram
		 * arriving after it is a new edge. That saves the EAGAIN
		 * call. */
		if (n == -EAGAIN || n == -EWOULDBLOCK ||
		    (n >= 0 && n < EDGE_DNS_BATCH))
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

static void conn_unlink(edge_dns *d, dns_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		d->conns_tail = c->prev;
	c->prev = c->next = NULL;
}

static void conn_push(edge_dns *d, dns_conn *c)
{
	c->prev = NULL;
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	else
		d->conns_tail = c;
	d->conns = c;
}

static void conn_close(dns_conn *c)
{
	edge_dns *d = c->d;
	if (c->io.fd < 0)
		return;
	close(c->io.fd);
	c->io.fd = -1;
	core_timer_cancel(&d->w->loop, &c->idle);
	conn_unlink(d, c);
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
	STAT_ADD(c->d, tcp_idle_closed, 1);
	conn_close(c);
}

/* A query came in whole or an answer went out whole: the connection is
 * the most recently active, and has client_idle for its next message.
 * Bytes of a message still partial extend nothing (RFC 7766 §6.2.3), so
 * a client trickling a byte at a time cannot hold its slot. */
static void conn_touch(dns_conn *c)
{
	edge_dns *d = c->d;
	if (d->conns != c) {
		conn_unlink(d, c);
		conn_push(d, c);
	}
	core_timer_after(&d->w->loop, &c->idle,
			 d->w->snap->cfg->edge.timeouts.client_idle_ms);
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
		if (c->outoff == c->outlen)
			conn_touch(c);
		else /* a short write: wait for EPOLLOUT */
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
		STAT_ADD(d, tcp_bad_frame, 1);
		conn_close(c);
		return -1;
	}
	if (have < 2 + qlen)
		return 0;
	STAT_ADD(d, queries[EDGE_DNS_TCP], 1);
	size_t n = answer(d, p + 2, qlen, (const struct sockaddr *)&c->peer,
			  c->peerlen, c->out + 2, DNS_TCP_MAX, true);
	if (!n) { /* not a query: the stream cannot be trusted further */
		STAT_ADD(d, tcp_bad_frame, 1);
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
	conn_push(d, c);
	d->nconns++;
	STAT_ADD(d, tcp_accepted, 1);
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
		if (d->nconns >= EDGE_DNS_TCP_CONNS && d->conns_tail) {
			/* Full: the least recently active connection makes
			 * room (RFC 7766 §6.2.3), so connections that sit idle
			 * or trickle bytes cannot lock new clients out. */
			STAT_ADD(d, tcp_evicted, 1);
			conn_close(d->conns_tail);
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

/* edge.limits.dns_receive_buffer: the default (rmem_default, about 200
 * KiB) holds a few hundred queries, which a worker off its core for a
 * few milliseconds at 100,000 q/s overflows. Beyond net.core.rmem_max
 * only SO_RCVBUFFORCE (CAP_NET_ADMIN) gets it; without, the edge says
 * what it got (once: report). */
static void udp_receive_buffer(int fd, uint64_t want, bool report,
			       const char *where)
{
	if (!want)
		return;
	int v = want > INT_MAX / 2 ? INT_MAX / 2 : (int)want, got = 0;
	socklen_t len = sizeof(got);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	/* The kernel reports twice what was set (its bookkeeping). */
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 &&
	    (uint64_t)got / 2 < (uint64_t)v && report)
		log_warn("dns %s: UDP receive buffer of %d KiB, not the %d "
			 "KiB edge.limits.dns_receive_buffer asks: "
			 "net.core.rmem_max caps it without CAP_NET_ADMIN",
			 where, got / 2048, v / 1024);
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
	for (unsigned i = 0; i < EDGE_DNS_BATCH; i++) {
		d->riov[i] = (struct iovec){d->in[i], UDP_BUF};
		d->rmsg[i].msg_hdr = (struct msghdr){
		    .msg_name = &d->names[i],
		    .msg_iov = &d->riov[i],
		    .msg_iovlen = 1,
		};
	}
	d->rdirty = EDGE_DNS_BATCH;
	d->nsocks = 2 * e->nlisten_dns;
	d->socks = xcalloc(d->nsocks, sizeof(*d->socks));
	for (size_t i = 0; i < d->nsocks; i++)
		d->socks[i].io.fd = -1;
	for (size_t i = 0; i < e->nlisten_dns; i++) {
		const cfg_addr *a = &e->listen_dns[i];
		dns_sock *u = &d->socks[2 * i], *t = &d->socks[2 * i + 1];
		int fd = udp_open(a, &u->pktinfo);
		if (fd >= 0) {
			udp_receive_buffer(fd, e->limits.dns_receive_buffer,
					   w->id == 0, a->text);
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
	free(d);
	w->dns = NULL;
}
