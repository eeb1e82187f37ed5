/* Unit tests for dns_wire and dns_rdata: names (compression pointers,
 * loops, forward pointers, bounds, label and name limits, the root, case),
 * the query parser (header, question, EDNS0, BADVERS, every bad Client
 * Subnet), the writer (compression against dnspython's output, no SRV
 * compression, rollback on overflow, a full compression table, the OPT
 * record) and the rdata of every record type against hand-made bytes.
 * Reference packets were generated once with dnspython 2.3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <errno.h>

#include <cmocka.h>

#include "core/core_util.h"
#include "dns/dns_rdata.h"
#include "dns/dns_wire.h"

/* ---- a packet builder for the tests ---- */

typedef struct pkt {
	uint8_t b[4096];
	size_t n;
} pkt;

static void p_bytes(pkt *p, const void *d, size_t n)
{
	assert_true(p->n + n <= sizeof(p->b));
	if (n)
		memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void p_u8(pkt *p, unsigned v)
{
	uint8_t b = (uint8_t)v;
	p_bytes(p, &b, 1);
}

static void p_u16(pkt *p, unsigned v)
{
	p_u8(p, v >> 8);
	p_u8(p, v & 0xff);
}

static void p_u32(pkt *p, uint32_t v)
{
	p_u16(p, v >> 16);
	p_u16(p, v & 0xffff);
}

static void p_name(pkt *p, const char *text)
{
	uint8_t w[DNS_MAX_NAME];
	int l = dns_name_from_text(text, w, sizeof(w));
	assert_true(l > 0);
	p_bytes(p, w, (size_t)l);
}

static void p_header(pkt *p, uint16_t id, uint16_t flags, unsigned qd,
		     unsigned an, unsigned ns, unsigned ar)
{
	p->n = 0;
	p_u16(p, id);
	p_u16(p, flags);
	p_u16(p, qd);
	p_u16(p, an);
	p_u16(p, ns);
	p_u16(p, ar);
}

/* A query for name/type with ar additional records to follow. */
static void p_query(pkt *p, const char *name, uint16_t type, unsigned ar)
{
	p_header(p, 0x1234, DNS_F_RD, 1, 0, 0, ar);
	p_name(p, name);
	p_u16(p, type);
	p_u16(p, DNS_C_IN);
}

/* An OPT record header; options follow (rdlen bytes). */
static void p_opt(pkt *p, uint16_t udp, uint8_t version, bool do_bit,
		  uint16_t rdlen)
{
	p_u8(p, 0);
	p_u16(p, DNS_T_OPT);
	p_u16(p, udp);
	p_u32(p, (uint32_t)version << 16 | (do_bit ? 0x8000u : 0));
	p_u16(p, rdlen);
}

/* OPT with one ECS option of the given fields and address bytes. */
static void p_ecs(pkt *p, uint16_t family, uint8_t source, uint8_t scope,
		  const uint8_t *addr, size_t alen)
{
	p_opt(p, 1232, 0, false, (uint16_t)(8 + alen));
	p_u16(p, DNS_OPT_ECS);
	p_u16(p, (unsigned)(4 + alen));
	p_u16(p, family);
	p_u8(p, source);
	p_u8(p, scope);
	p_bytes(p, addr, alen);
}

static int parse(const pkt *p, dns_query *q)
{
	return dns_query_parse(p->b, p->n, q);
}

static const char *text(const uint8_t *wire)
{
	static char buf[1100];
	assert_true(dns_name_to_text(wire, buf, sizeof(buf)) > 0);
	return buf;
}

/* ---- reference packets (dnspython) ---- */

/* make_query("www.example.com", "A", use_edns=False, id=0x1234), RD */
static const uint8_t q_plain[] = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x03, 0x77, 0x77, 0x77, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70,
    0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01};
/* AAAA, use_edns=0, payload=4096, want_dnssec=True, id=0xbeef */
static const uint8_t q_edns_do[] = {
    0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x77, 0x77, 0x77, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70,
    0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x1c, 0x00, 0x01,
    0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00};
/* lb.example.com A, payload 1232, ECSOption("192.0.2.0", 24) */
static const uint8_t q_ecs4[] = {
    0x00, 0x07, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x02, 0x6c, 0x62, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c,
    0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00,
    0x08, 0x00, 0x07, 0x00, 0x01, 0x18, 0x00, 0xc0, 0x00, 0x02};
/* lb.example.com AAAA, ECSOption("2001:db8:1234:5600::", 56) */
static const uint8_t q_ecs6[] = {
    0x00, 0x08, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x6c, 0x62, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03,
    0x63, 0x6f, 0x6d, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04,
    0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x08, 0x00, 0x0b, 0x00,
    0x02, 0x38, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56};
/* A response to "WWW.Example.COM" MX, AA: two MX, a CNAME to example.com,
 * the SOA in authority; dnspython's compression. */
static const uint8_t r_mixed[] = {
    0x42, 0x42, 0x85, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00,
    0x03, 0x57, 0x57, 0x57, 0x07, 0x45, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
    0x03, 0x43, 0x4f, 0x4d, 0x00, 0x00, 0x0f, 0x00, 0x01, 0xc0, 0x0c, 0x00,
    0x0f, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x09, 0x00, 0x0a, 0x04,
    0x6d, 0x61, 0x69, 0x6c, 0xc0, 0x10, 0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01,
    0x00, 0x00, 0x01, 0x2c, 0x00, 0x0a, 0x00, 0x14, 0x05, 0x6d, 0x61, 0x69,
    0x6c, 0x32, 0xc0, 0x10, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00,
    0x01, 0x2c, 0x00, 0x02, 0xc0, 0x10, 0xc0, 0x10, 0x00, 0x06, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x27, 0x03, 0x6e, 0x73, 0x31, 0xc0, 0x10,
    0x0a, 0x68, 0x6f, 0x73, 0x74, 0x6d, 0x61, 0x73, 0x74, 0x65, 0x72, 0xc0,
    0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x02,
    0x58, 0x00, 0x09, 0x3a, 0x80, 0x00, 0x00, 0x00, 0x3c};

/* ---- names ---- */

