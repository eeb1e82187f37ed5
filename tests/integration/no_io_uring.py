#!/usr/bin/python3
"""Run a command with io_uring refused by a seccomp filter, as Docker's
default profile (since Docker 25) and hardened systemd units do:
io_uring_setup, io_uring_enter and io_uring_register fail with EPERM and
everything else is allowed.

usage: no_io_uring.py COMMAND [ARG...]
"""
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
    f.add_rule(seccomp.ERRNO(errno.EPERM), name)
f.load()  # sets no_new_privs first, as libseccomp does by default
os.execv(sys.argv[1], sys.argv[1:])
