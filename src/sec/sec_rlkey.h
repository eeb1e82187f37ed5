/* sec_rlkey.h - the key a rate limit counts a request under, pure.
 *
 * The values of the characteristics are laid out one after the other,
 * each behind its length (so "ab","c" is not "a","bc"), and hashed once
 * (sec_rl_key): one SipHash per request and rule. Values too long for the
 * 1 KiB layout are hashed each on its own and their hashes laid out
 * instead, behind another tag. ip.src is the client's network
 * (ipv4/ipv6_prefix_length; an IPv4-mapped IPv6 client as IPv4) with its
 * family, so 10.0.0.0/24 and ::a00:0/120 stay apart. No characteristic:
 * one key for every request.
 */
#ifndef MERIDIAN_SEC_RLKEY_H
#define MERIDIAN_SEC_RLKEY_H

#include "config/cfg_model.h"
#include "lb/lb_expr.h"
#include "sec/sec_ratelimit.h"

/* Characteristics of one rate limit at most (cfg_ratelimit.c). */
#define SEC_RL_MAX_CHARS 8

uint64_t sec_rl_request_key(const sec_rl *t, const cfg_rate_limit *r,
			    const lb_expr_input *in);

#endif
