"""`wgfast reresolve`: host-name endpoints of quiet peers are looked up again.

The rule (which peers, when) in-process with a resolver the test controls; then the command end
to end against a running interface (both daemons), the host name resolved by the system
resolver from a hosts file the test writes and bind-mounts over /etc/hosts in a private mount
namespace (so the machine's own /etc/hosts is never touched).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

from support import needs_cmd, needs_tun
from support.cli import write_config
from support.daemons import daemon_command, daemon_env
from wgfast import keys, wgquick
from wgfast.api.device import Peer
from wgfast.cli.main import main
from wgfast.cli.reresolve import QUIET_AFTER, plan
from wgfast.uapi import Endpoint

NOW = 1_800_000_000.0
HOST = "wgfast-reresolve-test.example"


def endpoint(text: str) -> Endpoint:
    host, port = text.rsplit(":", 1)
    return Endpoint(ipaddress.ip_address(host), int(port))


def test_plan_picks_quiet_host_name_peers_only(caplog):
    pubs = [keys.KeyPair.generate().public for _ in range(6)]
    names = ["quiet.example", "busy.example", "192.0.2.50", "same.example", "broken.example",
             "unconfigured.example"]
    text = "[Interface]\nPrivateKey = " + keys.to_base64(keys.generate_private_key()) + "\n"
    for pub, name in zip(pubs, names, strict=True):
        text += f"[Peer]\nPublicKey = {keys.to_base64(pub)}\nEndpoint = {name}:51820\n"
    config = wgquick.parse(text)
    answers = {"quiet.example": "192.0.2.11:51820", "busy.example": "192.0.2.12:51820",
               "same.example": "192.0.2.14:51820", "unconfigured.example": "192.0.2.16:51820"}
    asked = []

    def resolve(spec: wgquick.EndpointSpec) -> Endpoint:
        asked.append(spec.host)
        if spec.host not in answers:
            raise OSError(f"cannot resolve endpoint host {spec.host!r}")
        return endpoint(answers[spec.host])

    live = [
        # Last handshake just past QUIET_AFTER: quiet, and the name moved.
        Peer(pubs[0], endpoint="192.0.2.1:51820",
             last_handshake_time_sec=int(NOW - QUIET_AFTER - 1)),
        # Handshook 10 s ago: working, left alone even though the name moved.
        Peer(pubs[1], endpoint="192.0.2.2:51820", last_handshake_time_sec=int(NOW - 10)),
        # An IP literal: nothing to look up (its endpoint may have roamed).
        Peer(pubs[2], endpoint="192.0.2.99:51820"),
        # Never handshook, but the name still resolves to where it points.
        Peer(pubs[3], endpoint="192.0.2.14:51820"),
        # Never handshook and the name does not resolve now: skipped with a warning.
        Peer(pubs[4], endpoint="192.0.2.5:51820"),
        # pubs[5] is in the file but not on the interface: nothing to update.
    ]
    with caplog.at_level(logging.WARNING):
        changes = plan(config, live, NOW, resolve)
    assert [(c.public_key, c.host, c.old, c.new) for c in changes] == [
        (pubs[0], "quiet.example", endpoint("192.0.2.1:51820"), endpoint("192.0.2.11:51820"))]
    assert asked == ["quiet.example", "same.example", "broken.example"]
    assert "broken.example" in caplog.text
    assert QUIET_AFTER == 135


def resolving_via(hosts: Path, argv: list[str]) -> list[str]:
    """argv run with `hosts` as /etc/hosts, in a private mount namespace."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hosts),
            *argv]


def test_reresolve_command_updates_a_quiet_peer(netns_pool, tmp_path: Path, daemon: str):
    needs_tun()
    needs_cmd("wg")
    needs_cmd("unshare")
    needs_cmd(daemon_command(daemon)[0])
    ns = netns_pool.namespace()
    name = f"wgr{tmp_path.name[-8:]}"[:15]
    by_name, literal = keys.KeyPair.generate(), keys.KeyPair.generate()
    path = write_config(tmp_path, name, f"""[Interface]
PrivateKey = {keys.to_base64(keys.generate_private_key())}
Table = off

[Peer]
PublicKey = {keys.to_base64(by_name.public)}
AllowedIPs = 10.76.0.2/32
Endpoint = {HOST}:51876

[Peer]
PublicKey = {keys.to_base64(literal.public)}
AllowedIPs = 10.76.0.3/32
Endpoint = 192.0.2.30:51877
""")
    hosts = tmp_path / "hosts"
    env = daemon_env(daemon)

    def wgfast(*args: str, hosts_ip: str):
        hosts.write_text(f"127.0.0.1 localhost\n{hosts_ip} {HOST}\n")
        return ns.run(*resolving_via(hosts, [sys.executable, "-m", "wgfast.cli", *args]),
                      check=False, env=env, timeout=60)

    def endpoints() -> dict[str, str]:
        lines = ns.run("wg", "show", name, "endpoints").stdout.splitlines()
        return dict(line.split("\t") for line in lines)

    result = wgfast("up", str(path), hosts_ip="192.0.2.10")
    assert result.returncode == 0, result.stderr
    try:
        assert endpoints()[keys.to_base64(by_name.public)] == "192.0.2.10:51876"
        assert HOST not in Path("/etc/hosts").read_text()  # the bind mount stayed private

        # The name points elsewhere now; no handshake ever happened: re-resolved.
        result = wgfast("reresolve", name, hosts_ip="192.0.2.20")
        assert result.returncode == 0, result.stderr
        assert f"{HOST} now 192.0.2.20:51876 (was 192.0.2.10:51876)" in result.stdout
        assert endpoints() == {keys.to_base64(by_name.public): "192.0.2.20:51876",
                               keys.to_base64(literal.public): "192.0.2.30:51877"}
        # Nothing moved: nothing to do, nothing printed.
        result = wgfast("reresolve", name, hosts_ip="192.0.2.20")
        assert result.returncode == 0 and result.stdout == "", result.stderr
    finally:
        down = wgfast("down", name, hosts_ip="192.0.2.20")
    assert down.returncode == 0, down.stderr


def test_reresolve_of_a_missing_interface(tmp_path: Path, capsys):
    path = write_config(tmp_path, "wgnothere0", "[Interface]\n")
    assert main(["reresolve", str(path)]) == 1
    assert "Unable to access interface wgnothere0" in capsys.readouterr().err
