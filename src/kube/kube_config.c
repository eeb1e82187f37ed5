/* kube_config.c - the `kubernetes:` section and kubeconfig files; see
 * kube_config.h. */
#include "kube/kube_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/cfg_diag.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"
#include "core/core_util.h"
#include "tunnel/tun_ingress.h"

#define ERR(e, n, ...) cfg_errs_add((e), (n)->line, (n)->col, __VA_ARGS__)

static const char *const keys[] = {
    "api",
    "kubeconfig",
    "namespace",
    "ingress_class",
    "status_hostname",
    "token_file",
    "ca",
    "without_class",
};

/* A DNS label (RFC 1123): what a namespace and a class name are. */
static bool dns_label(const char *s, size_t len)
{
	if (len < 1 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

void kube_settings_load(void *arg, core_arena *a, const cfg_node *n,
			cfg_errs *e)
{
	kube_settings *k = arg;
	k->loaded = true;
	k->line = n->line;
	k->col = n->col;
	k->ingress_class = "meridian";
	if (n->kind != CFG_NODE_MAP) {
		ERR(e, n, "kubernetes: expected a mapping, got %s",
		    cfg_node_kind_name(n));
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const cfg_node *key = n->keys[i], *v = n->items[i];
		if (key->kind != CFG_NODE_SCALAR)
			continue;
		size_t j = 0;
		while (j < ARRAY_LEN(keys) && strcmp(key->str, keys[j]))
			j++;
		if (j == ARRAY_LEN(keys)) {
			ERR(e, key, "unknown key '%s' in kubernetes", key->str);
			continue;
		}
		if (v->bad)
			continue;
		if (!strcmp(key->str, "without_class")) {
			const char *b =
			    v->kind == CFG_NODE_SCALAR && !v->is_null ? v->str
								      : "";
			if (strcmp(b, "true") && strcmp(b, "false"))
				ERR(e, v,
				    "kubernetes.without_class: expected true "
				    "or false");
			else
				k->without_class = !strcmp(b, "true");
			continue;
		}
		if (v->kind != CFG_NODE_SCALAR || v->is_null || !v->len) {
			ERR(e, v, "kubernetes.%s: expected a string, got %s",
			    key->str,
			    v->kind == CFG_NODE_SCALAR && !v->is_null
				? "''"
				: cfg_node_kind_name(v));
			continue;
		}
		const char *s = core_arena_strndup(a, v->str, v->len);
		const char *k0 = key->str;
		if (!strcmp(k0, "api")) {
			size_t l = strlen(s);
			if (strncmp(s, "https://", 8) &&
			    strncmp(s, "http://", 7))
				ERR(e, v,
				    "kubernetes.api: expected https://HOST:"
				    "PORT, got '%s'",
				    s);
			else {
				char *t = core_arena_strdup(a, s);
				while (l > 8 && t[l - 1] == '/')
					t[--l] = '\0';
				k->api = t;
			}
		} else if (!strcmp(k0, "kubeconfig")) {
			k->kubeconfig = s;
		} else if (!strcmp(k0, "namespace")) {
			if (!dns_label(s, v->len))
				ERR(e, v,
				    "kubernetes.namespace: expected a "
				    "Kubernetes name (lowercase letters, "
				    "digits, '-'), got '%s'",
				    s);
			else
				k->namespace = s;
		} else if (!strcmp(k0, "ingress_class")) {
			bool ok = v->len <= 253;
			for (size_t q = 0; q < v->len && ok; q++)
				ok = (s[q] >= 'a' && s[q] <= 'z') ||
				     (s[q] >= '0' && s[q] <= '9') ||
				     s[q] == '-' || s[q] == '.';
			if (!ok)
				ERR(e, v,
				    "kubernetes.ingress_class: expected a "
				    "Kubernetes name, got '%s'",
				    s);
			else
				k->ingress_class = s;
		} else if (!strcmp(k0, "status_hostname")) {
			const char *why = tun_ingress_check_hostname(s, v->len);
			if (why || s[0] == '*')
				ERR(e, v,
				    "kubernetes.status_hostname: %s, got '%s'",
				    why ? why : "no wildcard", s);
			else
				k->status_hostname = s;
		} else if (!strcmp(k0, "token_file")) {
			k->token_file = s;
		} else {
			k->ca = s;
		}
	}
	if (k->api && k->kubeconfig)
		ERR(e, n,
		    "kubernetes: 'api' and 'kubeconfig' exclude each "
		    "other");
}

/* --- base64 ----------------------------------------------------------------
 */

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

int kube_base64_decode(core_arena *a, const char *s, size_t len, char **out,
		       size_t *outlen)
{
	char *o = core_arena_alloc(a, len / 4 * 3 + 4);
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	bool pad = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad = true;
			continue;
		}
		int v = b64val(c);
		if (v < 0 || pad)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (bits >= 6)
		return -1; /* one character left over */
	o[n] = '\0';
	*out = o;
	*outlen = n;
	return 0;
}

/* --- kubeconfig --------------------------------------------------------------
 */

static const char *sval(const cfg_node *m, const char *key)
{
	const cfg_node *v = m ? cfg_node_get(m, key) : NULL;
	if (!v || v->kind != CFG_NODE_SCALAR || v->is_null)
		return NULL;
	return v->str;
}

/* The entry named name of list key ("clusters"), its field sub ("cluster"). */
static const cfg_node *named(const cfg_node *root, const char *key,
			     const char *name, const char *sub)
{
	const cfg_node *l = cfg_node_get(root, key);
	if (!l || l->kind != CFG_NODE_SEQ)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const cfg_node *it = l->items[i];
		if (it->kind != CFG_NODE_MAP)
			continue;
		const char *nm = sval(it, "name");
		const cfg_node *v = cfg_node_get(it, sub);
		if (nm && !strcmp(nm, name) && v && v->kind == CFG_NODE_MAP)
			return v;
	}
	return NULL;
}

