/* cmd_ctl.c - `meridian ctl`: the operator's CLI over the admin listener.
 *
 *   meridian ctl [options] health
 *   meridian ctl [options] monitors|pools|lbs list|get|create|update|patch|
 *                                         delete|references ...
 *   meridian ctl [options] pools health ID
 *   meridian ctl [options] events [filters]
 *   meridian ctl [options] certs [list|reload]
 *
 * Everything but `health` (GET /status) goes through the Cloudflare-shaped
 * v4 API (src/api/api.c, docs/API.md). Objects for create/update/patch come
 * from -f FILE (JSON or YAML; YAML through cfg_yaml, converted to jansson)
 * and/or --set key=value flags. Exit status (usage() and docs/API.md say
 * the same): 0 ok, 1 the API answered an error, 2 usage or bad input,
 * 3 the server cannot be reached, 4 not found. The token is sent in the
 * Authorization header only and never printed.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "config/cfg_diag.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"

enum {
	CTL_OK = 0,
	CTL_API_ERROR = 1, /* the API answered an error (4xx other than 404,
			      5xx) or something that is not the API */
	CTL_USAGE = 2,	   /* bad command line or input file */
	CTL_DOWN = 3,	   /* connection refused, timeout, DNS failure */
	CTL_NOT_FOUND = 4, /* 404: unknown id, zone, account or path */
};

#define DEFAULT_SERVER "http://127.0.0.1:9090"
#define MAX_SETS       64
#define FETCH_PER_PAGE 1000 /* the API's maximum per_page */
#define MAX_FILE       (4u << 20)

static void usage(FILE *f)
{
	fputs(
	    "usage: meridian ctl [options] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  health                      health of every pool and origin "
	    "(GET /status)\n"
	    "  monitors list               list monitors\n"
	    "  monitors get ID             show one monitor\n"
	    "  monitors create             create (-f FILE and/or --set)\n"
	    "  monitors update ID          replace (-f FILE and/or --set)\n"
	    "  monitors patch ID           change the given fields only\n"
	    "  monitors delete ID          delete\n"
	    "  monitors references ID      pools that use the monitor\n"
	    "  pools ...                   the same verbs for pools, and\n"
	    "  pools health ID             health of a pool's origins\n"
	    "  lbs ...                     the same verbs for load balancers "
	    "(needs a zone)\n"
	    "  events [filters]            health events, newest first\n"
	    "  cluster nodes               the live nodes of the cluster "
	    "(edge.cluster)\n"
	    "  certs [list]                the TLS certificates being "
	    "served\n"
	    "  certs reload                read the certificate and key "
	    "files again\n"
	    "                              and serve them (not the config "
	    "file)\n"
	    "  tunnels [list]              tunnels, their status and "
	    "connectors\n"
	    "  tunnels get ID              a tunnel's connector "
	    "connections\n"
	    "  regions [REGION]            the countries of each region "
	    "(region_pools)\n"
	    "  regions country CC          the region of a country\n"
	    "\n"
	    "options:\n"
	    "  --server URL     admin listener (default $MERIDIAN_SERVER, "
	    "else " DEFAULT_SERVER ")\n"
	    "  --token T        API token (default $MERIDIAN_TOKEN)\n"
	    "  --account ID     account id (default $MERIDIAN_ACCOUNT, else "
	    "'default')\n"
	    "  --zone Z         zone name or id for lbs (default "
	    "$MERIDIAN_ZONE)\n"
	    "  --json           print the API's result as JSON (for scripts)\n"
	    "  -f, --file FILE  object as JSON or YAML ('-' reads stdin)\n"
	    "  --set KEY=VALUE  set a field; VALUE is JSON if it parses, else "
	    "a\n"
	    "                   string; a.b=VALUE sets a nested field "
	    "(repeatable)\n"
	    "  --page N         list/events: only page N (default: all pages)\n"
	    "  --per-page N     list/events: page size\n"
	    "\n"
	    "event filters:\n"
	    "  --pool ID  --origin NAME  --since TIME  --until TIME  "
	    "--healthy|--unhealthy\n"
	    "  (TIME: RFC 3339 like 2026-11-26T10:00:00Z, or ms since the "
	    "epoch)\n"
	    "\n"
	    "exit status:\n"
	    "  0 ok   1 the API answered an error   2 usage or bad input\n"
	    "  3 cannot reach the server   4 not found (unknown id, zone, "
	    "path)\n",
	    f);
}

/* ---- options ----------------------------------------------------------- */

typedef struct ctl {
	const char *server, *token, *account, *zone;
	bool json;
	const char *file;
	const char *sets[MAX_SETS];
	size_t nsets;
	const char *ev_pool, *ev_origin, *since, *until;
	int healthy; /* -1 any, 0 unhealthy, 1 healthy */
	long page, per_page;
	CURL *curl;
} ctl;

/* ---- HTTP -------------------------------------------------------------- */

typedef struct buf {
	char *p;
	size_t len, cap;
} buf;

