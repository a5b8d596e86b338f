"""Fuzz target: the UAPI server as a client reaches it.

Each input is the byte stream one client writes to /var/run/wireguard/NAME.sock. It is fed to
wgfast.daemon.uapi_server.UAPIServer's connection handler (the real asyncio StreamReader with the
server's line limit, a writer that collects the replies) over a configuration-only device control
(DeviceConfig.apply, the all-or-nothing validation wgfastd uses), fresh for each input.

A crash is: an exception out of the handler, an exception wgfast caught and logged (e.g. "set
failed unexpectedly"), a reply that is not `...errno=N\\n\\n`, or a device whose get reply does
not parse back (uapi.parse_get) to the same status.

    python3 tests/fuzz/fuzz_uapi.py -runs=2000 NEW_DIR tests/fuzz/corpus/uapi
"""

from __future__ import annotations

import asyncio
import os
import re
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_common import crash_on_logged_exceptions, wgfast_import_path  # noqa: E402

wgfast_import_path()
with atheris.instrument_imports(include=["wgfast"]):
    from wgfast import uapi
    from wgfast.daemon import uapi_server  # noqa: E402
    from wgfast.daemon.config import DeviceConfig  # noqa: E402

REPLY = re.compile(rb"(?:[a-z_]+=[^\n]*\n)*errno=-?[0-9]+\n\n")


class ConfigurationOnlyControl:
    """A stand-in DeviceControl that holds a configuration and moves no packets."""

    def __init__(self) -> None:
        self.config = DeviceConfig()

    def get_snapshot(self) -> uapi.DeviceStatus:
        return self.config.status()

    def apply(self, changes: uapi.ChangeSet) -> None:
        self.config = self.config.apply(changes)


class CollectingWriter:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class _Listener:
    """Stands in for the listening socket; the handler under test never touches it."""

    def fileno(self) -> int:
        return -1


LOOP = asyncio.new_event_loop()


async def serve(data: bytes) -> tuple[bytes, ConfigurationOnlyControl]:
    device = ConfigurationOnlyControl()
    server = uapi_server.UAPIServer(device, _Listener(), "/nonexistent/wgfuzz.sock")  # type: ignore[arg-type]
    reader = asyncio.StreamReader(limit=uapi_server.MAX_LINE_BYTES)
    reader.feed_data(data)
    reader.feed_eof()
    writer = CollectingWriter()
    await server._serve_connection(reader, writer)  # type: ignore[arg-type]
    return bytes(writer.data), device


def test_one_input(data: bytes) -> None:
    replies, device = LOOP.run_until_complete(serve(data))
    position = 0
    while position < len(replies):
        match = REPLY.match(replies, position)
        if match is None:
            raise AssertionError(f"malformed reply at {position}: {replies[position:][:200]!r}")
        position = match.end()
    status = device.get_snapshot()
    text = uapi.format_get(status)
    if uapi.parse_get(text) != status:
        raise AssertionError(f"get reply does not parse back to the same status:\n{text}")


def main() -> None:
    crash_on_logged_exceptions()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