static void test_name_simple_and_case(void **state)
{
	dns_name n;
	size_t off = 12;
	pkt p;
	p_header(&p, 1, 0, 1, 0, 0, 0);
	p_name(&p, "WwW.ExAmple.COM");
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), 0);
	assert_int_equal(off, p.n);
	assert_int_equal(n.len, 17);
	assert_int_equal(n.nlabels, 3);
	assert_memory_equal(n.wire, "\3WwW\7ExAmple\3COM", 17);
	assert_memory_equal(n.lower, "\3www\7example\3com", 17);
	assert_int_equal(n.loff[0], 0);
	assert_int_equal(n.loff[1], 4);
	assert_int_equal(n.loff[2], 12);
	assert_int_equal(n.loff[3], 16);
	assert_string_equal(text(n.wire), "WwW.ExAmple.COM.");
}

static void test_name_root(void **state)
{
	dns_name n;
	uint8_t b[] = {0};
	size_t off = 0;
	assert_int_equal(dns_name_parse(b, 1, &off, &n), 0);
	assert_int_equal(off, 1);
	assert_int_equal(n.len, 1);
	assert_int_equal(n.nlabels, 0);
	assert_string_equal(text(n.wire), ".");
	uint8_t w[4];
	assert_int_equal(dns_name_from_text(".", w, sizeof(w)), 1);
	assert_int_equal(w[0], 0);
}

static void test_name_pointer_backward(void **state)
{
	/* "example.com" at 12, then "www" + pointer to 12 */
	pkt p;
	p_header(&p, 1, 0, 1, 0, 0, 0);
	p_name(&p, "example.com");
	size_t at = p.n;
	p_u8(&p, 3);
	p_bytes(&p, "www", 3);
	p_u16(&p, 0xC000 | 12);
	p_u8(&p, 0xAA); /* a byte after the name */
	dns_name n;
	size_t off = at;
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), 0);
	assert_int_equal(off, at + 6); /* past the pointer, not the target */
	assert_string_equal(text(n.wire), "www.example.com.");
	/* a chain of two backward pointers */
	size_t at2 = p.n;
	p_u8(&p, 1);
	p_u8(&p, 'x');
	p_u16(&p, 0xC000 | (unsigned)at);
	off = at2;
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), 0);
	assert_string_equal(text(n.wire), "x.www.example.com.");
	assert_int_equal(off, at2 + 4);
}

static void test_name_pointer_loops(void **state)
{
	dns_name n;
	size_t off;
	/* a pointer to itself */
	uint8_t self[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC0, 12};
	off = 12;
	assert_int_equal(dns_name_parse(self, sizeof(self), &off, &n), -EINVAL);
	/* a forward pointer */
	uint8_t fwd[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC0, 14, 0};
	off = 12;
	assert_int_equal(dns_name_parse(fwd, sizeof(fwd), &off, &n), -EINVAL);
	/* a label then a pointer back to that label: a loop that only ever
	 * points backwards from the pointer */
	uint8_t lab[] = {1, 'a', 0xC0, 0};
	off = 0;
	assert_int_equal(dns_name_parse(lab, sizeof(lab), &off, &n), -EINVAL);
	/* two pointers pointing at each other (the second is reached
	 * through the first) */
	uint8_t two[] = {0xC0, 2, 0xC0, 0};
	off = 2;
	assert_int_equal(dns_name_parse(two, sizeof(two), &off, &n), -EINVAL);
	/* a pointer out of the packet */
	uint8_t out[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	off = 12;
	assert_int_equal(dns_name_parse(out, sizeof(out), &off, &n), -EINVAL);
	/* a pointer cut in half */
	uint8_t half[] = {0, 0xC0};
	off = 1;
	assert_int_equal(dns_name_parse(half, sizeof(half), &off, &n), -EINVAL);
}

static void test_name_bounds(void **state)
{
	dns_name n;
	size_t off;
	/* a label running past the end */
	uint8_t trunc[] = {5, 'a', 'b'};
	off = 0;
	assert_int_equal(dns_name_parse(trunc, sizeof(trunc), &off, &n),
			 -EINVAL);
	/* no root byte */
	uint8_t noroot[] = {1, 'a'};
	off = 0;
	assert_int_equal(dns_name_parse(noroot, sizeof(noroot), &off, &n),
			 -EINVAL);
	/* empty input */
	off = 0;
	assert_int_equal(dns_name_parse(trunc, 0, &off, &n), -EINVAL);
	/* length bytes 64..191: labels over 63 and extended label types */
	uint8_t big[70] = {64};
	off = 0;
	assert_int_equal(dns_name_parse(big, sizeof(big), &off, &n), -EINVAL);
	uint8_t ext[] = {0x41, 0, 0};
	off = 0;
	assert_int_equal(dns_name_parse(ext, sizeof(ext), &off, &n), -EINVAL);
	uint8_t ext2[] = {0x80, 0, 0};
	off = 0;
	assert_int_equal(dns_name_parse(ext2, sizeof(ext2), &off, &n), -EINVAL);
	/* a 63-byte label is fine */
	uint8_t l63[65] = {63};
	memset(l63 + 1, 'a', 63);
	l63[64] = 0;
	off = 0;
	assert_int_equal(dns_name_parse(l63, sizeof(l63), &off, &n), 0);
	assert_int_equal(n.len, 65);
}

static void test_name_length_limit(void **state)
{
	dns_name n;
	size_t off;
	pkt p;
	/* 127 one-byte labels: 254 bytes + root = 255, the maximum */
	p.n = 0;
	for (int i = 0; i < 127; i++) {
		p_u8(&p, 1);
		p_u8(&p, 'a');
	}
	p_u8(&p, 0);
	off = 0;
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), 0);
	assert_int_equal(n.len, 255);
	assert_int_equal(n.nlabels, 127);
	assert_int_equal(n.loff[127], 254);
	/* one more byte of label: 256 */
	p.n = 0;
	for (int i = 0; i < 126; i++) {
		p_u8(&p, 1);
		p_u8(&p, 'a');
	}
	p_u8(&p, 2);
	p_bytes(&p, "ab", 2);
	p_u8(&p, 0);
	off = 0;
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), -EMSGSIZE);
	/* over the limit through pointers: 4 x 63-byte labels chained */
	p.n = 0;
	size_t prev = 0;
	for (int i = 0; i < 5; i++) {
		size_t at = p.n;
		p_u8(&p, 63);
		for (int k = 0; k < 63; k++)
			p_u8(&p, 'a' + i);
		if (i == 0)
			p_u8(&p, 0);
		else
			p_u16(&p, 0xC000 | (unsigned)prev);
		prev = at;
	}
	off = prev;
	assert_int_equal(dns_name_parse(p.b, p.n, &off, &n), -EMSGSIZE);
	/* dns_name_skip refuses the over-long name too */
	p.n = 0;
	for (int i = 0; i < 5; i++) {
		p_u8(&p, 63);
		for (int k = 0; k < 63; k++)
			p_u8(&p, 'a');
	}
	p_u8(&p, 0);
	off = 0;
	assert_int_equal(dns_name_skip(p.b, p.n, &off), -EINVAL);
}

