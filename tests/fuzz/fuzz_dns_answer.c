/* fuzz_dns_answer.c - libFuzzer harness for the whole query -> answer path
 * (dns_query_parse, dns_zoneset_lookup, the load balancer callback,
 * dns_writer) over a small fixed zone set built once.
 *
 * The input is the query. It is answered over UDP and over TCP and each
 * response is checked: within the size limit, a well-formed message (every
 * name readable, the counts matching the records, no byte left over), the
 * id echoed and QR set, TC only with empty sections, an OPT only when the
 * query had EDNS, the same bytes when answered twice; and the truncated
 * form rate limiting sends is well formed too. The callback answers
 * from a hash of the name: addresses (up to the maximum), a CNAME in or
 * out of the zones, nothing, or an invalid name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "config/cfg_load.h"
#include "dns/dns_answer.h"
#include "dns/dns_rrl.h"
#include "dns/dns_wire.h"
#include "dns/dns_zone.h"

static const char yaml_head[] =
    "edge: { public_addresses: [\"203.0.113.10\", \"2001:db8::10\"] }\n"
    "pools: [ { id: p, origins: [ { name: o, address: 127.0.0.1 } ] } ]\n"
    "load_balancers:\n"
    "  - { name: lb.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: \"*.lb.example.com\", proxied: false, default_pools: [p] }\n"
    "  - { name: example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: www.example.com, proxied: false, default_pools: [p] }\n"
    "zones:\n"
    "  - name: example.com\n"
    "    records:\n"
    "      - { name: www.example.com, type: A, content: 192.0.2.1 }\n"
    "      - { name: www.example.com, type: AAAA, content: \"2001:db8::1\" "
    "}\n"
    "      - { name: \"@\", type: MX, content: mail.example.com, priority: "
    "10 }\n"
    "      - { name: \"@\", type: TXT, content: \"v=spf1 -all\" }\n"
    "      - { name: \"@\", type: CAA, content: '0 issue \"ca.test\"' }\n"
    "      - { name: _s._tcp.example.com, type: SRV, content: \"1 2 "
    "mail.example.com\" }\n"
    "      - { name: a.example.com, type: CNAME, content: b.example.com }\n"
    "      - { name: b.example.com, type: CNAME, content: a.example.com }\n"
    "      - { name: c.example.com, type: CNAME, content: lb.example.com }\n"
    "      - { name: d.example.com, type: CNAME, content: x.example.net }\n"
    "      - { name: \"*.w.example.com\", type: A, content: 192.0.2.9 }\n"
    "      - { name: e.f.g.example.com, type: TXT, content: deep }\n"
    "      - { name: sub.example.com, type: NS, content: ns.sub.example.com "
    "}\n"
    "      - { name: ns.sub.example.com, type: A, content: 192.0.2.53 }\n"
    "      - { name: ns.sub.example.com, type: AAAA, content: "
    "\"2001:db8::53\" }\n";
/* many.example.com's records go between the two */
static const char yaml_tail[] = "  - name: kid.example.com\n"
				"  - name: example.org\n";

static dns_zoneset *zs;

static void build(void)
{
	cfg_snapshot *snap = NULL;
	cfg_diag d = {0};
	/* many.example.com: 60 A records, beyond 512 and 1232 */
	size_t cap = sizeof(yaml_head) + sizeof(yaml_tail) + 60 * 80;
	char *y = malloc(cap);
	CHECK(y);
	size_t n = (size_t)snprintf(y, cap, "%s", yaml_head);
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(y + n, cap - n,
				      "      - { name: many.example.com, type: "
				      "A, content: 10.0.0.%d }\n",
				      i + 1);
	n += (size_t)snprintf(y + n, cap - n, "%s", yaml_tail);
	CHECK(cfg_load_string("fuzz.yaml", y, n, &snap, &d) == 0);
	free(y);
	dns_zoneset_opts o = {.serial = 1};
	CHECK(dns_zoneset_build(snap, &o, &zs, &d) == 0);
	cfg_diag_free(&d);
	/* snap stays alive: the zone set points at its load balancers */
}

static void lb_cb(void *arg, const dns_lb_query *q, dns_lb_result *r)
{
	uint32_t h = 2166136261u;
	(void)arg;
	for (size_t i = 0; q->qname[i]; i += 1u + q->qname[i])
		for (size_t k = 0; k <= q->qname[i]; k++)
			h = (h ^ dns_lower(q->qname[i + k])) * 16777619u;
	r->ttl = h % 600;
	r->ecs_scope = (uint8_t)(h >> 8);
	switch (h % 6) {
	case 0:
	case 1:
		r->kind = DNS_LB_ADDRS;
		r->n4 = (uint8_t)(h >> 16) % (DNS_LB_MAX_ADDRS + 1);
		r->n6 = (uint8_t)(h >> 20) % (DNS_LB_MAX_ADDRS + 1);
		for (int i = 0; i < DNS_LB_MAX_ADDRS; i++) {
			memset(r->addr4[i], i, 4);
			memset(r->addr6[i], i, 16);
		}
		break;
	case 2:
		r->kind = DNS_LB_CNAME;
		strcpy(r->cname, "www.example.com");
		break;
	case 3:
		r->kind = DNS_LB_CNAME;
		strcpy(r->cname, "Origin.Example.NET.");
		break;
	case 4:
		r->kind = DNS_LB_CNAME;
		strcpy(r->cname, "bad..name");
		break;
	default:
		r->kind = DNS_LB_NONE;
		break;
	}
}

