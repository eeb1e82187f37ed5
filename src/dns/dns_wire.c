/* dns_wire.c - see dns_wire.h. */
#include "dns/dns_wire.h"

#include <errno.h>
#include <string.h>

/* ---- names ---- */

int dns_name_parse(const uint8_t *pkt, size_t len, size_t *off, dns_name *n)
{
	size_t pos = *off;
	size_t end = 0;	    /* just past the name at its place, once known */
	size_t limit = pos; /* a pointer must point before this */
	unsigned jumps = 0;
	size_t o = 0;
	unsigned nl = 0;

	for (;;) {
		if (pos >= len)
			return -EINVAL;
		uint8_t c = pkt[pos];
		if (c == 0) {
			pos++;
			break;
		}
		if ((c & 0xC0) == 0xC0) {
			if (len - pos < 2)
				return -EINVAL;
			size_t target = (size_t)(c & 0x3F) << 8 | pkt[pos + 1];
			if (!end)
				end = pos + 2;
			if (target >= limit || ++jumps > DNS_MAX_LABELS)
				return -EINVAL;
			limit = target;
			pos = target;
			continue;
		}
		if (c > DNS_MAX_LABEL) /* 0x40 and 0x80: extended types */
			return -EINVAL;
		if (len - pos - 1 < c)
			return -EINVAL;
		/* the label, and a root byte after it */
		if (o + 1 + c + 1 > DNS_MAX_NAME)
			return -EMSGSIZE;
		n->loff[nl++] = (uint8_t)o;
		n->wire[o] = c;
		n->lower[o] = c;
		for (unsigned i = 1; i <= c; i++) {
			uint8_t b = pkt[pos + i];
			n->wire[o + i] = b;
			n->lower[o + i] = dns_lower(b);
		}
		o += 1u + c;
		pos += 1u + c;
	}
	n->wire[o] = 0;
	n->lower[o] = 0;
	n->loff[nl] = (uint8_t)o;
	n->len = (uint8_t)(o + 1);
	n->nlabels = (uint8_t)nl;
	*off = end ? end : pos;
	return 0;
}

int dns_name_skip(const uint8_t *pkt, size_t len, size_t *off)
{
	size_t pos = *off;
	size_t total = 1;

	for (;;) {
		if (pos >= len)
			return -EINVAL;
		uint8_t c = pkt[pos];
		if (c == 0) {
			*off = pos + 1;
			return 0;
		}
		if ((c & 0xC0) == 0xC0) {
			if (len - pos < 2)
				return -EINVAL;
			*off = pos + 2;
			return 0;
		}
		if (c > DNS_MAX_LABEL || len - pos - 1 < c)
			return -EINVAL;
		total += 1u + c;
		if (total > DNS_MAX_NAME)
			return -EINVAL;
		pos += 1u + c;
	}
}

size_t dns_name_len(const uint8_t *name, size_t max)
{
	size_t p = 0;

	if (max > DNS_MAX_NAME)
		max = DNS_MAX_NAME;
	while (p < max) {
		uint8_t c = name[p];
		if (c == 0)
			return p + 1;
		if (c > DNS_MAX_LABEL)
			return 0;
		p += 1u + c;
	}
	return 0;
}

bool dns_name_eq(const uint8_t *a, const uint8_t *b)
{
	for (;;) {
		uint8_t c = *a;
		if (c != *b)
			return false;
		if (c == 0)
			return true;
		for (unsigned i = 1; i <= c; i++)
			if (dns_lower(a[i]) != dns_lower(b[i]))
				return false;
		a += 1u + c;
		b += 1u + c;
	}
}

bool dns_name_in(const uint8_t *name, const uint8_t *parent)
{
	size_t len = dns_name_len(name, DNS_MAX_NAME);
	size_t plen = dns_name_len(parent, DNS_MAX_NAME);
	if (!len || !plen || len < plen)
		return false;
	size_t p = 0;
	while (p < len - plen)
		p += 1u + name[p];
	return p == len - plen && dns_name_eq(name + p, parent);
}