static size_t buf_write(char *p, size_t size, size_t n, void *arg)
{
	buf *b = arg;
	size_t add = size * n;
	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + add + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static bool unreachable(CURLcode res)
{
	switch (res) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

/* One request; the answer's status and body in *status and *out.
 * Returns CTL_OK, or CTL_DOWN / CTL_USAGE / CTL_API_ERROR with the reason
 * printed. path starts with '/' and is already escaped. */
static int http_call(ctl *c, const char *method, const char *path,
		     const char *body, long *status, buf *out)
{
	char url[2048];
	size_t sl = strlen(c->server);
	while (sl > 0 && c->server[sl - 1] == '/')
		sl--;
	if (snprintf(url, sizeof(url), "%.*s%s", (int)sl, c->server, path) >=
	    (int)sizeof(url)) {
		fputs("meridian ctl: URL too long\n", stderr);
		return CTL_USAGE;
	}
	CURL *h = c->curl;
	curl_easy_reset(h);
	char err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	char *auth = NULL;
	/* Not for /status, which would then answer JSON. */
	if (!strncmp(path, "/client/", 8))
		hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body)
		hdrs =
		    curl_slist_append(hdrs, "Content-Type: application/json");
	if (c->token && *c->token) {
		size_t n = strlen(c->token) + sizeof("Authorization: Bearer ");
		auth = malloc(n);
		if (!auth)
			abort();
		snprintf(auth, n, "Authorization: Bearer %s", c->token);
		hdrs = curl_slist_append(hdrs, auth);
		/* The copy in the list is libcurl's; wipe ours. */
		memset(auth, 0, n);
		free(auth);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	CURLcode res = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (res != CURLE_OK) {
		fprintf(stderr, "meridian ctl: cannot reach %.*s: %s\n",
			(int)sl, c->server,
			err[0] ? err : curl_easy_strerror(res));
		if (unreachable(res))
			return CTL_DOWN;
		return res == CURLE_URL_MALFORMAT ||
			       res == CURLE_UNSUPPORTED_PROTOCOL
			   ? CTL_USAGE
			   : CTL_DOWN;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return CTL_OK;
}

/* Call the v4 API. On success *result (and *info when asked) are new
 * references. On an error every message of the envelope is printed. */
static int api_call(ctl *c, const char *method, const char *path,
		    const json_t *body, json_t **result, json_t **info)
{
	char *text = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
		if (!text)
			abort();
	}
	long status = 0;
	buf out = {0};
	int rc = http_call(c, method, path, text, &status, &out);
	free(text);
	if (rc != CTL_OK) {
		free(out.p);
		return rc;
	}
	json_t *env = out.p ? json_loadb(out.p, out.len, 0, NULL) : NULL;
	json_t *errs = json_object_get(env, "errors");
	bool success = json_is_true(json_object_get(env, "success"));
	if (!json_is_object(env) || (!success && !json_is_array(errs))) {
		/* Not the admin listener (another server, the proxy's
		 * listener): its 404 says nothing about the object, so no
		 * "not found" a script would act on. */
		fprintf(stderr,
			"meridian ctl: HTTP %ld from %s%s: not an API answer\n",
			status, c->server, path);
		rc = CTL_API_ERROR;
		goto out;
	}
	if (!success || status < 200 || status > 299) {
		size_t i;
		json_t *e;
		json_array_foreach(errs, i, e)
		{
			const char *m =
			    json_string_value(json_object_get(e, "message"));
			fprintf(stderr, "meridian ctl: %s\n",
				m ? m : "(no message)");
		}
		if (!json_array_size(errs))
			fprintf(stderr, "meridian ctl: HTTP %ld\n", status);
		rc = status == 404 ? CTL_NOT_FOUND : CTL_API_ERROR;
		goto out;
	}
	/* Warnings the API attached to a change it applied (certificates,
	 * 1014; the config as it now runs, 1015): stderr, not the result. */
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(env, "messages"), i, m)
	{
		json_int_t code =
		    json_integer_value(json_object_get(m, "code"));
		const char *msg =
		    json_string_value(json_object_get(m, "message"));
		if ((code == 1014 || code == 1015) && msg)
			fprintf(stderr, "meridian ctl: %s\n", msg);
	}
	*result = json_incref(json_object_get(env, "result"));
	if (info)
		*info = json_incref(json_object_get(env, "result_info"));
out:
	json_decref(env);
	free(out.p);
	return rc;
}

/* ---- output ------------------------------------------------------------ */

static void print_json(const json_t *j)
{
	json_dumpf(j, stdout,
		   JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	fputc('\n', stdout);
}

static const char *str_or(const json_t *j, const char *dflt)
{
	const char *s = json_string_value(j);
	return s ? s : dflt;
}

/* A JSON value as one table cell (malloc'd). */
static char *cell(const json_t *j)
{
	char tmp[64];
	if (!j) /* a field the answer lacks (another version, a proxy) */
		return strdup("-");
	switch (json_typeof(j)) {
	case JSON_STRING:
		return strdup(json_string_value(j)[0] ? json_string_value(j)
						      : "-");
	case JSON_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(j));
		return strdup(tmp);
	case JSON_REAL:
		snprintf(tmp, sizeof(tmp), "%g", json_real_value(j));
		return strdup(tmp);
	case JSON_TRUE:
		return strdup("yes");
	case JSON_FALSE:
		return strdup("no");
	case JSON_ARRAY: {
		/* Strings joined by commas; objects by their "name", or
		 * "#i" (a rule without one). */
		size_t n = 1, i;
		json_t *v;
		json_array_foreach(j, i, v)
		{
			const json_t *s =
			    json_is_object(v) ? json_object_get(v, "name") : v;
			n += (json_is_string(s) ? json_string_length(s) : 24) +
			     1;
		}
		char *out = calloc(1, n + 1);
		if (!out)
			abort();
		json_array_foreach(j, i, v)
		{
			const json_t *s =
			    json_is_object(v) ? json_object_get(v, "name") : v;
			if (i)
				strcat(out, ",");
			if (json_is_string(s))
				strcat(out, json_string_value(s));
			else if (json_is_object(v))
				sprintf(out + strlen(out), "#%zu", i);
			else
				strcat(out, "?");
		}
		if (!out[0])
			strcpy(out, "-");
		return out;
	}
	case JSON_OBJECT: {
		char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		return s ? s : strdup("?");
	}
	default:
		return strdup("-");
	}
}

typedef struct table {
	size_t ncols, nrows; /* rows include the header */
	char **cells;	     /* nrows * ncols, malloc'd */
} table;

static void table_row(table *t, char **row)
{
	char **np = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*np));
	if (!np)
		abort();
	t->cells = np;
	memcpy(t->cells + t->nrows * t->ncols, row, t->ncols * sizeof(*row));
	t->nrows++;
}

static void table_header(table *t, const char *const *names, size_t n)
{
	char *row[16];
	t->ncols = n;
	for (size_t i = 0; i < n; i++) {
		row[i] = strdup(names[i]);
		if (!row[i])
			abort();
	}
	table_row(t, row);
}

static void table_print(table *t)
{
	size_t w[16] = {0};
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t k = 0; k < t->ncols; k++) {
			size_t l = strlen(t->cells[r * t->ncols + k]);
			if (l > w[k])
				w[k] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t k = 0; k < t->ncols; k++) {
			const char *s = t->cells[r * t->ncols + k];
			if (k + 1 == t->ncols)
				printf("%s\n", s);
			else
				printf("%-*s  ", (int)w[k], s);
		}
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* ---- kinds ------------------------------------------------------------- */

