"""Random sequences of UAPI sets, valid and invalid, against a running wgfastd whose link is up,
checked after every step against a model written here from the UAPI's rules (wireguard-go's
device/uapi.go): `get=1` must equal the model, and the daemon must still answer.

The model is independent of wgfast's own configuration code: it holds plain dicts and applies
each request's lines in order, and a request with a bad line changes nothing (wgfastd applies a
set whole or not at all). The listen port may be one another socket holds: then the set fails
with EADDRINUSE and changes nothing either.
"""

from __future__ import annotations

import base64
import socket
import sys
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from support.daemons import WGFASTD, userspace_interface
from support.netns import NetnsPool
from wgfast.process import process_alive, socket_owner_pid

ZERO = bytes(32)
PORTS = (51901, 51902, 51903)
BUSY_PORT = 51904  # held by the test while the machine runs
PREFIXES = ("10.9.0.0/24", "10.9.1.0/24", "10.9.0.0/16", "fd09::/64", "fd09:1::/64",
            "192.0.2.7/32")
ENDPOINTS = ("127.0.0.1:1000", "127.0.0.2:2000", "[::1]:3000", "[fd00::7]:4000")


def clamp(key: bytes) -> bytes:
    scalar = bytearray(key)
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    return bytes(scalar)


def public_of(private: bytes) -> bytes:
    return (X25519PrivateKey.from_private_bytes(private).public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw))


PEER_PRIVATES = [bytes([i]) * 32 for i in range(1, 7)]
PEER_KEYS = [public_of(k) for k in PEER_PRIVATES]
# Device keys: random ones, and two that are peers' private keys (the peer is then dropped).
DEVICE_KEYS = [bytes([0x40 + i]) * 32 for i in range(3)] + PEER_PRIVATES[:2]


@dataclass
class ModelPeer:
    preshared_key: bytes = ZERO
    endpoint: str | None = None
    keepalive: int = 0
    allowed: dict[str, None] = field(default_factory=dict)  # an ordered set


@dataclass
class Model:
    private_key: bytes | None = None
    listen_port: int = PORTS[0]
    fwmark: int = 0
    peers: dict[bytes, ModelPeer] = field(default_factory=dict)

    def copy(self) -> Model:
        return Model(self.private_key, self.listen_port, self.fwmark,
                     {k: ModelPeer(p.preshared_key, p.endpoint, p.keepalive, dict(p.allowed))
                      for k, p in self.peers.items()})


def apply(model: Model, lines: list[tuple[str, str]]) -> Model:
    """The UAPI's rules, line by line, on a copy of `model`."""
    m = model.copy()
    peer: ModelPeer | None = None
    public = b""
    created = False
    for key, value in lines:
        if key == "private_key":
            raw = bytes.fromhex(value)
            m.private_key = None if raw == ZERO else clamp(raw)
            if m.private_key is not None:
                m.peers.pop(public_of(m.private_key), None)
        elif key == "listen_port":
            m.listen_port = int(value)
        elif key == "fwmark":
            m.fwmark = int(value)
        elif key == "replace_peers":
            m.peers.clear()
        elif key == "public_key":
            public = bytes.fromhex(value)
            own = public_of(m.private_key) if m.private_key is not None else None
            created = public not in m.peers
            peer = None if public == own else m.peers.setdefault(public, ModelPeer())
        elif peer is None:
            continue  # lines about our own key, or of an ignored section
        elif key == "update_only":
            if created:  # update only: a peer that did not exist is not made
                del m.peers[public]
                peer = None
        elif key == "remove":
            m.peers.pop(public, None)
            peer = None
        elif key == "preshared_key":
            peer.preshared_key = bytes.fromhex(value)
        elif key == "endpoint":
            peer.endpoint = value
        elif key == "persistent_keepalive_interval":
            peer.keepalive = int(value)
        elif key == "replace_allowed_ips":
            peer.allowed.clear()
        elif key == "allowed_ip":
            for other in m.peers.values():  # one table: a prefix has one owner
                other.allowed.pop(value, None)
            peer.allowed[value] = None
    return m


def parse_get(text: str) -> Model:
    """get=1 -> Model, independently of wgfast.uapi."""
    m = Model(listen_port=0)
    peer: ModelPeer | None = None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "private_key":
            m.private_key = bytes.fromhex(value)
        elif key == "listen_port":
            m.listen_port = int(value)
        elif key == "fwmark":
            m.fwmark = int(value)
        elif key == "public_key":
            peer = m.peers.setdefault(bytes.fromhex(value), ModelPeer())
        elif peer is not None and key == "preshared_key":
            peer.preshared_key = bytes.fromhex(value)
        elif peer is not None and key == "endpoint":
            peer.endpoint = value
        elif peer is not None and key == "persistent_keepalive_interval":
            peer.keepalive = int(value)
        elif peer is not None and key == "allowed_ip":
            peer.allowed[value] = None
        elif key == "errno":
            assert value == "0", text
    return m


