"""DP_OFFLOAD_TUN_VNET is checked against the TUN fd (TUNGETIFF), not taken on the caller's word.

A TUN opened with IFF_VNET_HDR prefixes every packet with a virtio-net header; read as a plain
TUN, a peer's inner bytes would be parsed as that header, and the other way round. In a
namespace of its own the test opens a TUN each way and asks for offloads that match and that do
not: a mismatch is a ValueError (nothing changed), the loop refuses to run a vnet-header fd
without the vnet path (-EINVAL), and the daemon's Interface fails loudly and frees its data
plane.
"""

from __future__ import annotations

import json
import os
import sys

from support import needs_tun
from support.daemons import REPO
from support.netns import NetnsPool

SCRIPT = r"""
import errno, json
from wgfast import _native
from wgfast.daemon.interface import Interface
from wgfast.daemon.tun import TunDevice, create_tun

VNET = _native.DP_OFFLOAD_TUN_VNET
results = {}
for vnet in (False, True):
    tun = create_tun(f"wgvnet{int(vnet)}", 1420, vnet_hdr=vnet)
    dp = _native.DataPlane(tun.fd, mtu=1420)
    for asked in (not vnet, vnet):  # the mismatch first: it must leave nothing changed
        try:
            on = dp.set_offloads(VNET if asked else 0)
            results[f"fd_vnet={vnet} asked={asked}"] = "vnet" if on & VNET else "plain"
        except ValueError:
            results[f"fd_vnet={vnet} asked={asked}"] = "ValueError"
        if asked != vnet:
            results[f"fd_vnet={vnet} run_once after mismatch"] = dp.run_once(0)
    dp.close()
    # The daemon's interface over a TunDevice that misstates the fd: a ValueError, loudly.
    try:
        Interface(TunDevice(tun.fd, tun.name, 1420, not vnet), lambda reason: None,
                  lambda reason: None)
        results[f"interface fd_vnet={vnet} misstated"] = "created"
    except ValueError as exc:
        results[f"interface fd_vnet={vnet} misstated"] = "ValueError"
        results["message"] = str(exc)
print(json.dumps(results))
"""


def test_tun_vnet_flag_must_match_the_fd(netns_pool: NetnsPool) -> None:
    needs_tun()
    ns = netns_pool.namespace()
    env = dict(os.environ, PYTHONPATH=REPO)
    out = ns.run(sys.executable, "-c", SCRIPT, env=env).stdout
    results = json.loads(out.strip().splitlines()[-1])
    assert results.pop("message").startswith("offloads: DP_OFFLOAD_TUN_VNET")
    assert results == {
        "fd_vnet=False asked=True": "ValueError",
        "fd_vnet=False run_once after mismatch": 0,  # a plain fd runs as it was
        "fd_vnet=False asked=False": "plain",
        "interface fd_vnet=False misstated": "ValueError",
        "fd_vnet=True asked=False": "ValueError",
        "fd_vnet=True run_once after mismatch": -22,  # -EINVAL: no vnet path for a vnet fd
        "fd_vnet=True asked=True": "vnet",
        "interface fd_vnet=True misstated": "ValueError",
    }