typedef enum kind { K_MONITOR, K_POOL, K_LB } kind;

static const char *kind_name(kind k)
{
	return k == K_MONITOR ? "monitor"
	       : k == K_POOL  ? "pool"
			      : "load balancer";
}

static char *esc(ctl *c, const char *s)
{
	char *e = curl_easy_escape(c->curl, s, 0);
	if (!e)
		abort();
	return e;
}

/* The collection's path for kind k, or CTL_USAGE when lbs lack a zone. */
static int base_path(ctl *c, kind k, char *out, size_t size)
{
	if (k == K_LB) {
		if (!c->zone || !*c->zone) {
			fputs("meridian ctl: lbs need a zone: --zone NAME or "
			      "$MERIDIAN_ZONE\n",
			      stderr);
			return CTL_USAGE;
		}
		char *z = esc(c, c->zone);
		snprintf(out, size, "/client/v4/zones/%s/load_balancers", z);
		curl_free(z);
		return CTL_OK;
	}
	char *a = esc(c, c->account);
	snprintf(out, size, "/client/v4/accounts/%s/load_balancers/%s", a,
		 k == K_MONITOR ? "monitors" : "pools");
	curl_free(a);
	return CTL_OK;
}

static void obj_path(ctl *c, const char *base, const char *id, const char *sub,
		     char *out, size_t size)
{
	char *e = esc(c, id);
	snprintf(out, size, "%s/%s%s%s", base, e, sub ? "/" : "",
		 sub ? sub : "");
	curl_free(e);
}

static void list_table(kind k, const json_t *items)
{
	static const char *const hm[] = {"ID",	     "TYPE",	    "PATH",
					 "INTERVAL", "DESCRIPTION", "SOURCE"};
	static const char *const hp[] = {"ID",	    "NAME",    "ENABLED",
					 "ORIGINS", "MONITOR", "SOURCE"};
	static const char *const hl[] = {"ID",	  "NAME",     "ENABLED",
					 "POOLS", "FALLBACK", "STEERING",
					 "RULES", "SOURCE"};
	table t = {0};
	if (k == K_MONITOR)
		table_header(&t, hm, 6);
	else if (k == K_POOL)
		table_header(&t, hp, 6);
	else
		table_header(&t, hl, 8);
	size_t i;
	json_t *o;
	json_array_foreach(items, i, o)
	{
		char *row[16] = {0};
#define F(name) cell(json_object_get(o, name))
		if (k == K_MONITOR) {
			const char *type =
			    json_string_value(json_object_get(o, "type"));
			bool web = type && !strncmp(type, "http", 4);
			/* Whole seconds are a number, others a string like
			 * "1500ms" (docs/API.md, Bodies). */
			const json_t *ivj = json_object_get(o, "interval");
			char iv[32];
			snprintf(iv, sizeof(iv), "%" JSON_INTEGER_FORMAT "s",
				 json_integer_value(ivj));
			row[0] = F("id");
			row[1] = F("type");
			row[2] = web ? F("path") : strdup("-");
			row[3] = json_is_integer(ivj) ? strdup(iv) : cell(ivj);
			row[4] = F("description");
			row[5] = F("source");
		} else if (k == K_POOL) {
			row[0] = F("id");
			row[1] = F("name");
			row[2] = F("enabled");
			row[3] = F("origins");
			row[4] = F("monitor");
			row[5] = F("source");
		} else {
			row[0] = F("id");
			row[1] = F("name");
			row[2] = F("enabled");
			row[3] = F("default_pools");
			row[4] = F("fallback_pool");
			row[5] = F("steering_policy");
			row[6] = F("rules");
			row[7] = F("source");
		}
#undef F
		for (size_t c = 0; c < t.ncols; c++)
			if (!row[c])
				abort();
		table_row(&t, row);
	}
	table_print(&t);
}

/* GET every page of path (or only --page) into one array. */
static int fetch_list(ctl *c, const char *path, json_t **all)
{
	*all = json_array();
	long per_page = c->per_page ? c->per_page : FETCH_PER_PAGE;
	for (long page = c->page ? c->page : 1;; page++) {
		char p[2048];
		snprintf(p, sizeof(p), "%s%cpage=%ld&per_page=%ld", path,
			 strchr(path, '?') ? '&' : '?', page, per_page);
		json_t *res = NULL, *info = NULL;
		int rc = api_call(c, "GET", p, NULL, &res, &info);
		if (rc != CTL_OK) {
			json_decref(*all);
			*all = NULL;
			return rc;
		}
		json_array_extend(*all, res);
		json_int_t pages =
		    json_integer_value(json_object_get(info, "total_pages"));
		json_decref(res);
		json_decref(info);
		if (c->page || page >= pages)
			break;
	}
	return CTL_OK;
}

/* ---- input objects ----------------------------------------------------- */

static json_t *yaml_to_json(const cfg_node *n)
{
	if (!n)
		return json_null();
	switch (n->kind) {
	case CFG_NODE_MAP: {
		json_t *o = json_object();
		for (size_t i = 0; i < n->n; i++)
			json_object_set_new(o, n->keys[i]->str,
					    yaml_to_json(n->items[i]));
		return o;
	}
	case CFG_NODE_SEQ: {
		json_t *a = json_array();
		for (size_t i = 0; i < n->n; i++)
			json_array_append_new(a, yaml_to_json(n->items[i]));
		return a;
	}
	default:
		break;
	}
	if (n->quoted)
		return json_stringn(n->str, n->len);
	if (n->is_null)
		return json_null();
	const char *s = n->str;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	/* Numbers in YAML's core schema (decimal only). */
	const char *d = s + (*s == '-' || *s == '+');
	if (isdigit((unsigned char)*d) ||
	    (*d == '.' && isdigit((unsigned char)d[1]))) {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (!*end && !errno)
			return json_integer(v);
		double f = strtod(s, &end);
		if (!*end && strspn(d, "0123456789.eE+-") == strlen(d))
			return json_real(f);
	}
	return json_stringn(s, n->len);
}