static void test_name_text(void **state)
{
	uint8_t w[DNS_MAX_NAME];
	char buf[64];
	assert_int_equal(dns_name_from_text("a.b", w, sizeof(w)), 5);
	assert_memory_equal(w, "\1a\1b", 5);
	assert_int_equal(dns_name_from_text("a.b.", w, sizeof(w)), 5);
	assert_int_equal(dns_name_from_text("", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("a..b", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text(".a", w, sizeof(w)), -EINVAL);
	char l64[80];
	memset(l64, 'x', 64);
	l64[64] = '\0';
	assert_int_equal(dns_name_from_text(l64, w, sizeof(w)), -EMSGSIZE);
	l64[63] = '\0';
	assert_int_equal(dns_name_from_text(l64, w, sizeof(w)), 65);
	char longname[300];
	for (int i = 0; i < 128; i++) {
		longname[2 * i] = 'a';
		longname[2 * i + 1] = '.';
	}
	longname[255] = '\0'; /* 128 labels: 257 bytes of wire */
	assert_int_equal(dns_name_from_text(longname, w, sizeof(w)), -EMSGSIZE);
	longname[253] = '\0'; /* 127 labels: 255 bytes */
	assert_int_equal(dns_name_from_text(longname, w, sizeof(w)), 255);
	/* escapes in text output */
	uint8_t odd[] = {3, 'a', '.', 0x07, 0};
	assert_int_equal(dns_name_to_text(odd, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "a\\.\\007.");
	/* truncated output is still terminated */
	assert_int_equal(dns_name_to_text((const uint8_t *)"\3www\0", buf, 3),
			 -EMSGSIZE);
	assert_string_equal(buf, "ww");
}

static void test_name_compare(void **state)
{
	assert_true(dns_name_eq((const uint8_t *)"\3WwW\3Com",
				(const uint8_t *)"\3www\3cOM"));
	assert_false(dns_name_eq((const uint8_t *)"\3www\3com",
				 (const uint8_t *)"\3www\4comx"));
	assert_false(
	    dns_name_eq((const uint8_t *)"\3www", (const uint8_t *)"\3wwx"));
	assert_true(dns_name_in((const uint8_t *)"\1a\7EXAMPLE\3com",
				(const uint8_t *)"\7example\3com"));
	assert_true(dns_name_in((const uint8_t *)"\7example\3com",
				(const uint8_t *)"\7example\3com"));
	assert_true(dns_name_in((const uint8_t *)"\3com", (const uint8_t *)""));
	/* a suffix of bytes that is not a label boundary */
	assert_false(dns_name_in((const uint8_t *)"\10xexample\3com",
				 (const uint8_t *)"\7example\3com"));
	assert_false(dns_name_in((const uint8_t *)"\3com",
				 (const uint8_t *)"\7example\3com"));
	assert_int_equal(dns_name_len((const uint8_t *)"\3www\0", 10), 5);
	assert_int_equal(dns_name_len((const uint8_t *)"\3www\0", 4), 0);
	assert_int_equal(dns_name_len((const uint8_t *)"\100", 10), 0);
	assert_int_equal(dns_lower('A'), 'a');
	assert_int_equal(dns_lower('Z'), 'z');
	assert_int_equal(dns_lower('@'), '@');
	assert_int_equal(dns_lower('['), '[');
	assert_int_equal(dns_lower(0xC1), 0xC1);
}

/* ---- query parser ---- */

static void test_query_plain(void **state)
{
	dns_query q;
	assert_int_equal(dns_query_parse(q_plain, sizeof(q_plain), &q), 0);
	assert_int_equal(q.id, 0x1234);
	assert_int_equal(q.opcode, 0);
	assert_true(q.flags & DNS_F_RD);
	assert_true(q.has_question);
	assert_int_equal(q.qtype, DNS_T_A);
	assert_int_equal(q.qclass, DNS_C_IN);
	assert_int_equal(q.question_end, sizeof(q_plain));
	assert_string_equal(text(q.qname.wire), "www.example.com.");
	assert_false(q.has_edns);
	assert_false(q.has_ecs);
}

static void test_query_drop_and_notimp(void **state)
{
	dns_query q;
	assert_int_equal(dns_query_parse(q_plain, 11, &q), -EINVAL);
	assert_int_equal(dns_query_parse(q_plain, 0, &q), -EINVAL);
	uint8_t b[sizeof(q_plain)];
	memcpy(b, q_plain, sizeof(b));
	b[2] |= 0x80; /* QR: a response */
	assert_int_equal(dns_query_parse(b, sizeof(b), &q), -EINVAL);
	memcpy(b, q_plain, sizeof(b));
	b[2] = (uint8_t)(4 << 3); /* NOTIFY */
	assert_int_equal(dns_query_parse(b, sizeof(b), &q), DNS_RCODE_NOTIMP);
	assert_int_equal(q.opcode, 4);
	assert_false(q.has_question);
	b[2] = (uint8_t)(5 << 3); /* UPDATE */
	assert_int_equal(dns_query_parse(b, sizeof(b), &q), DNS_RCODE_NOTIMP);
	/* a header alone, QDCOUNT 0 */
	memcpy(b, q_plain, 12);
	b[5] = 0;
	assert_int_equal(dns_query_parse(b, 12, &q), DNS_RCODE_FORMERR);
}

static void test_query_formerr(void **state)
{
	dns_query q;
	uint8_t b[sizeof(q_plain) + 8];
	/* QDCOUNT 2 */
	memcpy(b, q_plain, sizeof(q_plain));
	b[5] = 2;
	assert_int_equal(dns_query_parse(b, sizeof(q_plain), &q),
			 DNS_RCODE_FORMERR);
	/* question cut short, in the name and in type/class */
	assert_int_equal(dns_query_parse(q_plain, 20, &q), DNS_RCODE_FORMERR);
	assert_false(q.has_question);
	assert_int_equal(dns_query_parse(q_plain, sizeof(q_plain) - 1, &q),
			 DNS_RCODE_FORMERR);
	/* trailing bytes */
	memcpy(b, q_plain, sizeof(q_plain));
	b[sizeof(q_plain)] = 0;
	assert_int_equal(dns_query_parse(b, sizeof(q_plain) + 1, &q),
			 DNS_RCODE_FORMERR);
	assert_true(q.has_question); /* echoed in the FORMERR */
	/* ARCOUNT 1 and nothing there */
	memcpy(b, q_plain, sizeof(q_plain));
	b[11] = 1;
	assert_int_equal(dns_query_parse(b, sizeof(q_plain), &q),
			 DNS_RCODE_FORMERR);
	/* a pointer in the question can only point into the header */
	pkt p;
	p_header(&p, 1, 0, 1, 0, 0, 0);
	p_u16(&p, 0xC000 | 12);
	p_u16(&p, 1);
	p_u16(&p, 1);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	/* a pointer into the header is followed (and is harmless) */
	p_header(&p, 0x0000, 0, 1, 0, 0, 0);
	p_u16(&p, 0xC000 | 0); /* id 0x0000 reads as the root */
	p_u16(&p, 1);
	p_u16(&p, 1);
	assert_int_equal(parse(&p, &q), 0);
	assert_int_equal(q.qname.len, 1);
}

static void test_query_skips_other_records(void **state)
{
	dns_query q;
	pkt p;
	/* an answer record with a compressed owner, then a good OPT */
	p_header(&p, 9, 0, 1, 1, 0, 2);
	p_name(&p, "a.example");
	p_u16(&p, DNS_T_A);
	p_u16(&p, DNS_C_IN);
	p_u16(&p, 0xC000 | 12);
	p_u16(&p, DNS_T_A);
	p_u16(&p, DNS_C_IN);
	p_u32(&p, 60);
	p_u16(&p, 4);
	p_u32(&p, 0x01020304);
	/* a TSIG-like record in additional, skipped */
	p_name(&p, "key");
	p_u16(&p, 250);
	p_u16(&p, 255);
	p_u32(&p, 0);
	p_u16(&p, 2);
	p_u16(&p, 0);
	p_opt(&p, 4096, 0, false, 0);
	assert_int_equal(parse(&p, &q), 0);
	assert_true(q.has_edns);
	assert_int_equal(q.udp_size, 4096);
	/* rdlen past the end */
	p.b[12 + 11 + 4 + 2 + 8] = 0xFF;
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
}

/* Regression: NOTIMP and QDCOUNT != 1 FORMERR dropped the OPT of an EDNS
 * query (the parser stopped before the additional section); RFC 6891 §7
 * wants the OPT back with any rcode. */
static void test_query_early_errors_keep_opt(void **state)
{
	dns_query q;
	pkt p;
	/* NOTIFY with an OPT (version 1: not judged, the rcode stays) */
	p_query(&p, "a.example", DNS_T_SOA, 1);
	p.b[2] = (uint8_t)(4 << 3);
	p_opt(&p, 4096, 1, true, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_NOTIMP);
	assert_true(q.has_edns);
	assert_false(q.has_question);
	assert_int_equal(q.udp_size, 4096);
	assert_true(q.edns_do);
	/* UPDATE: zone, a prerequisite and an update record, then the OPT */
	p_header(&p, 7, 5 << 11, 1, 1, 1, 1);
	p_name(&p, "example");
	p_u16(&p, DNS_T_SOA);
	p_u16(&p, DNS_C_IN);
	for (int i = 0; i < 2; i++) {
		p_u16(&p, 0xC000 | 12);
		p_u16(&p, DNS_T_A);
		p_u16(&p, 255);
		p_u32(&p, 0);
		p_u16(&p, 0);
	}
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_NOTIMP);
	assert_true(q.has_edns);
	/* QDCOUNT 0 and 2 with an OPT: FORMERR, the OPT kept */
	p_header(&p, 8, 0, 0, 0, 0, 1);
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_true(q.has_edns);
	assert_false(q.has_question);
	p_header(&p, 8, 0, 2, 0, 0, 1);
	p_name(&p, "a.example");
	p_u16(&p, DNS_T_A);
	p_u16(&p, DNS_C_IN);
	p_u16(&p, 0xC000 | 12);
	p_u16(&p, DNS_T_AAAA);
	p_u16(&p, DNS_C_IN);
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_true(q.has_edns);
	assert_false(q.has_question);
	/* bad framing on the way: the rcode, no OPT (as before) */
	p_header(&p, 8, 0, 2, 0, 0, 1);
	p_name(&p, "a.example");
	p_u16(&p, DNS_T_A);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_false(q.has_edns);
	p_query(&p, "a.example", DNS_T_SOA, 2);
	p.b[2] = (uint8_t)(4 << 3);
	p_opt(&p, 1232, 0, false, 0);
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_NOTIMP);
	assert_false(q.has_edns);
}

/* Regression: an OPT in the answer or authority section was ignored; it
 * belongs in additional only (RFC 6891 §6.1.1): FORMERR, like BIND. */
static void test_query_opt_outside_additional(void **state)
{
	dns_query q;
	for (int sec = 0; sec < 2; sec++) {
		pkt p;
		p_header(&p, 3, 0, 1, sec == 0, sec == 1, 1);
		p_name(&p, "a.example");
		p_u16(&p, DNS_T_A);
		p_u16(&p, DNS_C_IN);
		p_opt(&p, 1232, 0, false, 0);
		p_opt(&p, 4096, 0, false, 0);
		assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
		assert_true(q.has_question);
		assert_true(q.has_edns); /* the one in additional */
		assert_int_equal(q.udp_size, 4096);
		/* no OPT in additional: FORMERR without one */
		p_header(&p, 3, 0, 1, sec == 0, sec == 1, 0);
		p_name(&p, "a.example");
		p_u16(&p, DNS_T_A);
		p_u16(&p, DNS_C_IN);
		p_opt(&p, 1232, 0, false, 0);
		assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
		assert_false(q.has_edns);
	}
}

static void test_query_edns(void **state)
{
	dns_query q;
	assert_int_equal(dns_query_parse(q_edns_do, sizeof(q_edns_do), &q), 0);
	assert_int_equal(q.id, 0xbeef);
	assert_int_equal(q.qtype, DNS_T_AAAA);
	assert_true(q.has_edns);
	assert_true(q.edns_do);
	assert_int_equal(q.edns_version, 0);
	assert_int_equal(q.udp_size, 4096);
	assert_false(q.has_ecs);

	pkt p;
	/* unknown options (a cookie) are skipped */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 512, 0, false, 12);
	p_u16(&p, 10);
	p_u16(&p, 8);
	p_u32(&p, 1);
	p_u32(&p, 2);
	assert_int_equal(parse(&p, &q), 0);
	assert_int_equal(q.udp_size, 512);
	/* two OPTs: FORMERR, and no OPT to answer with */
	p_query(&p, "a.example", DNS_T_A, 2);
	p_opt(&p, 1232, 0, false, 0);
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_false(q.has_edns);
	/* an OPT not owned by the root */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_u8(&p, 1);
	p_u8(&p, 'x');
	p_opt(&p, 1232, 0, false, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_false(q.has_edns);
	/* option framing: a header cut short, a length past the rdata */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 0, false, 2);
	p_u16(&p, 10);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_true(q.has_edns); /* the OPT itself was fine */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 0, false, 6);
	p_u16(&p, 10);
	p_u16(&p, 3);
	p_u16(&p, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
}

