/* waf_msgs.h - the rules a ModSecurity transaction matched, from the
 * library's structured rule messages (waf_msgs.cc, the one C++ file: the
 * C API has no accessor for them). */
#ifndef MERIDIAN_WAF_MSGS_H
#define MERIDIAN_WAF_MSGS_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct waf_rule_hit {
	int id;
	bool disruptive; /* the rule that denied the request */
} waf_rule_hit;

/* The rules (with log) the transaction (a ModSecurity Transaction *)
 * matched so far, in order, each once, at most max of them into out;
 * returns how many were written. */
size_t waf_matched_rules(void *transaction, waf_rule_hit *out, size_t max);

#ifdef __cplusplus
}
#endif

#endif