int dns_name_from_text(const char *text, uint8_t *out, size_t cap)
{
	size_t o = 0;

	if (!text[0])
		return -EINVAL;
	if (text[0] == '.' && text[1] == '\0') {
		if (cap < 1)
			return -EMSGSIZE;
		out[0] = 0;
		return 1;
	}
	const char *p = text;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0)
			return -EINVAL;
		if (l > DNS_MAX_LABEL)
			return -EMSGSIZE;
		if (o + 1 + l + 1 > DNS_MAX_NAME || o + 1 + l + 1 > cap)
			return -EMSGSIZE;
		out[o] = (uint8_t)l;
		memcpy(out + o + 1, p, l);
		o += 1 + l;
		p += l;
		if (*p == '.')
			p++;
	}
	out[o] = 0;
	return (int)(o + 1);
}

int dns_name_to_text(const uint8_t *name, char *buf, size_t cap)
{
	size_t o = 0;
	int rc = 0;

	if (!cap)
		return -EMSGSIZE;
#define PUT(ch)                                                                \
	do {                                                                   \
		if (o + 1 >= cap) {                                            \
			rc = -EMSGSIZE;                                        \
			goto out;                                              \
		}                                                              \
		buf[o++] = (char)(ch);                                         \
	} while (0)
	if (name[0] == 0)
		PUT('.');
	for (size_t p = 0, total = 0; name[p];) {
		uint8_t c = name[p];
		total += 1u + c;
		if (c > DNS_MAX_LABEL || total >= DNS_MAX_NAME) {
			rc = -EINVAL;
			goto out;
		}
		for (unsigned i = 1; i <= c; i++) {
			uint8_t b = name[p + i];
			if (b == '.' || b == '\\') {
				PUT('\\');
				PUT(b);
			} else if (b < 0x21 || b > 0x7e) {
				PUT('\\');
				PUT('0' + b / 100);
				PUT('0' + b / 10 % 10);
				PUT('0' + b % 10);
			} else {
				PUT(b);
			}
		}
		PUT('.');
		p += 1u + c;
	}
#undef PUT
out:
	buf[o] = '\0';
	return rc ? rc : (int)o;
}

/* ---- query parser ---- */

static int parse_ecs(const uint8_t *p, size_t n, dns_query *q)
{
	if (q->has_ecs || n < 4)
		return -EINVAL;
	uint16_t family = dns_get16(p);
	uint8_t source = p[2], scope = p[3];
	unsigned maxbits;
	if (family == DNS_ECS_FAMILY_IPV4)
		maxbits = 32;
	else if (family == DNS_ECS_FAMILY_IPV6)
		maxbits = 128;
	else
		return -EINVAL;
	if (source > maxbits || scope != 0)
		return -EINVAL;
	size_t nbytes = (source + 7u) / 8u;
	if (n - 4 != nbytes)
		return -EINVAL;
	if ((source & 7) && (p[4 + nbytes - 1] & (0xFFu >> (source & 7))))
		return -EINVAL;
	memset(q->ecs.addr, 0, sizeof(q->ecs.addr));
	memcpy(q->ecs.addr, p + 4, nbytes);
	q->ecs.family = family;
	q->ecs.source = source;
	q->ecs.scope = 0;
	q->has_ecs = true;
	return 0;
}

static int parse_options(const uint8_t *p, size_t n, dns_query *q)
{
	while (n) {
		if (n < 4)
			return -EINVAL;
		uint16_t code = dns_get16(p), olen = dns_get16(p + 2);
		if (olen > n - 4)
			return -EINVAL;
		if (code == DNS_OPT_ECS && parse_ecs(p + 4, olen, q))
			return -EINVAL;
		p += 4u + olen;
		n -= 4u + olen;
	}
	return 0;
}

/* Walks one record at *off; fills its type and rdata position. */
static int skip_rr(const uint8_t *pkt, size_t len, size_t *off, uint16_t *type,
		   uint16_t *class, uint32_t *ttl, size_t *rdoff,
		   uint16_t *rdlen)
{
	if (dns_name_skip(pkt, len, off))
		return -EINVAL;
	size_t p = *off;
	if (len - p < 10)
		return -EINVAL;
	*type = dns_get16(pkt + p);
	*class = dns_get16(pkt + p + 2);
	*ttl = dns_get32(pkt + p + 4);
	*rdlen = dns_get16(pkt + p + 8);
	p += 10;
	if (len - p < *rdlen)
		return -EINVAL;
	*rdoff = p;
	*off = p + *rdlen;
	return 0;
}