static int read_file(const char *name, buf *out)
{
	FILE *f = strcmp(name, "-") ? fopen(name, "rb") : stdin;
	if (!f) {
		fprintf(stderr, "meridian ctl: %s: %s\n", name,
			strerror(errno));
		return CTL_USAGE;
	}
	char chunk[8192];
	size_t n;
	int rc = CTL_OK;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (out->len + n > MAX_FILE) {
			fprintf(stderr,
				"meridian ctl: %s: larger than %u bytes\n",
				name, MAX_FILE);
			rc = CTL_USAGE;
			break;
		}
		if (buf_write(chunk, 1, n, out) != n)
			abort();
	}
	if (rc == CTL_OK && ferror(f)) {
		fprintf(stderr, "meridian ctl: %s: read error\n", name);
		rc = CTL_USAGE;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

/* The object in file name: JSON when it starts with '{', else YAML. */
static int load_object(const char *name, json_t **obj)
{
	buf b = {0};
	int rc = read_file(name, &b);
	if (rc != CTL_OK) {
		free(b.p);
		return rc;
	}
	const char *p = b.p ? b.p : "";
	while (isspace((unsigned char)*p))
		p++;
	*obj = NULL;
	if (*p == '{' || *p == '[') {
		json_error_t je;
		*obj = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, &je);
		if (!*obj)
			fprintf(stderr, "meridian ctl: %s:%d:%d: %s\n", name,
				je.line, je.column, je.text);
	} else {
		core_arena *a = core_arena_new(0);
		cfg_errs e = {.file = name};
		cfg_node *root = cfg_yaml_parse(a, b.p ? b.p : "", b.len, &e);
		for (size_t i = 0; i < e.n; i++)
			fprintf(stderr, "meridian ctl: %s:%u:%u: %s\n", name,
				e.v[i].line, e.v[i].col, e.v[i].msg);
		if (root && !e.n)
			*obj = yaml_to_json(root);
		else if (!e.n)
			fprintf(stderr, "meridian ctl: %s: empty document\n",
				name);
		cfg_errs_clear(&e);
		core_arena_free(a);
	}
	free(b.p);
	if (!*obj)
		return CTL_USAGE;
	if (!json_is_object(*obj)) {
		fprintf(stderr,
			"meridian ctl: %s: expected an object (a mapping)\n",
			name);
		json_decref(*obj);
		*obj = NULL;
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* Split KEY of --set KEY=VALUE into parts: "origins[0].weight" and
 * "origins.0.weight" both give origins, 0, weight. Returns the count, or
 * 0 when a part is empty or too long, or there are more than max. */
static size_t key_parts(const char *key, size_t len, char parts[][128],
			size_t max)
{
	size_t n = 0, l = 0;
	for (size_t i = 0; i <= len; i++) {
		char ch = i < len ? key[i] : '\0';
		if (ch == ']')
			continue;
		if (ch == '.' || ch == '[' || ch == '\0') {
			if (!l || n == max)
				return 0;
			parts[n++][l] = '\0';
			l = 0;
			continue;
		}
		if (n == max || l + 1 >= sizeof(parts[0]))
			return 0; /* no part n to write into */
		parts[n][l++] = ch;
	}
	return n;
}

/* A list index, or -1. */
static long index_of(const char *s)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	long v = strtol(s, &end, 10);
	return *end || v > 100000 ? -1 : v;
}

/* --set KEY=VALUE into obj: nested objects are made as needed; list items
 * are addressed by index (the index must exist, or be the list's size to
 * append). Reports the first top-level key in *top (for patch). */
static int apply_set(json_t *obj, const char *set, char top[128])
{
	const char *eq = strchr(set, '=');
	char parts[16][128];
	size_t n = eq ? key_parts(set, (size_t)(eq - set), parts, 16) : 0;
	if (!n) {
		fprintf(stderr,
			"meridian ctl: --set %s: expected KEY=VALUE (KEY like "
			"name, a.b or origins[0].weight; at most 16 parts of "
			"127 bytes)\n",
			set);
		return CTL_USAGE;
	}
	json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
	if (!v)
		v = json_string(eq + 1);
	if (!v) { /* not UTF-8 */
		fprintf(stderr, "meridian ctl: --set %s: value is not UTF-8\n",
			parts[0]);
		return CTL_USAGE;
	}
	snprintf(top, 128, "%s", parts[0]);
	json_t *cur = obj;
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n;
		if (json_is_array(cur)) {
			long ix = index_of(parts[i]);
			size_t size = json_array_size(cur);
			if (ix < 0 || (size_t)ix > size ||
			    (!last && (size_t)ix == size)) {
				fprintf(stderr,
					"meridian ctl: --set %.*s: no item "
					"%s in a list of %zu\n",
					(int)(eq - set), set, parts[i], size);
				json_decref(v);
				return CTL_USAGE;
			}
			if (last) {
				if ((size_t)ix == size)
					json_array_append_new(cur, v);
				else
					json_array_set_new(cur, (size_t)ix, v);
				return CTL_OK;
			}
			cur = json_array_get(cur, (size_t)ix);
			continue;
		}
		if (last) {
			json_object_set_new(cur, parts[i], v);
			return CTL_OK;
		}
		json_t *next = json_object_get(cur, parts[i]);
		if (!json_is_object(next) && !json_is_array(next)) {
			if (index_of(parts[i + 1]) >= 0) {
				fprintf(stderr,
					"meridian ctl: --set %.*s: %s is not "
					"a list\n",
					(int)(eq - set), set, parts[i]);
				json_decref(v);
				return CTL_USAGE;
			}
			next = json_object();
			json_object_set_new(cur, parts[i], next);
		}
		cur = next;
	}
	json_decref(v);
	return CTL_USAGE; /* not reached */
}

/* The object of create/update (from -f and --set), or the body of patch:
 * the file's fields, and for each --set its whole top-level field as it
 * will be after the change, from current (the object as it is now). */
static int build_object(ctl *c, const json_t *current, json_t **obj)
{
	*obj = NULL;
	if (!c->file && !c->nsets) {
		fputs("meridian ctl: give the object with -f FILE and/or --set "
		      "KEY=VALUE\n",
		      stderr);
		return CTL_USAGE;
	}
	if (c->file) {
		int rc = load_object(c->file, obj);
		if (rc != CTL_OK)
			return rc;
	} else {
		*obj = json_object();
	}
	json_t *work = *obj;
	if (current) {
		work = json_deep_copy(current);
		json_object_update(work, *obj);
	}
	int rc = CTL_OK;
	for (size_t i = 0; i < c->nsets && rc == CTL_OK; i++) {
		char top[128];
		rc = apply_set(work, c->sets[i], top);
		if (rc == CTL_OK && current)
			json_object_set(*obj, top, json_object_get(work, top));
	}
	if (current)
		json_decref(work);
	if (rc != CTL_OK) {
		json_decref(*obj);
		*obj = NULL;
	}
	return rc;
}

