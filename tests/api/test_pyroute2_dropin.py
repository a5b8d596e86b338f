"""wgfast.pyroute2.WireGuard: a script written for pyroute2.WireGuard (its documented usage)
runs with only the import changed, against a userspace interface (wireguard-go and wgfastd),
and info() agrees with `wg show`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.wireguard import wgmsg

import wgfast
from support.daemons import userspace_interface
from wgfast import keys
from wgfast.api.pyroute2 import AsyncWireGuard, WireGuard

# Where the imported (installed or in-place built) package lives, for subprocesses.
REPO = str(Path(wgfast.__file__).resolve().parent.parent)

# pyroute2's module docstring example, minus the NDB link creation (the daemon made the
# interface), with IFNAME and the import as the only changes.
DOC_SCRIPT = """
from pyroute2 import WireGuard

IFNAME = {ifname!r}

wg = WireGuard()

peer = {{'public_key': 'TGFHcm9zc2VCaWNoZV9DJ2VzdExhUGx1c0JlbGxlPDM=',
        'endpoint_addr': '8.8.8.8',
        'endpoint_port': 8888,
        'persistent_keepalive': 15,
        'allowed_ips': ['10.0.0.0/24', '8.8.8.8/32']}}
wg.set(IFNAME, private_key='RCdhcHJlc0JpY2hlLEplU2VyYWlzTGFQbHVzQm9ubmU=',
       fwmark=0x1337, listen_port=2525, peer=peer)

peer = {{'public_key': 'RCdBcHJlc0JpY2hlLFZpdmVMZXNQcm9iaW90aXF1ZXM=',
        'preshared_key': 'Pz8/V2FudFRvVHJ5TXlBZXJvR3Jvc3NlQmljaGU/Pz8=',
        'endpoint_addr': '8.8.8.8',
        'endpoint_port': 9999,
        'persistent_keepalive': 25,
        'allowed_ips': ['::/0']}}
wg.set(IFNAME, peer=peer)

peer = {{'public_key': 'RCdBcHJlc0JpY2hlLFZpdmVMZXNQcm9iaW90aXF1ZXM=',
        'remove': True}}
wg.set(IFNAME, peer=peer)

info = wg.info(IFNAME)
print(info[0].get('WGDEVICE_A_PRIVATE_KEY').decode())
print(info[0].get('WGDEVICE_A_LISTEN_PORT'), info[0].get('WGDEVICE_A_FWMARK'))
for peer in info[0].get('WGDEVICE_A_PEERS'):
    print(peer.get('WGPEER_A_PUBLIC_KEY').decode(),
          peer.get('WGPEER_A_ENDPOINT')['addr'], peer.get('WGPEER_A_ENDPOINT')['port'],
          peer.get('WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL'),
          ','.join(a['addr'] for a in peer.get('WGPEER_A_ALLOWEDIPS')))
