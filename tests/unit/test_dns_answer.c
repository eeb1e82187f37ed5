/* Unit tests for dns_zone and dns_answer over a zone set built from a YAML
 * configuration: static records of every type, case echo, NXDOMAIN vs
 * NODATA vs REFUSED, empty non-terminals, wildcards, CNAME chains (in and
 * out of zone, loops, dangling), generated SOA/NS (and ns1 addresses),
 * ANY (RFC 8482), delegations with glue, a child zone, EDNS and BADVERS,
 * FORMERR/NOTIMP/drop, truncation over UDP and full answers over TCP, and
 * load balancer nodes answered by a callback (A/AAAA with an ECS scope,
 * CNAME in and out of zone, apex, static fallback, SERVFAIL), and the
 * build errors an operator sees. Responses are parsed back by a small
 * reader here and checked field by field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config/cfg_load.h"
#include "core/core_util.h"
#include "dns/dns_answer.h"
#include "dns/dns_wire.h"
#include "dns/dns_zone.h"

#define SERIAL 1700000000u

static const char yaml_base[] =
    "edge:\n"
    "  public_addresses: [\"203.0.113.10\", \"2001:db8::10\"]\n"
    "pools:\n"
    "  - id: p\n"
    "    origins: [ { name: o, address: 127.0.0.1 } ]\n"
    "load_balancers:\n"
    "  - { name: lb.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: alias.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: \"*.lbwild.example.com\", proxied: false, default_pools: "
    "[p] }\n"
    "  - { name: example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: off.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: bad.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: v6only.example.com, proxied: false, default_pools: [p] }\n"
    "  - { name: lb.elsewhere.test, proxied: false, default_pools: [p] }\n"
    "zones:\n"
    "  - name: example.com\n"
    "    records:\n"
    "      - { name: www.example.com, type: A, content: 192.0.2.1 }\n"
    "      - { name: www.example.com, type: A, content: 192.0.2.2, ttl: 60 "
    "}\n"
    "      - { name: www.example.com, type: A, content: 192.0.2.1 }\n"
    "      - { name: www.example.com, type: AAAA, content: \"2001:db8::1\" "
    "}\n"
    "      - { name: \"@\", type: MX, content: mail.example.com, priority: "
    "10 }\n"
    "      - { name: \"@\", type: TXT, content: \"v=spf1 -all\" }\n"
    "      - { name: \"@\", type: CAA, content: '0 issue "
    "\"letsencrypt.org\"' }\n"
    "      - { name: mail.example.com, type: A, content: 192.0.2.3 }\n"
    "      - { name: _sip._tcp.example.com, type: SRV, content: \"5 5060 "
    "sip.example.com\", priority: 10 }\n"
    "      - { name: alias2.example.com, type: CNAME, content: "
    "www.example.com }\n"
    "      - { name: ext.example.com, type: CNAME, content: "
    "www.example.net }\n"
    "      - { name: loop1.example.com, type: CNAME, content: "
    "loop2.example.com }\n"
    "      - { name: loop2.example.com, type: CNAME, content: "
    "loop1.example.com }\n"
    "      - { name: ch0.example.com, type: CNAME, content: "
    "ch1.example.com }\n"
    "      - { name: ch1.example.com, type: CNAME, content: "
    "ch2.example.com }\n"
    "      - { name: ch2.example.com, type: CNAME, content: "
    "ch3.example.com }\n"
    "      - { name: ch3.example.com, type: CNAME, content: "
    "ch4.example.com }\n"
    "      - { name: ch4.example.com, type: CNAME, content: "
    "ch5.example.com }\n"
    "      - { name: ch5.example.com, type: CNAME, content: "
    "ch6.example.com }\n"
    "      - { name: ch6.example.com, type: CNAME, content: "
    "ch7.example.com }\n"
    "      - { name: ch7.example.com, type: CNAME, content: "
    "ch8.example.com }\n"
    "      - { name: ch8.example.com, type: CNAME, content: "
    "ch9.example.com }\n"
    "      - { name: ch9.example.com, type: A, content: 192.0.2.99 }\n"
    "      - { name: self.example.com, type: CNAME, content: "
    "SELF.example.com }\n"
    "      - { name: \"*.wl.example.com\", type: CNAME, content: "
    "t.wl.example.com }\n"
    "      - { name: dangling.example.com, type: CNAME, content: "
    "nothere.example.com }\n"
    "      - { name: \"*.wild.example.com\", type: A, content: 192.0.2.9 "
    "}\n"
    "      - { name: \"*.wild.example.com\", type: TXT, content: wild }\n"
    "      - { name: deep.a.b.example.com, type: A, content: 192.0.2.4 }\n"
    "      - { name: sub.example.com, type: NS, content: "
    "ns.sub.example.com }\n"
    "      - { name: sub.example.com, type: NS, content: ns.other.test }\n"
    "      - { name: ns.sub.example.com, type: A, content: 192.0.2.53 }\n"
    "      - { name: off.example.com, type: A, content: 192.0.2.77 }\n"
    "      - { name: kid.example.com, type: NS, content: ns1.kid.example.com "
    "}\n"
    "  - name: kid.example.com\n"
    "    records:\n"
    "      - { name: www.kid.example.com, type: A, content: 192.0.2.100 }\n"
    "  - name: Example.ORG\n";

static dns_zoneset *zs;

/* "many" (40 A records, 656 bytes) and "huge" (100, 1636 bytes) */
static char *make_yaml(void)
{
	size_t cap = sizeof(yaml_base) + 200 * 80;
	char *y = malloc(cap);
	size_t n = (size_t)snprintf(y, cap, "%s", yaml_base);
	/* the records go to example.com: insert before "  - name: kid" */
	char *kid = strstr(y, "  - name: kid.example.com\n");
	char tail[1024];
	snprintf(tail, sizeof(tail), "%s", kid);
	n = (size_t)(kid - y);
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(y + n, cap - n,
				      "      - { name: many.example.com, type: "
				      "A, content: 10.0.0.%d }\n",
				      i + 1);
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(y + n, cap - n,
				      "      - { name: huge.example.com, type: "
				      "A, content: 10.0.1.%d }\n",
				      i + 1);
	snprintf(y + n, cap - n, "%s", tail);
	return y;
}

static cfg_snapshot *snap;

