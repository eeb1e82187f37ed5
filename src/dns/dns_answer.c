/* dns_answer.c - see dns_answer.h. */
#include "dns/dns_answer.h"

#include <string.h>

#include "core/core_util.h"

typedef struct actx {
	const dns_zoneset *zs;
	const dns_query *q;
	dns_writer *w;
	dns_lb_cb cb;
	void *arg;
	const dns_client *client;
	int rcode;
	bool aa;
	bool lb_used;
	bool wildcard; /* the query name matched a wildcard */
	uint8_t scope;
	unsigned nbuf;
	uint8_t tw[2][DNS_MAX_NAME]; /* load balancer CNAME targets */
	uint8_t tl[2][DNS_MAX_NAME]; /* the same, lowercased */
} actx;

enum { LB_DONE, LB_FOLLOW, LB_STATIC };

static const uint8_t hinfo_rfc8482[] = {7,   'R', 'F', 'C', '8',
					'4', '8', '2', 0};

static void put_rrset(actx *a, dns_section sec, const uint8_t *owner,
		      const dns_rrset *rs)
{
	for (uint16_t i = 0; i < rs->n; i++)
		if (dns_writer_rr(a->w, sec, owner, rs->type, rs->ttl,
				  rs->rr[i].rdata, rs->rr[i].rdlen))
			return;
}

/* NODATA and NXDOMAIN: the zone's SOA in authority (RFC 2308). */
static void put_soa(actx *a, const dns_zone *z)
{
	const dns_rr *soa = &z->soa->rr[0];
	dns_writer_rr(a->w, DNS_SEC_AUTHORITY, z->wire, DNS_T_SOA, z->neg_ttl,
		      soa->rdata, soa->rdlen);
}

static void referral(actx *a, const dns_node *cut)
{
	const dns_rrset *ns = dns_node_rrset(cut, DNS_T_NS);
	if (!ns)
		return;
	put_rrset(a, DNS_SEC_AUTHORITY, cut->name, ns);
	/* glue: addresses of the servers inside the delegated name */
	for (uint16_t i = 0; i < ns->n && !a->w->overflow; i++) {
		const uint8_t *target = ns->rr[i].rdata;
		if (!dns_name_in(target, cut->name))
			continue;
		const dns_node *g = dns_zoneset_find(a->zs, target);
		if (!g)
			continue;
		const dns_rrset *rs = dns_node_rrset(g, DNS_T_A);
		if (rs)
			put_rrset(a, DNS_SEC_ADDITIONAL, target, rs);
		rs = dns_node_rrset(g, DNS_T_AAAA);
		if (rs)
			put_rrset(a, DNS_SEC_ADDITIONAL, target, rs);
	}
}

static void put_hinfo(actx *a, const uint8_t *owner)
{
	dns_writer_rr(a->w, DNS_SEC_ANSWER, owner, DNS_T_HINFO, DNS_ANY_TTL,
		      hinfo_rfc8482, sizeof(hinfo_rfc8482));
}

static void used_lb(actx *a)
{
	a->lb_used = true;
}

