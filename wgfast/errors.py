"""One family of errors for everything wgfast raises at a caller.

A program that embeds wgfast catches `WgfastError` (or one kind below) instead of a handful of
unrelated types. Each kind also keeps the standard base it had before (ValueError for bad
input, OSError for an unreachable daemon, LookupError for an unknown peer), so code that caught
those keeps working.
"""

from __future__ import annotations

import errno as errno_module
import os


class WgfastError(Exception):
    """Base of every error wgfast raises at its callers."""


class ConfigError(WgfastError, ValueError):
    """A configuration file a person must fix: which file, which line, which key, and why."""

    def __init__(self, file: str, line: int | None, key: str | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f" {self.key}:" if self.key else ""
        return f"{where}:{what} {self.message}"


class KeyFormatError(WgfastError, ValueError):
    """A key string is not a canonical 32-byte base64 or hex key."""


class UAPIError(WgfastError):
    """A request the device refused. `errno` is the value of the reply's errno=N line (negative,
    as wireguard-go and wgfastd send it); `errno_name` and `strerror` say what it means."""

    def __init__(self, errno_value: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_value

    @property
    def errno_name(self) -> str:
        return errno_module.errorcode.get(abs(self.errno), f"E{abs(self.errno)}")

    @property
    def strerror(self) -> str:
        return os.strerror(abs(self.errno))

    def __str__(self) -> str:
        return f"{self.args[0]}: {self.errno_name} ({self.strerror})"


class DeviceUnreachableError(WgfastError, OSError):
    """No daemon answers on the interface's UAPI socket (not running, or gone)."""


class DaemonStartError(WgfastError):
    """A daemon did not come up; `reason` is what it (or its launcher) said on stderr."""

    def __init__(self, command: str, returncode: int | None, reason: str) -> None:
        super().__init__(command, returncode, reason)
        self.command = command
        self.returncode = returncode
        self.reason = reason

    def __str__(self) -> str:
        status = "did not come up" if self.returncode is None else f"exited with {self.returncode}"
        reason = self.reason.strip() or "(it said nothing)"
        return f"`{self.command}` {status}: {reason}"


class LinkError(WgfastError, OSError):
    """The kernel refused a step on the interface's link (an address, the MTU, up): `errno`
    is the kernel's."""


class PeerNotFoundError(WgfastError, LookupError):
    """An update or removal named a peer the device does not have."""


class NotSupportedError(WgfastError):
    """The implementation behind the socket lacks an operation (wireguard-go has no events)."""
