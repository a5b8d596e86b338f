"""`wgfast up` / `wgfast down` in a network namespace the test creates, once with wireguard-go
and once with wgfastd as the daemon (WGFAST_DAEMON; support.daemons.DAEMONS): everything up adds
is there, `wgfast show`/`showconf` agree with `wg`, and after down (or after a failed up) the
namespace's links, addresses, routes and rules are exactly as before."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun, require
from support.cli import snapshot, wgfast, write_config
from support.daemons import daemon_command, daemon_env
from support.netns import Netns, unique_name
from wgfast import keys


def blocks(text: str) -> tuple[str, list[str]]:
    """The interface block and the peer blocks of `wg show`/`showconf` text, peers in sorted
    order: a UAPI speaker may list peers in any order (wireguard-go's come from a Go map), and
    `wg` keeps that order among peers with equal handshake times."""
    first, *peers = text.split("\n\n")
    return first, sorted(p.strip("\n") for p in peers)


@pytest.fixture
def ns(netns_pool, daemon) -> Netns:
    """A fresh namespace; `wgfast` run in it starts `daemon` (wireguard-go, then wgfastd)."""
    needs_tun()
    needs_cmd(daemon_command(daemon)[0])
    needs_cmd("wg")
    needs_cmd("nft")
    namespace = netns_pool.namespace()
    namespace.daemon = daemon  # type: ignore[attr-defined]
    return namespace


def make_config(name_keys: dict[str, str], extra_interface: str = "", peer_extra: str = "") -> str:
    return f"""[Interface]
PrivateKey = {name_keys['private']}
ListenPort = 0
Address = 10.61.0.1/24, fd61::1/64
{extra_interface}
[Peer]
PublicKey = {name_keys['peer1']}
AllowedIPs = 10.61.0.0/24, 10.62.0.0/16, 0.0.0.0/0, ::/0
Endpoint = 127.0.0.1:51820
{peer_extra}
[Peer]
PublicKey = {name_keys['peer2']}
PresharedKey = {name_keys['psk']}
AllowedIPs = 10.63.0.7/32, fd63::/64
"""


@pytest.fixture
def config_keys() -> dict[str, str]:
    return {
        "private": keys.to_base64(keys.generate_private_key()),
        "peer1": keys.to_base64(keys.KeyPair.generate().public),
        "peer2": keys.to_base64(keys.KeyPair.generate().public),
        "psk": keys.to_base64(keys.generate_preshared_key()),
    }


def test_up_show_down_restores_everything(ns, tmp_path, config_keys):
    name = unique_name("wgu")
    path = write_config(tmp_path, name, make_config(config_keys))
    before = snapshot(ns)
    try:
        result = wgfast(ns, "up", str(path))
        assert result.returncode == 0, result.stderr
        assert "world accessible" not in result.stderr

        link = ns.run("ip", "-j", "-d", "link", "show", "dev", name).stdout
        link_info = json.loads(link)[0]
        assert "UP" in link_info["flags"]
        assert link_info["mtu"] == 65536 - 80  # wg-quick's rule: endpoint via lo, less 80
        addresses = ns.run("ip", "-br", "address", "show", "dev", name).stdout
        assert "10.61.0.1/24" in addresses and "fd61::1/64" in addresses
        routes = ns.run("ip", "route", "show", "table", "all").stdout
        assert f"10.62.0.0/16 dev {name}" in routes
        assert f"10.63.0.7 dev {name}" in routes
        assert f"default dev {name} table 51820" in routes
        # 10.61.0.0/24 is covered by the address's own route: not added twice.
        assert routes.count("10.61.0.0/24") == 1
        routes6 = ns.run("ip", "-6", "route", "show", "table", "all").stdout
        assert f"default dev {name} table 51820" in routes6 and f"fd63::/64 dev {name}" in routes6
        for family in ("-4", "-6"):
            rules = ns.run("ip", family, "rule", "show").stdout
            assert "not from all fwmark 0xca6c lookup 51820" in rules
            assert "from all lookup main suppress_prefixlength 0" in rules
            # suppress_prefixlength must be consulted first, as wg-quick orders them.
            assert rules.index("suppress_prefixlength") < rules.index("not from all fwmark")
        assert ns.run("sysctl", "-n", "net.ipv4.conf.all.src_valid_mark").stdout.strip() == "1"
        # wg-quick's nftables rules for a default route, per family.
        for nf, address in (("ip", "10.61.0.1"), ("ip6", "fd61::1")):
            table = ns.run("nft", "list", "table", nf, f"wgfast-{name}").stdout
            assert f'iifname != "{name}" {nf} daddr {address} fib saddr type != local drop' in (
                table)
            assert "meta l4proto udp meta mark 0x0000ca6c ct mark set meta mark" in table
            assert "meta l4proto udp meta mark set ct mark" in table
            assert "type filter hook prerouting priority raw" in table
        assert ns.run("wg", "show", name, "fwmark").stdout.strip() == "0xca6c"
        assert Path(f"/run/wgfast/{name}.json").exists()

        # show / showconf / --json agree with wg.
        assert blocks(wgfast(ns, "show", name).stdout) == blocks(ns.run("wg", "show", name).stdout)
        assert blocks(wgfast(ns, "showconf", name).stdout) == blocks(
            ns.run("wg", "showconf", name).stdout)
        dump = ns.run("wg", "show", name, "dump").stdout.splitlines()
        data = json.loads(wgfast(ns, "show", name, "--json").stdout)
        private, public, port, fwmark = dump[0].split("\t")
        assert (data["private_key"], data["public_key"], str(data["listen_port"])) == (
            private, public, port)
        assert hex(data["fwmark"]) == fwmark
        by_key = {p["public_key"]: p for p in data["peers"]}
        for line in dump[1:]:
            key, psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
            peer = by_key[key]
            assert (peer["preshared_key"] or "(none)") == psk
            assert (peer["endpoint"] or "(none)") == endpoint
            assert ",".join(peer["allowed_ips"]) == allowed
            assert (peer["latest_handshake"], peer["transfer_rx"], peer["transfer_tx"]) == (
                int(handshake), int(rx), int(tx))
            assert str(peer["persistent_keepalive"] or "off") == keepalive

        # Up twice is refused, with the way out.
        again = wgfast(ns, "up", str(path))
        assert again.returncode == 1 and f"wgfast down {name}" in again.stderr
    finally:
        result = wgfast(ns, "down", str(path))
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(f"/var/run/wireguard/{name}.sock")
    assert not Path(f"/run/wgfast/{name}.json").exists()
    assert snapshot(ns) == before


def test_failed_up_rolls_back(ns, tmp_path, config_keys):
    name = unique_name("wgr")
    marker = tmp_path / "postup-ran"
    path = write_config(tmp_path, name, make_config(
        config_keys, extra_interface=f"PostUp = touch {marker}; false\nPreDown = true"))
    before = snapshot(ns)
    result = wgfast(ns, "up", str(path))
    assert result.returncode == 1
    assert "PostUp command failed (exit 1)" in result.stderr
    assert marker.exists()  # it got as far as PostUp: everything before it was undone
    assert snapshot(ns) == before
    assert not os.path.exists(f"/var/run/wireguard/{name}.sock")
    assert not Path(f"/run/wgfast/{name}.json").exists()


def test_table_off_and_hooks(ns, tmp_path, config_keys):
    name = unique_name("wgh")
    log = tmp_path / "hooks.log"
    hooks = "\n".join(f"{k} = echo {k} %i >> {log}" for k in ("PreUp", "PostUp", "PreDown",
                                                               "PostDown"))
    path = write_config(tmp_path, name, make_config(
        config_keys, extra_interface=f"Table = off\nMTU = 1300\n{hooks}"))
    before = snapshot(ns)
    result = wgfast(ns, "up", str(path))
    assert result.returncode == 0, result.stderr
    routes = ns.run("ip", "route", "show", "table", "all").stdout
    assert "10.62.0.0/16" not in routes and "51820" not in routes
    assert json.loads(ns.run("ip", "-j", "link", "show", "dev", name).stdout)[0]["mtu"] == 1300
    result = wgfast(ns, "down", name)
    assert result.returncode == 0, result.stderr
    assert log.read_text().split("\n")[:4] == [f"{k} {name}" for k in (
        "PreUp", "PostUp", "PreDown", "PostDown")]
    assert snapshot(ns) == before



def test_dns_without_resolvconf_warns_and_comes_up(ns, tmp_path, config_keys):
    if shutil.which("resolvconf"):
        pytest.skip("resolvconf is installed: DNS= would really be applied")
    name = unique_name("wgd")
    path = write_config(tmp_path, name, make_config(
        config_keys, extra_interface="DNS = 10.61.0.53, example.internal\nTable = off"))
    before = snapshot(ns)
    result = wgfast(ns, "up", str(path))
    assert result.returncode == 0, result.stderr
    assert "DNS= is ignored" in result.stderr and "resolvconf" in result.stderr
    assert wgfast(ns, "down", name).returncode == 0
    assert snapshot(ns) == before


def test_errors_a_person_can_act_on(ns, tmp_path, config_keys):
    name = unique_name("wge")
    bad = write_config(tmp_path, name, "[Interface]\nListenPort = 99999\n")
    result = wgfast(ns, "up", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: ListenPort: port 99999 is out of range" in result.stderr

    good = write_config(tmp_path, name, make_config(config_keys))
    good.chmod(0o644)
    tmp_path.chmod(0o755)
    before = snapshot(ns)
    result = wgfast(ns, "up", str(good), command="/nonexistent/wgfastd")
    assert result.returncode == 1
    assert "Warning: `" in result.stderr and "is world accessible" in result.stderr
    assert "`/nonexistent/wgfastd` not found" in result.stderr and "WGFAST_DAEMON" in result.stderr
    assert snapshot(ns) == before

    result = wgfast(ns, "down", name)
    assert result.returncode == 1 and "is not up through wgfast" in result.stderr


def test_missing_privilege_is_named(ns, tmp_path, config_keys):
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "needs setpriv (util-linux)")
    name = unique_name("wgp")
    path = write_config(tmp_path, name, make_config(config_keys))
    env = daemon_env(ns.daemon)  # type: ignore[attr-defined]
    result = ns.run(setpriv, "--inh-caps=-all", "--bounding-set=-net_admin", sys.executable,
                    "-m", "wgfast.cli", "up", str(path), check=False, env=env)
    assert result.returncode == 1
    assert "needs the CAP_NET_ADMIN capability" in result.stderr