static int setup(void **state)
{
	char *y = make_yaml();
	cfg_diag d = {0};
	int rc = cfg_load_string("t.yaml", y, strlen(y), &snap, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("config: %s\n", d.msgs[i]);
	cfg_diag_free(&d);
	free(y);
	if (rc)
		return -1;
	dns_zoneset_opts o = {.serial = SERIAL};
	rc = dns_zoneset_build(snap, &o, &zs, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("build: %s\n", d.msgs[i]);
	cfg_diag_free(&d);
	return rc;
}

static int teardown(void **state)
{
	dns_zoneset_free(zs);
	cfg_snapshot_free(snap);
	return 0;
}

/* ---- the load balancer callback ---- */

typedef struct lbcalls {
	int n;
	char last_name[300];
	uint16_t last_type;
	bool last_ecs;
	const dns_client *last_client;
} lbcalls;

static void lb_cb(void *arg, const dns_lb_query *q, dns_lb_result *r)
{
	lbcalls *c = arg;
	const char *name = q->lb->name;
	c->n++;
	dns_name_to_text(q->qname, c->last_name, sizeof(c->last_name));
	c->last_type = q->qtype;
	c->last_ecs = q->ecs != NULL;
	c->last_client = q->client;
	r->ttl = 30;
	if (!strcmp(name, "lb.example.com")) {
		r->kind = DNS_LB_ADDRS;
		r->n4 = 2;
		memcpy(r->addr4[0], "\xc6\x33\x64\x01", 4);
		memcpy(r->addr4[1], "\xc6\x33\x64\x02", 4);
		r->n6 = 1;
		inet_pton(AF_INET6, "2001:db8::100", r->addr6[0]);
		r->ecs_scope = q->ecs ? 24 : 0;
	} else if (!strcmp(name, "alias.example.com")) {
		r->kind = DNS_LB_CNAME;
		snprintf(r->cname, sizeof(r->cname), "Origin.Example.NET");
		r->ecs_scope = 16;
	} else if (!strcmp(name, "*.lbwild.example.com")) {
		r->kind = DNS_LB_CNAME;
		snprintf(r->cname, sizeof(r->cname), "www.example.com.");
	} else if (!strcmp(name, "example.com")) {
		r->kind = DNS_LB_ADDRS;
		r->n4 = 1;
		memcpy(r->addr4[0], "\xc6\x33\x64\x0a", 4);
		/* a CNAME at the apex would be ignored; ADDRS here */
	} else if (!strcmp(name, "bad.example.com")) {
		r->kind = DNS_LB_CNAME;
		snprintf(r->cname, sizeof(r->cname), "a..b");
	} else if (!strcmp(name, "v6only.example.com")) {
		r->kind = DNS_LB_ADDRS;
		r->n6 = 1;
		inet_pton(AF_INET6, "2001:db8::6", r->addr6[0]);
	} else {
		/* off.example.com: nothing for this client's subnet */
		r->kind = DNS_LB_NONE;
		r->ecs_scope = q->ecs ? 20 : 0;
	}
}

/* ---- queries and a response reader ---- */

typedef struct qopt {
	int edns_udp; /* -1: no OPT */
	uint8_t version;
	bool do_bit;
	bool ecs;
	uint16_t family;
	uint8_t source;
	uint8_t addr[16];
	uint16_t qclass;
} qopt;

static size_t mkq(uint8_t *b, const char *name, uint16_t type, const qopt *o)
{
	size_t n = 0;
	uint16_t id = 0x5151;
	dns_put16(b, id);
	dns_put16(b + 2, DNS_F_RD | DNS_F_CD);
	dns_put16(b + 4, 1);
	dns_put16(b + 6, 0);
	dns_put16(b + 8, 0);
	dns_put16(b + 10, o && o->edns_udp >= 0 ? 1 : 0);
	n = 12;
	int l = dns_name_from_text(name, b + n, DNS_MAX_NAME);
	assert_true(l > 0);
	n += (size_t)l;
	dns_put16(b + n, type);
	dns_put16(b + n + 2, o && o->qclass ? o->qclass : DNS_C_IN);
	n += 4;
	if (o && o->edns_udp >= 0) {
		size_t nb = (o->source + 7u) / 8u;
		b[n] = 0;
		dns_put16(b + n + 1, DNS_T_OPT);
		dns_put16(b + n + 3, (uint16_t)o->edns_udp);
		dns_put32(b + n + 5, (uint32_t)o->version << 16 |
					 (o->do_bit ? 0x8000u : 0));
		dns_put16(b + n + 9, (uint16_t)(o->ecs ? 8 + nb : 0));
		n += 11;
		if (o->ecs) {
			dns_put16(b + n, DNS_OPT_ECS);
			dns_put16(b + n + 2, (uint16_t)(4 + nb));
			dns_put16(b + n + 4, o->family);
			b[n + 6] = o->source;
			b[n + 7] = 0;
			memcpy(b + n + 8, o->addr, nb);
			n += 8 + nb;
		}
	}
	return n;
}

typedef struct rr {
	char owner[300];
	uint16_t type;
	uint32_t ttl;
	uint16_t rdlen;
	const uint8_t *rdata;
	char target[300]; /* CNAME, NS, MX exchange, SOA mname */
} rr;

typedef struct resp {
	size_t len;
	uint8_t buf[65536];
	uint16_t id, flags;
	unsigned rcode; /* extended when there is an OPT */
	unsigned qd, an, ns, ar;
	char qname[300];
	uint16_t qtype;
	rr rrs[256];
	size_t nrr;
	bool opt;
	uint16_t opt_udp;
	uint32_t opt_ttl;
	bool ecs;
	uint16_t ecs_family;
	uint8_t ecs_source, ecs_scope;
	uint8_t ecs_addr[16];
	dns_answer_info info;
} resp;

static resp R;

static void name_at(const uint8_t *b, size_t len, size_t off, char *out)
{
	dns_name n;
	assert_int_equal(dns_name_parse(b, len, &off, &n), 0);
	assert_true(dns_name_to_text(n.wire, out, 300) > 0);
}

static void read_resp(resp *r)
{
	const uint8_t *b = r->buf;
	size_t len = r->len, off = 12;
	assert_true(len >= 12);
	r->id = dns_get16(b);
	r->flags = dns_get16(b + 2);
	r->rcode = r->flags & 0xF;
	r->qd = dns_get16(b + 4);
	r->an = dns_get16(b + 6);
	r->ns = dns_get16(b + 8);
	r->ar = dns_get16(b + 10);
	r->nrr = 0;
	r->opt = r->ecs = false;
	r->qname[0] = '\0';
	if (r->qd) {
		assert_int_equal(r->qd, 1);
		dns_name n;
		assert_int_equal(dns_name_parse(b, len, &off, &n), 0);
		assert_true(dns_name_to_text(n.wire, r->qname, 300) > 0);
		r->qtype = dns_get16(b + off);
		off += 4;
	}
	for (unsigned i = 0; i < r->an + r->ns + r->ar; i++) {
		rr *x = &r->rrs[r->nrr++];
		dns_name n;
		assert_int_equal(dns_name_parse(b, len, &off, &n), 0);
		assert_true(dns_name_to_text(n.wire, x->owner, 300) > 0);
		assert_true(off + 10 <= len);
		x->type = dns_get16(b + off);
		uint16_t class = dns_get16(b + off + 2);
		x->ttl = dns_get32(b + off + 4);
		x->rdlen = dns_get16(b + off + 8);
		off += 10;
		assert_true(off + x->rdlen <= len);
		x->rdata = b + off;
		x->target[0] = '\0';
		switch (x->type) {
		case DNS_T_CNAME:
		case DNS_T_NS:
		case DNS_T_SOA:
			name_at(b, len, off, x->target);
			break;
		case DNS_T_MX:
			name_at(b, len, off + 2, x->target);
			break;
		case DNS_T_OPT:
			assert_int_equal(i, r->an + r->ns + r->ar - 1);
			r->opt = true;
			r->opt_udp = class;
			r->opt_ttl = x->ttl;
			r->rcode |= (x->ttl >> 24) << 4;
			if (x->rdlen) {
				const uint8_t *o = x->rdata;
				assert_int_equal(dns_get16(o), DNS_OPT_ECS);
				r->ecs = true;
				r->ecs_family = dns_get16(o + 4);
				r->ecs_source = o[6];
				r->ecs_scope = o[7];
				memset(r->ecs_addr, 0, 16);
				memcpy(r->ecs_addr, o + 8,
				       dns_get16(o + 2) - 4u);
			}
			break;
		default:
			if (class != DNS_C_IN)
				fail_msg("class %u", class);
			break;
		}
		off += x->rdlen;
	}
	assert_int_equal(off, len);
}

static lbcalls calls;

static resp *ask_full(const char *name, uint16_t type, const qopt *o, bool tcp,
		      size_t outcap)
{
	uint8_t q[512];
	size_t ql = mkq(q, name, type, o);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	dns_client client = {(const struct sockaddr *)&sin, sizeof(sin)};
	memset(&calls, 0, sizeof(calls));
	R.len = dns_answer(zs, q, ql, &client, lb_cb, &calls, R.buf,
			   outcap ? outcap : sizeof(R.buf), tcp, &R.info);
	if (R.len)
		read_resp(&R);
	if (calls.n)
		assert_ptr_equal(calls.last_client, &client);
	return &R;
}

static resp *ask(const char *name, uint16_t type)
{
	return ask_full(name, type, NULL, false, 0);
}

static resp *ask_edns(const char *name, uint16_t type, int udp)
{
	qopt o = {.edns_udp = udp};
	return ask_full(name, type, &o, false, 0);
}

#define AA(r)  (((r)->flags & DNS_F_AA) != 0)
#define TC(r)  (((r)->flags & DNS_F_TC) != 0)
#define IP4(x) ((x)->rdlen == 4 ? ip4((x)->rdata) : "?")

static const char *ip4(const uint8_t *a)
{
	static char buf[4][INET_ADDRSTRLEN];
	static int k;
	k = (k + 1) % 4;
	inet_ntop(AF_INET, a, buf[k], sizeof(buf[k]));
	return buf[k];
}

static void expect_soa_authority(const resp *r, size_t i, const char *zone)
{
	assert_int_equal(r->rrs[i].type, DNS_T_SOA);
	assert_string_equal(r->rrs[i].owner, zone);
	assert_int_equal(r->rrs[i].ttl, 60);
}

/* ---- tests ---- */

static void test_static_a(void **state)
{
	resp *r = ask("www.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NOERROR);
	assert_true(AA(r));
	assert_true(r->flags & DNS_F_QR);
	assert_true(r->flags & DNS_F_RD);
	assert_true(r->flags & DNS_F_CD);
	assert_false(r->flags & DNS_F_RA);
	assert_int_equal(r->id, 0x5151);
	assert_string_equal(r->qname, "www.example.com.");
	/* duplicates merged; the lowest TTL of the RRset */
	assert_int_equal(r->an, 2);
	assert_int_equal(r->ns + r->ar, 0);
	assert_string_equal(r->rrs[0].owner, "www.example.com.");
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.1");
	assert_string_equal(IP4(&r->rrs[1]), "192.0.2.2");
	assert_int_equal(r->rrs[0].ttl, 60);
	assert_int_equal(r->rrs[1].ttl, 60);
	/* owner compressed to the question */
	assert_memory_equal(r->buf + 12 + 17 + 4, "\xc0\x0c", 2);
	assert_int_equal(r->info.rcode, 0);
	assert_true(r->info.aa);
	assert_false(r->info.lb);
	assert_false(r->info.wildcard);
	assert_int_equal(r->info.qtype, DNS_T_A);
	assert_int_equal(calls.n, 0);
	r = ask("www.example.com", DNS_T_AAAA);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].rdlen, 16);
}

static void test_case_echo(void **state)
{
	resp *r = ask("WwW.ExAmPlE.cOm", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_string_equal(r->qname, "WwW.ExAmPlE.cOm.");
	assert_string_equal(r->rrs[0].owner, "WwW.ExAmPlE.cOm.");
	/* the SOA owner of a negative answer points into the question */
	r = ask("NoPe.ExAmPlE.CoM", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	assert_string_equal(r->rrs[0].owner, "ExAmPlE.CoM.");
	/* MX exchange compressed against the question, case-insensitively */
	r = ask("EXAMPLE.COM", DNS_T_MX);
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].target, "mail.EXAMPLE.COM.");
}

static void test_nxdomain_nodata_refused(void **state)
{
	resp *r = ask("nope.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	assert_true(AA(r));
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	expect_soa_authority(r, 0, "example.com.");
	assert_string_equal(r->rrs[0].target, "ns1.example.com.");
	/* NODATA */
	r = ask("www.example.com", DNS_T_MX);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	expect_soa_authority(r, 0, "example.com.");
	/* outside our zones */
	r = ask("www.example.net", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	assert_false(AA(r));
	assert_int_equal(r->qd, 1);
	assert_int_equal(r->an + r->ns + r->ar, 0);
	r = ask("com", DNS_T_SOA);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	r = ask(".", DNS_T_NS);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	/* "xexample.com" is not inside example.com */
	r = ask("xexample.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	/* a load balancer outside every zone is not ours in DNS */
	r = ask("lb.elsewhere.test", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
}

static void test_empty_non_terminal(void **state)
{
	resp *r = ask("b.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	expect_soa_authority(r, 0, "example.com.");
	r = ask("a.b.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	r = ask("deep.a.b.example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.4");
	r = ask("x.b.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	/* and ANY at an empty non-terminal is NODATA, not HINFO */
	r = ask("b.example.com", DNS_T_ANY);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
}

static void test_wildcard(void **state)
{
	resp *r = ask("Foo.wild.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].owner, "Foo.wild.example.com.");
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.9");
	assert_true(r->info.wildcard); /* for the rate limit's key */
	/* deeper names too (closest encloser wild.example.com) */
	r = ask("a.b.wild.example.com", DNS_T_TXT);
	assert_int_equal(r->an, 1);
	assert_memory_equal(r->rrs[0].rdata, "\4wild", 5);
	/* a type the wildcard lacks: NODATA */
	r = ask("foo.wild.example.com", DNS_T_MX);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	/* the wildcard's parent is an empty non-terminal, not covered */
	r = ask("wild.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	/* the wildcard name itself */
	r = ask("*.wild.example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_false(r->info.wildcard); /* an exact match */
	assert_string_equal(r->rrs[0].owner, "*.wild.example.com.");
	/* no wildcard at the apex: NXDOMAIN */
	r = ask("foo.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
}

static void test_cname(void **state)
{
	resp *r = ask("alias2.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 3);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[0].owner, "alias2.example.com.");
	assert_string_equal(r->rrs[0].target, "www.example.com.");
	assert_string_equal(r->rrs[1].owner, "www.example.com.");
	assert_int_equal(r->rrs[1].type, DNS_T_A);
	/* CNAME asked: the CNAME only */
	r = ask("alias2.example.com", DNS_T_CNAME);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 0);
	/* a type the target lacks: the CNAME, then NODATA */
	r = ask("alias2.example.com", DNS_T_TXT);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 1);
	/* out of our zones: the CNAME alone, no SOA */
	r = ask("ext.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 0);
	assert_string_equal(r->rrs[0].target, "www.example.net.");
	/* dangling: NXDOMAIN for the target (RFC 6604), AA kept */
	r = ask("dangling.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 1);
	/* ANY at a CNAME: the CNAME (test_any) */
	r = ask("alias2.example.com", DNS_T_ANY);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
}

/* Regression: the 8th link's target went unanswered (8 CNAMEs, no A),
 * and a loop repeated its records up to 8 CNAMEs. */
static void test_cname_chain_limit_and_loops(void **state)
{
	static_assert(DNS_MAX_CHAIN == 8, "the zone's chain has 9 links");
	/* ch1 -> ... -> ch9: 8 links followed, ch9's A answered */
	resp *r = ask("ch1.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, DNS_MAX_CHAIN + 1);
	for (int i = 0; i < DNS_MAX_CHAIN; i++)
		assert_int_equal(r->rrs[i].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[DNS_MAX_CHAIN].owner, "ch9.example.com.");
	assert_string_equal(IP4(&r->rrs[DNS_MAX_CHAIN]), "192.0.2.99");
	/* ...and its NODATA for another type */
	r = ask("ch1.example.com", DNS_T_TXT);
	assert_int_equal(r->an, DNS_MAX_CHAIN);
	assert_int_equal(r->ns, 1);
	/* ch0: 9 links; the 9th CNAME written, not followed */
	r = ask("ch0.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, DNS_MAX_CHAIN + 1);
	assert_int_equal(r->ns, 0);
	assert_int_equal(r->rrs[DNS_MAX_CHAIN].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[DNS_MAX_CHAIN].owner, "ch8.example.com.");
	assert_string_equal(r->rrs[DNS_MAX_CHAIN].target, "ch9.example.com.");
	/* a loop: each record once */
	r = ask("loop1.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 2);
	assert_string_equal(r->rrs[0].owner, "loop1.example.com.");
	assert_string_equal(r->rrs[1].owner, "loop2.example.com.");
	assert_string_equal(r->rrs[1].target, "loop1.example.com.");
	r = ask("self.example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	/* through a wildcard: a.wl -> t.wl (the same wildcard) */
	r = ask("a.wl.example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].owner, "a.wl.example.com.");
	assert_string_equal(r->rrs[0].target, "t.wl.example.com.");
}

static void test_generated_soa_ns(void **state)
{
	resp *r = ask("example.org", DNS_T_SOA);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].ttl, 3600);
	static const uint8_t want[] = {
	    3,	  'n',	's',  '1',  0xc0, 0x0c, 10,   'h',  'o',  's',
	    't',  'm',	'a',  's',  't',  'e',	'r',  0xc0, 0x0c, 0x65,
	    0x53, 0xf1, 0x00, 0,    0,	  0x0e, 0x10, 0,    0,	  0x02,
	    0x58, 0,	0x09, 0x3a, 0x80, 0,	0,    0,    0x3c};
	assert_int_equal(r->rrs[0].rdlen, sizeof(want));
	assert_memory_equal(r->rrs[0].rdata, want, sizeof(want));
	r = ask("example.org", DNS_T_NS);
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].target, "ns1.example.org.");
	/* ns1 resolves to the edge's public addresses */
	r = ask("ns1.example.org", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_string_equal(IP4(&r->rrs[0]), "203.0.113.10");
	r = ask("ns1.example.org", DNS_T_AAAA);
	assert_int_equal(r->an, 1);
	/* example.com has no configured NS either */
	r = ask("example.com", DNS_T_NS);
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].target, "ns1.example.com.");
	/* negative answers in example.org */
	r = ask("x.example.org", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	expect_soa_authority(r, 0, "example.org.");
	/* the zone structure */
	assert_int_equal(dns_zoneset_nzones(zs), 3);
	const dns_zone *z = dns_zoneset_zone(zs, 2);
	assert_string_equal(z->name, "example.org");
	assert_int_equal(z->neg_ttl, 60);
	assert_true(z->apex->apex);
	assert_null(dns_zoneset_zone(zs, 3));
}

static void test_record_types(void **state)
{
	resp *r = ask("example.com", DNS_T_MX);
	assert_int_equal(r->an, 1);
	assert_int_equal(dns_get16(r->rrs[0].rdata), 10);
	assert_string_equal(r->rrs[0].target, "mail.example.com.");
	assert_int_equal(r->rrs[0].ttl, 300);
	r = ask("example.com", DNS_T_TXT);
	assert_int_equal(r->an, 1);
	assert_memory_equal(r->rrs[0].rdata, "\13v=spf1 -all", 12);
	r = ask("example.com", DNS_T_CAA);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].rdlen, 2 + 5 + 15);
	assert_memory_equal(r->rrs[0].rdata, "\0\5issueletsencrypt.org", 22);
	r = ask("_sip._tcp.example.com", DNS_T_SRV);
	assert_int_equal(r->an, 1);
	assert_memory_equal(r->rrs[0].rdata,
			    "\0\12\0\5\23\304\3sip\7example\3com\0", 23);
	r = ask("mail.example.com", DNS_T_A);
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.3");
}

static void test_any(void **state)
{
	resp *r = ask("www.example.com", DNS_T_ANY);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_HINFO);
	assert_int_equal(r->rrs[0].ttl, DNS_ANY_TTL);
	assert_int_equal(r->rrs[0].rdlen, 9);
	assert_memory_equal(r->rrs[0].rdata, "\7RFC8482\0", 9);
	r = ask("nope.example.com", DNS_T_ANY);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	/* an LB name: HINFO too, the callback asked */
	r = ask("lb.example.com", DNS_T_ANY);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_HINFO);
	assert_true(r->info.lb);
	/* RFC 8482 4.2: no HINFO at a CNAME owner. ANY matches the CNAME,
	 * which is answered and not followed (RFC 1034 4.3.2 step 3a):
	 * regression, the HINFO was synthesized beside the alias. */
	r = ask("Alias2.example.com", DNS_T_ANY);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 0);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[0].owner, "Alias2.example.com.");
	assert_string_equal(r->rrs[0].target, "www.example.com.");
	/* the same from a wildcard CNAME, owned by the query's name */
	r = ask("x.wl.example.com", DNS_T_ANY);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[0].owner, "x.wl.example.com.");
	/* a load balancer answering a CNAME: that CNAME, not followed */
	r = ask("alias.example.com", DNS_T_ANY);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_true(r->info.lb);
	r = ask("X.lbwild.example.com", DNS_T_ANY);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[0].target, "www.example.com.");
}

static void test_delegation(void **state)
{
	resp *r = ask("www.sub.example.com", DNS_T_A);
	assert_int_equal(r->rcode, 0);
	assert_false(AA(r));
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 2);
	assert_int_equal(r->ar, 1);
	assert_string_equal(r->rrs[0].owner, "sub.example.com.");
	assert_int_equal(r->rrs[0].type, DNS_T_NS);
	assert_string_equal(r->rrs[0].target, "ns.sub.example.com.");
	assert_string_equal(r->rrs[1].target, "ns.other.test.");
	/* glue only for the server inside the delegation */
	assert_string_equal(r->rrs[2].owner, "ns.sub.example.com.");
	assert_string_equal(IP4(&r->rrs[2]), "192.0.2.53");
	/* the cut itself, and the glue name, refer too */
	r = ask("sub.example.com", DNS_T_A);
	assert_false(AA(r));
	assert_int_equal(r->ns, 2);
	r = ask("ns.sub.example.com", DNS_T_A);
	assert_false(AA(r));
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 2);
	/* DS at the cut: the parent's NODATA */
	r = ask("sub.example.com", DNS_T_DS);
	assert_true(AA(r));
	assert_int_equal(r->an, 0);
	expect_soa_authority(r, 0, "example.com.");
}

static void test_child_zone(void **state)
{
	resp *r = ask("www.kid.example.com", DNS_T_A);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.100");
	/* the child's own SOA; the parent's NS for it is ignored */
	r = ask("kid.example.com", DNS_T_SOA);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_string_equal(r->rrs[0].owner, "kid.example.com.");
	assert_string_equal(r->rrs[0].target, "ns1.kid.example.com.");
	r = ask("nope.kid.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	expect_soa_authority(r, 0, "kid.example.com.");
}

static void test_edns_badvers(void **state)
{
	qopt o = {.edns_udp = 4096, .do_bit = true};
	resp *r = ask_full("www.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, 0);
	assert_true(r->opt);
	assert_int_equal(r->opt_udp, DNS_UDP_DEFAULT);
	assert_int_equal(r->opt_ttl, 0x8000); /* DO copied, version 0 */
	assert_false(r->ecs);
	assert_true(r->info.edns);
	/* BADVERS: extended rcode 16, the question, an OPT of version 0 */
	o.version = 1;
	r = ask_full("www.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, DNS_RCODE_BADVERS);
	assert_int_equal(r->flags & 0xF, 0);
	assert_int_equal(r->opt_ttl >> 24, 1);
	assert_int_equal((r->opt_ttl >> 16) & 0xff, 0);
	assert_int_equal(r->qd, 1);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->info.rcode, DNS_RCODE_BADVERS);
	/* no OPT in, no OPT out */
	r = ask("www.example.com", DNS_T_A);
	assert_false(r->opt);
	assert_int_equal(r->ar, 0);
}

static void test_formerr_notimp_drop(void **state)
{
	uint8_t q[512];
	size_t ql = mkq(q, "www.example.com", DNS_T_A, NULL);
	dns_answer_info info;
	/* QDCOUNT 2: FORMERR without a question */
	q[5] = 2;
	R.len = dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_FORMERR);
	assert_int_equal(R.qd, 0);
	assert_int_equal(R.id, 0x5151);
	assert_true(R.flags & DNS_F_RD);
	assert_int_equal(info.rcode, DNS_RCODE_FORMERR);
	/* NOTIFY: NOTIMP, the opcode echoed */
	q[5] = 1;
	q[2] = (uint8_t)(4 << 3);
	R.len = dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_NOTIMP);
	assert_int_equal((R.flags >> 11) & 0xF, 4);
	assert_true(R.flags & DNS_F_QR);
	/* a response: dropped */
	q[2] = 0x80;
	assert_int_equal(dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf,
				    sizeof(R.buf), false, &info),
			 0);
	assert_true(info.dropped);
	/* a header only: dropped, too short */
	assert_int_equal(dns_answer(zs, q, 11, NULL, NULL, NULL, R.buf,
				    sizeof(R.buf), false, &info),
			 0);
	/* a bad ECS: FORMERR with an OPT but no ECS echo */
	qopt o = {.edns_udp = 1232, .ecs = true, .family = 1, .source = 40};
	resp *r = ask_full("www.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, DNS_RCODE_FORMERR);
	assert_true(r->opt);
	assert_false(r->ecs);
	assert_int_equal(r->qd, 1);
	assert_int_equal(r->an, 0);
	/* no room even for the header: nothing */
	assert_int_equal(
	    dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf, 11, false, &info),
	    0);
	/* NULL info is fine */
	q[2] = 0;
	assert_true(dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf,
			       sizeof(R.buf), false, NULL) > 0);
}

/* Regression: NOTIMP and QDCOUNT != 1 answered an EDNS query without an
 * OPT (RFC 6891 §7); an OPT in the answer section was ignored. */
static void test_early_errors_keep_opt(void **state)
{
	uint8_t q[512];
	qopt o = {.edns_udp = 4096, .do_bit = true};
	size_t ql = mkq(q, "www.example.com", DNS_T_A, &o);
	/* NOTIFY: NOTIMP, no question, our OPT with DO */
	q[2] = (uint8_t)(4 << 3);
	R.len = dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_NOTIMP);
	assert_int_equal(R.qd, 0);
	assert_int_equal(R.an + R.ns, 0);
	assert_true(R.opt);
	assert_int_equal(R.opt_udp, 1232);
	assert_true(R.opt_ttl & DNS_EDNS_DO);
	assert_true(R.info.edns);
	/* QDCOUNT 2 (the second question a pointer to the first) */
	q[2] = (uint8_t)(DNS_F_RD >> 8);
	uint8_t q2[512];
	size_t qend = ql - 11;
	memcpy(q2, q, qend);
	dns_put16(q2 + 4, 2);
	dns_put16(q2 + qend, 0xC000 | 12);
	dns_put16(q2 + qend + 2, DNS_T_AAAA);
	dns_put16(q2 + qend + 4, DNS_C_IN);
	memcpy(q2 + qend + 6, q + qend, 11);
	R.len = dns_answer(zs, q2, ql + 6, NULL, NULL, NULL, R.buf,
			   sizeof(R.buf), false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_FORMERR);
	assert_int_equal(R.qd, 0);
	assert_true(R.opt);
	/* an OPT in the answer section (and one in additional): FORMERR */
	memcpy(q2, q, ql);
	dns_put16(q2 + 6, 1);
	memcpy(q2 + ql, q + qend, 11);
	R.len = dns_answer(zs, q2, ql + 11, NULL, NULL, NULL, R.buf,
			   sizeof(R.buf), false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_FORMERR);
	assert_int_equal(R.qd, 1);
	assert_int_equal(R.an, 0);
	assert_true(R.opt);
}

static void test_class_and_meta_types(void **state)
{
	qopt o = {.edns_udp = -1, .qclass = 3};
	resp *r = ask_full("www.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	r = ask("example.com", DNS_T_AXFR);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	r = ask("example.com", DNS_T_IXFR);
	assert_int_equal(r->rcode, DNS_RCODE_REFUSED);
	r = ask("example.com", DNS_T_MAILB);
	assert_int_equal(r->rcode, DNS_RCODE_NOTIMP);
	r = ask("example.com", DNS_T_OPT);
	assert_int_equal(r->rcode, DNS_RCODE_FORMERR);
	assert_int_equal(r->qd, 1);
	/* an unknown type at a name with data: NODATA */
	r = ask("www.example.com", 65280);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
}

static void test_truncation(void **state)
{
	/* 40 A records: 656 bytes of answer; over 512 without EDNS */
	resp *r = ask("many.example.com", DNS_T_A);
	assert_true(TC(r));
	assert_true(AA(r));
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->qd, 1);
	assert_int_equal(r->an + r->ns + r->ar, 0);
	assert_true(r->info.truncated);
	/* fits in 1232 */
	r = ask_edns("many.example.com", DNS_T_A, 4096);
	assert_false(TC(r));
	assert_int_equal(r->an, 40);
	assert_true(r->len <= 1232);
	/* a client size under 512 counts as 512 */
	r = ask_edns("many.example.com", DNS_T_A, 100);
	assert_true(TC(r));
	assert_true(r->opt);
	assert_int_equal(r->ar, 1);
	/* 100 records: TC even with EDNS 4096 (our size is 1232), OPT kept */
	r = ask_edns("huge.example.com", DNS_T_A, 4096);
	assert_true(TC(r));
	assert_int_equal(r->an, 0);
	assert_true(r->opt);
	/* over TCP: everything */
	r = ask_full("huge.example.com", DNS_T_A, NULL, true, 0);
	assert_false(TC(r));
	assert_int_equal(r->an, 100);
	assert_true(r->len > 1232);
	assert_false(r->info.truncated);
	/* TCP with a small buffer: TC */
	r = ask_full("huge.example.com", DNS_T_A, NULL, true, 600);
	assert_true(TC(r));
	/* outcap below 512 over UDP: the buffer wins */
	r = ask_full("www.example.com", DNS_T_A, NULL, false, 40);
	assert_true(TC(r));
	/* an NXDOMAIN whose SOA does not fit is truncated too */
	r = ask_full("nope.example.com", DNS_T_A, NULL, false, 60);
	assert_true(TC(r));
	assert_int_equal(r->rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(r->ns, 0);
}

static void test_udp_max_option(void **state)
{
	dns_zoneset *big = NULL;
	dns_zoneset_opts o = {.serial = 1, .udp_max = 4096};
	assert_int_equal(dns_zoneset_build(snap, &o, &big, NULL), 0);
	assert_int_equal(dns_zoneset_udp_max(big), 4096);
	uint8_t q[512];
	qopt qo = {.edns_udp = 4096};
	size_t ql = mkq(q, "huge.example.com", DNS_T_A, &qo);
	R.len = dns_answer(big, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &R.info);
	read_resp(&R);
	assert_false(TC(&R));
	assert_int_equal(R.an, 100);
	assert_int_equal(R.opt_udp, 4096);
	dns_zoneset_free(big);
	/* clamped */
	o.udp_max = 100;
	assert_int_equal(dns_zoneset_build(snap, &o, &big, NULL), 0);
	assert_int_equal(dns_zoneset_udp_max(big), 512);
	dns_zoneset_free(big);
	o.udp_max = 9000;
	assert_int_equal(dns_zoneset_build(snap, &o, &big, NULL), 0);
	assert_int_equal(dns_zoneset_udp_max(big), 4096);
	dns_zoneset_free(big);
	assert_int_equal(dns_zoneset_udp_max(NULL), DNS_UDP_DEFAULT);
}

static void test_no_zones(void **state)
{
	uint8_t q[512];
	size_t ql = mkq(q, "www.example.com", DNS_T_A, NULL);
	R.len = dns_answer(NULL, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_REFUSED);
	/* a snapshot without zones builds an empty set */
	cfg_snapshot empty = {0};
	dns_zoneset *e = NULL;
	assert_int_equal(dns_zoneset_build(&empty, NULL, &e, NULL), 0);
	assert_int_equal(dns_zoneset_nzones(e), 0);
	R.len = dns_answer(e, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, DNS_RCODE_REFUSED);
	dns_zoneset_free(e);
}

static void test_lb_addresses_and_ecs(void **state)
{
	qopt o = {.edns_udp = 1232,
		  .ecs = true,
		  .family = 1,
		  .source = 24,
		  .addr = {192, 0, 2}};
	resp *r = ask_full("LB.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 2);
	assert_string_equal(r->rrs[0].owner, "LB.example.com.");
	assert_string_equal(IP4(&r->rrs[0]), "198.51.100.1");
	assert_string_equal(IP4(&r->rrs[1]), "198.51.100.2");
	assert_int_equal(r->rrs[0].ttl, 30);
	assert_true(r->ecs);
	assert_int_equal(r->ecs_family, 1);
	assert_int_equal(r->ecs_source, 24);
	assert_int_equal(r->ecs_scope, 24);
	assert_memory_equal(r->ecs_addr, "\xc0\x00\x02", 3);
	assert_true(r->info.lb);
	assert_true(r->info.ecs);
	assert_true(r->info.ecs_scoped);
	assert_int_equal(calls.n, 1);
	assert_string_equal(calls.last_name, "LB.example.com.");
	assert_int_equal(calls.last_type, DNS_T_A);
	assert_true(calls.last_ecs);
	/* IPv6 ECS and AAAA */
	qopt o6 = {.edns_udp = 1232,
		   .ecs = true,
		   .family = 2,
		   .source = 48,
		   .addr = {0x20, 0x01, 0x0d, 0xb8, 0, 1}};
	r = ask_full("lb.example.com", DNS_T_AAAA, &o6, false, 0);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].rdlen, 16);
	assert_int_equal(r->ecs_family, 2);
	assert_int_equal(r->ecs_source, 48);
	assert_int_equal(r->ecs_scope, 24);
	/* without ECS: no option, the callback sees NULL */
	r = ask_edns("lb.example.com", DNS_T_A, 1232);
	assert_false(r->ecs);
	assert_false(calls.last_ecs);
	assert_false(r->info.ecs_scoped);
	/* ECS source 0: the scope is forced to 0 */
	qopt o0 = {.edns_udp = 1232, .ecs = true, .family = 1, .source = 0};
	r = ask_full("lb.example.com", DNS_T_A, &o0, false, 0);
	assert_true(r->ecs);
	assert_int_equal(r->ecs_scope, 0);
	assert_true(r->info.ecs);
	assert_false(r->info.ecs_scoped);
	/* ECS on a static name: scope 0 */
	r = ask_full("www.example.com", DNS_T_A, &o, false, 0);
	assert_true(r->ecs);
	assert_int_equal(r->ecs_scope, 0);
	assert_int_equal(calls.n, 0);
	/* other types at an LB name fall to static data: NODATA */
	r = ask("lb.example.com", DNS_T_MX);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	assert_int_equal(calls.n, 1);
	assert_false(r->info.lb);
	/* no callback: static data only (none here: NODATA) */
	uint8_t q[512];
	size_t ql = mkq(q, "lb.example.com", DNS_T_A, NULL);
	R.len = dns_answer(zs, q, ql, NULL, NULL, NULL, R.buf, sizeof(R.buf),
			   false, &R.info);
	read_resp(&R);
	assert_int_equal(R.rcode, 0);
	assert_int_equal(R.an, 0);
	assert_int_equal(R.ns, 1);
}

static void test_lb_cname(void **state)
{
	qopt o = {.edns_udp = 1232,
		  .ecs = true,
		  .family = 1,
		  .source = 24,
		  .addr = {192, 0, 2}};
	resp *r = ask_full("alias.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->rcode, 0);
	assert_true(AA(r));
	assert_int_equal(r->an, 1);
	assert_int_equal(r->ns, 0);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	assert_string_equal(r->rrs[0].target, "Origin.Example.NET.");
	assert_int_equal(r->rrs[0].ttl, 30);
	assert_int_equal(r->ecs_scope, 16);
	/* any type gets the CNAME */
	r = ask("alias.example.com", DNS_T_TXT);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_CNAME);
	/* a wildcard LB whose CNAME stays in the zone: followed */
	r = ask("X.lbwild.example.com", DNS_T_A);
	assert_int_equal(r->an, 3);
	assert_string_equal(r->rrs[0].owner, "X.lbwild.example.com.");
	assert_string_equal(r->rrs[0].target, "www.example.com.");
	assert_string_equal(r->rrs[1].owner, "www.example.com.");
	assert_string_equal(calls.last_name, "X.lbwild.example.com.");
	/* an invalid CNAME from the callback: SERVFAIL, no AA */
	r = ask("bad.example.com", DNS_T_A);
	assert_int_equal(r->rcode, DNS_RCODE_SERVFAIL);
	assert_false(AA(r));
	assert_int_equal(r->an, 0);
}

static void test_lb_apex_and_fallback(void **state)
{
	resp *r = ask("example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_string_equal(IP4(&r->rrs[0]), "198.51.100.10");
	assert_int_equal(calls.n, 1);
	/* at the apex only A and AAAA ask the callback */
	r = ask("example.com", DNS_T_MX);
	assert_int_equal(r->an, 1);
	assert_int_equal(r->rrs[0].type, DNS_T_MX);
	assert_int_equal(calls.n, 0);
	r = ask("example.com", DNS_T_SOA);
	assert_int_equal(r->an, 1);
	assert_int_equal(calls.n, 0);
	/* AAAA: the LB has none at the apex: NODATA */
	r = ask("example.com", DNS_T_AAAA);
	assert_int_equal(r->rcode, 0);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	/* the LB gives nothing: the static record at its name answers */
	r = ask("off.example.com", DNS_T_A);
	assert_int_equal(r->an, 1);
	assert_string_equal(IP4(&r->rrs[0]), "192.0.2.77");
	assert_int_equal(calls.n, 1);
	assert_false(r->info.lb);
	/* ... and when that depended on the client's subnet, the answer
	 * holds for that subnet only (RFC 7871 7.2.1), not for everyone */
	qopt o = {.edns_udp = 1232,
		  .ecs = true,
		  .family = 1,
		  .source = 24,
		  .addr = {192, 0, 2}};
	r = ask_full("off.example.com", DNS_T_A, &o, false, 0);
	assert_int_equal(r->an, 1);
	assert_true(r->ecs);
	assert_int_equal(r->ecs_scope, 20);
	assert_true(r->info.ecs_scoped);
	assert_false(r->info.lb);
	/* v6 only: A is NODATA, AAAA answers */
	r = ask("v6only.example.com", DNS_T_A);
	assert_int_equal(r->an, 0);
	assert_int_equal(r->ns, 1);
	assert_true(r->info.lb);
	r = ask("v6only.example.com", DNS_T_AAAA);
	assert_int_equal(r->an, 1);
}

/* ---- build errors ---- */

static void expect_build_errors(const char *yaml, const char *const *want)
{
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_string("z.yaml", yaml, strlen(yaml), &s, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("config: %s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	cfg_diag_free(&d);
	dns_zoneset *z = NULL;
	rc = dns_zoneset_build(s, NULL, &z, &d);
	assert_int_equal(rc, -EINVAL);
	assert_null(z);
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < d.n; i++)
		if (i >= n || strcmp(d.msgs[i], want[i]))
			print_error("got: %s\n", d.msgs[i]);
	assert_int_equal(d.n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(d.msgs[i], want[i]);
	cfg_diag_free(&d);
	/* and without a diag */
	assert_int_equal(dns_zoneset_build(s, NULL, &z, NULL), -EINVAL);
	cfg_snapshot_free(s);
}

static void test_build_errors(void **state)
{
	static const char *const w1[] = {
	    "z.yaml:4:9: zone 'a.test': record 'a.test' CNAME: no CNAME at "
	    "the zone apex (its SOA and NS live there)",
	    "z.yaml:5:9: zone 'a.test': record 'x.a.test' SOA: an SOA "
	    "belongs at the zone apex",
	    "z.yaml:6:9: zone 'a.test': record 'y.a.test' SRV: content: "
	    "expected SRV content 'weight port target' or 'priority weight "
	    "port target'",
	    "z.yaml:7:9: zone 'a.test': record 'z.a.test' CAA: content: CAA "
	    "tag: 'bad-tag' is not letters and digits",
	    "z.yaml:8:9: zone 'a.test': record 'in.kid.a.test' A: the name is "
	    "inside zone 'kid.a.test', which is configured too; list the "
	    "record there",
	    NULL};
	expect_build_errors(
	    "zones:\n"
	    "  - name: a.test\n"
	    "    records:\n"
	    "      - { name: \"@\", type: CNAME, content: b.test }\n"
	    "      - { name: x.a.test, type: SOA, content: \"a.test b.test 1 2 "
	    "3 4 5\" }\n"
	    "      - { name: y.a.test, type: SRV, content: \"1 2\" }\n"
	    "      - { name: z.a.test, type: CAA, content: \"0 bad-tag x\" }\n"
	    "      - { name: in.kid.a.test, type: A, content: 192.0.2.1 }\n"
	    "      - { name: kid.a.test, type: NS, content: ns.kid.a.test }\n"
	    "  - name: kid.a.test\n",
	    w1);
	static const char *const w2[] = {
	    "z.yaml:4:9: zone 'a.test': record 'c.a.test' CNAME: a CNAME "
	    "cannot share its name with other records",
	    "z.yaml:7:9: zone 'a.test': record 'd.a.test' CNAME: only one "
	    "CNAME record may own a name",
	    "z.yaml:9:9: zone 'a.test': record 'a.test' SOA: only one SOA "
	    "record may own a name",
	    NULL};
	expect_build_errors(
	    "zones:\n"
	    "  - name: a.test\n"
	    "    records:\n"
	    "      - { name: c.a.test, type: CNAME, content: b.test }\n"
	    "      - { name: c.a.test, type: TXT, content: x }\n"
	    "      - { name: d.a.test, type: CNAME, content: b.test }\n"
	    "      - { name: d.a.test, type: CNAME, content: c.test }\n"
	    "      - { name: \"@\", type: SOA, content: \"a.test b.test 1 2 3 "
	    "4 "
	    "5\" }\n"
	    "      - { name: \"@\", type: SOA, content: \"a.test b.test 2 2 3 "
	    "4 "
	    "5\" }\n",
	    w2);
}

/* Regression: a load balancer could share its name with a static CNAME
 * (answering A from the load balancer and a CNAME for other types), and a
 * DNS-only one could sit at or below a zone cut, never answered; both were
 * accepted silently. */
static void test_build_errors_lb_names(void **state)
{
	static const char *const w[] = {
	    "z.yaml:5:5: load balancer 'lb.a.test': zone 'a.test' has a CNAME "
	    "record at this name, and a CNAME cannot share its name with "
	    "other data (remove the record or rename the load balancer)",
	    "z.yaml:6:5: load balancer 'Sub.a.test' is DNS-only (proxied: "
	    "false) but lies at or below 'sub.a.test', delegated by NS "
	    "records in zone 'a.test': the referral answers, never the load "
	    "balancer",
	    "z.yaml:7:5: load balancer 'x.sub.a.test' is DNS-only (proxied: "
	    "false) but lies at or below 'sub.a.test', delegated by NS "
	    "records in zone 'a.test': the referral answers, never the load "
	    "balancer",
	    "z.yaml:8:5: load balancer '*.w.sub.a.test' is DNS-only (proxied: "
	    "false) but lies at or below 'sub.a.test', delegated by NS "
	    "records in zone 'a.test': the referral answers, never the load "
	    "balancer",
	    "z.yaml:9:5: load balancer 'px.a.test': zone 'a.test' has a CNAME "
	    "record at this name, and a CNAME cannot share its name with "
	    "other data (remove the record or rename the load balancer)",
	    NULL};
	expect_build_errors(
	    "pools:\n"
	    "  - { id: p, origins: [ { name: o, address: 127.0.0.1 } ] }\n"
	    "load_balancers:\n"
	    "  - { name: ok.a.test, proxied: false, default_pools: [p] }\n"
	    "  - { name: lb.a.test, proxied: false, default_pools: [p] }\n"
	    "  - { name: Sub.a.test, proxied: false, default_pools: [p] }\n"
	    "  - { name: x.sub.a.test, proxied: false, default_pools: [p] }\n"
	    "  - { name: \"*.w.sub.a.test\", proxied: false, default_pools: "
	    "[p] }\n"
	    "  - { name: px.a.test, default_pools: [p] }\n"
	    /* proxied below a cut: HTTP only, fine */
	    "  - { name: y.sub.a.test, default_pools: [p] }\n"
	    /* disabled: nothing to answer */
	    "  - { name: z.sub.a.test, proxied: false, enabled: false, "
	    "default_pools: [p] }\n"
	    "zones:\n"
	    "  - name: a.test\n"
	    "    records:\n"
	    "      - { name: lb.a.test, type: CNAME, content: ok.a.test }\n"
	    "      - { name: px.a.test, type: CNAME, content: ok.a.test }\n"
	    "      - { name: sub.a.test, type: NS, content: ns.b.test }\n"
	    "      - { name: ok.a.test, type: TXT, content: x }\n",
	    w);
}

static void test_configured_soa_and_ttl(void **state)
{
	const char *y =
	    "zones:\n"
	    "  - name: a.test\n"
	    "    records:\n"
	    "      - { name: \"@\", type: SOA, ttl: 30, content: "
	    "\"ns.a.test hm@a.test 7 1 2 3 600\" }\n"
	    "      - { name: \"@\", type: NS, content: ns.b.test }\n"
	    "      - { name: ns1.a.test, type: TXT, content: x }\n";
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	assert_int_equal(cfg_load_string("c.yaml", y, strlen(y), &s, &d), 0);
	dns_zoneset *z = NULL;
	assert_int_equal(dns_zoneset_build(s, NULL, &z, &d), 0);
	const dns_zone *zone = dns_zoneset_zone(z, 0);
	/* negative TTL: min(minimum 600, SOA TTL 30) */
	assert_int_equal(zone->neg_ttl, 30);
	assert_int_equal(zone->soa->n, 1);
	const dns_node *apex = dns_zoneset_find(z, zone->wire);
	assert_ptr_equal(apex, zone->apex);
	const dns_rrset *ns = dns_node_rrset(apex, DNS_T_NS);
	assert_int_equal(ns->n, 1);
	assert_memory_equal(ns->rr[0].rdata, "\2ns\1b\4test", 11);
	/* no generated ns1 addresses: NS was configured */
	const dns_node *ns1 = dns_zoneset_find(z, (const uint8_t *)"\3ns1\1a"
								   "\4test");
	assert_non_null(ns1);
	assert_null(dns_node_rrset(ns1, DNS_T_A));
	/* lookups */
	dns_lookup lk;
	dns_zoneset_lookup(z, (const uint8_t *)"\1x\1a\4test", &lk);
	assert_int_equal(lk.match, DNS_MATCH_NXDOMAIN);
	assert_ptr_equal(lk.node, apex);
	dns_zoneset_lookup(z, (const uint8_t *)"\1a\4test", &lk);
	assert_int_equal(lk.match, DNS_MATCH_EXACT);
	dns_zoneset_lookup(z, (const uint8_t *)"\4test", &lk);
	assert_int_equal(lk.match, DNS_MATCH_NONE);
	assert_null(lk.zone);
	dns_zoneset_free(z);
	cfg_snapshot_free(s);
	cfg_diag_free(&d);
}

static void test_generated_glue_per_zone(void **state)
{
	/* zones generated one after the other: each decides on its own
	 * whether ns1.<zone> gets the edge's addresses */
	const char *y = "edge: { public_addresses: [\"203.0.113.7\"] }\n"
			"zones:\n"
			"  - name: a.test\n"
			"  - name: b.test\n"
			"    records:\n"
			"      - { name: ns1.b.test, type: TXT, content: x }\n"
			"  - name: c.test\n"
			"  - name: ns1.c.test\n";
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	assert_int_equal(cfg_load_string("g.yaml", y, strlen(y), &s, &d), 0);
	dns_zoneset *z = NULL;
	assert_int_equal(dns_zoneset_build(s, NULL, &z, &d), 0);
	const dns_node *n;
	n = dns_zoneset_find(z, (const uint8_t *)"\3ns1\1a\4test");
	assert_non_null(n);
	assert_non_null(dns_node_rrset(n, DNS_T_A));
	n = dns_zoneset_find(z, (const uint8_t *)"\3ns1\1b\4test");
	assert_non_null(n);
	assert_null(dns_node_rrset(n, DNS_T_A));
	assert_non_null(dns_node_rrset(n, DNS_T_TXT));
	/* ns1.c.test is a zone of its own: its apex has no A from c.test */
	n = dns_zoneset_find(z, (const uint8_t *)"\3ns1\1c\4test");
	assert_non_null(n);
	assert_true(n->apex);
	assert_null(dns_node_rrset(n, DNS_T_A));
	/* four apexes, ns1 of a.test and b.test, ns1.ns1.c.test */
	assert_int_equal(dns_zoneset_nnodes(z), 7);
	dns_zoneset_free(z);
	cfg_snapshot_free(s);
	cfg_diag_free(&d);
}

/* The family of an origin comes from its parsed address, not from its text:
 * "[2001:db8::1]" and "https://[2001:db8::2]:8443" are IPv6 literals
 * (answered in AAAA), not host names (which would be answered as a CNAME
 * to "[2001:db8::1]."). */
static void test_origin_family_of_bracketed_literals(void **state)
{
	const char *y =
	    "pools:\n"
	    "  - id: p\n"
	    "    origins:\n"
	    "      - { name: a, address: 192.0.2.6 }\n"
	    "      - { name: b, address: \"[2001:db8::1]\" }\n"
	    "      - { name: c, address: \"https://[2001:db8::2]:8443\" }\n"
	    "      - { name: d, address: \"https://192.0.2.5\" }\n"
	    "      - { name: e, address: \"2001:db8::3\" }\n";
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	assert_int_equal(cfg_load_string("f.yaml", y, strlen(y), &s, &d), 0);
	dns_zoneset *z = NULL;
	assert_int_equal(dns_zoneset_build(s, NULL, &z, &d), 0);
	assert_int_equal(s->norigins, 5);
	static const int want[] = {4, 6, 6, 4, 6};
	for (size_t i = 0; i < s->norigins; i++)
		assert_int_equal(
		    dns_zoneset_origin_family(z, s->origins[i]->index),
		    want[i]);
	dns_zoneset_free(z);
	cfg_snapshot_free(s);
	cfg_diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_static_a),
	    cmocka_unit_test(test_case_echo),
	    cmocka_unit_test(test_nxdomain_nodata_refused),
	    cmocka_unit_test(test_empty_non_terminal),
	    cmocka_unit_test(test_wildcard),
	    cmocka_unit_test(test_cname),
	    cmocka_unit_test(test_cname_chain_limit_and_loops),
	    cmocka_unit_test(test_generated_soa_ns),
	    cmocka_unit_test(test_record_types),
	    cmocka_unit_test(test_any),
	    cmocka_unit_test(test_delegation),
	    cmocka_unit_test(test_child_zone),
	    cmocka_unit_test(test_edns_badvers),
	    cmocka_unit_test(test_formerr_notimp_drop),
	    cmocka_unit_test(test_early_errors_keep_opt),
	    cmocka_unit_test(test_class_and_meta_types),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_udp_max_option),
	    cmocka_unit_test(test_no_zones),
	    cmocka_unit_test(test_lb_addresses_and_ecs),
	    cmocka_unit_test(test_lb_cname),
	    cmocka_unit_test(test_lb_apex_and_fallback),
	    cmocka_unit_test(test_build_errors),
	    cmocka_unit_test(test_build_errors_lb_names),
	    cmocka_unit_test(test_configured_soa_and_ttl),
	    cmocka_unit_test(test_generated_glue_per_zone),
	    cmocka_unit_test(test_origin_family_of_bracketed_literals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
