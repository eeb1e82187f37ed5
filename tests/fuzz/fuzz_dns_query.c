/* fuzz_dns_query.c - libFuzzer harness for the DNS query parser and the
 * name reader/writer (dns_wire).
 *
 * Besides crashes and sanitizer reports it checks the parser's contract:
 * the outcome is one of the documented ones; a parsed question has a name
 * of at most 255 bytes whose lowercased copy and label offsets agree with
 * it, and lies inside the packet; a Client Subnet obeys RFC 7871's bounds;
 * the name written by dns_writer (compressed against itself) reads back
 * equal. The input is also read as a name at an offset taken from its
 * first byte, to reach the pointer rules from anywhere in a packet.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "dns/dns_wire.h"

static void check_name(const dns_name *n)
{
	CHECK(n->len >= 1 && n->len <= DNS_MAX_NAME);
	CHECK(n->nlabels <= DNS_MAX_LABELS);
	CHECK(n->loff[n->nlabels] == n->len - 1);
	CHECK(n->wire[n->len - 1] == 0);
	for (unsigned i = 0; i < n->nlabels; i++) {
		uint8_t l = n->wire[n->loff[i]];
		CHECK(l >= 1 && l <= DNS_MAX_LABEL);
		CHECK(n->loff[i] + 1u + l == n->loff[i + 1]);
	}
	for (unsigned i = 0; i < n->len; i++)
		CHECK(n->lower[i] == dns_lower(n->wire[i]));
	CHECK(dns_name_len(n->wire, DNS_MAX_NAME) == n->len);
	CHECK(dns_name_eq(n->wire, n->lower));
	char text[4 * DNS_MAX_NAME + 2];
	CHECK(dns_name_to_text(n->wire, text, sizeof(text)) > 0);
}

/* Write the name twice (the second compressed to the first) and read both
 * back. */
static void check_roundtrip(const dns_name *n)
{
	uint8_t buf[2 * DNS_MAX_NAME + DNS_HEADER_LEN + 16];
	dns_writer w;
	dns_writer_init(&w, buf, sizeof(buf));
	CHECK(dns_writer_header(&w, 1, DNS_F_QR) == 0);
	CHECK(dns_writer_question(&w, n->wire, 1, 1) == 0);
	CHECK(dns_writer_name(&w, n->lower) == 0);
	size_t len = dns_writer_finish(&w);
	CHECK(len == DNS_HEADER_LEN + n->len + 4 + (n->len > 1 ? 2 : 1));
	size_t off = DNS_HEADER_LEN;
	dns_name a, b;
	CHECK(dns_name_parse(buf, len, &off, &a) == 0);
	CHECK(a.len == n->len && !memcmp(a.wire, n->wire, n->len));
	off += 4;
	CHECK(dns_name_parse(buf, len, &off, &b) == 0);
	CHECK(off == len);
	CHECK(b.len == n->len && !memcmp(b.wire, n->wire, n->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy so ASan catches any read past the end */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	dns_query q;
	int rc = dns_query_parse(buf, size, &q);
	CHECK(rc == -EINVAL || rc == DNS_RCODE_NOERROR ||
	      rc == DNS_RCODE_FORMERR || rc == DNS_RCODE_NOTIMP ||
	      rc == DNS_RCODE_BADVERS);
	if (rc == -EINVAL)
		CHECK(size < DNS_HEADER_LEN || (buf[2] & 0x80));
	if (rc == DNS_RCODE_NOTIMP)
		CHECK(q.opcode != 0 && !q.has_question);
	if (rc == DNS_RCODE_NOERROR || rc == DNS_RCODE_BADVERS)
		CHECK(q.has_question);
	if (rc == DNS_RCODE_BADVERS)
		CHECK(q.has_edns && q.edns_version != 0 && !q.has_ecs);
	if (q.has_question) {
		CHECK(q.question_end <= size);
		check_name(&q.qname);
		check_roundtrip(&q.qname);
	}
	if (q.has_ecs) {
		CHECK(rc == DNS_RCODE_NOERROR && q.has_edns);
		CHECK(q.ecs.family == 1 || q.ecs.family == 2);
		unsigned max = q.ecs.family == 1 ? 32 : 128;
		CHECK(q.ecs.source <= max && q.ecs.scope == 0);
		for (unsigned bit = q.ecs.source; bit < 128; bit++)
			CHECK(!(q.ecs.addr[bit / 8] & (0x80 >> (bit % 8))));
	}

	/* a name anywhere */
	if (size) {
		size_t off = buf[0] % size, start = off;
		dns_name n;
		int r = dns_name_parse(buf, size, &off, &n);
		CHECK(r == 0 || r == -EINVAL || r == -EMSGSIZE);
		if (r == 0) {
			CHECK(off > start && off <= size);
			check_name(&n);
			size_t off2 = start;
			CHECK(dns_name_skip(buf, size, &off2) == 0);
			CHECK(off2 == off);
		}
	}
	free(buf);
	return 0;
}