def exchange(path: str, request: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(request.encode())
        reply = b""
        while not (reply.endswith(b"\n\n") and b"errno=" in reply):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
    return reply.decode()


keys = st.sampled_from(PEER_KEYS)
peer_sections = st.builds(
    lambda key, psk, endpoint, keepalive, replace, prefixes, update_only: (
        [("public_key", key.hex())]
        + ([("update_only", "true")] if update_only else [])
        + ([("preshared_key", psk.hex())] if psk is not None else [])
        + ([("endpoint", endpoint)] if endpoint else [])
        + ([("persistent_keepalive_interval", str(keepalive))] if keepalive is not None else [])
        + ([("replace_allowed_ips", "true")] if replace else [])
        + [("allowed_ip", p) for p in prefixes]),
    keys, st.none() | st.sampled_from([ZERO, bytes([9]) * 32]),
    st.none() | st.sampled_from(ENDPOINTS), st.none() | st.integers(0, 30), st.booleans(),
    st.lists(st.sampled_from(PREFIXES), max_size=3), st.booleans())
BAD_LINES = [("public_key", "zz"), ("allowed_ip", "10.0.0.0/33"), ("listen_port", "70000"),
             ("endpoint", "nowhere"), ("frobnicate", "1"), ("fwmark", "-1")]


class UAPIMachine(RuleBasedStateMachine):
    path: str
    pid: int

    @initialize()
    def reset(self) -> None:
        self.model = Model()
        self.send([("private_key", ZERO.hex()), ("listen_port", str(PORTS[0])),
                   ("fwmark", "0"), ("replace_peers", "true")], expect_ok=True)

    def send(self, lines: list[tuple[str, str]], expect_ok: bool | None = None) -> None:
        body = "".join(f"{k}={v}\n" for k, v in lines)
        reply = exchange(self.path, f"set=1\n{body}\n")
        ok = reply == "errno=0\n\n"
        if expect_ok is not None:
            assert ok == expect_ok, (lines, reply)
        if ok:
            self.model = apply(self.model, lines)
        # else: nothing may have changed; the invariant checks it

    @rule(key=st.sampled_from(DEVICE_KEYS + [ZERO]))
    def private_key(self, key: bytes) -> None:
        self.send([("private_key", key.hex())], expect_ok=True)

    @rule(port=st.sampled_from(PORTS + (BUSY_PORT,)))
    def listen_port(self, port: int) -> None:
        self.send([("listen_port", str(port))],
                  expect_ok=port != BUSY_PORT or port == self.model.listen_port)

    @rule(mark=st.integers(0, 3))
    def fwmark(self, mark: int) -> None:
        self.send([("fwmark", str(mark))], expect_ok=True)

    @rule(sections=st.lists(peer_sections, min_size=1, max_size=3), replace=st.booleans())
    def peers(self, sections: list, replace: bool) -> None:
        lines = [("replace_peers", "true")] if replace else []
        for section in sections:
            lines += section
        self.send(lines, expect_ok=True)

    @rule(key=keys)
    def remove(self, key: bytes) -> None:
        self.send([("public_key", key.hex()), ("remove", "true")], expect_ok=True)

    @rule(sections=st.lists(peer_sections, max_size=2), bad=st.sampled_from(BAD_LINES),
          port=st.sampled_from(PORTS))
    def invalid(self, sections: list, bad: tuple[str, str], port: int) -> None:
        lines = [("listen_port", str(port))]
        for section in sections:
            lines += section
        self.send(lines + [bad], expect_ok=False)

    @rule(sections=st.lists(peer_sections, min_size=1, max_size=2))
    def busy_port_with_peers(self, sections: list) -> None:
        """A set that would work but for its port changes nothing at all."""
        if self.model.listen_port == BUSY_PORT:
            return
        lines = [("listen_port", str(BUSY_PORT))]
        for section in sections:
            lines += section
        self.send(lines, expect_ok=False)

    @invariant()
    def get_equals_the_model(self) -> None:
        assert process_alive(self.pid), "wgfastd died"
        got = parse_get(exchange(self.path, "get=1\n\n"))
        want = self.model
        assert got.private_key == want.private_key
        assert (got.listen_port, got.fwmark) == (want.listen_port, want.fwmark)
        assert set(got.peers) == set(want.peers)
        for key, peer in want.peers.items():
            have = got.peers[key]
            assert have.preshared_key == peer.preshared_key, base64.b64encode(key)
            assert have.endpoint == peer.endpoint
            assert have.keepalive == peer.keepalive
            assert set(have.allowed) == set(peer.allowed)


def test_random_sets_keep_get_equal_to_the_model(netns_pool: NetnsPool):
    with userspace_interface(netns_pool, prefix="wgs", daemon=WGFASTD) as iface:
        iface.ns.run("ip", "link", "set", "dev", iface.name, "up")
        pid = socket_owner_pid(iface.socket)
        assert pid is not None
        blocker = iface.ns.popen(sys.executable, "-c",
                                 "import socket, time\n"
                                 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 f"s.bind(('0.0.0.0', {BUSY_PORT}))\n"
                                 "print('bound', flush=True)\n"
                                 "time.sleep(600)\n", stdout=-1, text=True)
        try:
            assert blocker.stdout is not None and blocker.stdout.readline().strip() == "bound"
            UAPIMachine.path, UAPIMachine.pid = iface.socket, pid
            run_state_machine_as_test(UAPIMachine, settings=settings(
                max_examples=25, stateful_step_count=20, deadline=None,
                suppress_health_check=list(HealthCheck)))
        finally:
            blocker.kill()
            blocker.wait()