static const char *path_in(core_arena *a, const char *dir, const char *f)
{
	if (!f || f[0] == '/' || !dir || !*dir)
		return f ? core_arena_strdup(a, f) : NULL;
	size_t n = strlen(dir) + strlen(f) + 2;
	char *p = core_arena_alloc(a, n);
	snprintf(p, n, "%s/%s", dir, f);
	return p;
}

static const char *fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return err;
}

static int data(core_arena *a, const cfg_node *m, const char *key,
		const char **out, size_t *len)
{
	const char *s = sval(m, key);
	if (!s)
		return 0;
	char *d;
	if (kube_base64_decode(a, s, strlen(s), &d, len) < 0)
		return -1;
	*out = d;
	return 0;
}

const char *kube_kubeconfig_parse(core_arena *a, const char *yaml, size_t len,
				  const char *dir, const char *context,
				  kube_creds *c, char *err, size_t errlen)
{
	*c = (kube_creds){0};
	cfg_errs e = {.file = "kubeconfig"};
	core_arena *tmp = core_arena_new(0);
	const char *why = NULL;
	cfg_node *root = cfg_yaml_parse(tmp, yaml, len, &e);
	if (!root || e.n || root->kind != CFG_NODE_MAP) {
		why = fail(err, errlen, "not a YAML mapping%s%s",
			   e.n ? ": " : "", e.n ? e.v[0].msg : "");
		goto out;
	}
	const char *cur = context ? context : sval(root, "current-context");
	if (!cur) {
		why = fail(err, errlen, "no current-context");
		goto out;
	}
	const cfg_node *ctx = named(root, "contexts", cur, "context");
	if (!ctx) {
		why = fail(err, errlen, "no context '%s'", cur);
		goto out;
	}
	const char *cl = sval(ctx, "cluster"), *us = sval(ctx, "user");
	const cfg_node *cluster =
	    cl ? named(root, "clusters", cl, "cluster") : NULL;
	if (!cluster) {
		why = fail(err, errlen, "context '%s': no cluster '%s'", cur,
			   cl ? cl : "");
		goto out;
	}
	const char *server = sval(cluster, "server");
	if (!server ||
	    (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))) {
		why = fail(err, errlen, "cluster '%s': no https:// server", cl);
		goto out;
	}
	char *sv = core_arena_strdup(a, server);
	for (size_t l = strlen(sv); l > 8 && sv[l - 1] == '/';)
		sv[--l] = '\0';
	c->server = sv;
	const char *ins = sval(cluster, "insecure-skip-tls-verify");
	c->insecure = ins && !strcmp(ins, "true");
	c->ca_file = path_in(a, dir, sval(cluster, "certificate-authority"));
	if (data(a, cluster, "certificate-authority-data", &c->ca_data,
		 &c->ca_data_len) < 0) {
		why = fail(err, errlen,
			   "cluster '%s': certificate-authority-data is not "
			   "base64",
			   cl);
		goto out;
	}
	const char *ns = sval(ctx, "namespace");
	c->namespace = ns ? core_arena_strdup(a, ns) : NULL;
	const cfg_node *user = us ? named(root, "users", us, "user") : NULL;
	if (us && !user) {
		why = fail(err, errlen, "context '%s': no user '%s'", cur, us);
		goto out;
	}
	if (user) {
		const char *t = sval(user, "token");
		c->token = t ? core_arena_strdup(a, t) : NULL;
		c->token_file = path_in(a, dir, sval(user, "tokenFile"));
		c->cert_file =
		    path_in(a, dir, sval(user, "client-certificate"));
		c->key_file = path_in(a, dir, sval(user, "client-key"));
		if (data(a, user, "client-certificate-data", &c->cert_data,
			 &c->cert_data_len) < 0 ||
		    data(a, user, "client-key-data", &c->key_data,
			 &c->key_data_len) < 0) {
			why = fail(err, errlen,
				   "user '%s': client certificate or key "
				   "data is not base64",
				   us);
			goto out;
		}
		if (cfg_node_get(user, "exec") ||
		    cfg_node_get(user, "auth-provider"))
			if (!c->token && !c->token_file && !c->cert_data &&
			    !c->cert_file) {
				why = fail(err, errlen,
					   "user '%s': exec and auth-provider "
					   "credentials are not supported (use "
					   "a token)",
					   us);
				goto out;
			}
	}
out:
	cfg_errs_clear(&e);
	core_arena_free(tmp);
	return why;
}
