/* proxy_proto.c - see proxy_proto.h. */
#include "http/proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

/* ---- v1 -------------------------------------------------------------- */

/* Splits line[*pos..end) at the next single space; the token is [*tok,
 * *tok + *tlen). false on an empty token. */
static bool v1_token(const char *line, size_t end, size_t *pos,
		     const char **tok, size_t *tlen)
{
	size_t i = *pos;
	while (i < end && line[i] != ' ')
		i++;
	if (i == *pos)
		return false;
	*tok = line + *pos;
	*tlen = i - *pos;
	*pos = i < end ? i + 1 : i; /* past the space */
	return true;
}

static bool v1_port(const char *t, size_t n, uint16_t *port)
{
	uint32_t v = 0;

	if (n == 0 || n > 5 || (n > 1 && t[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(t[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

static bool v1_addr(int family, const char *t, size_t n, void *dst)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, t, n);
	tmp[n] = '\0';
	return inet_pton(family, tmp, dst) == 1;
}

static void set_in(struct sockaddr_storage *ss, socklen_t *len,
		   const void *addr, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	s->sin_port = port;
	memcpy(&s->sin_addr, addr, 4);
	*len = sizeof(*s);
}

static void set_in6(struct sockaddr_storage *ss, socklen_t *len,
		    const void *addr, uint16_t port)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	s->sin6_family = AF_INET6;
	s->sin6_port = port;
	memcpy(&s->sin6_addr, addr, 16);
	*len = sizeof(*s);
}

/* line[0..end) is what follows "PROXY " up to the CR. */
static int v1_line(const char *line, size_t end, proxy_proto_result *out)
{
	const char *proto, *src, *dst, *sp, *dp;
	size_t protol, srcl, dstl, spl, dpl, pos = 0;
	uint8_t sa[16], da[16];
	uint16_t sport, dport;
	int family;

	if (!v1_token(line, end, &pos, &proto, &protol))
		return -EINVAL;
	if (protol == 7 && memcmp(proto, "UNKNOWN", 7) == 0) {
		out->local = true; /* the rest of the line is ignored */
		return 0;
	}
	if (protol != 4 || memcmp(proto, "TCP", 3) != 0 ||
	    (proto[3] != '4' && proto[3] != '6'))
		return -EINVAL;
	family = proto[3] == '4' ? AF_INET : AF_INET6;
	if (!v1_token(line, end, &pos, &src, &srcl) ||
	    !v1_token(line, end, &pos, &dst, &dstl) ||
	    !v1_token(line, end, &pos, &sp, &spl) ||
	    !v1_token(line, end, &pos, &dp, &dpl))
		return -EINVAL;
	/* nothing after the last token, and no trailing space */
	if (pos != end || line[end - 1] == ' ')
		return -EINVAL;
	if (!v1_addr(family, src, srcl, sa) ||
	    !v1_addr(family, dst, dstl, da) || !v1_port(sp, spl, &sport) ||
	    !v1_port(dp, dpl, &dport))
		return -EINVAL;
	if (family == AF_INET) {
		set_in(&out->src, &out->srclen, sa, htons(sport));
		set_in(&out->dst, &out->dstlen, da, htons(dport));
	} else {
		set_in6(&out->src, &out->srclen, sa, htons(sport));
		set_in6(&out->dst, &out->dstlen, da, htons(dport));
	}
	return 0;
}

static int parse_v1(const uint8_t *buf, size_t len, proxy_proto_result *out)
{
	size_t lim = len < PROXY_PROTO_V1_MAX ? len : PROXY_PROTO_V1_MAX;

	for (size_t i = V1_SIG_LEN; i < lim; i++) {
		uint8_t c = buf[i];
		if (c == '\r') {
			if (i + 1 >= len)
				return 0;
			if (buf[i + 1] != '\n')
				return -EINVAL;
			/* i + 2 <= 107: the CRLF fits in the limit */
			if (i + 2 > PROXY_PROTO_V1_MAX)
				return -EINVAL;
			out->version = 1;
			int rc = v1_line((const char *)buf + V1_SIG_LEN,
					 i - V1_SIG_LEN, out);
			return rc < 0 ? rc : (int)(i + 2);
		}
		if (c < 0x20 || c > 0x7e)
			return -EINVAL;
	}
	return len >= PROXY_PROTO_V1_MAX ? -EINVAL : 0;
}

/* ---- v2 -------------------------------------------------------------- */

enum {
	V2_CMD_LOCAL = 0x0,
	V2_CMD_PROXY = 0x1,
	V2_AF_UNSPEC = 0x0,
	V2_AF_INET = 0x1,
	V2_AF_INET6 = 0x2,
	V2_AF_UNIX = 0x3,
	V2_PROTO_UNSPEC = 0x0,
	V2_PROTO_STREAM = 0x1,
	V2_PROTO_DGRAM = 0x2,
};

/* Checks the fixed header bytes present so far (len may be < 16). */
static int v2_fixed(const uint8_t *buf, size_t len)
{
	if (len > 12) {
		uint8_t vc = buf[12];
		if ((vc >> 4) != 2)
			return -EINVAL;
		if ((vc & 0xf) != V2_CMD_LOCAL && (vc & 0xf) != V2_CMD_PROXY)
			return -EINVAL;
	}
	if (len > 13 && (buf[12] & 0xf) == V2_CMD_PROXY) {
		uint8_t af = buf[13] >> 4, proto = buf[13] & 0xf;
		if (af > V2_AF_UNIX || proto > V2_PROTO_DGRAM)
			return -EINVAL;
		if (af == V2_AF_UNIX || proto == V2_PROTO_DGRAM)
			return -EPROTONOSUPPORT;
		if (af != V2_AF_UNSPEC && proto != V2_PROTO_STREAM)
			return -EINVAL;
	}
	if (len >= 16) {
		size_t plen = (size_t)buf[14] << 8 | buf[15];
		if (plen > PROXY_PROTO_V2_MAX_LEN)
			return -EMSGSIZE;
	}
	return 0;
}

/* Two bytes in network order, kept in network order. */
static uint16_t port_be(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* TLVs in p[0..n): type (1), length (2, big endian), value. */
static bool v2_tlvs_ok(const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		if (n - off < 3)
			return false;
		size_t l = (size_t)p[off + 1] << 8 | p[off + 2];
		if (l > n - off - 3)
			return false;
		off += 3 + l;
	}
	return true;
}

static int parse_v2(const uint8_t *buf, size_t len, proxy_proto_result *out)
{
	int rc = v2_fixed(buf, len);
	if (rc < 0 || len < 16)
		return rc;
	size_t plen = (size_t)buf[14] << 8 | buf[15];
	size_t total = 16 + plen;
	if (len < total)
		return 0;
	const uint8_t *p = buf + 16;
	out->version = 2;
	if ((buf[12] & 0xf) == V2_CMD_LOCAL) {
		out->local = true; /* health checks of the proxy itself */
		return (int)total;
	}
	size_t alen;
	switch (buf[13] >> 4) {
	case V2_AF_INET:
		alen = 12;
		if (plen < alen)
			return -EINVAL;
		set_in(&out->src, &out->srclen, p, port_be(p + 8));
		set_in(&out->dst, &out->dstlen, p + 4, port_be(p + 10));
		break;
	case V2_AF_INET6:
		alen = 36;
		if (plen < alen)
			return -EINVAL;
		set_in6(&out->src, &out->srclen, p, port_be(p + 32));
		set_in6(&out->dst, &out->dstlen, p + 16, port_be(p + 34));
		break;
	case V2_AF_UNSPEC:
	default:
		/* unknown addresses: the receiver ignores the block */
		out->local = true;
		return (int)total;
	}
	if (!v2_tlvs_ok(p + alen, plen - alen))
		return -EINVAL;
	return (int)total;
}

/* ---- entry ----------------------------------------------------------- */

int proxy_proto_parse(const uint8_t *buf, size_t len, proxy_proto_result *out)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	if (buf[0] == v2_sig[0]) {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(buf, v2_sig, n) != 0)
			return -EINVAL;
		int rc = parse_v2(buf, len, out);
		if (rc <= 0)
			memset(out, 0, sizeof(*out)); /* nothing half-filled */
		return rc;
	}
	n = len < V1_SIG_LEN ? len : V1_SIG_LEN;
	if (memcmp(buf, v1_sig, n) != 0)
		return -EINVAL;
	if (len <= V1_SIG_LEN)
		return 0;
	int rc = parse_v1(buf, len, out);
	if (rc <= 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