/* Reads a whole message; false when it is not well formed. */
static bool well_formed(const uint8_t *b, size_t len, bool *has_opt)
{
	size_t off = DNS_HEADER_LEN;
	dns_name n;
	*has_opt = false;
	if (len < DNS_HEADER_LEN)
		return false;
	unsigned qd = dns_get16(b + 4), rrs = 0;
	for (int i = 0; i < 3; i++)
		rrs += dns_get16(b + 6 + 2 * i);
	if (qd > 1)
		return false;
	if (qd) {
		if (dns_name_parse(b, len, &off, &n) || len - off < 4)
			return false;
		off += 4;
	}
	for (unsigned i = 0; i < rrs; i++) {
		if (dns_name_parse(b, len, &off, &n) || len - off < 10)
			return false;
		uint16_t type = dns_get16(b + off);
		uint16_t rdlen = dns_get16(b + off + 8);
		off += 10;
		if (len - off < rdlen)
			return false;
		size_t r = off;
		switch (type) {
		case DNS_T_CNAME:
		case DNS_T_NS:
			if (dns_name_parse(b, len, &r, &n) || r != off + rdlen)
				return false;
			break;
		case DNS_T_MX:
			r += 2;
			if (dns_name_parse(b, len, &r, &n) || r != off + rdlen)
				return false;
			break;
		case DNS_T_SOA:
			if (dns_name_parse(b, len, &r, &n) ||
			    dns_name_parse(b, len, &r, &n) ||
			    r + 20 != off + rdlen)
				return false;
			break;
		case DNS_T_A:
			if (rdlen != 4)
				return false;
			break;
		case DNS_T_AAAA:
			if (rdlen != 16)
				return false;
			break;
		case DNS_T_OPT:
			if (i != rrs - 1 || *has_opt)
				return false;
			*has_opt = true;
			break;
		default:
			break;
		}
		off += rdlen;
	}
	return off == len;
}

static void check(const uint8_t *q, size_t qlen, bool tcp, size_t outcap)
{
	uint8_t *out = malloc(outcap), *again = malloc(outcap);
	CHECK(out && again);
	dns_answer_info info;
	size_t n =
	    dns_answer(zs, q, qlen, NULL, lb_cb, NULL, out, outcap, tcp, &info);
	CHECK(n <= outcap);
	CHECK(n == 0 || n >= DNS_HEADER_LEN);
	CHECK(info.dropped == (n == 0));
	if (n) {
		dns_query qq;
		int rc = dns_query_parse(q, qlen, &qq);
		CHECK(rc >= 0);
		if (!tcp)
			CHECK(n <= DNS_UDP_DEFAULT);
		CHECK(dns_get16(out) == dns_get16(q));
		uint16_t flags = dns_get16(out + 2);
		CHECK(flags & DNS_F_QR);
		CHECK(!(flags & DNS_F_RA));
		bool has_opt;
		CHECK(well_formed(out, n, &has_opt));
		CHECK(has_opt == qq.has_edns);
		if (flags & DNS_F_TC) {
			CHECK(info.truncated);
			CHECK(dns_get16(out + 6) == 0 &&
			      dns_get16(out + 8) == 0);
			CHECK(dns_get16(out + 10) == (has_opt ? 1 : 0));
		}
		if (!has_opt)
			CHECK(info.rcode < 16);
		CHECK((flags & 0xF) == (info.rcode & 0xF));
	}
	dns_answer_info info2;
	size_t n2 = dns_answer(zs, q, qlen, NULL, lb_cb, NULL, again, outcap,
			       tcp, &info2);
	CHECK(n2 == n && !memcmp(out, again, n));
	/* Rate limiting's pieces on the same bytes: the query's name, and
	 * the truncated form of the response (still well formed: header
	 * and question, TC set, no records). */
	const uint8_t *name;
	uint16_t qtype;
	size_t nl = dns_rrl_qname(q, qlen, &name, &qtype);
	CHECK(nl <= 255 &&
	      (nl == 0 || (name == q + 12 && 12 + nl + 4 <= qlen)));
	if (n) {
		bool had_opt, has_opt;
		CHECK(well_formed(out, n, &had_opt));
		size_t t = dns_rrl_truncate(again, n);
		/* Every response of ours can be shortened. */
		CHECK(t > 0 && t <= n);
		CHECK(dns_get16(again + 2) & DNS_F_TC);
		CHECK((dns_get16(again + 2) & 0xF) ==
		      (dns_get16(out + 2) & 0xF));
		CHECK(dns_get16(again + 6) == 0 && dns_get16(again + 8) == 0);
		CHECK(dns_get16(again + 10) == (had_opt ? 1 : 0));
		CHECK(well_formed(again, t, &has_opt) && has_opt == had_opt);
	}
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!zs)
		build();
	uint8_t *q = malloc(size ? size : 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	check(q, size, false, 4096);
	check(q, size, true, DNS_TCP_MAX);
	/* a small buffer: truncation at odd places */
	check(q, size, true, 100 + (size ? data[size - 1] : 0));
	free(q);
	return 0;
}
