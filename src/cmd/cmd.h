/* cmd.h - the subcommands of the meridian binary. Each returns the process
 * exit status (0 ok, 1 error, 2 usage). */
#ifndef MERIDIAN_CMD_H
#define MERIDIAN_CMD_H

#include <stddef.h>

int cmd_edge(int argc, char **argv);	/* meridian edge -c FILE */
int cmd_check(int argc, char **argv);	/* meridian check -c FILE */
int cmd_demo(int argc, char **argv);	/* meridian demo [--listen ADDR] */
int cmd_origin(int argc, char **argv);	/* meridian origin: demo/test origin */
int cmd_ctl(int argc, char **argv);	/* meridian ctl COMMAND (see --help) */
int cmd_tunnel(int argc, char **argv);	/* meridian tunnel [check] -c FILE */
int cmd_ingress(int argc, char **argv); /* meridian ingress [check] -c FILE */

/* --log-level error|warn|info|debug for command cmd: sets the level, or
 * prints why not and returns -1. */
int cmd_set_log_level(const char *cmd, const char *arg);

#include <stdbool.h>
#include <stdio.h>

/* `meridian NAME [check] -c FILE [--log-level L]` (tunnel, ingress):
 * parses argv into *check and *file. Returns -1 to go on, else the exit
 * status to return (0 after --help, 2 after a usage error, said on
 * stderr). */
int cmd_file_args(const char *name, int argc, char **argv,
		  void (*usage_of)(FILE *), bool *check, const char **file);

struct cfg_snapshot;
/* Why the edge would refuse to start on a valid config, as a message for
 * "meridian edge|check: FILE: <message>" (NULL: it starts): no listener to
 * serve, or the API on a non-loopback admin listener without tokens.
 * `meridian check` applies the same rules, so a file it accepts starts. */
const char *cmd_edge_refusal(const struct cfg_snapshot *cfg, char *buf,
			     size_t len);

#endif
