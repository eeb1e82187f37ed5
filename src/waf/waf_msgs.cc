// waf_msgs.cc - the rules a transaction matched (waf_msgs.h).
//
// Why C++: the library's text log lines put the client's bytes, unescaped,
// on both sides of a rule's id ("Value: `...'" before it, the msg macros,
// hostname and uri after it), so ids parsed from them can be forged by the
// request itself. Its RuleMessage objects carry the id and whether the
// rule was disruptive as fields.
#include "waf/waf_msgs.h"

#include <modsecurity/rule_message.h>
#include <modsecurity/transaction.h>

size_t waf_matched_rules(void *transaction, waf_rule_hit *out, size_t max)
{
	const auto *t =
	    static_cast<const modsecurity::Transaction *>(transaction);
	size_t n = 0;
	for (const modsecurity::RuleMessage &m : t->m_rulesMessages) {
		if (!m.m_saveMessage || m.m_ruleId <= 0)
			continue; // nolog rules: nothing to tell
		bool seen = false;
		for (size_t i = 0; i < n && !seen; i++) {
			if (out[i].id == m.m_ruleId) {
				out[i].disruptive |= m.m_isDisruptive;
				seen = true;
			}
		}
		if (seen || n == max)
			continue;
		out[n].id = m.m_ruleId;
		out[n].disruptive = m.m_isDisruptive;
		n++;
	}
	return n;
}
