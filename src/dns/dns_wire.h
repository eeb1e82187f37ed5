/* dns_wire.h - DNS wire format: names, the query parser and the response
 * writer, pure (no I/O, no allocation). Knot's libknot plays this part
 * under its daemon.
 *
 * Names
 *   Kept in uncompressed wire form (length-prefixed labels ending with the
 *   root byte), at most DNS_MAX_NAME bytes with the root byte and labels of
 *   at most DNS_MAX_LABEL bytes. A parsed name keeps the bytes as received
 *   (answers echo the query's case) and a lowercased copy (ASCII only) that
 *   lookups and hashing use. Extended label types (0x40, 0x80) are errors.
 *   Compression pointers are followed only backwards: each pointer must
 *   point before the start of the label run it ends (and so before every
 *   earlier jump), which rules out loops and forward pointers; at most
 *   DNS_MAX_LABELS jumps.
 *
 * Query parser (dns_query_parse)
 *   Header; exactly one question; answer and authority records are walked
 *   over (framing checked, contents ignored, but an OPT there is an
 *   error: RFC 6891 §6.1.1); the additional section may hold one OPT
 *   (EDNS0, RFC 6891) and anything else, which is skipped. Bytes after the
 *   last record are an error. Outcomes:
 *     -EINVAL  drop, no response: shorter than a header, or QR set (a
 *              response: answering it invites reflection loops).
 *     DNS_RCODE_NOTIMP   opcode other than QUERY (the question is not
 *              parsed; the records are still walked for the OPT).
 *     DNS_RCODE_FORMERR  QDCOUNT != 1 (the questions are walked over, not
 *              parsed; the records still walked for the OPT), a bad name,
 *              truncated records, trailing bytes, an OPT in the answer or
 *              authority section, a second OPT, an OPT not owned by the
 *              root, a bad option framing, a bad Client Subnet option.
 *     DNS_RCODE_BADVERS  EDNS version != 0 (options are then not parsed).
 *     DNS_RCODE_NOERROR  a well-formed query.
 *   After NOTIMP, QDCOUNT != 1 or an OPT outside additional the OPT's
 *   version and options are not judged (the rcode stands).
 *   has_question tells whether the question can be echoed in the error
 *   response; has_edns whether the response must carry an OPT (RFC 6891
 *   §7: set once the OPT record itself is well framed and the only one,
 *   whatever the rcode; framing broken before it is reached leaves it
 *   false); has_ecs is set only with DNS_RCODE_NOERROR (error responses
 *   carry no ECS).
 *
 * EDNS Client Subnet (RFC 7871): FAMILY 1 (IPv4, SOURCE <= 32) or 2 (IPv6,
 *   SOURCE <= 128), exactly ceil(SOURCE / 8) address bytes, the bits past
 *   SOURCE zero, SCOPE 0, at most one ECS option; anything else FORMERR.
 *
 * Writer (dns_writer)
 *   Writes a response into a caller buffer with a hard size limit. Names
 *   are compressed against a small per-packet table (DNS_CTAB_MAX name
 *   offsets on the stack, compared case-insensitively); when the table is
 *   full names are still written, only less compressed. Owner names and the
 *   names inside NS, CNAME, PTR, MX and SOA rdata are compressed; SRV
 *   targets never are (RFC 2782). A record that does not fit is rolled back
 *   entirely and the writer remembers the overflow; the caller decides
 *   (TC). Return convention: 0, -EMSGSIZE (no room) or, for rdata of a
 *   compressed type that does not hold its names, -EINVAL.
 */
#ifndef MERIDIAN_DNS_WIRE_H
#define MERIDIAN_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN	12
#define DNS_MAX_NAME	255 /* wire bytes, root byte included */
#define DNS_MAX_LABEL	63
#define DNS_MAX_LABELS	127  /* labels in a name of DNS_MAX_NAME bytes */
#define DNS_UDP_MIN	512  /* the classic limit, and the floor of EDNS */
#define DNS_UDP_MAX	4096 /* the highest payload size we will use */
#define DNS_UDP_DEFAULT 1232 /* advertised (DNS flag day 2020) */
#define DNS_TCP_MAX	65535
#define DNS_CTAB_MAX	32 /* compression table entries per packet */