static void test_query_badvers(void **state)
{
	dns_query q;
	pkt p;
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 1, true, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_BADVERS);
	assert_true(q.has_edns);
	assert_true(q.has_question);
	assert_int_equal(q.edns_version, 1);
	/* options of another version are not judged */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 2, false, 3);
	p_u8(&p, 0);
	p_u16(&p, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_BADVERS);
	assert_false(q.has_ecs);
}

static void test_query_ecs_good(void **state)
{
	dns_query q;
	assert_int_equal(dns_query_parse(q_ecs4, sizeof(q_ecs4), &q), 0);
	assert_true(q.has_ecs);
	assert_int_equal(q.ecs.family, 1);
	assert_int_equal(q.ecs.source, 24);
	assert_int_equal(q.ecs.scope, 0);
	assert_memory_equal(q.ecs.addr, "\xc0\x00\x02\x00", 4);
	assert_int_equal(dns_query_parse(q_ecs6, sizeof(q_ecs6), &q), 0);
	assert_true(q.has_ecs);
	assert_int_equal(q.ecs.family, 2);
	assert_int_equal(q.ecs.source, 56);
	assert_memory_equal(q.ecs.addr,
			    "\x20\x01\x0d\xb8\x12\x34\x56\x00\x00\x00", 10);

	pkt p;
	/* source 0: no address bytes */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_ecs(&p, 1, 0, 0, NULL, 0);
	assert_int_equal(parse(&p, &q), 0);
	assert_true(q.has_ecs);
	assert_int_equal(q.ecs.source, 0);
	/* /20: three bytes, the last with four zero bits */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_ecs(&p, 1, 20, 0, (const uint8_t *)"\x0a\x01\xf0", 3);
	assert_int_equal(parse(&p, &q), 0);
	assert_int_equal(q.ecs.source, 20);
	/* /32 and /128 */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_ecs(&p, 1, 32, 0, (const uint8_t *)"\x0a\x01\x02\x03", 4);
	assert_int_equal(parse(&p, &q), 0);
	uint8_t a6[16];
	memset(a6, 0x11, 16);
	p_query(&p, "a.example", DNS_T_A, 1);
	p_ecs(&p, 2, 128, 0, a6, 16);
	assert_int_equal(parse(&p, &q), 0);
	assert_int_equal(q.ecs.source, 128);
}

