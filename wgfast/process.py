"""Other processes: is one still running, and who serves a UNIX socket."""

from __future__ import annotations

import socket
import struct


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, which has exited and waits to be reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def socket_owner_pid(path: str) -> int | None:
    """The pid of the process serving the stream UNIX socket at `path` (SO_PEERCRED)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, _, _ = struct.unpack("3i", creds)
    return pid or None
