/* fuzz_tun_config.c - libFuzzer harness for the connector's configuration
 * loader (YAML through cfg_yaml, then the tunnel schema).
 *
 * Contract: a file either loads or has at least one error, each
 * "t.yaml:LINE:COL: message"; a loaded one has 1..16 edges, 1..8
 * connections per edge, a token of 32 characters or more, and a last rule
 * that is a catch-all, so every authority/path matches some rule.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tunnel/tun_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *yaml = malloc(size + 1);
	memcpy(yaml, data, size);
	yaml[size] = '\0';
	tun_config *c = NULL;
	cfg_diag d = {0};
	int rc = tun_config_load_string("t.yaml", yaml, size, &c, &d);
	if (rc == 0) {
		CHECK(c && d.n == 0);
		CHECK(c->nedges >= 1 && c->nedges <= TUN_MAX_EDGES);
		CHECK(c->conns_per_edge >= 1 &&
		      c->conns_per_edge <= TUN_MAX_CONNS);
		CHECK(c->token && strlen(c->token) >= TUN_MIN_TOKEN);
		CHECK(c->nrules >= 1);
		const tun_rule *last = &c->rules[c->nrules - 1];
		CHECK(!last->hostname && !last->path);
		CHECK(tun_ingress_match(c->rules, c->nrules, "x.example", 9,
					"/a?b", 4) >= 0);
		char sum[256];
		tun_config_summary(c, sum, sizeof(sum));
		CHECK(!strncmp(sum, "ok: ", 4));
		tun_config_free(c);
	} else {
		CHECK(!c && d.n >= 1);
		for (size_t i = 0; i < d.n; i++)
			CHECK(!strncmp(d.msgs[i], "t.yaml:", 7) ||
			      !strncmp(d.msgs[i], "t.yaml: ", 8));
	}
	cfg_diag_free(&d);
	free(yaml);
	return 0;
}
