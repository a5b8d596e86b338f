"""The data plane's thread knob: one loop, or send and receive on their own threads (default),
both carrying the same traffic; and the WGFAST_DATAPLANE_THREADS setting the device reads."""

from __future__ import annotations

import pytest

from support.dataplane import PEER, handshake, ip4_packet, open_side
from wgfast import _native as native
from wgfast.daemon.interface import dataplane_threads


@pytest.mark.parametrize("threads", [1, 2])
def test_traffic_crosses_with_either_thread_count(threads: int) -> None:
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    try:
        a.dp.set_endpoint(PEER, b.addr)
        b.dp.set_endpoint(PEER, a.addr)
        assert a.dp.threads == native.DP_THREADS_DEFAULT == 2
        a.dp.threads = b.dp.threads = threads
        assert (a.dp.threads, b.dp.threads) == (threads, threads)
        handshake(a, b)
        a.start()
        b.start()
        sent = [ip4_packet("10.0.0.1", "10.0.0.2", 40 + i % 1300, i) for i in range(300)]
        for p in sent:
            a.tun.send(p)
        assert [b.read_tun() for _ in sent] == sent  # all of them, in order
        replies = [ip4_packet("10.0.0.2", "10.0.0.1", 60 + i, i) for i in range(50)]
        for p in replies:
            b.tun.send(p)
        assert [a.read_tun() for _ in replies] == replies
        with pytest.raises(RuntimeError):
            a.dp.threads = 1  # not while it runs
    finally:
        for side in (a, b):
            side.close()


def test_bad_thread_counts_rejected() -> None:
    side = open_side("10.0.0.2")
    try:
        for bad in (0, 3):
            with pytest.raises(ValueError):
                side.dp.threads = bad
        assert side.dp.threads == 2
    finally:
        side.close()


def test_environment_setting() -> None:
    assert dataplane_threads({}) == 2
    assert dataplane_threads({"WGFAST_DATAPLANE_THREADS": "1"}) == 1
    assert dataplane_threads({"WGFAST_DATAPLANE_THREADS": " 2 "}) == 2
    for bad in ("0", "3", "two", "-1"):
        with pytest.raises(ValueError, match="WGFAST_DATAPLANE_THREADS"):
            dataplane_threads({"WGFAST_DATAPLANE_THREADS": bad})