static int parse_query(const uint8_t *pkt, size_t len, dns_query *q)
{
	q->has_question = false;
	q->has_edns = false;
	q->has_ecs = false;
	q->edns_do = false;
	q->edns_version = 0;
	q->udp_size = 0;
	q->qtype = q->qclass = 0;
	q->question_end = 0;
	q->opcode = 0;
	if (len < DNS_HEADER_LEN)
		return -EINVAL;
	q->id = dns_get16(pkt);
	q->flags = dns_get16(pkt + 2);
	if (q->flags & DNS_F_QR)
		return -EINVAL;
	q->opcode =
	    (uint8_t)((q->flags & DNS_F_OPCODE_MASK) >> DNS_F_OPCODE_SHIFT);
	unsigned qd = dns_get16(pkt + 4), an = dns_get16(pkt + 6),
		 ns = dns_get16(pkt + 8), ar = dns_get16(pkt + 10);

	/* An error known before the records are read: they are still walked
	 * for the OPT, which the response must then carry (RFC 6891 §7). */
	int early = 0;
	if (q->opcode != DNS_OPCODE_QUERY)
		early = DNS_RCODE_NOTIMP;
	else if (qd != 1)
		early = DNS_RCODE_FORMERR;
	int bad = early ? early : DNS_RCODE_FORMERR;

	size_t off = DNS_HEADER_LEN;
	if (early) {
		for (unsigned i = 0; i < qd; i++) {
			if (dns_name_skip(pkt, len, &off) || len - off < 4)
				return early;
			off += 4;
		}
	} else {
		if (dns_name_parse(pkt, len, &off, &q->qname) || len - off < 4)
			return DNS_RCODE_FORMERR;
		q->qtype = dns_get16(pkt + off);
		q->qclass = dns_get16(pkt + off + 2);
		off += 4;
		q->question_end = off;
		q->has_question = true;
	}

	uint16_t type, class, rdlen;
	uint32_t ttl;
	size_t rdoff;
	for (unsigned i = 0; i < an + ns; i++) {
		if (skip_rr(pkt, len, &off, &type, &class, &ttl, &rdoff,
			    &rdlen))
			return bad;
		if (type == DNS_T_OPT && !early) /* additional only (§6.1.1) */
			early = bad = DNS_RCODE_FORMERR;
	}
	bool badvers = false, seen_opt = false;
	for (unsigned i = 0; i < ar; i++) {
		size_t start = off;
		if (skip_rr(pkt, len, &off, &type, &class, &ttl, &rdoff,
			    &rdlen))
			return bad;
		if (type != DNS_T_OPT)
			continue;
		if (seen_opt || pkt[start] != 0) {
			/* no OPT we could trust to answer with */
			q->has_edns = false;
			return bad;
		}
		seen_opt = true;
		q->has_edns = true;
		q->udp_size = class;
		q->edns_version = (uint8_t)(ttl >> 16);
		q->edns_do = (ttl & DNS_EDNS_DO) != 0;
		if (early)
			continue; /* answered with its own rcode */
		if (q->edns_version != 0)
			badvers = true; /* options are version-specific */
		else if (parse_options(pkt + rdoff, rdlen, q))
			return DNS_RCODE_FORMERR;
	}
	if (off != len)
		return bad;
	if (early)
		return early;
	return badvers ? DNS_RCODE_BADVERS : DNS_RCODE_NOERROR;
}

int dns_query_parse(const uint8_t *pkt, size_t len, dns_query *q)
{
	int rc = parse_query(pkt, len, q);
	if (rc != DNS_RCODE_NOERROR)
		q->has_ecs = false; /* echoed only in answers */
	return rc;
}

/* ---- writer ---- */

void dns_writer_init(dns_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	memset(w->count, 0, sizeof(w->count));
	w->overflow = false;
	w->nctab = 0;
	w->qname = NULL;
	w->qname_off = 0;
}

static bool room(dns_writer *w, size_t n)
{
	if (w->len > w->cap || w->cap - w->len < n) {
		w->overflow = true;
		return false;
	}
	return true;
}

int dns_writer_header(dns_writer *w, uint16_t id, uint16_t flags)
{
	if (!room(w, DNS_HEADER_LEN))
		return -EMSGSIZE;
	dns_put16(w->buf, id);
	dns_put16(w->buf + 2, flags);
	memset(w->buf + 4, 0, 8);
	w->len = DNS_HEADER_LEN;
	return 0;
}