"""


@pytest.fixture
def wg_iface(netns_pool, daemon):
    with userspace_interface(netns_pool, daemon=daemon) as iface:
        yield iface


def test_documented_script_runs_with_only_the_import_changed(wg_iface):
    script = DOC_SCRIPT.format(ifname=wg_iface.name)
    assert "from pyroute2 import WireGuard" in script
    script = script.replace("from pyroute2 import", "from wgfast.pyroute2 import")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    assert result.returncode == 0, result.stderr
    # The device stores the private key clamped, as the kernel does too.
    private = keys.clamp(keys.from_base64("RCdhcHJlc0JpY2hlLEplU2VyYWlzTGFQbHVzQm9ubmU="))
    assert result.stdout == textwrap.dedent(f"""\
        {keys.to_base64(private)}
        2525 4919
        TGFHcm9zc2VCaWNoZV9DJ2VzdExhUGx1c0JlbGxlPDM= 8.8.8.8 8888 15 10.0.0.0/24,8.8.8.8/32
        """)
    dump = wg_iface.wg("show", wg_iface.name, "dump").splitlines()
    assert dump[0].split("\t") == [keys.to_base64(private),
                                   keys.to_base64(keys.public_key(private)), "2525", "0x1337"]
    assert len(dump) == 2
    assert dump[1].split("\t")[:4] == ["TGFHcm9zc2VCaWNoZV9DJ2VzdExhUGx1c0JlbGxlPDM=", "(none)",
                                       "8.8.8.8:8888", "10.0.0.0/24,8.8.8.8/32"]


def test_info_agrees_with_wg_show_dump(wg_iface):
    wg = WireGuard()
    private, psk = keys.generate_private_key(), keys.generate_preshared_key()
    peer_key = keys.to_base64(keys.KeyPair.generate().public)
    wg.set(wg_iface.name, private_key=keys.to_base64(private), listen_port=0, fwmark=7)
    wg.set(wg_iface.name, peer={"public_key": peer_key, "preshared_key": keys.to_base64(psk),
                                "endpoint_addr": "2001:db8::7", "endpoint_port": 51820,
                                "allowed_ips": ["fd00::/64", "10.4.0.0/16"]})
    wg.set(wg_iface.name, peer={"public_key": peer_key, "replace_allowed_ips": True,
                                "allowed_ips": ["10.5.0.0/16"], "update_only": True})
    (msg,) = wg.info(wg_iface.name)
    assert isinstance(msg, wgmsg)
    device, peer_line = wg_iface.wg("show", wg_iface.name, "dump").splitlines()
    priv, pub, port, fwmark = device.split("\t")
    assert msg.get("WGDEVICE_A_PRIVATE_KEY").decode() == priv
    assert msg.get("WGDEVICE_A_PUBLIC_KEY").decode() == pub
    assert msg.get("WGDEVICE_A_LISTEN_PORT") == int(port)  # chosen by the daemon
    assert msg.get("WGDEVICE_A_FWMARK") == int(fwmark, 16) == 7
    assert msg.get("WGDEVICE_A_IFNAME") == wg_iface.name
    (peer,) = msg.get("WGDEVICE_A_PEERS")
    fields = peer_line.split("\t")
    assert peer.get("WGPEER_A_PUBLIC_KEY").decode() == fields[0] == peer_key
    assert peer.get("WGPEER_A_PRESHARED_KEY").decode() == fields[1]
    endpoint = peer.get("WGPEER_A_ENDPOINT")
    assert f"[{endpoint['addr']}]:{endpoint['port']}" == fields[2]
    assert ",".join(a["addr"] for a in peer.get("WGPEER_A_ALLOWEDIPS")) == fields[3]
    assert peer.get("WGPEER_A_LAST_HANDSHAKE_TIME")["tv_sec"] == int(fields[4])
    assert peer.get("WGPEER_A_RX_BYTES") == int(fields[5])
    assert peer.get("WGPEER_A_TX_BYTES") == int(fields[6])
    assert peer.get("WGPEER_A_PROTOCOL_VERSION") == 1


def test_errors_are_netlink_errors(wg_iface):
    wg = WireGuard()
    with pytest.raises(NetlinkError) as info:
        wg.info("wgfnosuchdev0")
    assert info.value.code == 19  # ENODEV, as the kernel answers
    with pytest.raises(ValueError, match="Peer Public key required"):
        wg.set(wg_iface.name, peer={"allowed_ips": ["10.0.0.0/8"]})
    with pytest.raises(ValueError):
        wg.set(wg_iface.name, private_key="short")
    with pytest.raises(ValueError, match="No CIDR"):
        wg.set(wg_iface.name, peer={"public_key": keys.to_base64(bytes(32)),
                                    "allowed_ips": ["10.0.0.1"]})


def test_async_twin(wg_iface):
    async def scenario():
        async with AsyncWireGuard() as wg:
            key = keys.to_base64(keys.KeyPair.generate().public)
            await wg.set(wg_iface.name, listen_port=0, peer={"public_key": key,
                                                             "allowed_ips": ["10.6.0.0/24"]})
            messages = [m async for m in await wg.info(wg_iface.name)]
            return key, messages

    key, messages = asyncio.run(scenario())
    (peer,) = messages[0].get("WGDEVICE_A_PEERS")
    assert peer.get("WGPEER_A_PUBLIC_KEY").decode() == key
    assert [a["addr"] for a in peer.get("WGPEER_A_ALLOWEDIPS")] == ["10.6.0.0/24"]