/* Record types used here. */
enum {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_PTR = 12,
	DNS_T_HINFO = 13,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_SRV = 33,
	DNS_T_OPT = 41,
	DNS_T_DS = 43,
	DNS_T_IXFR = 251,
	DNS_T_AXFR = 252,
	DNS_T_MAILB = 253,
	DNS_T_MAILA = 254,
	DNS_T_ANY = 255,
	DNS_T_CAA = 257,
};

enum {
	DNS_C_IN = 1,
};

/* Response codes; BADVERS is extended (upper 8 bits in the OPT). */
enum {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_BADVERS = 16,
};

/* Header flags word (bytes 2-3). */
#define DNS_F_QR	   0x8000
#define DNS_F_OPCODE_MASK  0x7800
#define DNS_F_OPCODE_SHIFT 11
#define DNS_F_AA	   0x0400
#define DNS_F_TC	   0x0200
#define DNS_F_RD	   0x0100
#define DNS_F_RA	   0x0080
#define DNS_F_AD	   0x0020
#define DNS_F_CD	   0x0010
#define DNS_F_RCODE_MASK   0x000f

#define DNS_OPCODE_QUERY 0

#define DNS_EDNS_DO	    0x8000 /* in the OPT TTL's low 16 bits */
#define DNS_OPT_ECS	    8	   /* EDNS option code: Client Subnet */
#define DNS_ECS_FAMILY_IPV4 1
#define DNS_ECS_FAMILY_IPV6 2

/* A name in uncompressed wire form. */
typedef struct dns_name {
	uint8_t len;	 /* bytes in wire[], root byte included: 1..255 */
	uint8_t nlabels; /* labels before the root */
	uint8_t wire[DNS_MAX_NAME];  /* as received */
	uint8_t lower[DNS_MAX_NAME]; /* ASCII-lowercased copy */
	/* loff[i]: offset of label i; loff[nlabels] = len - 1 (the root) */
	uint8_t loff[DNS_MAX_LABELS + 1];
} dns_name;

/* An EDNS Client Subnet option (RFC 7871). */
typedef struct dns_ecs {
	uint16_t family;  /* DNS_ECS_FAMILY_IPV4 or _IPV6 */
	uint8_t source;	  /* SOURCE PREFIX-LENGTH */
	uint8_t scope;	  /* SCOPE PREFIX-LENGTH (0 in queries) */
	uint8_t addr[16]; /* network order, bits past `source` zero */
} dns_ecs;

typedef struct dns_query {
	uint16_t id;
	uint16_t flags; /* as received */
	uint8_t opcode;
	bool has_question;
	bool has_edns;
	bool has_ecs;
	bool edns_do;
	uint8_t edns_version;
	uint16_t udp_size; /* the client's advertised payload size, raw */
	uint16_t qtype, qclass;
	size_t question_end; /* offset just past the question */
	dns_ecs ecs;
	dns_name qname;
} dns_query;

/* ---- names ---- */

static inline uint8_t dns_lower(uint8_t c)
{
	return (uint8_t)((unsigned)c - 'A' < 26u ? c + ('a' - 'A') : c);
}

/* Reads the name at *off in pkt[0..len) into *n (pointers followed as
 * described above) and moves *off past the name's bytes at that place.
 * Returns 0, or -EINVAL (out of bounds, a length byte of 64-191: labels
 * over 63 bytes and extended label types, bad or looping pointer) or
 * -EMSGSIZE (name over 255 bytes). */
int dns_name_parse(const uint8_t *pkt, size_t len, size_t *off, dns_name *n);

/* Moves *off past a name without following pointers (records whose
 * contents are ignored). Returns 0 or -EINVAL. */
int dns_name_skip(const uint8_t *pkt, size_t len, size_t *off);

/* Length of the uncompressed wire name at name (at most max bytes read),
 * or 0 when it is not one. */
