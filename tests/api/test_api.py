"""wgfast.Device / wgfast.Peer (blocking and asyncio) against a real UAPI speaker
(wireguard-go and wgfastd, in a namespace the test creates), cross-checked with `wg`."""

from __future__ import annotations

import asyncio
import errno
import importlib
import ipaddress

import pytest

import wgfast
from support.daemons import userspace_interface
from wgfast import keys, wgquick
from wgfast.api.device import AsyncDevice, Device, Peer
from wgfast.errors import DeviceUnreachableError, PeerNotFoundError
from wgfast.uapi import Endpoint


@pytest.fixture
def wg_iface(netns_pool, daemon):
    with userspace_interface(netns_pool, daemon=daemon) as iface:
        yield iface


def test_lazy_exports():
    assert wgfast.Device is Device and wgfast.Peer is Peer


def test_peer_accepts_base64_and_bytes():
    raw = bytes(range(32))
    a = Peer(keys.to_base64(raw), allowed_ips=["10.0.0.1/32"])
    b = Peer(raw, allowed_ips=[ipaddress.ip_network("10.0.0.1/32")])
    assert a == b and a.public_key == raw
    with pytest.raises(ValueError):
        Peer("not a key")


def test_device_lifecycle(wg_iface):
    dev = Device.attach(wg_iface.name)
    private = keys.generate_private_key()
    dev.configure(private_key=private, listen_port=0, fwmark=0x42)
    state = dev.state()
    assert state.private_key == private and state.fwmark == 0x42
    assert state.public_key == keys.public_key(private)
    assert f"public key: {keys.to_base64(keys.public_key(private))}" in wg_iface.wg(
        "show", wg_iface.name)

    one, two = keys.KeyPair.generate(), keys.KeyPair.generate()
    psk = keys.generate_preshared_key()
    dev.add_peer(Peer(one.public, preshared_key=psk, endpoint="192.0.2.1:51820",
                      allowed_ips=["10.1.0.0/24", "fd01::/64"], persistent_keepalive=25))
    dev.add_peer(Peer(keys.to_base64(two.public), allowed_ips=["10.2.0.2/32"]))
    peer = dev.peer(one.public)
    assert peer is not None
    assert peer.preshared_key == psk
    assert peer.endpoint == Endpoint(ipaddress.ip_address("192.0.2.1"), 51820)
    assert [str(n) for n in peer.allowed_ips] == ["10.1.0.0/24", "fd01::/64"]
    assert peer.persistent_keepalive == 25 and peer.latest_handshake is None
    dump = wg_iface.wg("show", wg_iface.name, "allowed-ips")
    assert f"{keys.to_base64(one.public)}\t10.1.0.0/24 fd01::/64" in dump

    dev.update_peer(one.public, allowed_ips=["10.9.0.0/16"], persistent_keepalive=0)
    dev.update_peer(one.public, add_allowed_ips=["10.10.0.0/16"])
    peer = dev.peer(one.public)
    assert [str(n) for n in peer.allowed_ips] == ["10.9.0.0/16", "10.10.0.0/16"]
    assert peer.persistent_keepalive == 0 and peer.endpoint is not None
    # A peer that does not exist is neither created nor silently ignored, unless asked.
    stranger = keys.KeyPair.generate().public
    with pytest.raises(PeerNotFoundError, match="has no peer"):
        dev.update_peer(stranger, allowed_ips=["10.99.0.0/16"])
    with pytest.raises(PeerNotFoundError):
        dev.remove_peer(stranger)
    dev.update_peer(stranger, allowed_ips=["10.99.0.0/16"], missing_ok=True)
    dev.remove_peer(stranger, missing_ok=True)
    assert len(dev.peers()) == 2

    dev.remove_peer(two.public)
    assert [p.public_key for p in dev.peers()] == [one.public]
    dev.configure(private_key=None)
    assert dev.state().private_key is None


def test_apply_whole_config(wg_iface):
    one, two = keys.KeyPair.generate(), keys.KeyPair.generate()
    private = keys.generate_private_key()
    text = f"""[Interface]
PrivateKey = {keys.to_base64(private)}
FwMark = 0x99
Address = 10.50.0.1/24
[Peer]
PublicKey = {keys.to_base64(one.public)}
AllowedIPs = 10.50.0.2/32
Endpoint = localhost:4000
[Peer]
PublicKey = {keys.to_base64(two.public)}
AllowedIPs = 10.50.0.3/32
"""
    dev = Device(wg_iface.name)
    dev.add_peer(Peer(keys.KeyPair.generate().public))  # replaced by apply
    dev.apply(wgquick.parse(text, "t.conf"))
    state = dev.state()
    assert state.private_key == private and state.fwmark == 0x99
    assert {p.public_key for p in state.peers} == {one.public, two.public}
    assert str(state.peer(one.public).endpoint) == "127.0.0.1:4000"  # resolved at apply time
    assert wg_iface.wg("show", wg_iface.name, "fwmark").strip() == "0x99"


def test_async_device(wg_iface):
    async def scenario():
        dev = await AsyncDevice.attach(wg_iface.name)
        private = keys.generate_private_key()
        await dev.configure(private_key=private)
        peer_key = keys.KeyPair.generate().public
        await dev.add_peer(Peer(peer_key, allowed_ips=["10.3.0.0/24"]))
        await dev.update_peer(peer_key, endpoint="[2001:db8::5]:7")
        state = await dev.state()
        await dev.remove_peer(peer_key)
        return private, peer_key, state, await dev.peers()

    private, peer_key, state, after = asyncio.run(scenario())
    assert state.private_key == private
    assert str(state.peer(peer_key).endpoint) == "[2001:db8::5]:7"
    assert after == []


def test_attach_missing_interface():
    with pytest.raises(DeviceUnreachableError, match="no UAPI socket"):
        Device.attach("wgfnotthere0")
    # One family: a program catches WgfastError, or the standard base it caught before.
    with pytest.raises(wgfast.WgfastError):
        Device.attach("wgfnotthere0")
    with pytest.raises(OSError):
        Device("wgfnotthere0").state()


def test_errors_are_one_family_importable_from_wgfast():
    for name in ("ConfigError", "KeyFormatError", "UAPIError", "DeviceUnreachableError",
                 "DaemonStartError", "PeerNotFoundError", "NotSupportedError"):
        assert issubclass(getattr(wgfast, name), wgfast.WgfastError), name
    with pytest.raises(wgfast.KeyFormatError):
        keys.from_base64("not a key")
    with pytest.raises(wgfast.ConfigError) as bad:
        wgquick.parse("[Interface]\nListenPort = many\n", "wg9.conf")
    assert bad.value.file == "wg9.conf" and bad.value.line == 2
    refused = wgfast.UAPIError(-errno.EADDRINUSE, "set=1 refused")
    assert refused.errno_name == "EADDRINUSE"
    assert str(refused) == "set=1 refused: EADDRINUSE (Address already in use)"
    # wgfast.Device is the only public device class: the daemon's own is another name.
    assert not hasattr(importlib.import_module("wgfast.daemon.interface"), "Device")
