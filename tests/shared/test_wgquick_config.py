"""wg-quick configuration files: every key, comments, multiple peers, and a table of bad files
each with the message a person would need to fix it."""

from __future__ import annotations

import ipaddress
import logging
import os

import pytest

from wgfast import keys, wgquick
from wgfast.wgquick import ConfigError

PRIV = keys.to_base64(bytes(range(32)))
PUB1 = keys.to_base64(bytes(range(1, 33)))
PUB2 = keys.to_base64(bytes(range(2, 34)))
PSK = keys.to_base64(bytes(range(3, 35)))

FULL = f"""
# a comment line
[Interface]
PrivateKey = {PRIV}   # trailing comment
ListenPort = 51820
FwMark = 0x1234
Address = 10.0.0.1/24, fd00::1/64
Address = 10.0.1.1
DNS = 1.1.1.1, 2606:4700::1111, example.com
DNS = corp.example
MTU = 1380
Table = 1234
PreUp = echo pre up %i
PostUp = ip link show  %i
PreDown = echo pre down
PostDown = echo post down
SaveConfig = true

[Peer]
PublicKey = {PUB1}
PresharedKey = {PSK}
AllowedIPs = 10.0.0.2/32, 192.168.7.9/24
AllowedIPs = fd00::2/128
Endpoint = vpn.example.org:51820
PersistentKeepalive = 25

[peer]
publickey={PUB2}
allowedips=0.0.0.0/0,::/0
endpoint=[2001:db8::1]:4500
persistentkeepalive=off
"""


def test_every_key_parses():
    config = wgquick.parse(FULL, "/etc/wireguard/wg0.conf")
    iface = config.interface
    assert config.name == "wg0"
    assert iface.private_key == bytes(range(32))
    assert iface.listen_port == 51820
    assert iface.fwmark == 0x1234
    assert [str(a) for a in iface.addresses] == ["10.0.0.1/24", "fd00::1/64", "10.0.1.1/32"]
    assert [str(a) for a in iface.dns_servers] == ["1.1.1.1", "2606:4700::1111"]
    assert iface.dns_search == ["example.com", "corp.example"]
    assert iface.mtu == 1380
    assert iface.table == "1234" and iface.table_id == 1234
    assert iface.pre_up == ["echo pre up %i"]
    assert iface.post_up == ["ip link show  %i"]  # hook text keeps its inner spaces
    assert iface.pre_down == ["echo pre down"] and iface.post_down == ["echo post down"]
    assert iface.save_config is True

    first, second = config.peers
    assert first.public_key == bytes(range(1, 33))
    assert first.preshared_key == bytes(range(3, 35))
    assert [str(n) for n in first.allowed_ips] == ["10.0.0.2/32", "192.168.7.0/24", "fd00::2/128"]
    assert first.endpoint == wgquick.EndpointSpec("vpn.example.org", 51820)
    assert first.persistent_keepalive == 25
    assert first.line == 19
    assert second.public_key == bytes(range(2, 34))
    assert second.preshared_key is None
    assert [str(n) for n in second.allowed_ips] == ["0.0.0.0/0", "::/0"]
    assert second.endpoint == wgquick.EndpointSpec("2001:db8::1", 4500)
    assert str(second.endpoint) == "[2001:db8::1]:4500"
    assert second.persistent_keepalive == 0


def test_private_key_not_in_repr():
    config = wgquick.parse(FULL, "x.conf")
    assert PRIV not in repr(config) and str(bytes(range(32))) not in repr(config)


def test_defaults_and_table_names():
    config = wgquick.parse(f"[Interface]\nPrivateKey={PRIV}\nTable=main\nFwMark=off\n", "a.conf")
    assert config.interface.table == "254"
    assert config.interface.fwmark == 0
    assert config.interface.listen_port is None and config.interface.mtu is None
    assert config.peers == []
    assert wgquick.parse("[Interface]\nTable = off\n", "a.conf").interface.table == "off"
    assert wgquick.parse("[Interface]\nTable = auto\n", "a.conf").interface.table_id is None


def test_endpoint_resolution_is_deferred_and_prefers_ipv4():
    text = f"[Interface]\n[Peer]\nPublicKey={PUB1}\nEndpoint=localhost:9\n"
    config = wgquick.parse(text, "a.conf")
    spec = config.peers[0].endpoint
    assert spec is not None and spec.host == "localhost"
    resolved = spec.resolve()
    assert resolved.port == 9 and resolved.address == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(OSError, match="cannot resolve"):
        wgquick.EndpointSpec("no-such-host.invalid", 1).resolve()


def test_format_round_trips():
    config = wgquick.parse(FULL, "wg0.conf")
    again = wgquick.parse(wgquick.format_config(config), "wg0.conf")
    assert again.interface.addresses == config.interface.addresses
    assert again.interface.dns_servers == config.interface.dns_servers
    assert again.interface.post_up == config.interface.post_up
    assert [(p.public_key, p.preshared_key, p.allowed_ips, p.endpoint, p.persistent_keepalive or 0)
            for p in again.peers] == [
        (p.public_key, p.preshared_key, p.allowed_ips, p.endpoint, p.persistent_keepalive or 0)
        for p in config.peers]


