"""Many peers: the fast paths behind a 10,000-peer setconf behave exactly like the slow ones.

- UAPI parsing: the dotted-quad IPv4 fast path accepts and returns exactly what ipaddress does.
- DeviceConfig.apply shares the peers a change-set leaves alone (same objects), so the device
  can sync by identity.
- Interface syncs only changed peers into the data plane, and a new peer's endpoint goes down
  without a peer_info round trip.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgfast.daemon.config import DeviceConfig
from wgfast.daemon.interface import Interface
from wgfast.uapi import (
    ChangeSet,
    Endpoint,
    PeerChange,
    UAPIError,
    parse_allowed_ip,
    parse_set,
)


def _reference_prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """parse_allowed_ip as it was, through ipaddress's string parser only."""
    address_text, sep, bits_text = text.rpartition("/")
    if not sep or "%" in address_text:
        raise ValueError(text)
    if not bits_text.isascii() or not bits_text.isdigit():
        raise ValueError(text)
    if len(bits_text) > 1 and bits_text[0] == "0":
        raise ValueError(text)
    address = ipaddress.ip_address(address_text)
    if int(bits_text) > address.max_prefixlen:
        raise ValueError(text)
    return ipaddress.ip_network((address, int(bits_text)), strict=False)


def _outcome(parse, text: str):
    try:
        value = parse(text)
    except ValueError:
        return "invalid"
    return (type(value), value, str(value))


_OCTETS = st.sampled_from(
    ["0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "300", "00",
     "01", "001", "010", "0255", "", " 1", "1 ", "\u0661", "+1", "-1", "1\n", "a"]
)  # fmt: skip


@given(st.lists(_OCTETS, min_size=3, max_size=5), st.sampled_from(
    ["/0", "/7", "/24", "/32", "/33", "/128", "/08", "/", "", "/3 ", "/\u0663"]))  # fmt: skip
def test_prefix_fast_path_matches_ipaddress(octets: list[str], suffix: str) -> None:
    text = ".".join(octets) + suffix
    assert _outcome(parse_allowed_ip, text) == _outcome(_reference_prefix, text)


@given(st.text(alphabet="0123456789.:/%abcdef \n\u0660", max_size=24))
def test_prefix_parsing_matches_ipaddress_on_junk(text: str) -> None:
    assert _outcome(parse_allowed_ip, text) == _outcome(_reference_prefix, text)


@pytest.mark.parametrize(
    "text",
    ["10.1.2.3/32", "10.1.2.3/8", "0.0.0.0/0", "255.255.255.255/32", "fd00::1/64", "::/0",
     "::ffff:1.2.3.4/128"],
)  # fmt: skip
def test_prefix_host_bits_masked_and_types_kept(text: str) -> None:
    prefix = parse_allowed_ip(text)
    assert prefix == ipaddress.ip_network(text, strict=False)
    assert type(prefix) is type(ipaddress.ip_network(text, strict=False))


@pytest.mark.parametrize(
    "text", ["1.2.3.4:51820", "198.18.0.1:0", "255.255.255.255:65535", "[fd00::1]:1",
             "[::ffff:1.2.3.4]:5", "[fe80::1%eth0]:7"],
)  # fmt: skip
def test_endpoint_fast_path_same_value(text: str) -> None:
    endpoint = Endpoint.parse(text)
    assert str(endpoint) == text
    host = text.rpartition(":")[0].strip("[]")
    assert endpoint.address == ipaddress.ip_address(host)


@pytest.mark.parametrize(
    "line",
    ["endpoint=01.2.3.4:1", "endpoint=1.2.3.256:1", "endpoint=1.2.3:1", "endpoint=1.2.3.4.5:1",
     "endpoint=\u0661.2.3.4:1", "endpoint=[1.2.3.4]:1", "allowed_ip=10.0.0.01/32",
     "allowed_ip=10.0.0.1/33", "allowed_ip=10.0.0.1/032", "allowed_ip=10.0.0.1",
     "allowed_ip=10.0.0.1 /32", "allowed_ip=10.0.0.1/3\u0662"],
)  # fmt: skip
def test_bad_addresses_still_refused_with_einval(line: str) -> None:
    with pytest.raises(UAPIError) as info:
        parse_set(f"public_key={'11' * 32}\n{line}\n\n")
    assert info.value.errno == -22


