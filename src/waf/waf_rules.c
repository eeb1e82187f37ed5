/* waf_rules.c - loading the managed rule set (waf.h). */
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "waf/waf.h"
#include "waf/waf_int.h"

/* The library's rule parser keeps state in globals: one load at a time
 * (snapshots are built by the main, API and cluster threads). */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

char *waf_setup_text(const cfg_waf_managed *m)
{
	/* In place of crs-setup.conf: what its example sets, from the keys
	 * of waf.managed. Ids 900000..900999 are the CRS's own for it. */
	uint64_t limit = m->body_limit ? m->body_limit : 1;
	size_t cap = 4096;
	char *s = xmalloc(cap);
	int n = snprintf(
	    s, cap,
	    "SecRuleEngine %s\n"
	    "SecRequestBodyAccess %s\n"
	    "SecRequestBodyLimit %llu\n"
	    "SecRequestBodyNoFilesLimit %llu\n"
	    "SecRequestBodyLimitAction ProcessPartial\n"
	    "SecResponseBodyAccess Off\n"
	    "SecAuditEngine Off\n"
	    "SecDefaultAction \"phase:1,log,auditlog,pass\"\n"
	    "SecDefaultAction \"phase:2,log,auditlog,pass\"\n"
	    "SecCollectionTimeout 600\n"
	    "SecAction \"id:900000,phase:1,nolog,pass,t:none,"
	    "setvar:tx.paranoia_level=%u\"\n"
	    "SecAction \"id:900110,phase:1,nolog,pass,t:none,"
	    "setvar:tx.inbound_anomaly_score_threshold=%u,"
	    "setvar:tx.outbound_anomaly_score_threshold=4\"\n"
	    "SecAction \"id:900990,phase:1,nolog,pass,t:none,"
	    "setvar:tx.crs_setup_version=334\"\n"
	    /* The body processors ModSecurity's recommended configuration
	     * turns on (the CRS reads ARGS, which JSON and XML bodies only
	     * fill through them), under its rule ids. */
	    "SecRule REQUEST_HEADERS:Content-Type "
	    "\"@rx (?i)^(?:application(?:/soap\\+|/)|text/)xml\" "
	    "\"id:200000,phase:1,t:none,pass,nolog,"
	    "ctl:requestBodyProcessor=XML\"\n"
	    "SecRule REQUEST_HEADERS:Content-Type "
	    "\"@rx (?i)^application/(?:[a-z0-9.+-]+\\+)?json\" "
	    "\"id:200001,phase:1,t:none,pass,nolog,"
	    "ctl:requestBodyProcessor=JSON\"\n"
	    /* A body its processor cannot parse is not inspected: refuse it
	     * (400), unless it was cut at body_limit (then it cannot parse,
	     * and the rules saw what they could). */
	    "SecRule REQBODY_ERROR \"!@eq 0\" \"id:200002,phase:2,t:none,"
	    "log,deny,status:400,msg:'Failed to parse request body',"
	    "chain\"\n"
	    "SecRule INBOUND_DATA_ERROR \"@eq 0\" \"t:none\"\n"
	    "SecRule MULTIPART_STRICT_ERROR \"!@eq 0\" \"id:200003,phase:2,"
	    "t:none,log,deny,status:400,msg:'Multipart request body failed "
	    "strict validation',chain\"\n"
	    "SecRule INBOUND_DATA_ERROR \"@eq 0\" \"t:none\"\n",
	    m->mode == CFG_WAF_MODE_DETECT ? "DetectionOnly" : "On",
	    m->body_limit ? "On" : "Off", (unsigned long long)limit,
	    (unsigned long long)limit, m->paranoia_level, m->anomaly_threshold);
	(void)n; /* under 2 KiB: every field is bounded */
	return s;
}

/* Everything a load depends on but the files' contents, as one string. */
static char *load_key(const cfg_waf_managed *m)
{
	char *setup = waf_setup_text(m);
	size_t cap =
	    strlen(setup) + strlen(m->crs) + 16 + m->ndisabled_rules * 12;
	for (size_t i = 0; i < m->nsetup_files; i++)
		cap += strlen(m->setup_files[i]) + 1;
	for (size_t i = 0; i < m->nrules_files; i++)
		cap += strlen(m->rules_files[i]) + 2;
	char *k = xmalloc(cap);
	size_t n = (size_t)snprintf(k, cap, "%s\n%s\n", setup, m->crs);
	for (size_t i = 0; i < m->nsetup_files; i++)
		n +=
		    (size_t)snprintf(k + n, cap - n, "%s\n", m->setup_files[i]);
	for (size_t i = 0; i < m->nrules_files; i++)
		n += (size_t)snprintf(k + n, cap - n, "+%s\n",
				      m->rules_files[i]);
	for (size_t i = 0; i < m->ndisabled_rules; i++)
		n += (size_t)snprintf(k + n, cap - n, "%u ",
				      m->disabled_rules[i]);
	free(setup);
	return k;
}