static void test_query_ecs_bad(void **state)
{
	dns_query q;
	pkt p;
	uint8_t a[17];
	memset(a, 0, sizeof(a));
	struct {
		uint16_t family;
		uint8_t source, scope;
		size_t alen;
		uint8_t last; /* value of the last address byte */
	} bad[] = {
	    {0, 0, 0, 0, 0},	 /* family 0 */
	    {3, 8, 0, 1, 0},	 /* unknown family */
	    {1, 33, 0, 5, 0},	 /* IPv4 source over 32 */
	    {2, 129, 0, 17, 0},	 /* IPv6 source over 128 */
	    {1, 24, 8, 3, 0},	 /* scope not 0 in a query */
	    {1, 24, 0, 4, 0},	 /* too many address bytes */
	    {1, 24, 0, 2, 0},	 /* too few */
	    {1, 0, 0, 1, 0},	 /* bytes for a /0 */
	    {1, 20, 0, 3, 0x01}, /* bits set past the prefix */
	    {2, 57, 0, 8, 0x01}, /* same, IPv6 */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(a, 0x0a, sizeof(a));
		if (bad[i].alen)
			a[bad[i].alen - 1] = bad[i].last;
		p_query(&p, "a.example", DNS_T_A, 1);
		p_ecs(&p, bad[i].family, bad[i].source, bad[i].scope, a,
		      bad[i].alen);
		int rc = parse(&p, &q);
		if (rc != DNS_RCODE_FORMERR)
			fail_msg("bad ECS case %zu: rc %d", i, rc);
		assert_false(q.has_ecs);
		assert_true(q.has_edns);
	}
	/* an option shorter than its fixed part */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 0, false, 7);
	p_u16(&p, DNS_OPT_ECS);
	p_u16(&p, 3);
	p_u16(&p, 1);
	p_u8(&p, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	/* two ECS options */
	p_query(&p, "a.example", DNS_T_A, 1);
	p_opt(&p, 1232, 0, false, 2 * 8);
	for (int i = 0; i < 2; i++) {
		p_u16(&p, DNS_OPT_ECS);
		p_u16(&p, 4);
		p_u16(&p, 1);
		p_u8(&p, 0);
		p_u8(&p, 0);
	}
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_false(q.has_ecs);
	/* a good ECS, then a broken record: no ECS with the FORMERR (found
	 * by fuzz_dns_query) */
	p_query(&p, "a.example", DNS_T_A, 2);
	p_ecs(&p, 1, 0, 0, NULL, 0);
	assert_int_equal(parse(&p, &q), DNS_RCODE_FORMERR);
	assert_true(q.has_edns);
	assert_false(q.has_ecs);
}