/* A load balancer node: what does its callback say? */
static int ask_lb(actx *a, const dns_node *node, const dns_zone *zone,
		  const uint8_t **owner, const uint8_t **lname)
{
	uint16_t qt = a->q->qtype;
	if (node->apex && qt != DNS_T_A && qt != DNS_T_AAAA)
		return LB_STATIC;

	dns_lb_result r;
	r.kind = DNS_LB_NONE;
	r.ttl = 30;
	r.ecs_scope = 0;
	r.n4 = r.n6 = 0;
	r.cname[0] = '\0';
	dns_lb_query lq = {
	    .lb = node->lb,
	    .qname = *owner,
	    .qtype = qt,
	    .client = a->client,
	    .ecs = a->q->has_ecs ? &a->q->ecs : NULL,
	};
	a->cb(a->arg, &lq, &r);
	/* Whatever answers now (the callback's records, or the static data
	 * it left the name to) was decided for the client's subnet. */
	if (r.ecs_scope > a->scope)
		a->scope = r.ecs_scope;

	switch (r.kind) {
	case DNS_LB_CNAME: {
		if (node->apex)
			return LB_STATIC; /* an apex cannot be an alias */
		used_lb(a);
		uint8_t *tw = a->tw[a->nbuf], *tl = a->tl[a->nbuf];
		a->nbuf ^= 1;
		r.cname[sizeof(r.cname) - 1] = '\0';
		int l = dns_name_from_text(r.cname, tw, DNS_MAX_NAME);
		if (l <= 1) {
			a->rcode = DNS_RCODE_SERVFAIL;
			return LB_DONE;
		}
		for (int i = 0; i < l; i++)
			tl[i] = dns_lower(tw[i]);
		/* CNAME and ANY match the CNAME itself: not followed */
		if (dns_writer_rr(a->w, DNS_SEC_ANSWER, *owner, DNS_T_CNAME,
				  r.ttl, tw, (uint16_t)l) ||
		    qt == DNS_T_CNAME || qt == DNS_T_ANY)
			return LB_DONE;
		*owner = tw;
		*lname = tl;
		return LB_FOLLOW;
	}
	case DNS_LB_ADDRS:
		if (qt == DNS_T_A || qt == DNS_T_AAAA) {
			used_lb(a);
			bool v4 = qt == DNS_T_A;
			unsigned n = MIN(v4 ? r.n4 : r.n6, DNS_LB_MAX_ADDRS);
			for (unsigned i = 0; i < n; i++)
				if (dns_writer_rr(a->w, DNS_SEC_ANSWER, *owner,
						  qt, r.ttl,
						  v4 ? r.addr4[i] : r.addr6[i],
						  v4 ? 4 : 16))
					break;
			if (n == 0)
				put_soa(a, zone);
			return LB_DONE;
		}
		if (qt == DNS_T_ANY) {
			used_lb(a);
			put_hinfo(a, *owner);
			return LB_DONE;
		}
		return LB_STATIC;
	default:
		return LB_STATIC;
	}
}

static void resolve(actx *a)
{
	const uint8_t *owner = a->q->qname.wire;
	const uint8_t *lname = a->q->qname.lower;
	uint16_t qt = a->q->qtype;
	/* The nodes answered so far: one met again is a loop, whose records
	 * are all written already. */
	const dns_node *seen[DNS_MAX_CHAIN + 1];

	for (unsigned hop = 0; !a->w->overflow; hop++) {
		dns_lookup lk;
		dns_zoneset_lookup(a->zs, lname, &lk);
		switch (lk.match) {
		case DNS_MATCH_NONE:
			if (hop == 0)
				a->rcode = DNS_RCODE_REFUSED;
			return; /* or a CNAME leaving our zones */
		case DNS_MATCH_DELEGATION:
			if (lk.at_cut && qt == DNS_T_DS) {
				a->aa |= hop == 0;
				put_soa(a, lk.zone);
			} else if (hop == 0) {
				referral(a, lk.node);
			}
			return;
		case DNS_MATCH_NXDOMAIN:
			a->aa |= hop == 0;
			a->rcode = DNS_RCODE_NXDOMAIN;
			put_soa(a, lk.zone);
			return;
		default:
			break;
		}
		a->aa |= hop == 0;
		if (hop == 0 && lk.match == DNS_MATCH_WILDCARD)
			a->wildcard = true;
		const dns_node *node = lk.node;
		for (unsigned i = 0; i < hop; i++)
			if (seen[i] == node)
				return;
		seen[hop] = node;
		/* DNS_MAX_CHAIN links followed: this name's data is the last
		 * written, a CNAME here is not followed */
		bool last = hop == DNS_MAX_CHAIN;
		if (node->lb && a->cb) {
			int r = ask_lb(a, node, lk.zone, &owner, &lname);
			if (r == LB_DONE || (r == LB_FOLLOW && last))
				return;
			if (r == LB_FOLLOW)
				continue;
		}
		const dns_rrset *cn = dns_node_rrset(node, DNS_T_CNAME);
		if (qt == DNS_T_ANY) {
			/* No HINFO beside a CNAME (RFC 8482 4.2): ANY matches
			 * the CNAME, answered and not followed. */
			if (cn)
				put_rrset(a, DNS_SEC_ANSWER, owner, cn);
			else if (node->nrrsets || node->lb)
				put_hinfo(a, owner);
			else
				put_soa(a, lk.zone);
			return;
		}
		if (qt == DNS_T_CNAME)
			cn = NULL;
		if (cn) {
			if (dns_writer_rr(a->w, DNS_SEC_ANSWER, owner,
					  DNS_T_CNAME, cn->ttl, cn->rr[0].rdata,
					  cn->rr[0].rdlen) ||
			    last)
				return;
			owner = lname = cn->rr[0].rdata;
			continue;
		}
		const dns_rrset *rs = dns_node_rrset(node, qt);
		if (rs)
			put_rrset(a, DNS_SEC_ANSWER, owner, rs);
		else
			put_soa(a, lk.zone);
		return;
	}
}