/* ---- commands ---------------------------------------------------------- */

static void print_refs(const json_t *refs)
{
	static const char *const h[] = {"REFERENCE", "TYPE", "ID", "NAME"};
	table t = {0};
	table_header(&t, h, 4);
	size_t i;
	json_t *r;
	json_array_foreach(refs, i, r)
	{
		char *row[4] = {cell(json_object_get(r, "reference_type")),
				cell(json_object_get(r, "resource_type")),
				cell(json_object_get(r, "resource_id")),
				cell(json_object_get(r, "resource_name"))};
		table_row(&t, row);
	}
	table_print(&t);
}

static void print_pool_health(const json_t *h)
{
	static const char *const hd[] = {"POP/ORIGIN", "ADDRESS", "STATE",
					 "RTT", "REASON"};
	table t = {0};
	table_header(&t, hd, 5);
	const char *pop;
	json_t *p;
	json_object_foreach((json_t *)h, pop, p)
	{
		char *row[5] = {strdup(pop), strdup(""),
				cell(json_object_get(p, "state")), strdup(""),
				strdup("")};
		table_row(&t, row);
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(p, "origins"), i, o)
		{
			char name[300];
			snprintf(name, sizeof(name), "  %s",
				 str_or(json_object_get(o, "name"), "?"));
			char *r2[5] = {
			    strdup(name), cell(json_object_get(o, "address")),
			    cell(json_object_get(o, "state")),
			    cell(json_object_get(o, "rtt")),
			    cell(json_object_get(o, "failure_reason"))};
			table_row(&t, r2);
		}
	}
	table_print(&t);
}

static int cmd_object(ctl *c, kind k, const char *verb, char **args,
		      size_t nargs)
{
	char base[1024], path[2048];
	int rc = base_path(c, k, base, sizeof(base));
	if (rc != CTL_OK)
		return rc;
	static const char *const verbs[] = {"list",	  "get",   "create",
					    "update",	  "patch", "delete",
					    "references", "health"};
	size_t nv = k == K_POOL ? 8 : k == K_MONITOR ? 7 : 6;
	size_t v = 0;
	while (v < nv && strcmp(verb, verbs[v]))
		v++;
	if (v == nv) {
		fprintf(stderr, "meridian ctl: unknown verb '%s' for %s\n",
			verb,
			k == K_LB     ? "lbs"
			: k == K_POOL ? "pools"
				      : "monitors");
		usage(stderr);
		return CTL_USAGE;
	}
	bool needs_id = strcmp(verb, "list") && strcmp(verb, "create");
	if (needs_id ? nargs != 1 : nargs != 0) {
		fprintf(stderr, "meridian ctl: %s %s: %s\n",
			k == K_LB     ? "lbs"
			: k == K_POOL ? "pools"
				      : "monitors",
			verb,
			needs_id ? "expects one ID" : "takes no argument");
		return CTL_USAGE;
	}
	const char *id = needs_id ? args[0] : NULL;
	json_t *res = NULL, *body = NULL;
	if (!strcmp(verb, "list")) {
		rc = fetch_list(c, base, &res);
		if (rc == CTL_OK) {
			if (c->json)
				print_json(res);
			else
				list_table(k, res);
		}
	} else if (!strcmp(verb, "get") || !strcmp(verb, "references") ||
		   (k == K_POOL && !strcmp(verb, "health"))) {
		bool sub = strcmp(verb, "get") != 0;
		obj_path(c, base, id, sub ? verb : NULL, path, sizeof(path));
		rc = api_call(c, "GET", path, NULL, &res, NULL);
		if (rc == CTL_OK) {
			if (c->json || !sub)
				print_json(res);
			else if (!strcmp(verb, "references"))
				print_refs(res);
			else
				print_pool_health(
				    json_object_get(res, "pop_health"));
		}
	} else if (!strcmp(verb, "create") || !strcmp(verb, "update") ||
		   !strcmp(verb, "patch")) {
		const char *method = !strcmp(verb, "create")   ? "POST"
				     : !strcmp(verb, "update") ? "PUT"
							       : "PATCH";
		if (id)
			obj_path(c, base, id, NULL, path, sizeof(path));
		else
			snprintf(path, sizeof(path), "%s", base);
		json_t *cur = NULL;
		/* patch --set a[0].b: change the field as it is now. */
		if (!strcmp(method, "PATCH") && c->nsets) {
			rc = api_call(c, "GET", path, NULL, &cur, NULL);
			if (rc != CTL_OK)
				return rc;
		}
		rc = build_object(c, cur, &body);
		json_decref(cur);
		if (rc != CTL_OK)
			return rc;
		rc = api_call(c, method, path, body, &res, NULL);
		if (rc == CTL_OK)
			print_json(res);
	} else if (!strcmp(verb, "delete")) {
		obj_path(c, base, id, NULL, path, sizeof(path));
		rc = api_call(c, "DELETE", path, NULL, &res, NULL);
		if (rc == CTL_OK) {
			if (c->json)
				print_json(res);
			else
				printf("deleted %s %s\n", kind_name(k), id);
		}
	} else {
		fprintf(stderr, "meridian ctl: unknown verb '%s'\n", verb);
		usage(stderr);
		return CTL_USAGE;
	}
	json_decref(res);
	json_decref(body);
	return rc;
}

static void add_query(ctl *c, char *q, size_t size, const char *key,
		      const char *val)
{
	if (!val)
		return;
	char *e = esc(c, val);
	size_t n = strlen(q);
	snprintf(q + n, size - n, "%s%s=%s", strchr(q, '?') ? "&" : "?", key,
		 e);
	curl_free(e);
}

