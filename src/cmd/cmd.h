/* cmd.h - the subcommands of the meridian binary. Each returns the process
 * exit status (0 ok, 1 error, 2 usage). */
#ifndef MERIDIAN_CMD_H
#define MERIDIAN_CMD_H

int cmd_edge(int argc, char **argv);   /* meridian edge -c FILE */
int cmd_check(int argc, char **argv);  /* meridian check -c FILE */
int cmd_demo(int argc, char **argv);   /* meridian demo [--listen ADDR] */
int cmd_origin(int argc, char **argv); /* meridian origin: demo/test origin */
int cmd_ctl(int argc, char **argv);    /* meridian ctl COMMAND (see --help) */

/* --log-level error|warn|info|debug for command cmd: sets the level, or
 * prints why not and returns -1. */
int cmd_set_log_level(const char *cmd, const char *arg);

#endif