BAD_FILES = [
    # (text, line, key, message fragment)
    ("PrivateKey = x\n", 1, "PrivateKey", "outside of an [Interface] or [Peer] section"),
    ("[Interface]\nPrivateKey = abc\n", 2, "PrivateKey", "not a valid private key"),
    ("[Interface]\nListenPort = 70000\n", 2, "ListenPort", "out of range"),
    ("[Interface]\nListenPort = -1\n", 2, "ListenPort", "whole number"),
    ("[Interface]\nFwMark = banana\n", 2, "FwMark", "0x hex"),
    ("[Interface]\nAddress = 10.0.0.300/24\n", 2, "Address", "not an IP address"),
    ("[Interface]\nDNS = 1.1.1.1, bad/name\n", 2, "DNS", "neither an IP address"),
    ("[Interface]\nMTU = 20\n", 2, "MTU", "too small"),
    ("[Interface]\nMTU = 1e3\n", 2, "MTU", "whole number"),
    ("[Interface]\nTable = nosuchtable\n", 2, "Table", "unknown routing table name"),
    ("[Interface]\nSaveConfig = yes\n", 2, "SaveConfig", "true or false"),
    ("[Interface]\nColour = blue\n", 2, "Colour", "unknown key in [Interface]"),
    ("[Interface]\nListenPort\n", 2, "ListenPort", "expected `Key = Value`"),
    ("[Interfaces]\n", 1, None, "unknown section"),
    ("[Interface\n", 1, None, "malformed section header"),
    ("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8\n", 2, "PublicKey", "without a PublicKey"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 10.0.0.0/33\n", 4, "AllowedIPs",
     "invalid prefix length"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nAllowedIPs = banana\n", 4, "AllowedIPs",
     "not an IP address"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 10.0.0.1/32 10.0.0.2/32\n", 4,
     "AllowedIPs", "separate the entries with commas"),
    ("[Interface]\nAddress = 10.0.0.1/24 fd00::1/64\n", 2, "Address",
     "separate the entries with commas"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nEndpoint = 1.2.3.4\n", 4, "Endpoint", "no port"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nEndpoint = fd00::1:51820\n", 4, "Endpoint",
     "[address]:port"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nEndpoint = [fd00::1]51820\n", 4, "Endpoint",
     "[IPv6]:port"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nPersistentKeepalive = 65536\n", 4,
     "PersistentKeepalive", "out of range"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nPresharedKey = {PUB1[:-2]}B=\n", 4,
     "PresharedKey", "not a valid preshared key"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\nPublicKey = {PUB2}\n", 4, "PublicKey",
     "given twice"),
    (f"[Interface]\n[Peer]\nPublicKey = {PUB1}\n[Peer]\nPublicKey = {PUB1}\n", 4, "PublicKey",
     "first at line 2"),
    (f"[Peer]\nPublicKey = {PUB1}\n", None, None, "no [Interface] section"),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), BAD_FILES)
def test_bad_files_name_file_line_and_key(text, line, key, fragment):
    with pytest.raises(ConfigError) as info:
        wgquick.parse(text, "/etc/wireguard/wg7.conf")
    err = info.value
    assert (err.file, err.line, err.key) == ("/etc/wireguard/wg7.conf", line, key)
    assert fragment in err.message
    text_form = str(err)
    assert text_form.startswith("/etc/wireguard/wg7.conf" + (f":{line}:" if line else ":"))
    if key:
        assert f" {key}: " in text_form


def test_bad_key_is_not_echoed():
    secret = PRIV[:-3] + "!!="
    with pytest.raises(ConfigError) as info:
        wgquick.parse(f"[Interface]\nPrivateKey = {secret}\n", "a.conf")
    assert secret not in str(info.value)


def test_world_accessible_warning(tmp_path, caplog):
    path = tmp_path / "wg3.conf"
    path.write_text(f"[Interface]\nPrivateKey = {PRIV}\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="wgfast.wgquick"):
        wgquick.load(str(path))
    assert f"Warning: `{path}' is world accessible" in caplog.text
    caplog.clear()
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="wgfast.wgquick"):
        wgquick.load(str(path))
    assert "world accessible" not in caplog.text


def test_load_errors_name_the_file(tmp_path):
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match="no such configuration file") as info:
        wgquick.load(missing)
    assert info.value.file == missing


def test_locate():
    assert wgquick.locate("wg0") == ("/etc/wireguard/wg0.conf", "wg0")
    assert wgquick.locate("/tmp/x/office.conf") == ("/tmp/x/office.conf", "office")
    with pytest.raises(ConfigError, match="NAME.conf"):
        wgquick.locate("/tmp/x/this-name-is-far-too-long.conf")
    with pytest.raises(ConfigError, match="NAME.conf"):
        wgquick.locate("/tmp/x/office.txt")