static int cmd_events(ctl *c, size_t nargs)
{
	if (nargs) {
		fputs("meridian ctl: events takes filters only (--pool, "
		      "--origin, --since, --until, --healthy, --unhealthy)\n",
		      stderr);
		return CTL_USAGE;
	}
	char path[2048] = "/client/v4/user/load_balancing_analytics/events";
	add_query(c, path, sizeof(path), "pool_id", c->ev_pool);
	add_query(c, path, sizeof(path), "origin_name", c->ev_origin);
	add_query(c, path, sizeof(path), "since", c->since);
	add_query(c, path, sizeof(path), "until", c->until);
	if (c->healthy >= 0)
		add_query(c, path, sizeof(path), "origin_healthy",
			  c->healthy ? "true" : "false");
	json_t *all = NULL;
	int rc = fetch_list(c, path, &all);
	if (rc != CTL_OK)
		return rc;
	if (c->json) {
		print_json(all);
		json_decref(all);
		return CTL_OK;
	}
	static const char *const h[] = {"TIME", "POOL", "ORIGIN", "CHANGE",
					"REASON"};
	table t = {0};
	table_header(&t, h, 5);
	size_t i;
	json_t *ev;
	json_array_foreach(all, i, ev)
	{
		json_t *pool = json_array_get(json_object_get(ev, "pool"), 0);
		json_t *o = json_array_get(json_object_get(pool, "origins"), 0);
		const json_t *ch = o ? o : pool;
		char change[128];
		snprintf(change, sizeof(change), "%s -> %s",
			 str_or(json_object_get(ch, "old_state"), "?"),
			 str_or(json_object_get(ch, "new_state"), "?"));
		char *row[5] = {
		    cell(json_object_get(ev, "timestamp")),
		    cell(json_object_get(pool, "id")),
		    o ? cell(json_object_get(o, "name")) : strdup("(pool)"),
		    strdup(change),
		    cell(json_object_get(ch, o ? "failure_reason" : "reason"))};
		table_row(&t, row);
	}
	table_print(&t);
	json_decref(all);
	return CTL_OK;
}

/* The certificates as a table (GET /client/v4/edge/certificates). */
static void certs_table(const json_t *certs)
{
	static const char *const h[] = {"FILE",	 "KEY",	      "SUBJECT",
					"NAMES", "NOT_AFTER", "DEFAULT",
					"SHA256"};
	table t = {0};
	table_header(&t, h, 7);
	size_t i;
	json_t *ci;
	json_array_foreach(certs, i, ci)
	{
		char key[64];
		const char *curve =
		    json_string_value(json_object_get(ci, "curve"));
		if (curve)
			snprintf(key, sizeof(key), "%s %s",
				 str_or(json_object_get(ci, "key_type"), "?"),
				 curve);
		else
			snprintf(key, sizeof(key), "%s %" JSON_INTEGER_FORMAT,
				 str_or(json_object_get(ci, "key_type"), "?"),
				 json_integer_value(
				     json_object_get(ci, "key_bits")));
		/* The first 16 hex digits tell certificates apart. */
		char fp[20];
		snprintf(
		    fp, sizeof(fp), "%.16s",
		    str_or(json_object_get(ci, "fingerprint_sha256"), "-"));
		char *row[7] = {cell(json_object_get(ci, "file")),
				strdup(key),
				cell(json_object_get(ci, "subject_cn")),
				cell(json_object_get(ci, "san")),
				cell(json_object_get(ci, "not_after")),
				cell(json_object_get(ci, "default")),
				strdup(fp)};
		for (size_t k = 0; k < 7; k++)
			if (!row[k])
				abort();
		table_row(&t, row);
	}
	table_print(&t);
}

/* GET path. With --json the result is printed here and *res stays NULL;
 * else the caller gets it to print its own way. */
static int get_or_print(ctl *c, const char *path, json_t **res)
{
	*res = NULL;
	int rc = api_call(c, "GET", path, NULL, res, NULL);
	if (rc != CTL_OK || !c->json)
		return rc;
	print_json(*res);
	json_decref(*res);
	*res = NULL;
	return CTL_OK;
}

/* cluster nodes: GET .../load_balancers/cluster/nodes. */
static int cmd_cluster(ctl *c, char **args, size_t nargs)
{
	if (nargs != 1 || strcmp(args[0], "nodes")) {
		fputs("meridian ctl: cluster takes nodes\n", stderr);
		return CTL_USAGE;
	}
	char *a = esc(c, c->account);
	char path[512];
	snprintf(path, sizeof(path),
		 "/client/v4/accounts/%s/load_balancers/cluster/nodes", a);
	curl_free(a);
	json_t *res = NULL;
	int rc = get_or_print(c, path, &res);
	if (rc != CTL_OK || !res)
		return rc;
	static const char *const h[] = {"NAME", "REGION", "VERSION", "STARTED",
					"SELF"};
	table t = {0};
	table_header(&t, h, 5);
	size_t i;
	json_t *n;
	json_array_foreach(res, i, n)
	{
		char *row[5] = {cell(json_object_get(n, "name")),
				cell(json_object_get(n, "region")),
				cell(json_object_get(n, "version")),
				cell(json_object_get(n, "started")),
				cell(json_object_get(n, "self"))};
		for (size_t k = 0; k < 5; k++)
			if (!row[k])
				abort();
		table_row(&t, row);
	}
	table_print(&t);
	json_decref(res);
	return CTL_OK;
}

/* certs [list] | certs reload */
static int cmd_certs(ctl *c, char **args, size_t nargs)
{
	const char *verb = nargs ? args[0] : "list";
	bool reload = !strcmp(verb, "reload");
	if (nargs > 1 || (!reload && strcmp(verb, "list"))) {
		fputs("meridian ctl: certs takes list (the default) or "
		      "reload\n",
		      stderr);
		return CTL_USAGE;
	}
	json_t *res = NULL;
	int rc =
	    reload ? api_call(c, "POST", "/client/v4/edge/certificates/reload",
			      NULL, &res, NULL)
		   : api_call(c, "GET", "/client/v4/edge/certificates", NULL,
			      &res, NULL);
	if (rc != CTL_OK)
		return rc;
	if (c->json) {
		print_json(res);
	} else if (reload) {
		json_t *certs = json_object_get(res, "certificates");
		printf("reloaded %zu certificate%s (config generation "
		       "%" JSON_INTEGER_FORMAT ")\n",
		       json_array_size(certs),
		       json_array_size(certs) == 1 ? "" : "s",
		       json_integer_value(json_object_get(res, "generation")));
		certs_table(certs);
	} else {
		certs_table(res);
	}
	json_decref(res);
	return CTL_OK;
}