# --- configuration: structural sharing --------------------------------------------------------

KEYS = [bytes([i]) * 32 for i in range(1, 6)]


def _peer(key: bytes, *prefixes: str, endpoint: str | None = None) -> PeerChange:
    return PeerChange(
        key,
        endpoint=Endpoint.parse(endpoint) if endpoint else None,
        allowed_ips=[parse_allowed_ip(p) for p in prefixes],
    )


def _base() -> DeviceConfig:
    return DeviceConfig().apply(
        ChangeSet(peers=[_peer(k, f"10.0.0.{i}/32") for i, k in enumerate(KEYS, 1)])
    )


def test_unchanged_peers_are_shared() -> None:
    old = _base()
    new = old.apply(ChangeSet(peers=[_peer(KEYS[1], endpoint="1.2.3.4:5")]))
    assert [a is b for a, b in zip(old.peers, new.peers, strict=True)] == [
        True, False, True, True, True]  # fmt: skip
    assert new.peers[1].endpoint == Endpoint.parse("1.2.3.4:5")


def test_moving_a_prefix_changes_both_peers_and_no_other() -> None:
    old = _base()
    new = old.apply(ChangeSet(peers=[_peer(KEYS[0], "10.0.0.3/32")]))
    assert [a is b for a, b in zip(old.peers, new.peers, strict=True)] == [
        False, True, False, True, True]  # fmt: skip
    assert new.peer(KEYS[2]).allowed_ips == ()
    assert [str(p) for p in new.peer(KEYS[0]).allowed_ips] == ["10.0.0.1/32", "10.0.0.3/32"]


def test_repeating_a_configuration_keeps_every_peer_shared() -> None:
    old = _base()
    again = ChangeSet(replace_peers=True, peers=[
        PeerChange(p.public_key, replace_allowed_ips=True, allowed_ips=list(p.allowed_ips))
        for p in old.peers])  # fmt: skip
    new = old.apply(again)
    assert all(a is b for a, b in zip(old.peers, new.peers, strict=True))


def test_remove_and_readd_goes_last_and_drops_its_prefixes() -> None:
    old = _base()
    new = old.apply(ChangeSet(peers=[PeerChange(KEYS[0], remove=True), _peer(KEYS[0])]))
    assert [p.public_key for p in new.peers] == KEYS[1:] + KEYS[:1]
    assert new.peers[-1].allowed_ips == ()
    assert all(a is b for a, b in zip(old.peers[1:], new.peers[:-1], strict=True))


# --- device: incremental sync into the data plane ---------------------------------------------


def _as_skin_sees_it(network) -> str:
    return str(ipaddress.ip_network(network, strict=False))