/* ---- rdata ---- */

static void expect_rdata(uint16_t type, const char *content, uint16_t prio,
			 const void *want, size_t wantlen)
{
	uint8_t out[2048];
	char err[200];
	int n = dns_rdata_from_text(type, content, prio, out, sizeof(out), err,
				    sizeof(err));
	if (n < 0)
		fail_msg("type %u '%s': %s", type, content, err);
	if ((size_t)n != wantlen || memcmp(out, want, wantlen)) {
		print_error("type %u '%s': got %d bytes:", type, content, n);
		for (int i = 0; i < n; i++)
			print_error(" %02x", out[i]);
		print_error("\n");
		fail();
	}
}

static void expect_bad(uint16_t type, const char *content, const char *msg)
{
	uint8_t out[2048];
	char err[200];
	int n = dns_rdata_from_text(type, content, 0, out, sizeof(out), err,
				    sizeof(err));
	if (n != -EINVAL)
		fail_msg("type %u '%s': rc %d, expected an error", type,
			 content, n);
	if (!strstr(err, msg))
		fail_msg("type %u '%s': error '%s' lacks '%s'", type, content,
			 err, msg);
}

#define RD(type, content, prio, bytes)                                         \
	expect_rdata(type, content, prio, bytes, sizeof(bytes) - 1)

static void test_rdata_each_type(void **state)
{
	RD(DNS_T_A, "192.0.2.1", 0, "\xc0\x00\x02\x01");
	RD(DNS_T_AAAA, "2001:db8::1", 0,
	   "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01");
	RD(DNS_T_CNAME, "Target.Example.NET.", 0, "\6target\7example\3net\0");
	RD(DNS_T_NS, "ns1.example.com", 0, "\3ns1\7example\3com\0");
	RD(DNS_T_MX, "mail.example.com", 10, "\0\12\4mail\7example\3com\0");
	RD(DNS_T_MX, "20 mx.example.com", 10, "\0\24\2mx\7example\3com\0");
	RD(DNS_T_MX, "0 .", 0, "\0\0\0"); /* null MX, RFC 7505 */
	RD(DNS_T_TXT, "v=spf1 -all", 0, "\13v=spf1 -all");
	RD(DNS_T_TXT, "\"a b\" \"c\\\"d\" \"\\065\"", 0, "\3a b\3c\"d\1A");
	RD(DNS_T_TXT, "\"\"", 0, "\0");
	RD(DNS_T_SRV, "5 5060 sip.example.com", 10,
	   "\0\12\0\5\23\304\3sip\7example\3com\0");
	RD(DNS_T_SRV, "1 2 443 .", 0, "\0\1\0\2\1\273\0");
	RD(DNS_T_CAA, "0 issue \"letsencrypt.org\"", 0,
	   "\0\5issueletsencrypt.org");
	RD(DNS_T_CAA, "128 iodef mailto:sec@example.com", 0,
	   "\200\5iodefmailto:sec@example.com");
	RD(DNS_T_CAA, "0 issue \";\"", 0, "\0\5issue;");
	RD(DNS_T_SOA,
	   "ns1.example.com hostmaster@example.com 2024010101 7200 900 "
	   "1209600 300",
	   0,
	   "\3ns1\7example\3com\0\12hostmaster\7example\3com\0"
	   "\x78\xa3\xf1\x75\0\0\x1c\x20\0\0\x03\x84\0\x12\x75\0\0\0\x01\x2c");
}

static void test_rdata_txt_split(void **state)
{
	char content[301];
	memset(content, 'x', 300);
	content[300] = '\0';
	uint8_t out[400];
	char err[100];
	int n = dns_rdata_from_text(DNS_T_TXT, content, 0, out, sizeof(out),
				    err, sizeof(err));
	assert_int_equal(n, 302);
	assert_int_equal(out[0], 255);
	assert_int_equal(out[256], 45);
	/* exactly 255: one string */
	content[255] = '\0';
	n = dns_rdata_from_text(DNS_T_TXT, content, 0, out, sizeof(out), err,
				sizeof(err));
	assert_int_equal(n, 256);
	/* a quoted string over 255 bytes is an error */
	char q[300];
	q[0] = '"';
	memset(q + 1, 'y', 256);
	q[257] = '"';
	q[258] = '\0';
	expect_bad(DNS_T_TXT, q, "longer than 255");
	/* no room: -EMSGSIZE */
	assert_int_equal(dns_rdata_from_text(DNS_T_TXT, "abcdef", 0, out, 3,
					     err, sizeof(err)),
			 -EMSGSIZE);
}

static void test_rdata_errors(void **state)
{
	expect_bad(DNS_T_A, "192.0.2.256", "expected an IPv4 address");
	expect_bad(DNS_T_A, "192.0.2.1 x", "expected an IPv4 address");
	expect_bad(DNS_T_AAAA, "192.0.2.1", "expected an IPv6 address");
	expect_bad(DNS_T_CNAME, "a..b", "empty label");
	expect_bad(DNS_T_CNAME, ".", "root");
	expect_bad(DNS_T_CNAME, "a b", "unexpected text");
	expect_bad(DNS_T_CNAME, "a/b", "not a domain name");
	expect_bad(DNS_T_NS, "", "missing NS target");
	expect_bad(DNS_T_MX, "70000 mx.example", "MX preference");
	expect_bad(DNS_T_SRV, "1 2", "expected SRV content");
	expect_bad(DNS_T_SRV, "1 2 3 4 5", "expected SRV content");
	expect_bad(DNS_T_SRV, "1 99999 x.example", "SRV port");
	expect_bad(DNS_T_SRV, "x 1 2 x.example", "SRV priority");
	expect_bad(DNS_T_CAA, "256 issue x", "CAA flags");
	expect_bad(DNS_T_CAA, "0 is-sue x", "CAA tag");
	expect_bad(DNS_T_CAA, "0 abcdefghijklmnop x", "CAA tag");
	expect_bad(DNS_T_CAA, "0", "missing CAA tag");
	expect_bad(DNS_T_CAA, "0 issue \"x", "unterminated");
	expect_bad(DNS_T_CAA, "0 issue \"x\" y", "unexpected text");
	expect_bad(DNS_T_TXT, "\"a\" b", "expected a quoted string");
	expect_bad(DNS_T_TXT, "\"a\\", "unterminated");
	expect_bad(DNS_T_TXT, "\"\\300\"", "\\DDD");
	expect_bad(DNS_T_TXT, "\"a\"b", "expected a space");
	expect_bad(DNS_T_SOA, "ns1.example.com hm.example.com 1 2 3 4",
		   "missing SOA minimum");
	expect_bad(DNS_T_SOA, "ns1.example.com hm.example.com 1 2 3 4 5 6",
		   "unexpected text");
	expect_bad(DNS_T_SOA, "ns1.example.com hm.example.com 1 2 3 4 -5",
		   "SOA minimum");
	expect_bad(DNS_T_SOA,
		   "ns1.example.com hm.example.com 4294967296 2 3 "
		   "4 5",
		   "SOA serial");
	expect_bad(99, "x", "not supported");
}

