/* main.c - dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
    {"edge", cmd_edge, "run an edge node: meridian edge -c FILE"},
    {"check", cmd_check, "validate a config file: meridian check -c FILE"},
    {"demo", cmd_demo, "run the embedded demo (two clouds and a tunnel, one edge)"},
    {"origin", cmd_origin, "run a demo/test origin server"},
    {"ctl", cmd_ctl, "operator CLI over the admin API: meridian ctl --help"},
    {"tunnel", cmd_tunnel,
     "run a tunnel connector: meridian tunnel [check] -c FILE"},
    {"ingress", cmd_ingress,
     "Kubernetes ingress controller: meridian ingress [check] -c FILE"},
};

static void usage(FILE *f)
{
	fputs("usage: meridian COMMAND [options]\n\ncommands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		puts("meridian " MERIDIAN_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "meridian: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
