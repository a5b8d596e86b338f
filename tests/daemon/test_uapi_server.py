"""The UAPI server and socket watcher in-process (no root: the socket lives in a temp dir)."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from wgfast.daemon.config import DeviceConfig
from wgfast.daemon.uapi_server import (
    MAX_LINE_BYTES,
    SocketRemovalWatcher,
    UAPIServer,
    open_uapi_socket,
)
from wgfast.uapi import (
    ERRNO_INVALID,
    ERRNO_IO,
    ERRNO_PROTOCOL,
    ERRNO_UNKNOWN,
    AsyncUAPIClient,
    ChangeSet,
    DeviceStatus,
    UAPIError,
)


class FakeDevice:
    def __init__(self) -> None:
        self.config = DeviceConfig()
        self.applied = 0
        self.explode = False

    def get_snapshot(self) -> DeviceStatus:
        return self.config.status()

    async def apply(self, changes: ChangeSet) -> None:  # a coroutine is allowed too
        if self.explode:
            raise RuntimeError("device bug")
        self.config = self.config.apply(changes)
        self.applied += 1


async def exchange(path: str, request: bytes, half_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(request)
    await writer.drain()
    if half_close:
        writer.write_eof()
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return reply


@pytest.fixture
def served(tmp_path):
    """Where the test's socket goes (its directory does not exist yet)."""
    return tmp_path / "run" / "wgtest.sock"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_socket_mode_and_directory(served):
    sock = open_uapi_socket(str(served))
    try:
        assert stat.S_IMODE(os.stat(served).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(served.parent).st_mode) == 0o755
    finally:
        sock.close()


def test_stale_socket_is_replaced_but_live_one_refused(served):
    first = open_uapi_socket(str(served))
    with pytest.raises(OSError, match="in use"):
        open_uapi_socket(str(served))
    first.close()  # now stale: the file remains, nobody listens
    assert served.exists()
    open_uapi_socket(str(served)).close()


def test_requests_errors_and_limits(served):
    async def scenario() -> None:
        device = FakeDevice()
        server = UAPIServer(device, open_uapi_socket(str(served)), str(served))
        await server.start()
        path = str(served)
        client = AsyncUAPIClient(path)
        try:
            await client.set("listen_port=5\npublic_key=" + "ab" * 32 + "\n")
            status = await client.get()
            assert status.listen_port == 5 and len(status.peers) == 1

            # Several requests on one connection, answered in order.
            reply = await exchange(path, b"set=1\nfwmark=3\n\nget=1\n\nset=1\nbad=1\n\n")
            assert reply.startswith(b"errno=0\n\nlisten_port=5\nfwmark=3\n")
            assert reply.endswith(f"errno=0\n\nerrno={ERRNO_INVALID}\n\n".encode())

            before = device.config
            cases = [
                (b"set=1\nlisten_port=6\nfwmark\n\n", f"errno={ERRNO_PROTOCOL}\n\n"),
                (b"set=1\nlisten_port=6\n", f"errno={ERRNO_PROTOCOL}\n\n"),  # truncated
                (b"set=1\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\n\n", f"errno={ERRNO_IO}\n\n"),
                (b"get=1\nX", f"errno={ERRNO_INVALID}\n\n"),
                (b"nonsense\n", ""),
                (b"", ""),
                (b"\x00\xff" * 100, ""),
            ]
            for request, expected in cases:
                assert await exchange(path, request) == expected.encode(), request[:40]
            assert device.config is before

            device.explode = True
            with pytest.raises(UAPIError) as err:
                await client.set("listen_port=7\n")
            assert err.value.errno == ERRNO_UNKNOWN
            device.explode = False

            # Concurrent clients are serialised and all answered.
            await asyncio.gather(*(client.set(f"listen_port={p}\n") for p in range(100, 120)))
            assert (await client.get()).listen_port in range(100, 120)
        finally:
            await server.close()
        assert not served.exists(), "close() removes the socket file"

    run(scenario())


def test_watcher_notices_removal_and_replacement(served):
    async def scenario(replace: bool) -> None:
        listener = open_uapi_socket(str(served))
        fired = asyncio.Event()
        watcher = SocketRemovalWatcher(str(served), fired.set)
        watcher.start()
        try:
            await asyncio.sleep(0.05)
            assert not fired.is_set()
            os.unlink(served)
            if replace:  # another daemon took the name: ours is unreachable now
                replacement = open_uapi_socket(str(served))
                listener.close()
                listener = replacement
            await asyncio.wait_for(fired.wait(), 3)
        finally:
            watcher.stop()
            listener.close()
            if served.exists():
                os.unlink(served)

    run(scenario(False))
    run(scenario(True))


def test_blocking_client_against_server_thread(served):
    """UAPIClient (blocking) against the asyncio server running in another thread."""
    import threading

    from wgfast.uapi import UAPIClient

    ready = threading.Event()
    control: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        server = UAPIServer(FakeDevice(), open_uapi_socket(str(served)), str(served))
        await server.start()
        finished = asyncio.Event()
        control.append((asyncio.get_running_loop(), finished))
        ready.set()
        try:
            await finished.wait()
        finally:
            await server.close()

    def thread_main() -> None:
        asyncio.run(serve())

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        client = UAPIClient(str(served))
        client.set("listen_port=9\n")
        assert client.get().listen_port == 9
        with pytest.raises(UAPIError):
            client.set("listen_port=99999\n")
        with pytest.raises(OSError):
            UAPIClient(str(served) + ".missing").get()
    finally:
        loop, finished = control[0]
        loop.call_soon_threadsafe(finished.set)
        thread.join(5)
    assert not thread.is_alive() and not served.exists()