/* ---- writer ---- */

static void test_writer_matches_dnspython(void **state)
{
	uint8_t buf[512];
	dns_writer w;
	uint8_t mx1[64], mx2[64], cname[64], soa[128];
	char err[100];
	int n1 = dns_rdata_from_text(DNS_T_MX, "10 mail.example.com", 0, mx1,
				     sizeof(mx1), err, sizeof(err));
	int n2 = dns_rdata_from_text(DNS_T_MX, "20 mail2.example.com", 0, mx2,
				     sizeof(mx2), err, sizeof(err));
	int n3 = dns_rdata_from_text(DNS_T_CNAME, "example.com", 0, cname,
				     sizeof(cname), err, sizeof(err));
	int n4 = dns_rdata_from_text(DNS_T_SOA,
				     "ns1.example.com hostmaster.example.com "
				     "1 3600 600 604800 60",
				     0, soa, sizeof(soa), err, sizeof(err));
	assert_true(n1 > 0 && n2 > 0 && n3 > 0 && n4 > 0);
	const uint8_t *qname = (const uint8_t *)"\3WWW\7Example\3COM";
	const uint8_t *owner = (const uint8_t *)"\3www\7example\3com";
	const uint8_t *apex = (const uint8_t *)"\7example\3com";

	dns_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(
	    dns_writer_header(&w, 0x4242, DNS_F_QR | DNS_F_AA | DNS_F_RD), 0);
	assert_int_equal(dns_writer_question(&w, qname, DNS_T_MX, DNS_C_IN), 0);
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, owner, DNS_T_MX, 300,
				       mx1, (uint16_t)n1),
			 0);
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, owner, DNS_T_MX, 300,
				       mx2, (uint16_t)n2),
			 0);
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, qname, DNS_T_CNAME,
				       300, cname, (uint16_t)n3),
			 0);
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_AUTHORITY, apex, DNS_T_SOA,
				       60, soa, (uint16_t)n4),
			 0);
	size_t len = dns_writer_finish(&w);
	assert_int_equal(len, sizeof(r_mixed));
	assert_memory_equal(buf, r_mixed, sizeof(r_mixed));
	assert_false(w.overflow);
	/* the response parses back, the case of the question echoed */
	dns_name n;
	size_t off = 12 + 17 + 4;
	assert_int_equal(dns_name_parse(buf, len, &off, &n), 0);
	assert_string_equal(text(n.wire), "WWW.Example.COM.");
}

static void test_writer_srv_not_compressed(void **state)
{
	uint8_t buf[512], rd[64];
	dns_writer w;
	char err[64];
	int n = dns_rdata_from_text(DNS_T_SRV, "1 2 443 sip.example.com", 0, rd,
				    sizeof(rd), err, sizeof(err));
	assert_true(n > 0);
	dns_writer_init(&w, buf, sizeof(buf));
	dns_writer_header(&w, 1, DNS_F_QR);
	dns_writer_question(&w, (const uint8_t *)"\4_sip\4_tcp\7example\3com",
			    DNS_T_SRV, DNS_C_IN);
	size_t at = w.len;
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER,
				       (const uint8_t *)"\4_sip\4_tcp\7example"
							"\3com",
				       DNS_T_SRV, 60, rd, (uint16_t)n),
			 0);
	/* owner compressed to the question; rdata copied as is */
	assert_memory_equal(buf + at, "\xc0\x0c\0\x21\0\1\0\0\0\x3c", 10);
	assert_int_equal(dns_get16(buf + at + 10), n);
	assert_memory_equal(buf + at + 12, rd, (size_t)n);
}

/* The question's own pointer as an owner takes the fast path (a pointer to
 * offset 12 at once): the same bytes as a copy of the name, which is
 * searched; after a rollback past the question the fast path is off. */
static void test_writer_question_owner_fast_path(void **state)
{
	static const uint8_t a[4] = {192, 0, 2, 1};
	const uint8_t *q = (const uint8_t *)"\3www\7Example\3com";
	uint8_t copy[32], b1[128], b2[128];
	memcpy(copy, q, 17);
	dns_writer w1, w2;
	dns_writer_init(&w1, b1, sizeof(b1));
	dns_writer_init(&w2, b2, sizeof(b2));
	dns_writer_header(&w1, 7, DNS_F_QR);
	dns_writer_header(&w2, 7, DNS_F_QR);
	assert_int_equal(dns_writer_question(&w1, q, DNS_T_A, DNS_C_IN), 0);
	assert_int_equal(dns_writer_question(&w2, q, DNS_T_A, DNS_C_IN), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    dns_writer_rr(&w1, DNS_SEC_ANSWER, q, DNS_T_A, 30, a, 4),
		    0);
		assert_int_equal(
		    dns_writer_rr(&w2, DNS_SEC_ANSWER, copy, DNS_T_A, 30, a, 4),
		    0);
	}
	assert_int_equal(w1.len, w2.len);
	assert_memory_equal(b1, b2, w1.len);
	assert_memory_equal(b1 + 12 + 17 + 4, "\xc0\x0c", 2);
	/* Rolled back to before the question: the pointer is forgotten. */
	dns_wmark m = {.len = 12};
	dns_writer_rollback(&w1, &m);
	assert_null(w1.qname);
	assert_int_equal(
	    dns_writer_rr(&w1, DNS_SEC_ANSWER, q, DNS_T_A, 30, a, 4), 0);
	assert_memory_equal(b1 + 12, q, 17); /* in full again */
	(void)state;
}