size_t dns_name_len(const uint8_t *name, size_t max);

/* Case-insensitive equality of two uncompressed wire names. */
bool dns_name_eq(const uint8_t *a, const uint8_t *b);

/* Is name at or below parent (both uncompressed, compared ignoring
 * case)? */
bool dns_name_in(const uint8_t *name, const uint8_t *parent);

/* "www.example.com" or "www.example.com." (or "." for the root) into wire
 * form; labels of any byte but '.', no escapes. Returns the wire length,
 * or -EINVAL (empty label, empty string) or -EMSGSIZE (too long). */
int dns_name_from_text(const char *text, uint8_t *out, size_t cap);

/* Wire name to text with a trailing dot ("." for the root); bytes outside
 * printable ASCII and '.' '\\' in labels are escaped as \DDD / \. \\.
 * Returns the text length, or -EMSGSIZE (truncated, still terminated)
 * or -EINVAL. */
int dns_name_to_text(const uint8_t *name, char *buf, size_t cap);

/* ---- query parser ---- */

/* See the top of the file for the outcomes. */
int dns_query_parse(const uint8_t *pkt, size_t len, dns_query *q);

/* ---- writer ---- */

typedef enum dns_section {
	DNS_SEC_QUESTION = 0,
	DNS_SEC_ANSWER,
	DNS_SEC_AUTHORITY,
	DNS_SEC_ADDITIONAL,
} dns_section;

typedef struct dns_writer {
	uint8_t *buf;
	size_t cap; /* current limit (<= the buffer's size) */
	size_t len;
	uint16_t count[4]; /* per dns_section */
	bool overflow;	   /* a write did not fit */
	uint8_t nctab;
	uint16_t ctab[DNS_CTAB_MAX];   /* offsets of names written in full */
	uint8_t ctab_nl[DNS_CTAB_MAX]; /* labels of the name at that offset */
	/* The question's name (the caller's pointer) and where it was
	 * written in full: the same pointer is then written as a pointer to
	 * it at once. The caller must not change those bytes meanwhile. */
	const uint8_t *qname;
	uint16_t qname_off;
} dns_writer;

/* A point to roll back to (dns_writer_rollback). */
typedef struct dns_wmark {
	size_t len;
	uint16_t count[4];
	uint8_t nctab;
} dns_wmark;

/* cap is the hard limit for this message (e.g. the client's UDP size). */
void dns_writer_init(dns_writer *w, uint8_t *buf, size_t cap);
/* Header with zero counts (patched by dns_writer_finish). */
int dns_writer_header(dns_writer *w, uint16_t id, uint16_t flags);
void dns_writer_set_flags(dns_writer *w, uint16_t flags);
uint16_t dns_writer_flags(const dns_writer *w);
int dns_writer_question(dns_writer *w, const uint8_t *name, uint16_t qtype,
			uint16_t qclass);
/* A name, compressed where the table allows. */
int dns_writer_name(dns_writer *w, const uint8_t *name);
/* One IN record; rdata is uncompressed (names in full) and is compressed
 * here by type. Rolled back entirely when it does not fit. */
int dns_writer_rr(dns_writer *w, dns_section sec, const uint8_t *owner,
		  uint16_t type, uint32_t ttl, const uint8_t *rdata,
		  uint16_t rdlen);
/* The OPT record: our UDP size, the upper 8 bits of an extended rcode, the
 * DO bit, and the ECS option echoed with `scope` when ecs is not NULL. */
int dns_writer_opt(dns_writer *w, uint16_t udp_size, uint8_t ext_rcode,
		   bool do_bit, const dns_ecs *ecs, uint8_t scope);
/* Bytes dns_writer_opt will need. */
size_t dns_opt_len(const dns_ecs *ecs);
dns_wmark dns_writer_mark(const dns_writer *w);
void dns_writer_rollback(dns_writer *w, const dns_wmark *m);
/* Patches the counts; returns the message length. */
size_t dns_writer_finish(dns_writer *w);

/* Big-endian helpers. */
static inline uint16_t dns_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t dns_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void dns_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void dns_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
