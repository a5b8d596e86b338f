"""The `wgfast` command run in a network namespace as a person would run it, and what it leaves
behind: config files written for it, and a snapshot of everything `wgfast up` may touch in the
namespace (links, addresses, routes, rules, src_valid_mark, nftables) to compare before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.daemons import daemon_env
from support.netns import Netns


def wgfast(ns: Netns, *args: str, command: str | None = None) -> subprocess.CompletedProcess:
    """`python -m wgfast.cli ARGS` in `ns`, unchecked, starting the daemon the test set as
    `ns.daemon` (or `command`) through WGFAST_DAEMON."""
    env = daemon_env(command or ns.daemon)  # type: ignore[attr-defined]
    return ns.run(sys.executable, "-m", "wgfast.cli", *args, check=False, env=env, timeout=60)


def snapshot(ns: Netns) -> dict[str, object]:
    """Everything up may touch, in a comparable form (link counters left out)."""
    def ip_json(*argv: str) -> object:
        return json.loads(ns.run("ip", "-j", *argv).stdout or "[]")

    links = [{k: v for k, v in link.items() if k not in ("stats64", "stats")}
             for link in ip_json("-d", "link", "show")]
    return {
        "links": links,
        "addresses": ip_json("address", "show"),
        "routes4": ip_json("-4", "route", "show", "table", "all"),
        "routes6": ip_json("-6", "route", "show", "table", "all"),
        "rules4": ip_json("-4", "rule", "show"),
        "rules6": ip_json("-6", "rule", "show"),
        "src_valid_mark": ns.run("sysctl", "-n", "net.ipv4.conf.all.src_valid_mark").stdout,
        "nftables": ns.run("nft", "list", "ruleset").stdout,
    }


def write_config(tmp_path: Path, name: str, body: str) -> Path:
    """`body` as tmp_path/NAME.conf, readable by its owner only (or `wgfast up` warns)."""
    path = tmp_path / f"{name}.conf"
    path.write_text(body)
    path.chmod(0o600)
    return path