static void test_writer_rollback(void **state)
{
	uint8_t buf[64];
	dns_writer w;
	const uint8_t *name = (const uint8_t *)"\3www\7example\3com";
	dns_writer_init(&w, buf, 12 + 21 + 16);
	dns_writer_header(&w, 1, DNS_F_QR);
	assert_int_equal(dns_writer_question(&w, name, DNS_T_A, DNS_C_IN), 0);
	assert_int_equal(w.len, 33);
	/* an A record is 16 bytes compressed: fits exactly */
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, name, DNS_T_A, 60,
				       (const uint8_t *)"\1\2\3\4", 4),
			 0);
	assert_int_equal(w.len, 49);
	uint8_t nctab = w.nctab;
	/* the next does not: rolled back, counted nowhere */
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER,
				       (const uint8_t *)"\3new\7example\3com",
				       DNS_T_A, 60, (const uint8_t *)"\1\2\3\4",
				       4),
			 -EMSGSIZE);
	assert_true(w.overflow);
	assert_int_equal(w.len, 49);
	assert_int_equal(w.nctab, nctab);
	assert_int_equal(w.count[DNS_SEC_ANSWER], 1);
	assert_int_equal(dns_writer_finish(&w), 49);
	assert_int_equal(dns_get16(buf + 6), 1);
	/* bad rdata for a compressed type is refused, not written */
	dns_writer_init(&w, buf, sizeof(buf));
	dns_writer_header(&w, 1, DNS_F_QR);
	assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, name, DNS_T_CNAME,
				       60, (const uint8_t *)"\3ab", 3),
			 -EINVAL);
	assert_int_equal(w.len, 12);
	assert_false(w.overflow);
	/* a header does not fit in 11 bytes */
	dns_writer_init(&w, buf, 11);
	assert_int_equal(dns_writer_header(&w, 1, 0), -EMSGSIZE);
	assert_int_equal(dns_writer_finish(&w), 0);
}

static void test_writer_table_full(void **state)
{
	uint8_t buf[4096];
	dns_writer w;
	dns_writer_init(&w, buf, sizeof(buf));
	dns_writer_header(&w, 1, DNS_F_QR);
	/* 60 distinct three-label names: the table fills, names still
	 * come out right */
	for (int i = 0; i < 60; i++) {
		uint8_t name[32];
		char t[32];
		snprintf(t, sizeof(t), "h%d.z%d.example", i, i % 7);
		int l = dns_name_from_text(t, name, sizeof(name));
		assert_true(l > 0);
		assert_int_equal(dns_writer_rr(&w, DNS_SEC_ANSWER, name,
					       DNS_T_A, 1,
					       (const uint8_t *)"\1\2\3\4", 4),
				 0);
	}
	assert_int_equal(w.nctab, DNS_CTAB_MAX);
	size_t len = dns_writer_finish(&w);
	size_t off = 12;
	for (int i = 0; i < 60; i++) {
		dns_name n;
		char t[32];
		snprintf(t, sizeof(t), "h%d.z%d.example.", i, i % 7);
		assert_int_equal(dns_name_parse(buf, len, &off, &n), 0);
		assert_string_equal(text(n.wire), t);
		off += 10 + 4;
	}
	assert_int_equal(off, len);
}

static void test_writer_opt(void **state)
{
	uint8_t buf[128];
	dns_writer w;
	dns_ecs ecs = {.family = 1, .source = 20, .addr = {10, 1, 0xf0}};
	dns_writer_init(&w, buf, sizeof(buf));
	dns_writer_header(&w, 1, DNS_F_QR);
	size_t at = w.len;
	assert_int_equal(dns_opt_len(&ecs), 11 + 8 + 3);
	assert_int_equal(dns_writer_opt(&w, 1232, 1, true, &ecs, 16), 0);
	static const uint8_t want[] = {0, 0,  41, 0x04, 0xd0, 1,   0, 0x80,
				       0, 0,  11, 0,	8,    0,   7, 0,
				       1, 20, 16, 10,	1,    0xf0};
	assert_int_equal(w.len - at, sizeof(want));
	assert_memory_equal(buf + at, want, sizeof(want));
	assert_int_equal(w.count[DNS_SEC_ADDITIONAL], 1);
	/* without ECS */
	dns_writer_init(&w, buf, sizeof(buf));
	dns_writer_header(&w, 1, DNS_F_QR);
	assert_int_equal(dns_writer_opt(&w, 512, 0, false, NULL, 0), 0);
	assert_memory_equal(buf + 12, "\0\0\x29\x02\0\0\0\0\0\0\0", 11);
	/* no room */
	dns_writer_init(&w, buf, 12 + 10);
	dns_writer_header(&w, 1, DNS_F_QR);
	assert_int_equal(dns_writer_opt(&w, 512, 0, false, NULL, 0), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_simple_and_case),
	    cmocka_unit_test(test_name_root),
	    cmocka_unit_test(test_name_pointer_backward),
	    cmocka_unit_test(test_name_pointer_loops),
	    cmocka_unit_test(test_name_bounds),
	    cmocka_unit_test(test_name_length_limit),
	    cmocka_unit_test(test_name_text),
	    cmocka_unit_test(test_name_compare),
	    cmocka_unit_test(test_query_plain),
	    cmocka_unit_test(test_query_drop_and_notimp),
	    cmocka_unit_test(test_query_formerr),
	    cmocka_unit_test(test_query_skips_other_records),
	    cmocka_unit_test(test_query_early_errors_keep_opt),
	    cmocka_unit_test(test_query_opt_outside_additional),
	    cmocka_unit_test(test_query_edns),
	    cmocka_unit_test(test_query_badvers),
	    cmocka_unit_test(test_query_ecs_good),
	    cmocka_unit_test(test_query_ecs_bad),
	    cmocka_unit_test(test_rdata_each_type),
	    cmocka_unit_test(test_rdata_txt_split),
	    cmocka_unit_test(test_rdata_errors),
	    cmocka_unit_test(test_writer_matches_dnspython),
	    cmocka_unit_test(test_writer_srv_not_compressed),
	    cmocka_unit_test(test_writer_question_owner_fast_path),
	    cmocka_unit_test(test_writer_rollback),
	    cmocka_unit_test(test_writer_table_full),
	    cmocka_unit_test(test_writer_opt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
