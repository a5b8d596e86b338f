"""wgfastd's event stream (events=1; wgfast/daemon/events.py, README.md "Events") and the API
over it (Device.events, AsyncDevice.events, wgfast/api/events.py), on real daemons in network
namespaces; bounded in count and time.

- every event kind seen on a wgfastd pair: peer added (replayed with since=0), handshake
  completed on both ends (initiator or not), endpoint changed (the initiator moves to another
  port), drop summary (junk datagrams), session expired (keys zeroed, under a short test time
  scale), peer removed and replace_peers;
- a snapshot then a subscription with since= misses nothing; a since= older than the ring, or
  newer than the daemon's sequence, is acknowledged with missed=1;
- a bad events request gets an errno reply and the connection still serves get;
- a daemon that stops sends every subscriber a daemon_stopping notice, then EOF;
- wireguard-go closes the connection on events=1: NotSupportedError;
- under a handshake flood, a subscriber that reads nothing for STALL_SECONDS does not slow
  get=1 (median ratio) or grow the daemon's memory, and is cut off with its notice.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_flood import FLOODER

from support.daemons import userspace_interface
from support.netns import NetnsPool, wait_for
from support.tunnel import daemon_pid, first_ping, make_pair, ping, rss_kib
from wgfast import keys
from wgfast.api import (
    AsyncDevice,
    DaemonStopping,
    Device,
    DropSummary,
    EndpointChanged,
    HandshakeCompleted,
    Peer,
    PeerAdded,
    PeerRemoved,
    SessionExpired,
    StreamCutOff,
)
from wgfast.api.events import StreamItem, parse_block
from wgfast.errors import NotSupportedError, UAPIError
from wgfast.protocol.messages import TEST_TIME_SCALE_ENV
from wgfast.uapi import ChangeSet, Endpoint, PeerChange, UAPIClient, socket_path

TIME_SCALE = 0.01  # REJECT_AFTER_TIME 1.8 s: keys are zeroed 5.4 s after the last session
EVENT_TIMEOUT = 10.0
RING_CAPACITY = 4096  # wgfast.daemon.events.RING_CAPACITY (the daemon is not imported here)

FLOOD_SECONDS = 36.0
FLOOD_RATE = 20_000
FLOOD_SOCKETS = 32
STALL_SECONDS = 30.0
GETS = 20
CHURN_PEERS = 50  # peers added then removed per cycle: 2 x CHURN_PEERS events
CHURN_PAUSE = 0.2
RSS_GROWTH_LIMIT_KIB = 10 * 1024
LATENCY_RATIO_LIMIT = 2.0


class Collector:
    """Reads a device's event stream on a thread; the items land in `items`."""

    def __init__(self, device: Device, since: int | None = None) -> None:
        self.stream = device.events(since)
        self.items: list[StreamItem] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                self.items.append(item)
        except BaseException as exc:  # reported by the test that reads it
            self.error = exc

    def wait(self, predicate: Callable[[StreamItem], bool],
             timeout: float = EVENT_TIMEOUT) -> StreamItem:  # fmt: skip
        found: list[StreamItem] = []

        def seen() -> bool:
            found.extend(i for i in list(self.items) if predicate(i))
            return bool(found)

        assert wait_for(seen, timeout), f"no such event; got {self.items} ({self.error!r})"
        return found[0]

    def close(self) -> None:
        self.stream.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), "closing the stream did not end the iteration"


def new_public() -> bytes:
    return keys.public_key(keys.generate_private_key())


def send_junk(src_ns, host: str, port: int, count: int) -> None:
    """`count` datagrams of an unknown message type (the data plane drops them: bad_type)."""
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    s.sendto(b'\\x09' + bytes(40), (sys.argv[1], int(sys.argv[2])))\n")  # fmt: skip
    src_ns.run(sys.executable, "-c", code, host, str(port), str(count))