class _RecordingDataPlane:
    """The DataPlane calls Interface's sync makes, recorded (calls that only report are not),
    with the peers and allowed IPs they leave; `fail` names calls that raise ENOMEM once `after`
    of them succeeded, `times` times (a transient failure: once)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.peers: set[int] = set()
        self.routes: dict[str, int] = {}
        self.fail: set[str] = set()
        self.after = 0
        self.times = 1

    def _call(self, *call) -> None:
        if call[0] in self.fail and self.times > 0:
            if self.after <= 0:
                self.times -= 1
                raise OSError(errno.ENOMEM, "out of memory (injected)")
            self.after -= 1
        self.calls.append(call)

    def add_peer(self, peer: int) -> None:
        self._call("add_peer", peer)
        self.peers.add(peer)

    def remove_peer(self, peer: int) -> None:
        self._call("remove_peer", peer)
        self.peers.discard(peer)
        self.routes = {k: v for k, v in self.routes.items() if v != peer}

    def set_endpoint(self, peer: int, endpoint) -> None:
        host = ipaddress.ip_address(endpoint[0])  # what the skin does with it
        self.calls.append(("set_endpoint", peer, str(host), endpoint[1]))

    def set_identity(self, public_key: bytes | None) -> None:
        self.calls.append(("set_identity", public_key is not None))

    def end_handshake(self, peer: int) -> None:
        pass

    def peer_info(self, peer: int) -> dict:
        self.calls.append(("peer_info", peer))
        return {}

    def add_allowed_ip(self, peer: int, network) -> None:
        self._call("add_allowed_ip", peer, _as_skin_sees_it(network))
        self.routes[_as_skin_sees_it(network)] = peer

    def remove_allowed_ip(self, peer: int, network) -> None:
        self._call("remove_allowed_ip", peer, _as_skin_sees_it(network))
        if self.routes.get(_as_skin_sees_it(network)) == peer:
            del self.routes[_as_skin_sees_it(network)]

    def take(self) -> list[tuple]:
        calls, self.calls = self.calls, []
        return calls


class _Tun:
    """A stand-in TUN: one end of a socketpair (the data plane only needs an fd to create)."""

    mtu, name, vnet_hdr = 1420, "wgtest", False

    def __init__(self) -> None:
        self.ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.fd = self.ends[0].fileno()


@pytest.fixture
def fatal() -> list[str]:
    """The reasons the interfaces made in a test gave up for."""
    return []


@pytest.fixture
def make_device(fatal: list[str]):
    made: list[tuple[Interface, _Tun]] = []

    def make(peers: int) -> tuple[Interface, _RecordingDataPlane, list[bytes]]:
        tun = _Tun()
        device = Interface(tun, fatal.append, fatal.append)  # type: ignore[arg-type]
        made.append((device, tun))
        dataplane = _RecordingDataPlane()
        device.dataplane = dataplane  # type: ignore[assignment]
        # The record of the allowed-IPs table writes through the recorder from now on.
        device._runtime.allowed_ips.table.dataplane = dataplane  # type: ignore[attr-defined]
        keys = [i.to_bytes(32, "big") for i in range(1, peers + 1)]
        device.apply(ChangeSet(private_key=bytes(range(32)), peers=[
            _peer(k, f"10.{i >> 8 & 255}.{i & 255}.0/24",
                  endpoint=f"198.18.{i >> 8 & 255}.{i & 255}:9")
            for i, k in enumerate(keys)]))  # fmt: skip
        return device, dataplane, keys

    yield make
    for _, tun in made:
        for end in tun.ends:
            end.close()


def test_new_peers_loaded_without_peer_info(make_device) -> None:
    device, dataplane, keys = make_device(300)
    calls = dataplane.take()
    assert [c[0] for c in calls].count("add_peer") == 300
    assert [c[0] for c in calls].count("add_allowed_ip") == 300
    assert not [c for c in calls if c[0] == "peer_info"]
    slot = device.peer_ids[keys[5]]
    assert ("set_endpoint", slot, "198.18.0.5", 9) in calls
    assert ("add_allowed_ip", slot, "10.0.5.0/24") in calls


def test_one_changed_peer_costs_one_peer_of_work(make_device) -> None:
    device, dataplane, keys = make_device(300)
    dataplane.take()
    slot = device.peer_ids[keys[7]]
    device.apply(ChangeSet(peers=[_peer(keys[7], endpoint="[fd00::7]:70")]))
    assert dataplane.take() == [("set_endpoint", slot, "fd00::7", 70)]


def test_moved_prefix_repointed_and_dropped_prefix_removed(make_device) -> None:
    device, dataplane, keys = make_device(300)
    dataplane.take()
    a, b = device.peer_ids[keys[1]], device.peer_ids[keys[2]]
    # keys[1] takes keys[2]'s prefix; keys[2] is left with none.
    device.apply(ChangeSet(peers=[_peer(keys[1], "10.0.2.0/24")]))
    assert dataplane.take() == [("add_allowed_ip", a, "10.0.2.0/24")]
    device.apply(ChangeSet(peers=[PeerChange(keys[1], replace_allowed_ips=True)]))
    assert sorted(dataplane.take()) == [
        ("remove_allowed_ip", a, "10.0.1.0/24"),
        ("remove_allowed_ip", a, "10.0.2.0/24"),
    ]
    assert device.config.peer(keys[2]).allowed_ips == ()
    # keys[2] lost its prefix to keys[1] and stays without it.
    device.apply(ChangeSet(peers=[_peer(keys[3], endpoint="1.1.1.1:1")]))
    assert b not in [c[1] for c in dataplane.take()]


def test_removed_peer_only(make_device) -> None:
    device, dataplane, keys = make_device(300)
    dataplane.take()
    slot = device.peer_ids[keys[4]]
    device.apply(ChangeSet(peers=[PeerChange(keys[4], remove=True)]))
    assert dataplane.take() == [("remove_peer", slot)]


def test_replace_peers_makes_every_peer_new(make_device) -> None:
    """As wireguard-go and the kernel: replace_peers removes every peer first, so those named
    again come back as new peers (their sessions and counters gone)."""
    device, dataplane, keys = make_device(3)
    dataplane.take()
    before = dict(device.peer_ids)
    device.apply(ChangeSet(replace_peers=True, peers=[_peer(keys[0], "10.0.0.0/24",
                                                            endpoint="198.18.0.0:9")]))
    calls = dataplane.take()
    assert [c[0] for c in calls].count("remove_peer") == 3
    assert list(device.peer_ids) == [keys[0]] and device.peer_ids[keys[0]] not in before.values()


def _consistent_with(device: Interface, dataplane: _RecordingDataPlane,
                     config: DeviceConfig) -> None:
    """The protocol core, the data plane and the record all hold `config`'s peers and routes."""
    publics = {p.public_key for p in config.peers}
    assert set(device.peer_ids) == publics and set(device.state.peers) == publics
    assert dataplane.peers == set(device.peer_ids.values())
    assert dataplane.routes == {str(prefix): device.peer_ids[p.public_key]
                                for p in config.peers for prefix in p.allowed_ips}