void dns_writer_set_flags(dns_writer *w, uint16_t flags)
{
	if (w->len >= DNS_HEADER_LEN)
		dns_put16(w->buf + 2, flags);
}

uint16_t dns_writer_flags(const dns_writer *w)
{
	return w->len >= DNS_HEADER_LEN ? dns_get16(w->buf + 2) : 0;
}

/* Does the name at offset o of the packet (written by us: pointers go
 * backwards) equal name, ignoring case? */
static bool packet_name_eq(const uint8_t *buf, size_t o, const uint8_t *name)
{
	for (unsigned hops = 0; hops <= DNS_MAX_LABELS;) {
		uint8_t c = buf[o];
		if ((c & 0xC0) == 0xC0) {
			o = (size_t)(c & 0x3F) << 8 | buf[o + 1];
			hops++;
			continue;
		}
		if (c != *name)
			return false;
		if (c == 0)
			return true;
		for (unsigned i = 1; i <= c; i++)
			if (dns_lower(buf[o + i]) != dns_lower(name[i]))
				return false;
		o += 1u + c;
		name += 1u + c;
	}
	return false;
}

int dns_writer_name(dns_writer *w, const uint8_t *name)
{
	uint8_t off[DNS_MAX_LABELS + 1];
	unsigned nl = 0;
	size_t p = 0;

	/* The question's name again (the usual owner): what the search below
	 * finds first, without searching. */
	if (name == w->qname) {
		if (!room(w, 2))
			return -EMSGSIZE;
		dns_put16(w->buf + w->len, (uint16_t)(0xC000 | w->qname_off));
		w->len += 2;
		return 0;
	}

	while (name[p]) {
		if (name[p] > DNS_MAX_LABEL || nl == DNS_MAX_LABELS ||
		    p + name[p] + 1 >= DNS_MAX_NAME)
			return -EINVAL;
		off[nl++] = (uint8_t)p;
		p += 1u + name[p];
	}
	off[nl] = (uint8_t)p;

	/* the longest suffix already in the packet */
	unsigned k;
	int hit = -1;
	for (k = 0; k < nl && hit < 0; k++) {
		unsigned want = nl - k;
		for (unsigned e = 0; e < w->nctab; e++) {
			if (w->ctab_nl[e] == want &&
			    packet_name_eq(w->buf, w->ctab[e], name + off[k])) {
				hit = (int)e;
				break;
			}
		}
		if (hit >= 0)
			break;
	}
	size_t head = off[k]; /* bytes of labels written in full */
	if (!room(w, head + (hit >= 0 ? 2 : 1)))
		return -EMSGSIZE;
	size_t start = w->len;
	memcpy(w->buf + start, name, head);
	for (unsigned i = 0; i < k && w->nctab < DNS_CTAB_MAX; i++) {
		size_t at = start + off[i];
		if (at > 0x3FFF)
			break;
		w->ctab[w->nctab] = (uint16_t)at;
		w->ctab_nl[w->nctab] = (uint8_t)(nl - i);
		w->nctab++;
	}
	w->len += head;
	if (hit >= 0) {
		dns_put16(w->buf + w->len, (uint16_t)(0xC000 | w->ctab[hit]));
		w->len += 2;
	} else {
		w->buf[w->len++] = 0;
	}
	return 0;
}

int dns_writer_question(dns_writer *w, const uint8_t *name, uint16_t qtype,
			uint16_t qclass)
{
	dns_wmark m = dns_writer_mark(w);
	size_t at = w->len;
	if (dns_writer_name(w, name) || !room(w, 4)) {
		dns_writer_rollback(w, &m);
		w->overflow = true;
		return -EMSGSIZE;
	}
	/* Written in full (the first name of a packet has nothing to point
	 * at), so later copies may point at it (dns_writer_name). */
	if (!w->qname && name[0] && at <= 0x3FFF && m.nctab == 0) {
		w->qname = name;
		w->qname_off = (uint16_t)at;
	}
	dns_put16(w->buf + w->len, qtype);
	dns_put16(w->buf + w->len + 2, qclass);
	w->len += 4;
	w->count[DNS_SEC_QUESTION]++;
	return 0;
}

