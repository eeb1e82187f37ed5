/* cmd_check.c - `meridian check -c FILE`: load a configuration exactly as
 * the edge would, print every error or a one-line summary.
 *
 * Exit status: 0 valid, 1 invalid or unreadable, 2 usage. The hidden
 * `--reference` prints docs/CONFIG.md, generated from the key tables.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "config/cfg_doc.h"
#include "config/cfg_load.h"
#include "dns/dns_zone.h"
#include "edge/edge.h"

static void usage(FILE *f)
{
	fputs("usage: meridian check -c FILE\n"
	      "\n"
	      "Validate a configuration file. Errors go to stderr as\n"
	      "file:line:col: message (exit 1); a valid file prints a\n"
	      "one-line summary (exit 0).\n",
	      f);
}

int cmd_check(int argc, char **argv)
{
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--reference")) {
			cfg_doc_reference(stdout);
			return fflush(stdout) ? 1 : 0;
		}
		if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (i + 1 == argc) {
				fprintf(stderr,
					"meridian check: %s needs a file\n", a);
				usage(stderr);
				return 2;
			}
			file = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			file = a + 9;
		} else if (!strncmp(a, "-c", 2)) {
			file = a + 2;
		} else {
			fprintf(stderr,
				"meridian check: unexpected argument "
				"'%s'\n",
				a);
			usage(stderr);
			return 2;
		}
	}
	if (!file || !*file) {
		fputs("meridian check: missing -c FILE\n", stderr);
		usage(stderr);
		return 2;
	}
	cfg_snapshot *snap = NULL;
	cfg_diag diag = {0};
	int rc = cfg_load_file(file, &snap, &diag);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "%s\n", diag.msgs[i]);
	for (size_t i = 0; i < diag.nwarn; i++)
		fprintf(stderr, "%s\n", diag.warns[i]);
	cfg_diag_free(&diag);
	if (rc < 0)
		return 1;
	char line[256];
	cfg_summary(snap, line, sizeof(line));
	/* What the edge builds at start-up from a valid file: the geo
	 * database, DNS zones, certificates and origin CAs. A file `check`
	 * accepts must start. */
	/* Zone data first, to print every error it has (the edge stops at
	 * the first). */
	dns_zoneset *zones = NULL;
	dns_zoneset_opts zopts = {0};
	if (dns_zoneset_build(snap, &zopts, &zones, &diag) < 0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.msgs[i]);
		cfg_diag_free(&diag);
		cfg_snapshot_free(snap);
		return 1;
	}
	cfg_diag_free(&diag);
	dns_zoneset_free(zones);
	char err[512] = "";
	edge_snapshot *es =
	    edge_snapshot_new(snap, NULL, false, 65536, 1, err, sizeof(err));
	if (!es) {
		/* Messages that carry their position start with the file
		 * name already. */
		size_t fl = strlen(file);
		if (!strncmp(err, file, fl) && err[fl] == ':')
			fprintf(stderr, "%s\n", err);
		else
			fprintf(stderr, "%s: %s\n", file, err);
		cfg_snapshot_free(snap);
		return 1;
	}
	/* What `meridian edge` refuses besides (before it builds anything:
	 * reported last here, after every error of the file). */
	char why[256];
	bool refused = cmd_edge_refusal(es->cfg, why, sizeof(why)) != NULL;
	if (refused)
		fprintf(stderr, "%s: %s\n", file, why);
	edge_snapshot_unref(es);
	if (refused)
		return 1;
	puts(line);
	return 0;
}
