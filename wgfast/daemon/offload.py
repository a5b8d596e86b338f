"""Which offloads the data plane uses (csrc/offload.h, csrc/dataplane_offload.c).

WGFAST_OFFLOAD, read when a TUN is opened or a data plane starts:
  unset, "1", "on", "all"   every offload (the default)
  "0", "off", "none"        none: one packet per TUN read/write and per datagram, as before
  a comma list of           "tun" (IFF_VNET_HDR, TSO/USO split, TCP coalescing on write),
                            "gso" (UDP_SEGMENT on send), "gro" (UDP_GRO on receive)
The kernel may refuse some; the data plane then does without them (and logs what it got).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wgfast import _native

ENV_VAR = "WGFAST_OFFLOAD"


@dataclass(frozen=True)
class Offloads:
    tun: bool = True
    udp_gso: bool = True
    udp_gro: bool = True


def requested(environ: dict[str, str] | None = None) -> Offloads:
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if value in ("", "1", "on", "all", "yes"):
        return Offloads()
    if value in ("0", "off", "none", "no"):
        return Offloads(False, False, False)
    words = {w.strip() for w in value.split(",") if w.strip()}
    unknown = words - {"tun", "gso", "gro"}
    if unknown:
        raise ValueError(f"{ENV_VAR}: unknown offload(s) {', '.join(sorted(unknown))}")
    return Offloads("tun" in words, "gso" in words, "gro" in words)


def dataplane_flags(vnet_hdr: bool, wanted: Offloads | None = None) -> int:
    """DataPlane.set_offloads flags for a TUN opened with (or without) IFF_VNET_HDR."""
    wanted = requested() if wanted is None else wanted
    flags = 0
    if vnet_hdr:
        flags |= _native.DP_OFFLOAD_TUN_VNET
        if wanted.tun:
            flags |= _native.DP_OFFLOAD_TUN_TSO | _native.DP_OFFLOAD_TUN_GRO
    if wanted.udp_gso:
        flags |= _native.DP_OFFLOAD_UDP_GSO
    if wanted.udp_gro:
        flags |= _native.DP_OFFLOAD_UDP_GRO
    return flags


def describe(flags: int) -> str:
    names = [(_native.DP_OFFLOAD_TUN_VNET, "vnet"), (_native.DP_OFFLOAD_TUN_TSO, "tso"),
             (_native.DP_OFFLOAD_TUN_USO, "uso"), (_native.DP_OFFLOAD_TUN_GRO, "tun-gro"),
             (_native.DP_OFFLOAD_UDP_GSO, "udp-gso"), (_native.DP_OFFLOAD_UDP_GRO, "udp-gro")]
    return ",".join(name for bit, name in names if flags & bit) or "none"