size_t dns_answer(const dns_zoneset *zs, const uint8_t *query, size_t qlen,
		  const dns_client *client, dns_lb_cb lb_cb, void *arg,
		  uint8_t *out, size_t outcap, bool tcp, dns_answer_info *info)
{
	dns_answer_info local;
	dns_query q;
	dns_writer w;

	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	int rc = dns_query_parse(query, qlen, &q);
	if (rc < 0)
		goto drop;
	info->qtype = q.has_question ? q.qtype : 0;
	info->edns = q.has_edns;
	info->ecs = q.has_ecs;

	uint16_t udp_max = dns_zoneset_udp_max(zs);
	size_t limit;
	if (tcp)
		limit = DNS_TCP_MAX;
	else if (q.has_edns)
		limit = q.udp_size < DNS_UDP_MIN ? DNS_UDP_MIN
						 : MIN(q.udp_size, udp_max);
	else
		limit = DNS_UDP_MIN;
	if (limit > outcap)
		limit = outcap;
	const dns_ecs *ecs = q.has_ecs ? &q.ecs : NULL;
	size_t optlen = q.has_edns ? dns_opt_len(ecs) : 0;
	if (limit < DNS_HEADER_LEN + optlen)
		goto drop;

	uint16_t flags =
	    DNS_F_QR | (q.flags & (DNS_F_OPCODE_MASK | DNS_F_RD | DNS_F_CD));
	dns_writer_init(&w, out, limit - optlen);
	dns_writer_header(&w, q.id, flags);
	if (q.has_question &&
	    dns_writer_question(&w, q.qname.wire, q.qtype, q.qclass))
		goto drop;
	dns_wmark after_question = dns_writer_mark(&w);

	if (rc == DNS_RCODE_NOERROR) {
		uint16_t qt = q.qtype;
		if (q.qclass != DNS_C_IN || qt == DNS_T_AXFR ||
		    qt == DNS_T_IXFR)
			rc = DNS_RCODE_REFUSED;
		else if (qt == DNS_T_MAILA || qt == DNS_T_MAILB)
			rc = DNS_RCODE_NOTIMP;
		else if (qt == DNS_T_OPT || qt == 249 || qt == 250)
			rc = DNS_RCODE_FORMERR; /* OPT, TKEY, TSIG */
	}
	bool aa = false;
	uint8_t scope = 0;
	if (rc == DNS_RCODE_NOERROR) {
		actx a;
		a.zs = zs;
		a.q = &q;
		a.w = &w;
		a.cb = lb_cb;
		a.arg = arg;
		a.client = client;
		a.rcode = DNS_RCODE_NOERROR;
		a.aa = false;
		a.lb_used = false;
		a.wildcard = false;
		a.scope = 0;
		a.nbuf = 0;
		resolve(&a);
		rc = a.rcode;
		aa =
		    a.aa && rc != DNS_RCODE_REFUSED && rc != DNS_RCODE_SERVFAIL;
		scope = a.scope;
		info->lb = a.lb_used;
		info->wildcard = a.wildcard;
	}
	if (w.overflow) {
		dns_writer_rollback(&w, &after_question);
		flags |= DNS_F_TC;
		info->truncated = true;
	}
	if (aa)
		flags |= DNS_F_AA;
	flags |= (uint16_t)(rc & DNS_F_RCODE_MASK);
	dns_writer_set_flags(&w, flags);
	if (q.has_edns) {
		unsigned maxbits =
		    ecs && ecs->family == DNS_ECS_FAMILY_IPV4 ? 32 : 128;
		if (!ecs || ecs->source == 0)
			scope = 0;
		else if (scope > maxbits)
			scope = (uint8_t)maxbits;
		w.cap = limit;
		if (dns_writer_opt(&w, udp_max, (uint8_t)(rc >> 4), q.edns_do,
				   ecs, scope))
			goto drop;
		info->ecs_scoped = scope > 0;
	}
	info->rcode = (uint8_t)rc;
	info->aa = aa;
	return dns_writer_finish(&w);
drop:
	memset(info, 0, sizeof(*info));
	info->dropped = true;
	return 0;
}