int dns_writer_rr(dns_writer *w, dns_section sec, const uint8_t *owner,
		  uint16_t type, uint32_t ttl, const uint8_t *rdata,
		  uint16_t rdlen)
{
	dns_wmark m = dns_writer_mark(w);
	int rc = -EMSGSIZE;
	size_t l1, l2;

	if (dns_writer_name(w, owner) || !room(w, 10))
		goto fail;
	uint8_t *h = w->buf + w->len;
	dns_put16(h, type);
	dns_put16(h + 2, DNS_C_IN);
	dns_put32(h + 4, ttl);
	size_t rdpos = w->len + 8;
	w->len += 10;
	switch (type) {
	case DNS_T_NS:
	case DNS_T_CNAME:
	case DNS_T_PTR:
		if (dns_name_len(rdata, rdlen) != rdlen) {
			rc = -EINVAL;
			goto fail;
		}
		if (dns_writer_name(w, rdata))
			goto fail;
		break;
	case DNS_T_MX:
		if (rdlen < 3 ||
		    dns_name_len(rdata + 2, rdlen - 2u) != rdlen - 2u) {
			rc = -EINVAL;
			goto fail;
		}
		if (!room(w, 2))
			goto fail;
		memcpy(w->buf + w->len, rdata, 2);
		w->len += 2;
		if (dns_writer_name(w, rdata + 2))
			goto fail;
		break;
	case DNS_T_SOA:
		l1 = dns_name_len(rdata, rdlen);
		l2 = l1 ? dns_name_len(rdata + l1, rdlen - l1) : 0;
		if (!l1 || !l2 || l1 + l2 + 20 != rdlen) {
			rc = -EINVAL;
			goto fail;
		}
		if (dns_writer_name(w, rdata) ||
		    dns_writer_name(w, rdata + l1) || !room(w, 20))
			goto fail;
		memcpy(w->buf + w->len, rdata + l1 + l2, 20);
		w->len += 20;
		break;
	default:
		if (!room(w, rdlen))
			goto fail;
		memcpy(w->buf + w->len, rdata, rdlen);
		w->len += rdlen;
		break;
	}
	dns_put16(w->buf + rdpos, (uint16_t)(w->len - rdpos - 2));
	w->count[sec]++;
	return 0;
fail:
	dns_writer_rollback(w, &m);
	if (rc == -EMSGSIZE)
		w->overflow = true;
	return rc;
}

size_t dns_opt_len(const dns_ecs *ecs)
{
	return 11 + (ecs ? 8 + (ecs->source + 7u) / 8u : 0);
}

int dns_writer_opt(dns_writer *w, uint16_t udp_size, uint8_t ext_rcode,
		   bool do_bit, const dns_ecs *ecs, uint8_t scope)
{
	size_t n = dns_opt_len(ecs);
	if (!room(w, n))
		return -EMSGSIZE;
	uint8_t *p = w->buf + w->len;
	p[0] = 0; /* root */
	dns_put16(p + 1, DNS_T_OPT);
	dns_put16(p + 3, udp_size);
	dns_put32(p + 5,
		  (uint32_t)ext_rcode << 24 | (do_bit ? DNS_EDNS_DO : 0));
	dns_put16(p + 9, (uint16_t)(n - 11));
	if (ecs) {
		size_t nb = (ecs->source + 7u) / 8u;
		dns_put16(p + 11, DNS_OPT_ECS);
		dns_put16(p + 13, (uint16_t)(4 + nb));
		dns_put16(p + 15, ecs->family);
		p[17] = ecs->source;
		p[18] = scope;
		memcpy(p + 19, ecs->addr, nb);
	}
	w->len += n;
	w->count[DNS_SEC_ADDITIONAL]++;
	return 0;
}

dns_wmark dns_writer_mark(const dns_writer *w)
{
	dns_wmark m;
	m.len = w->len;
	memcpy(m.count, w->count, sizeof(m.count));
	m.nctab = w->nctab;
	return m;
}

void dns_writer_rollback(dns_writer *w, const dns_wmark *m)
{
	w->len = m->len;
	memcpy(w->count, m->count, sizeof(w->count));
	w->nctab = m->nctab;
	if (w->qname && m->len <= w->qname_off)
		w->qname = NULL;
}

size_t dns_writer_finish(dns_writer *w)
{
	if (w->len < DNS_HEADER_LEN)
		return 0;
	for (int i = 0; i < 4; i++)
		dns_put16(w->buf + 4 + 2 * i, w->count[i]);
	return w->len;
}