static void fail(const cfg_waf_managed *m, char *err, size_t errlen,
		 const char *what, const char *why)
{
	/* The library's messages end in a newline and name the file and
	 * line when there is one. */
	char clean[400];
	snprintf(clean, sizeof(clean), "%s", why ? why : "unknown error");
	size_t l = strlen(clean);
	while (l && (clean[l - 1] == '\n' || clean[l - 1] == ' '))
		clean[--l] = 0;
	if (m->pos.file)
		snprintf(err, errlen, "%s:%u:%u: waf.managed: %s: %s",
			 m->pos.file, m->pos.line, m->pos.col, what, clean);
	else
		snprintf(err, errlen, "waf.managed: %s: %s", what, clean);
}

/* Add one file; false (with err set) when the library refuses it. */
static bool add_file(const cfg_waf_managed *m, RulesSet *rs, const char *path,
		     const char *what, uint32_t *count, char *err,
		     size_t errlen)
{
	const char *e = NULL;
	int n = msc_rules_add_file(rs, path, &e);
	if (n < 0) {
		char w[320];
		snprintf(w, sizeof(w), "%s %s", what, path);
		fail(m, err, errlen, w, e);
		free((void *)e); /* strdup'd by the library */
		return false;
	}
	*count += (uint32_t)n;
	return true;
}

static bool add_text(const cfg_waf_managed *m, RulesSet *rs, const char *text,
		     const char *what, uint32_t *count, char *err,
		     size_t errlen)
{
	const char *e = NULL;
	int n = msc_rules_add(rs, text, &e);
	if (n < 0) {
		fail(m, err, errlen, what, e);
		free((void *)e); /* strdup'd by the library */
		return false;
	}
	*count += (uint32_t)n;
	return true;
}

static bool load_into(const cfg_waf_managed *m, RulesSet *rs, uint32_t *count,
		      char *err, size_t errlen)
{
	char *setup = waf_setup_text(m);
	bool ok = add_text(m, rs, setup, "setup", count, err, errlen);
	free(setup);
	for (size_t i = 0; ok && i < m->nsetup_files; i++)
		ok = add_file(m, rs, m->setup_files[i], "setup_files", count,
			      err, errlen);
	if (!ok)
		return false;
	size_t plen = strlen(m->crs) + 32;
	char *pattern = xmalloc(plen);
	snprintf(pattern, plen, "%s/rules/*.conf", m->crs);
	glob_t g;
	int gr = glob(pattern, GLOB_ERR, NULL, &g); /* sorted by name */
	if (gr != 0) {
		char why[300];
		snprintf(why, sizeof(why),
			 "no rules in %s (is "
			 "modsecurity-crs installed?)",
			 pattern);
		fail(m, err, errlen, "crs", why);
		free(pattern);
		if (gr != GLOB_NOMATCH)
			globfree(&g);
		return false;
	}
	free(pattern);
	for (size_t i = 0; ok && i < g.gl_pathc; i++)
		ok = add_file(m, rs, g.gl_pathv[i], "crs", count, err, errlen);
	globfree(&g);
	for (size_t i = 0; ok && i < m->nrules_files; i++)
		ok = add_file(m, rs, m->rules_files[i], "rules_files", count,
			      err, errlen);
	if (ok && m->ndisabled_rules) {
		size_t cap = 32 + m->ndisabled_rules * 12;
		char *t = xmalloc(cap);
		size_t n = (size_t)snprintf(t, cap, "SecRuleRemoveById");
		for (size_t i = 0; i < m->ndisabled_rules; i++)
			n += (size_t)snprintf(t + n, cap - n, " %u",
					      m->disabled_rules[i]);
		snprintf(t + n, cap - n, "\n");
		ok = add_text(m, rs, t, "disabled_rules", count, err, errlen);
		free(t);
	}
	return ok;
}

waf_rules *waf_rules_load(const cfg_waf_managed *m, char *err, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&load_lock);
	RulesSet *rs = msc_create_rules_set();
	uint32_t count = 0;
	bool ok = load_into(m, rs, &count, err, errlen);
	if (!ok)
		msc_rules_cleanup(rs);
	pthread_mutex_unlock(&load_lock);
	if (!ok)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	waf_rules *r = xcalloc(1, sizeof(*r));
	atomic_init(&r->refs, 1);
	r->rs = rs;
	r->count = count;
	r->key = load_key(m);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000;
	log_info("waf: %u managed rules loaded from %s in %ld ms (paranoia "
		 "level %u, mode %s)",
		 count, m->crs, ms, m->paranoia_level,
		 m->mode == CFG_WAF_MODE_DETECT ? "detect" : "block");
	return r;
}

bool waf_rules_same(const waf_rules *r, const cfg_waf_managed *m)
{
	char *k = load_key(m);
	bool same = !strcmp(k, r->key);
	free(k);
	return same;
}

uint32_t waf_rules_count(const waf_rules *r)
{
	return r ? r->count : 0;
}

void waf_rules_ref(const waf_rules *r)
{
	/* The count is the one mutable field of a shared read-only object. */
	atomic_fetch_add_explicit(&((waf_rules *)r)->refs, 1,
				  memory_order_relaxed);
}

void waf_rules_unref(const waf_rules *r)
{
	if (!r)
		return;
	waf_rules *m = (waf_rules *)r;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&load_lock);
	msc_rules_cleanup(m->rs);
	pthread_mutex_unlock(&load_lock);
	free(m->key);
	free(m);
}