/* regions [REGION] | regions country CC (GET .../load_balancers/regions
 * [/{region}][?country_code_a2=CC]): a REGION COUNTRIES table. */
static int cmd_regions(ctl *c, char **args, size_t nargs)
{
	bool by_country = nargs && !strcmp(args[0], "country");
	if ((by_country && nargs != 2) || (!by_country && nargs > 1)) {
		fputs("meridian ctl: regions takes a region (WNAM, ...) or "
		      "country CC\n",
		      stderr);
		return CTL_USAGE;
	}
	char path[512];
	char *a = esc(c, c->account);
	char *arg = nargs ? esc(c, args[nargs - 1]) : NULL;
	if (by_country)
		snprintf(path, sizeof(path),
			 "/client/v4/accounts/%s/load_balancers/regions"
			 "?country_code_a2=%s",
			 a, arg);
	else
		snprintf(path, sizeof(path),
			 "/client/v4/accounts/%s/load_balancers/regions%s%s", a,
			 arg ? "/" : "", arg ? arg : "");
	curl_free(a);
	curl_free(arg);
	json_t *res = NULL;
	int rc = get_or_print(c, path, &res);
	if (rc != CTL_OK || !res)
		return rc;
	json_t *regions = json_object_get(res, "regions");
	if (by_country && json_array_size(regions) == 0) {
		fprintf(stderr,
			"meridian ctl: %s is in no region (not an ISO 3166-1 "
			"country code Meridian knows)\n",
			args[1]);
		json_decref(res);
		return CTL_NOT_FOUND;
	}
	table t = {0};
	static const char *const h[] = {"REGION", "COUNTRIES"};
	table_header(&t, h, 2);
	size_t i;
	json_t *r;
	json_array_foreach(regions, i, r)
	{
		json_t *cs = json_object_get(r, "countries");
		size_t n = json_array_size(cs), k;
		char *list = calloc(1, n * 3 + 1);
		if (!list)
			abort();
		json_t *ci;
		json_array_foreach(cs, k, ci)
		{
			const char *cc =
			    str_or(json_object_get(ci, "country_code_a2"), "?");
			snprintf(list + strlen(list), 4, "%s%.2s", k ? " " : "",
				 cc);
		}
		char *row[2] = {cell(json_object_get(r, "region_code")), list};
		if (!row[0])
			abort();
		table_row(&t, row);
	}
	table_print(&t);
	json_decref(res);
	return CTL_OK;
}

/* tunnels [list] | tunnels get ID (GET .../cfd_tunnel[/{id}]). */
static int cmd_tunnels(ctl *c, char **args, size_t nargs)
{
	const char *verb = nargs ? args[0] : "list";
	bool get = !strcmp(verb, "get");
	if ((get && nargs != 2) ||
	    (!get && (strcmp(verb, "list") || nargs > 1))) {
		fputs("meridian ctl: tunnels takes list (the default) or get "
		      "ID\n",
		      stderr);
		return CTL_USAGE;
	}
	char path[512];
	char *a = esc(c, c->account);
	if (get) {
		char *id = esc(c, args[1]);
		snprintf(path, sizeof(path),
			 "/client/v4/accounts/%s/cfd_tunnel/%s", a, id);
		curl_free(id);
	} else {
		snprintf(path, sizeof(path),
			 "/client/v4/accounts/%s/cfd_tunnel", a);
	}
	curl_free(a);
	json_t *res = NULL;
	int rc = get_or_print(c, path, &res);
	if (rc != CTL_OK || !res)
		return rc;
	table t = {0};
	if (!get) {
		static const char *const h[] = {"TUNNEL", "STATUS",
						"CONNECTIONS", "CONNECTORS"};
		table_header(&t, h, 4);
		size_t i;
		json_t *tu;
		json_array_foreach(res, i, tu)
		{
			json_t *conns = json_object_get(tu, "connections");
			char n[16], names[256] = "";
			snprintf(n, sizeof(n), "%zu", json_array_size(conns));
			size_t k, len = 0;
			json_t *ci;
			json_array_foreach(conns, k, ci)
			{
				const char *nm = str_or(
				    json_object_get(ci, "client_id"), "?");
				/* Each connector once, in order. */
				if (strstr(names, nm))
					continue;
				int w =
				    snprintf(names + len, sizeof(names) - len,
					     "%s%s", len ? "," : "", nm);
				if (w > 0 && (size_t)w < sizeof(names) - len)
					len += (size_t)w;
			}
			char *row[4] = {cell(json_object_get(tu, "id")),
					cell(json_object_get(tu, "status")),
					strdup(n), strdup(len ? names : "-")};
			for (size_t r = 0; r < 4; r++)
				if (!row[r])
					abort();
			table_row(&t, row);
		}
	} else {
		printf("tunnel %s: %s\n",
		       str_or(json_object_get(res, "id"), "?"),
		       str_or(json_object_get(res, "status"), "?"));
		static const char *const h[] = {"ID", "CONNECTOR", "ORIGIN_IP",
						"OPENED_AT", "DRAINING"};
		table_header(&t, h, 5);
		size_t i;
		json_t *ci;
		json_array_foreach(json_object_get(res, "connections"), i, ci)
		{
			char *row[5] = {
			    cell(json_object_get(ci, "id")),
			    cell(json_object_get(ci, "client_id")),
			    cell(json_object_get(ci, "origin_ip")),
			    cell(json_object_get(ci, "opened_at")),
			    cell(json_object_get(ci, "is_pending_reconnect"))};
			for (size_t r = 0; r < 5; r++)
				if (!row[r])
					abort();
			table_row(&t, row);
		}
	}
	table_print(&t);
	json_decref(res);
	return CTL_OK;
}

/* GET /status (text or JSON) to stdout. */
static int cmd_health(ctl *c, size_t nargs)
{
	if (nargs) {
		fputs("meridian ctl: health takes no argument\n", stderr);
		return CTL_USAGE;
	}
	long status = 0;
	buf out = {0};
	int rc =
	    http_call(c, "GET", c->json ? "/status?format=json" : "/status",
		      NULL, &status, &out);
	if (rc == CTL_OK && status != 200) {
		/* The admin listener always serves /status: a 404 is another
		 * server, not an unknown object. */
		fprintf(stderr,
			"meridian ctl: %s/status: HTTP %ld (not an admin "
			"listener?)\n",
			c->server, status);
		rc = CTL_API_ERROR;
	} else if (rc == CTL_OK && out.p) {
		fwrite(out.p, 1, out.len, stdout);
	}
	free(out.p);
	return rc;
}

