"""The daemon's name for `ps`, `pidof`, `pgrep` and systemd: `wgfastd INTERFACE`, not
`python3 -m wgfast.daemon INTERFACE`.

Two things name a process: its comm (`/proc/PID/comm`, what `pgrep` and `ps -C` match, set with
prctl(PR_SET_NAME)) and its command line (`/proc/PID/cmdline`, whose first argument `pidof`
matches), which the kernel reads from the memory the process's arguments were passed in. That
memory is the process's own, between the addresses /proc/self/stat gives as arg_start and
arg_end; the new arguments are written there, NUL-separated, the rest cleared. (setproctitle,
the usual library, writes one string, which `pidof` does not match.)
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

PR_SET_NAME = 15
COMM_LEN = 15  # TASK_COMM_LEN less the terminating NUL
ARG_START_FIELD, ARG_END_FIELD = 48, 49  # in /proc/PID/stat, counted from 1


def set_process_name(name: str, *args: str) -> bool:
    """Show this process as `name args...`; False if the arguments do not fit in the room the
    original command line left (the comm is set anyway)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode()[:COMM_LEN], 0, 0, 0)
    with open("/proc/self/stat", "rb") as f:
        # After the comm (in parentheses, which may hold spaces) fields count from 3.
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[ARG_START_FIELD - 3]), int(fields[ARG_END_FIELD - 3])
    title = b"\0".join(part.encode() for part in (name, *args)) + b"\0"
    if not start or len(title) > end - start:
        log.debug("process title %r does not fit in %d bytes", title, end - start)
        return False
    ctypes.memmove(start, title.ljust(end - start, b"\0"), end - start)
    return True