def test_failed_set_is_rolled_back(make_device, fatal: list[str]) -> None:
    """An unexpected failure half way through a set: the error goes back to the client and
    everything the set had done is undone."""
    device, dataplane, keys = make_device(3)
    old, before = device.config, set(dataplane.peers)
    dataplane.fail, dataplane.after = {"add_allowed_ip"}, 2
    newcomers = [bytes([0xEE, i]) * 16 for i in range(3)]
    with pytest.raises(UAPIError) as refused:
        device.apply(ChangeSet(peers=[
            _peer(keys[0], "10.200.0.0/24"), PeerChange(keys[1], remove=True),
            *[_peer(k, f"10.201.{i}.0/24") for i, k in enumerate(newcomers)]]))
    assert refused.value.errno == -errno.ENOMEM
    assert device.config is old and not fatal
    _consistent_with(device, dataplane, old)
    assert dataplane.peers == before  # the peer the set removed kept its place (and session)
    device.apply(ChangeSet(peers=[_peer(newcomers[0], "10.202.0.0/24")]))  # and goes on
    _consistent_with(device, dataplane, device.config)


def test_set_that_cannot_be_undone_is_fatal(make_device, fatal: list[str]) -> None:
    device, dataplane, keys = make_device(2)
    dataplane.fail, dataplane.after, dataplane.times = {"add_allowed_ip", "remove_peer"}, 0, 9
    with pytest.raises(UAPIError):
        device.apply(ChangeSet(peers=[_peer(bytes([0xEF]) * 32, "10.203.0.0/24")]))
    assert fatal and "consistent" in fatal[0]


def test_dataplane_endpoint_and_prefix_forms_accepted_by_the_skin() -> None:
    """The packed forms Interface hands the compiled skin work with the real DataPlane."""
    native = pytest.importorskip("wgfast._native")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    dp = native.DataPlane(a.fileno(), udp.fileno(), -1, 1420)
    try:
        dp.add_peer(1)
        dp.set_endpoint(1, (ipaddress.ip_address("198.18.3.4").packed, 77))
        assert dp.get_endpoint(1) == ("198.18.3.4", 77)
        dp.set_endpoint(1, (ipaddress.ip_address("fd00::9").packed, 78))
        assert dp.get_endpoint(1) == ("fd00::9", 78)
        for text in ("10.9.0.0/16", "fd00:1::/64"):
            net = ipaddress.ip_network(text)
            dp.add_allowed_ip(1, (net.network_address.packed, net.prefixlen))
            assert dp.route(net.network_address + 1) == 1
            dp.remove_allowed_ip(1, (net.network_address.packed, net.prefixlen))
            assert dp.route(net.network_address + 1) == 0
    finally:
        dp.close()
        for s in (a, b, udp):
            s.close()