static int positive(const char *name, const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1) {
		fprintf(stderr, "meridian ctl: %s: expected a number >= 1\n",
			name);
		return -1;
	}
	*out = v;
	return 0;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

int cmd_ctl(int argc, char **argv)
{
	enum {
		O_SERVER = 256,
		O_TOKEN,
		O_ACCOUNT,
		O_ZONE,
		O_JSON,
		O_SET,
		O_POOL,
		O_ORIGIN,
		O_SINCE,
		O_UNTIL,
		O_HEALTHY,
		O_UNHEALTHY,
		O_PAGE,
		O_PER_PAGE,
	};
	static const struct option opts[] = {
	    {"server", required_argument, NULL, O_SERVER},
	    {"token", required_argument, NULL, O_TOKEN},
	    {"account", required_argument, NULL, O_ACCOUNT},
	    {"zone", required_argument, NULL, O_ZONE},
	    {"json", no_argument, NULL, O_JSON},
	    {"file", required_argument, NULL, 'f'},
	    {"set", required_argument, NULL, O_SET},
	    {"pool", required_argument, NULL, O_POOL},
	    {"origin", required_argument, NULL, O_ORIGIN},
	    {"since", required_argument, NULL, O_SINCE},
	    {"until", required_argument, NULL, O_UNTIL},
	    {"healthy", no_argument, NULL, O_HEALTHY},
	    {"unhealthy", no_argument, NULL, O_UNHEALTHY},
	    {"page", required_argument, NULL, O_PAGE},
	    {"per-page", required_argument, NULL, O_PER_PAGE},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	ctl c = {
	    .server = env_or("MERIDIAN_SERVER", DEFAULT_SERVER),
	    .token = env_or("MERIDIAN_TOKEN", NULL),
	    .account = env_or("MERIDIAN_ACCOUNT", "default"),
	    .zone = env_or("MERIDIAN_ZONE", NULL),
	    .healthy = -1,
	};
	int o;
	optind = 1;
	opterr = 1;
	/* Options may come before or after the command words. */
	while ((o = getopt_long(argc, argv, "f:hj", opts, NULL)) != -1) {
		switch (o) {
		case O_SERVER:
			c.server = optarg;
			break;
		case O_TOKEN:
			c.token = optarg;
			break;
		case O_ACCOUNT:
			c.account = optarg;
			break;
		case O_ZONE:
			c.zone = optarg;
			break;
		case 'j':
		case O_JSON:
			c.json = true;
			break;
		case 'f':
			c.file = optarg;
			break;
		case O_SET:
			if (c.nsets == MAX_SETS) {
				fprintf(stderr,
					"meridian ctl: at most %d --set\n",
					MAX_SETS);
				return CTL_USAGE;
			}
			c.sets[c.nsets++] = optarg;
			break;
		case O_POOL:
			c.ev_pool = optarg;
			break;
		case O_ORIGIN:
			c.ev_origin = optarg;
			break;
		case O_SINCE:
			c.since = optarg;
			break;
		case O_UNTIL:
			c.until = optarg;
			break;
		case O_HEALTHY:
			c.healthy = 1;
			break;
		case O_UNHEALTHY:
			c.healthy = 0;
			break;
		case O_PAGE:
			if (positive("--page", optarg, &c.page) < 0)
				return CTL_USAGE;
			break;
		case O_PER_PAGE:
			if (positive("--per-page", optarg, &c.per_page) < 0)
				return CTL_USAGE;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		default: /* getopt said what */
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		fputs("meridian ctl: no command\n", stderr);
		usage(stderr);
		return CTL_USAGE;
	}
	const char *what = argv[optind];
	char **rest = argv + optind + 1;
	size_t nrest = (size_t)(argc - optind - 1);
	kind k;
	bool object = true;
	if (!strcmp(what, "monitors") || !strcmp(what, "monitor"))
		k = K_MONITOR;
	else if (!strcmp(what, "pools") || !strcmp(what, "pool"))
		k = K_POOL;
	else if (!strcmp(what, "lbs") || !strcmp(what, "lb") ||
		 !strcmp(what, "load_balancers"))
		k = K_LB;
	else if (!strcmp(what, "health") || !strcmp(what, "events") ||
		 !strcmp(what, "certs") || !strcmp(what, "certificates") ||
		 !strcmp(what, "tunnels") || !strcmp(what, "tunnel") ||
		 !strcmp(what, "cluster") || !strcmp(what, "regions"))
		object = false, k = K_MONITOR;
	else {
		fprintf(stderr, "meridian ctl: unknown command '%s'\n", what);
		usage(stderr);
		return CTL_USAGE;
	}
	if (object && !nrest) {
		fprintf(stderr,
			"meridian ctl: %s: which verb? list, get, create, "
			"update, patch, delete, references\n",
			what);
		return CTL_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fputs("meridian ctl: cannot initialise libcurl\n", stderr);
		return CTL_API_ERROR;
	}
	c.curl = curl_easy_init();
	int rc;
	if (!c.curl) {
		fputs("meridian ctl: cannot initialise libcurl\n", stderr);
		rc = CTL_API_ERROR;
	} else if (!object) {
		rc = !strcmp(what, "health")	? cmd_health(&c, nrest)
		     : !strcmp(what, "events")	? cmd_events(&c, nrest)
		     : !strcmp(what, "cluster") ? cmd_cluster(&c, rest, nrest)
		     : !strcmp(what, "regions") ? cmd_regions(&c, rest, nrest)
		     : !strncmp(what, "tunnel", 6)
			 ? cmd_tunnels(&c, rest, nrest)
			 : cmd_certs(&c, rest, nrest);
	} else {
		rc = cmd_object(&c, k, rest[0], rest + 1, nrest - 1);
	}
	if (c.curl)
		curl_easy_cleanup(c.curl);
	curl_global_cleanup();
	return rc;
}
