"""Rekeying under load: a TCP transfer through the tunnel lives across several handshakes.

wgfastd runs with the test hook WGFAST_TEST_TIME_SCALE (wgfast.protocol.messages), which
shortens the protocol's timers in its Python timers and in its data plane's keypair age limits
alike, so REKEY_AFTER_TIME is a few seconds. wgfastd is the initiator, so its shortened
REKEY_AFTER_TIME drives the rekeys; the peer is wireguard-go (whose timers are the paper's) or
another wgfastd. The sender paces one TCP connection over longer than two rekey periods;
meanwhile the test samples `wg show latest-handshakes` on both ends. The connection must survive
(the sink gets every byte, the SHA-256 matches) and the handshake time must have moved at least
twice.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import SINK, first_ping, make_pair
from wgfast.protocol.messages import TEST_TIME_SCALE_ENV

TIME_SCALE = 0.03  # REKEY_AFTER_TIME 3.6 s, REJECT_AFTER_TIME 5.4 s, REKEY_TIMEOUT 0.15 s
REKEY_AFTER_TIME_SCALED = 120 * TIME_SCALE
TRANSFER_SECONDS = 3.2 * REKEY_AFTER_TIME_SCALED
TRANSFER_BYTES = 24 * 1024 * 1024
TRANSFER_PORT = 5311


# Sends a file over one TCP connection, spread evenly over argv[4] seconds.
PACED_SOURCE = """
import socket, sys, time
address, port, path, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = open(path, "rb").read()
chunk = 64 * 1024
start = time.monotonic()
with socket.create_connection((address, port), timeout=30) as conn:
    for offset in range(0, len(data), chunk):
        due = start + seconds * offset / len(data)
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        conn.sendall(data[offset:offset + chunk])
"""


class HandshakeSampler:
    """Samples an interface's latest-handshake time (seconds) in the background."""

    def __init__(self, side) -> None:
        self.side = side
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = self.side.ns.run("wg", "show", self.side.interface, "latest-handshakes",
                                   check=False).stdout.split()  # fmt: skip
            if len(out) == 2 and out[1] != "0":
                self.seen.add(int(out[1]))
            self._stop.wait(0.2)

    def __enter__(self) -> HandshakeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.parametrize("responder", ["wireguard-go", "wgfastd"])
def test_tcp_transfer_survives_rekeys(netns_pool: NetnsPool, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, responder: str):  # fmt: skip
    # The daemons inherit the test's environment; wireguard-go ignores the variable.
    monkeypatch.setenv(TEST_TIME_SCALE_ENV, str(TIME_SCALE))
    a, b = make_pair(netns_pool, ("wgfastd", responder), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)

    payload = os.urandom(TRANSFER_BYTES)
    data_file = tmp_path / "payload.bin"
    data_file.write_bytes(payload)
    sink = b.ns.popen(sys.executable, "-c", SINK, b.inner4, str(TRANSFER_PORT),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        with HandshakeSampler(a) as initiator_seen, HandshakeSampler(b) as responder_seen:
            started = time.monotonic()
            a.ns.run(sys.executable, "-c", PACED_SOURCE, b.inner4, str(TRANSFER_PORT),
                     str(data_file), str(TRANSFER_SECONDS), timeout=90)  # fmt: skip
            out, err = sink.communicate(timeout=60)
            elapsed = time.monotonic() - started
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    length, digest = out.split()
    assert int(length) == TRANSFER_BYTES, err
    assert digest == hashlib.sha256(payload).hexdigest()
    assert elapsed >= TRANSFER_SECONDS
    # The first handshake plus at least two rekeys, seen by both ends.
    assert len(initiator_seen.seen) >= 3, sorted(initiator_seen.seen)
    assert len(responder_seen.seen) >= 3, sorted(responder_seen.seen)
    assert max(initiator_seen.seen) - min(initiator_seen.seen) >= 2 * REKEY_AFTER_TIME_SCALED - 1
