"""Other processes: starting this package's modules in one, is one still running, and who
serves a UNIX socket."""

from __future__ import annotations

import os
import socket
import struct
import sys

# The directory holding the `wgfast` package this process runs (site-packages when installed,
# the source tree when built in place).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_command(module: str) -> list[str]:
    """argv running `module` of this very wgfast with this interpreter. `-P` keeps the working
    directory off sys.path: run from a source checkout, its unbuilt `wgfast/` would otherwise
    shadow the installed package. Use with `module_env`."""
    return [sys.executable, "-P", "-m", module]


def module_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (the environment by default) with PYTHONPATH led by this wgfast's directory, so
    a `module_command` child imports the same package as its parent, whatever its cwd."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


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


def _listening_inodes(path: str, unix_table: str) -> set[str]:
    """Inodes of the listening sockets bound to `path` in one /proc/.../net/unix table."""
    found = set()
    try:
        with open(unix_table) as f:
            for line in f:
                fields = line.split()
                # Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is listening.
                if len(fields) == 8 and fields[7] == path and fields[3] == "00010000":
                    found.add(fields[6])
    except OSError:
        pass
    return found


def socket_server_pid(path: str) -> int | None:
    """The pid of a live process holding the listening UNIX socket at `path`.

    SO_PEERCRED names the process that called listen(): wgfastd's daemon, but wireguard-go's
    launcher, which exits once its daemon child (holding the socket it inherited) runs. So when
    that process is gone, look for the holder: the socket's inode in each network namespace's
    /proc/PID/net/unix (sockets are listed per namespace), then the process with an fd on it.
    """
    owner = socket_owner_pid(path)
    if owner is not None and process_alive(owner):
        return owner
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    inodes: set[str] = set()
    namespaces_seen: set[tuple[int, int]] = set()
    for pid in pids:
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in namespaces_seen:
            namespaces_seen.add((st.st_dev, st.st_ino))
            inodes |= _listening_inodes(path, f"/proc/{pid}/net/unix")
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted and process_alive(pid):
                    return pid
            except OSError:
                continue
    return None
