/* waf_int.h - the managed rules' private structures (waf.h). */
#ifndef MERIDIAN_WAF_INT_H
#define MERIDIAN_WAF_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

struct waf_rules {
	atomic_uint refs;
	RulesSet *rs;
	uint32_t count;
	char *key; /* what it was loaded from (waf_rules_same) */
};

struct waf_engine {
	ModSecurity *ms;
};

#define WAF_TX_RULES 8

struct waf_tx {
	Transaction *t;
	const struct waf_rules *rules;
	bool detected;
	/* "942100 949110": ids of up to 7 digits, a space each */
	char rules_text[WAF_TX_RULES * 8 + 1];
};

#endif