def raw_exchange(path: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request`, read until EOF or until a reply ends with a blank line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def test_each_event_kind_on_a_wgfastd_pair(netns_pool: NetnsPool, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    monkeypatch.setenv(TEST_TIME_SCALE_ENV, str(TIME_SCALE))
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    a_pub, b_pub = keys.from_base64(a.public_key), keys.from_base64(b.public_key)
    dev_a, dev_b = Device(a.interface), Device(b.interface)
    # since=0: everything the daemons published while make_pair configured them comes first.
    events_a, events_b = Collector(dev_a, since=0), Collector(dev_b, since=0)
    try:
        added = events_b.wait(lambda e: isinstance(e, PeerAdded))
        assert added == PeerAdded(1, a_pub), events_b.items
        assert events_b.stream.missed is False

        first_ping(a, b.inner4)
        hs_a = events_a.wait(lambda e: isinstance(e, HandshakeCompleted))
        hs_b = events_b.wait(lambda e: isinstance(e, HandshakeCompleted))
        assert (hs_a.public_key, hs_a.initiator) == (b_pub, True)
        assert (hs_b.public_key, hs_b.initiator) == (a_pub, False)

        # The initiator moves to another port: its next packets reach B from there (roaming).
        new_port = a.port + 10
        a.wg("set", a.interface, "listen-port", str(new_port))
        ping(a, b.inner4, count=2)
        moved = events_b.wait(lambda e: isinstance(e, EndpointChanged))
        assert moved.public_key == a_pub
        assert moved.new == Endpoint.parse(f"{a.outer4}:{new_port}")
        assert moved.old == Endpoint.parse(f"{a.outer4}:{a.port}")

        send_junk(a.ns, b.outer4, b.port, 5)

        def junk_counted() -> bool:
            return sum(e.dataplane.get("bad_type", 0) for e in events_b.items
                       if isinstance(e, DropSummary)) >= 5  # fmt: skip

        assert wait_for(junk_counted, EVENT_TIMEOUT), events_b.items

        # No traffic any more: 3 x REJECT_AFTER_TIME (scaled) later the keys are zeroed.
        expired = events_b.wait(lambda e: isinstance(e, SessionExpired), 20)
        assert expired.public_key == a_pub

        # replace_peers: A's peer goes, the one named comes.
        other = new_public()
        dev_b.set_peers([Peer(other, allowed_ips=["10.99.0.1/32"])])
        assert events_b.wait(lambda e: isinstance(e, PeerRemoved)).public_key == a_pub
        events_b.wait(lambda e: isinstance(e, PeerAdded) and e.public_key == other)
        dev_b.remove_peer(other)
        events_b.wait(lambda e: isinstance(e, PeerRemoved) and e.public_key == other)

        sequences = [e.sequence for e in events_b.items]
        assert sequences == list(range(1, len(sequences) + 1)), sequences
        assert dev_b.state().event_sequence == sequences[-1]
    finally:
        events_a.close()
        events_b.close()
    assert events_a.error is None and events_b.error is None


def test_snapshot_then_subscribe_misses_nothing(netns_pool: NetnsPool):
    with userspace_interface(netns_pool, "wge", "wgfastd") as iface:
        dev = Device(iface.name)
        first = [new_public() for _ in range(5)]
        dev.set_peers([Peer(p) for p in first])
        state = dev.state()
        assert state.event_sequence == len(first)
        later = [new_public() for _ in range(3)]
        for public in later:
            dev.add_peer(Peer(public))
        with dev.events(since=state.event_sequence) as stream:
            assert (stream.sequence, stream.missed) == (len(first) + len(later), False)
            replayed = [next(stream) for _ in later]
        assert replayed == [PeerAdded(len(first) + i + 1, p) for i, p in enumerate(later)]

        async def async_replay() -> list[StreamItem]:
            adev = AsyncDevice(iface.name)
            items = []
            async with adev.events(since=len(first)) as stream:
                async for item in stream:
                    items.append(item)
                    if len(items) == len(later):
                        break
            return items

        assert asyncio.run(async_replay()) == replayed

        # More events than the ring holds: an old since= is acknowledged with missed=1.
        many = [PeerChange(new_public()) for _ in range(RING_CAPACITY + 10)]
        UAPIClient(iface.socket).set(ChangeSet(peers=many))
        with dev.events(since=1) as stream:
            assert stream.missed is True
        # A since= beyond the daemon's last sequence (another daemon's snapshot) too.
        with dev.events(since=10**9) as stream:
            assert stream.missed is True
        with dev.events(since=dev.state().event_sequence) as stream:
            assert stream.missed is False


@pytest.mark.parametrize(("body", "code"), [
    (b"since=abc\n", -22), (b"since=-1\n", -22), (b"since=99999999999999999999999\n", -22),
    (b"follow=1\n", -22), (b"since\n", -71),
])  # fmt: skip
def test_bad_events_request_gets_errno(netns_pool: NetnsPool, body: bytes, code: int):
    with userspace_interface(netns_pool, "wge", "wgfastd") as iface:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(iface.socket)
            sock.sendall(b"events=1\n" + body + b"\n")
            reply = sock.recv(4096)
            assert reply == f"errno={code}\n\n".encode()
            sock.sendall(b"get=1\n\n")  # the connection still serves requests
            reply = b""
            while not reply.endswith(b"\n\n"):
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            # No event yet: the key is absent (0), as wgfastd's zero counters are.
            assert b"wgfast_event_sequence" not in reply and reply.endswith(b"errno=0\n\n")
        with pytest.raises(ValueError):
            Device(iface.name).events(since=-1)
        with pytest.raises(UAPIError) as refused:  # the daemon's refusal reaches the API
            Device(iface.name).events(since=2**64)
        assert refused.value.errno == -22


def test_stop_notice_then_eof(netns_pool: NetnsPool):
    with userspace_interface(netns_pool, "wge", "wgfastd") as iface:
        dev = Device(iface.name)
        dev.add_peer(Peer(new_public()))
        collector = Collector(dev)
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.connect(iface.socket)
        raw.sendall(b"events=1\nsince=0\n\n")
        try:
            os.unlink(iface.socket)  # wgfastd's signal to stop
            notice = collector.wait(lambda e: isinstance(e, DaemonStopping))
            assert notice.last_sequence == 0  # it subscribed after the only event
            collector.thread.join(5)
            assert not collector.thread.is_alive() and collector.error is None
            data = b""
            while chunk := raw.recv(4096):  # until EOF (a timeout fails the test)
                data += chunk
        finally:
            raw.close()
            collector.close()
        blocks = data.decode().split("\n\n")
        assert blocks[0] == "sequence=1\nerrno=0", data
        assert parse_block(blocks[1]).sequence == 1  # replayed: since=0
        assert parse_block(blocks[2]) == DaemonStopping(1, "stopping"), data
        assert blocks[3:] == [""], data


def test_wireguard_go_has_no_events(netns_pool: NetnsPool):
    with userspace_interface(netns_pool, "wge", "/usr/bin/wireguard-go") as iface:
        dev = Device(iface.name)
        assert dev.state().event_sequence == 0
        with pytest.raises(NotSupportedError, match="not supported by this implementation"):
            dev.events()
        with pytest.raises(NotSupportedError):
            asyncio.run(AsyncDevice(iface.name).events().open())
        assert raw_exchange(iface.socket, b"events=1\n\n") == b""  # closed without a reply


def _get_latency(path: str) -> float:
    client = UAPIClient(path, timeout=10)
    started = time.perf_counter()
    status = client.get_text()
    elapsed = time.perf_counter() - started
    assert status.endswith("errno=0\n\n"), status[-200:]
    return elapsed


def _median_get(path: str, pause: float) -> float:
    samples = []
    for _ in range(GETS):
        samples.append(_get_latency(path))
        time.sleep(pause)
    return statistics.median(samples)


def test_stalled_subscriber_under_flood(netns_pool: NetnsPool, tmp_path: Path):
    a, b = make_pair(netns_pool, ("wireguard-go", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    pid = daemon_pid(b)
    path = socket_path(b.interface)
    flooder = a.ns.popen(sys.executable, "-c", FLOODER, b.outer4, str(b.port), b.public_key,
                         str(FLOOD_SECONDS), "1000000", str(FLOOD_RATE), str(FLOOD_SOCKETS),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    # Peers added and removed all along (in both phases): events flow at a steady rate, so
    # the stalled subscriber's backlog fills within the stall.
    stop_churn = threading.Event()
    churned = [0]

    def churn() -> None:
        client = UAPIClient(path, timeout=10)
        while not stop_churn.is_set():
            publics = [new_public() for _ in range(CHURN_PEERS)]
            client.set(ChangeSet(peers=[PeerChange(p) for p in publics]))
            client.set(ChangeSet(peers=[PeerChange(p, remove=True) for p in publics]))
            churned[0] += 2 * CHURN_PEERS
            stop_churn.wait(CHURN_PAUSE)

    churner = threading.Thread(target=churn, daemon=True)
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert flooder.stdout is not None
        assert flooder.stdout.readline().strip() == "flooding"
        churner.start()
        time.sleep(2.0)  # the flood fills the queue; the daemon's memory warms up
        before = _median_get(path, 0.05)
        rss_before = rss_kib(pid, "VmRSS")
        sequence_before = Device(b.interface).state().event_sequence

        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(path)
        stalled.sendall(b"events=1\n\n")
        stalled_at = time.monotonic()
        during = _median_get(path, 0.5)  # spread over the first ~10 s of the stall
        log_file = tmp_path / f"{b.interface}.log"
        cut_off = wait_for(lambda: ": cut off" in log_file.read_text(),
                           STALL_SECONDS - (time.monotonic() - stalled_at) - 2, 0.2)
        stop_churn.set()
        time.sleep(max(0.0, STALL_SECONDS - (time.monotonic() - stalled_at)))
        rss_after = rss_kib(pid, "VmRSS")
        sequence_after = Device(b.interface).state().event_sequence
        assert churner.is_alive() or churned[0] > 0

        stalled.settimeout(10)
        data = bytearray()
        while chunk := stalled.recv(65536):  # the notice, then EOF (a timeout fails)
            data += chunk
    finally:
        stop_churn.set()
        stalled.close()
        if flooder.poll() is None:
            flooder.kill()
        flooder.communicate(timeout=30)
        churner.join(15) if churner.is_alive() else None
    blocks = bytes(data).decode().split("\n\n")
    notice = parse_block(blocks[-2])
    items = [parse_block(block) for block in blocks[1:-2]]
    delivered = [item.sequence for item in items]
    summaries = [item for item in items if isinstance(item, DropSummary)]
    print(f"stalled subscriber: get=1 median {before * 1e3:.2f} ms without subscribers, "
          f"{during * 1e3:.2f} ms with (ratio {during / before:.2f}); RSS {rss_before} kB -> "
          f"{rss_after} kB ({rss_after - rss_before:+d} kB); events {sequence_before} -> "
          f"{sequence_after}; the subscriber read {len(delivered)} events, then {notice}; "
          f"cut off logged within the stall: {cut_off}; drop summaries among them: "
          f"{len(summaries)}, e.g. {summaries[:1]}")  # fmt: skip
    assert cut_off, "the daemon never cut off the stalled subscriber"
    assert blocks[0].startswith("sequence=") and blocks[0].endswith("\nerrno=0"), blocks[0]
    assert isinstance(notice, StreamCutOff), blocks[-3:]
    assert notice.reason == "backlog_full"
    assert blocks[-1] == "", "data after the notice"
    assert delivered == list(range(delivered[0], delivered[0] + len(delivered)))
    assert notice.last_sequence == delivered[-1]
    assert summaries, "no drop summary while the flood ran"
    assert during / before <= LATENCY_RATIO_LIMIT, (before, during)
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_KIB
    assert daemon_pid(b) == pid


# --- the event bus alone (no daemon) -----------------------------------------------------------


def test_bus_ring_backlog_and_drop_summaries():
    from wgfast.daemon import events as ev

    drops = {"dataplane_drop_auth": 0}
    bus = ev.EventBus(lambda: drops, ring_capacity=8, backlog_capacity=4)

    async def scenario() -> None:
        for i in range(10):
            bus.publish(ev.PEER_ADDED, (("public_key", f"{i:064x}"),))
        assert bus.last_sequence == 10 and bus.ring[0].sequence == 3
        old, missed = bus.subscribe(1)  # 2 is no longer in the ring
        assert missed and not old.pending
        bus.unsubscribe(old)
        replay, missed = bus.subscribe(2)  # 3..10 are: a replay beyond the backlog's 4
        assert not missed and [e.sequence for e in replay.pending] == list(range(3, 11))
        bus.publish(ev.PEER_REMOVED, (("public_key", "00" * 32),))
        assert replay.ended is None  # the replay does not count against the backlog
        assert [e.sequence for e in await replay.next_batch()] == list(range(3, 12))
        for _ in range(4):
            bus.publish(ev.PEER_REMOVED, (("public_key", "00" * 32),))
        assert replay.ended is None
        bus.publish(ev.PEER_REMOVED, (("public_key", "00" * 32),))  # the fifth waiting
        assert replay.ended == ev.CUT_OFF and not replay.pending
        assert await replay.next_batch() == [] and replay.last_sequence == 11
        # Drop summaries: only when a count moved, with the counts since the previous one.
        assert bus.summarize_drops() is None
        drops["dataplane_drop_auth"] = 3
        summary = bus.summarize_drops()
        assert summary is not None and summary.fields == (("dataplane_drop_auth", "3"),)
        assert summary.block.startswith(b"event=drop_summary\nsequence=17\n")
        assert bus.summarize_drops() is None
        bus.unsubscribe(replay)
        live, missed = bus.subscribe(None)
        assert not missed and bus._summary_task is not None
        bus.publish(ev.SESSION_EXPIRED, (("public_key", "00" * 32),))
        bus.close()  # what waits is handed out first, then the stream ends
        assert live.ended == ev.DAEMON_STOPPING
        assert [e.name for e in await live.next_batch()] == [ev.SESSION_EXPIRED]
        assert await live.next_batch() == []
        bus.unsubscribe(live)
        assert bus._summary_task is None

    asyncio.run(scenario())


@pytest.mark.parametrize(("lines", "since"), [([], None), (["since=0"], 0), (["since=17"], 17)])
def test_events_request_parsing(lines: list[str], since: int | None):
    from wgfast.daemon import events as ev

    assert ev.parse_request(lines) == since
