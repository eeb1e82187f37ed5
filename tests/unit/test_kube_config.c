/* test_kube_config.c - `meridian ingress`'s file (the connector's keys
 * plus `kubernetes:`, errors with file:line:col, no `ingress`), kubeconfig
 * parsing (current context, server, CA data, token, client certificate,
 * relative files) and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/cfg_diag.h"
#include "core/core_arena.h"
#include "kube/kube_config.h"
#include "tunnel/tun_config.h"

#define HEAD                                                                   \
	"tunnel: gke\n"                                                        \
	"token: 0123456789abcdef0123456789abcdef\n"                            \
	"edges: [\"127.0.0.1:7844\"]\n"

static int load(const char *yaml, kube_settings *ks, cfg_diag *d,
		tun_config **c)
{
	*ks = (kube_settings){0};
	tun_config_ext ext = {
	    .key = "kubernetes", .load = kube_settings_load, .arg = ks};
	return tun_config_load_string_ext("i.yaml", yaml, strlen(yaml), &ext, c,
					  d);
}

static bool has(const cfg_diag *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->msgs[i], needle))
			return true;
	return false;
}

static void test_settings(void **state)
{
	(void)state;
	kube_settings ks;
	cfg_diag d = {0};
	tun_config *c;
	assert_int_equal(load(HEAD "kubernetes:\n"
				   "  api: https://10.0.0.1:443/\n"
				   "  namespace: shop\n"
				   "  status_hostname: shop.example.com\n",
			      &ks, &d, &c),
			 0);
	assert_string_equal(ks.api, "https://10.0.0.1:443");
	assert_string_equal(ks.namespace, "shop");
	assert_string_equal(ks.ingress_class, "meridian");
	assert_string_equal(ks.status_hostname, "shop.example.com");
	assert_false(ks.without_class);
	assert_int_equal(c->nrules, 0);
	tun_config_free(c);
	cfg_diag_free(&d);
	assert_int_equal(load(HEAD "kubernetes:\n"
				   "  api: https://10.0.0.1:443/\n"
				   "  without_class: true\n",
			      &ks, &d, &c),
			 0);
	assert_true(ks.without_class);
	tun_config_free(c);
	cfg_diag_free(&d);
}

static void test_settings_errors(void **state)
{
	(void)state;
	kube_settings ks;
	cfg_diag d = {0};
	tun_config *c;
	assert_int_equal(load(HEAD "ingress:\n  - service: http_status:404\n"
				   "kubernetes:\n"
				   "  namespace: Shop_1\n"
				   "  colour: blue\n"
				   "  api: ftp://x\n"
				   "  without_class: yes please\n",
			      &ks, &d, &c),
			 -1);
	assert_true(has(&d, "i.yaml:4:1: 'ingress' is not set in this file"));
	assert_true(has(&d, "i.yaml:8:3: unknown key 'colour' in kubernetes"));
	assert_true(has(&d, "i.yaml:7:14: kubernetes.namespace"));
	assert_true(has(&d, "i.yaml:9:8: kubernetes.api"));
	assert_true(has(&d, "i.yaml:10:18: kubernetes.without_class: "
			    "expected true or false"));
	cfg_diag_free(&d);
	assert_int_equal(load(HEAD, &ks, &d, &c), -1);
	assert_true(has(&d, "missing required key 'kubernetes'"));
	cfg_diag_free(&d);
	assert_int_equal(load(HEAD "kubernetes: [1]\n", &ks, &d, &c), -1);
	assert_true(has(&d, "i.yaml:4:13: kubernetes: expected a mapping"));
	cfg_diag_free(&d);
}

static const char kubeconfig[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: other\n"
    "  cluster: {server: https://1.1.1.1}\n"
    "- name: kind\n"
    "  cluster:\n"
    "    server: https://127.0.0.1:6443/\n"
    "    certificate-authority-data: LS0tLS1CRUdJTg==\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: kind, user: me, namespace: shop}\n"
    "users:\n"
    "- name: me\n"
    "  user:\n"
    "    token: abc.def\n"
    "    client-certificate: certs/me.crt\n";

static void test_kubeconfig(void **state)
{
	(void)state;
	core_arena *a = core_arena_new(0);
	kube_creds c;
	char err[256];
	const char *why =
	    kube_kubeconfig_parse(a, kubeconfig, strlen(kubeconfig), "/etc/k",
				  NULL, &c, err, sizeof(err));
	assert_null(why);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	assert_int_equal(c.ca_data_len, 10);
	assert_memory_equal(c.ca_data, "-----BEGIN", 10);
	assert_string_equal(c.token, "abc.def");
	assert_string_equal(c.namespace, "shop");
	assert_string_equal(c.cert_file, "/etc/k/certs/me.crt");
	assert_false(c.insecure);
	why = kube_kubeconfig_parse(a, kubeconfig, strlen(kubeconfig), "/etc/k",
				    "nope", &c, err, sizeof(err));
	assert_non_null(why);
	assert_non_null(strstr(why, "no context 'nope'"));
	why = kube_kubeconfig_parse(a, "a: [", 4, NULL, NULL, &c, err,
				    sizeof(err));
	assert_non_null(why);
	core_arena_free(a);
}

static void test_base64(void **state)
{
	(void)state;
	core_arena *a = core_arena_new(0);
	char *o;
	size_t n;
	assert_int_equal(kube_base64_decode(a, "aGVsbG8=", 8, &o, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(o, "hello");
	assert_int_equal(kube_base64_decode(a, "aGVs\nbG8", 8, &o, &n), 0);
	assert_string_equal(o, "hello");
	assert_int_equal(kube_base64_decode(a, "a", 1, &o, &n), -1);
	assert_int_equal(kube_base64_decode(a, "a*bc", 4, &o, &n), -1);
	assert_int_equal(kube_base64_decode(a, "", 0, &o, &n), 0);
	assert_int_equal(n, 0);
	core_arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings),
	    cmocka_unit_test(test_settings_errors),
	    cmocka_unit_test(test_kubeconfig),
	    cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
