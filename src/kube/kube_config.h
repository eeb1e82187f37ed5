/* kube_config.h - where the Kubernetes API is and how to talk to it: the
 * `kubernetes:` section of `meridian ingress`'s file, and kubeconfig files.
 * Pure (the callers read the files). Keys in docs/TUNNEL.md.
 */
#ifndef MERIDIAN_KUBE_CONFIG_H
#define MERIDIAN_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core_arena;
struct cfg_node;
struct cfg_errs;

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* The file's `kubernetes:` section (strings in the config's arena). */
typedef struct kube_settings {
	bool loaded;
	const char *api;	     /* NULL: in-cluster, or the kubeconfig's */
	const char *kubeconfig;	     /* NULL: none */
	const char *namespace;	     /* NULL: in-cluster namespace file */
	const char *ingress_class;   /* default "meridian" */
	bool without_class;	     /* also Ingresses with no class */
	const char *status_hostname; /* NULL: the first edge's IP */
	const char *token_file;	     /* default: the service account's */
	const char *ca;		     /* default: the service account's */
	uint32_t line, col;	     /* of the section, for errors */
} kube_settings;

/* For tun_config_ext.load: arg is a kube_settings. */
void kube_settings_load(void *arg, struct core_arena *a,
			const struct cfg_node *n, struct cfg_errs *e);

/* How to reach the API: what the client needs. */
typedef struct kube_creds {
	const char *server; /* "https://10.0.0.1:443" (no trailing '/') */
	const char *ca_file;
	const char *ca_data; /* PEM, decoded from base64 */
	size_t ca_data_len;
	const char *token;
	const char *token_file;
	const char *cert_file, *key_file;
	const char *cert_data, *key_data; /* PEM */
	size_t cert_data_len, key_data_len;
	bool insecure;	       /* insecure-skip-tls-verify */
	const char *namespace; /* the context's, or NULL */
} kube_creds;

/* Parse a kubeconfig (YAML) into *c (strings in a; relative file names
 * are relative to dir). Its current context (or `context` when not NULL).
 * NULL, or why not (written to err). */
const char *kube_kubeconfig_parse(struct core_arena *a, const char *yaml,
				  size_t len, const char *dir,
				  const char *context, kube_creds *c, char *err,
				  size_t errlen);

/* Standard base64 (padding optional, whitespace skipped) into a (NUL
 * added). -1 when not base64. */
int kube_base64_decode(struct core_arena *a, const char *s, size_t len,
		       char **out, size_t *outlen);

#endif
