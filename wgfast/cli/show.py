"""What `wg show`, `wg show all dump` and `wg showconf` print, computed from a DeviceState.

The text follows wg(8) without colours (as it prints when not on a terminal): peers sorted
by latest handshake, newest first; times as "1 minute, 3 seconds ago"; transfer in binary units.
"""

from __future__ import annotations

import os
import time
from typing import Any

from wgfast import keys
from wgfast.api.device import DeviceState, Peer
from wgfast.uapi import SOCKET_DIRECTORY
from wgfast.wgquick import peer_section

_UNITS = (("year", 365 * 24 * 3600), ("day", 24 * 3600), ("hour", 3600), ("minute", 60),
          ("second", 1))  # fmt: skip


def human_duration(seconds: int) -> str:
    """wg's pretty_time: "1 year, 2 days, 1 minute, 3 seconds"."""
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return ", ".join(parts)


def handshake_ago(last_sec: int, now: float | None = None) -> str:
    now_sec = int(time.time() if now is None else now)
    if now_sec == last_sec:
        return "Now"
    if now_sec < last_sec:
        return "(System clock wound backward; connection problems may ensue.)"
    return f"{human_duration(now_sec - last_sec)} ago"


def human_bytes(count: int) -> str:
    """wg's bytes(): B below 1 KiB, then KiB/MiB/GiB/TiB with two decimals."""
    if count < 1024:
        return f"{count} B"
    for unit, scale in (("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3)):
        if count < scale * 1024:
            return f"{count / scale:.2f} {unit}"
    return f"{count / 1024**4:.2f} TiB"


def sorted_peers(peers: tuple[Peer, ...]) -> list[Peer]:
    return sorted(peers, key=lambda p: (p.last_handshake_time_sec, p.last_handshake_time_nsec),
                  reverse=True)


def format_show(state: DeviceState, now: float | None = None) -> str:
    """`wg show NAME` text (keys hidden, as wg does by default)."""
    out = [f"interface: {state.name}"]
    if state.private_key is not None:
        out.append(f"  public key: {keys.to_base64(keys.public_key(state.private_key))}")
        out.append("  private key: (hidden)")
    if state.listen_port:
        out.append(f"  listening port: {state.listen_port}")
    if state.fwmark:
        out.append(f"  fwmark: {state.fwmark:#x}")
    for peer in sorted_peers(state.peers):
        out += ["", f"peer: {peer.public_key_base64}"]
        if peer.preshared_key is not None:
            out.append("  preshared key: (hidden)")
        if peer.endpoint is not None:
            out.append(f"  endpoint: {peer.endpoint}")
        allowed = ", ".join(str(n) for n in peer.allowed_ips) or "(none)"
        out.append(f"  allowed ips: {allowed}")
        if peer.last_handshake_time_sec:
            out.append(f"  latest handshake: {handshake_ago(peer.last_handshake_time_sec, now)}")
        if peer.rx_bytes or peer.tx_bytes:
            out.append(f"  transfer: {human_bytes(peer.rx_bytes)} received, "
                       f"{human_bytes(peer.tx_bytes)} sent")
        if peer.persistent_keepalive:
            out.append(f"  persistent keepalive: every {human_duration(peer.persistent_keepalive)}")
    return "\n".join(out) + "\n"


def format_showconf(state: DeviceState) -> str:
    """`wg showconf NAME` text."""
    out = ["[Interface]"]
    if state.listen_port:
        out.append(f"ListenPort = {state.listen_port}")
    if state.fwmark:
        out.append(f"FwMark = {state.fwmark:#x}")
    if state.private_key is not None:
        out.append(f"PrivateKey = {keys.to_base64(state.private_key)}")
    for peer in state.peers:
        out += peer_section(peer.public_key_base64, peer.preshared_key, peer.allowed_ips,
                            peer.endpoint, peer.persistent_keepalive)
    return "\n".join(out) + "\n"


def format_dump(state: DeviceState, with_name: bool = True) -> str:
    """`wg show NAME dump` (or `all dump` when with_name): tab-separated lines."""
    prefix = f"{state.name}\t" if with_name else ""
    private = keys.to_base64(state.private_key) if state.private_key is not None else "(none)"
    public = (keys.to_base64(keys.public_key(state.private_key))
              if state.private_key is not None else "(none)")
    fwmark = f"{state.fwmark:#x}" if state.fwmark else "off"
    out = [f"{prefix}{private}\t{public}\t{state.listen_port}\t{fwmark}"]
    for p in state.peers:
        psk = keys.to_base64(p.preshared_key) if p.preshared_key is not None else "(none)"
        allowed = ",".join(str(n) for n in p.allowed_ips) or "(none)"
        keepalive = str(p.persistent_keepalive) if p.persistent_keepalive else "off"
        out.append(f"{prefix}{p.public_key_base64}\t{psk}\t{p.endpoint or '(none)'}\t{allowed}\t"
                   f"{p.last_handshake_time_sec}\t{p.rx_bytes}\t{p.tx_bytes}\t{keepalive}")
    return "\n".join(out) + "\n"


def _counter(value: str) -> Any:
    return int(value) if value.isdigit() else value


def as_json(state: DeviceState) -> dict[str, Any]:
    """The fields of `wg show all dump`, named, plus any extra counters the daemon reports
    (wgfastd's own) under "counters"."""
    return {
        "interface": state.name,
        "private_key": keys.to_base64(state.private_key) if state.private_key else None,
        "public_key": (keys.to_base64(keys.public_key(state.private_key))
                       if state.private_key else None),
        "listen_port": state.listen_port,
        "fwmark": state.fwmark or None,
        "counters": {k: _counter(v) for k, v in state.extra.items()},
        "peers": [
            {
                "public_key": p.public_key_base64,
                "preshared_key": (keys.to_base64(p.preshared_key)
                                  if p.preshared_key is not None else None),
                "endpoint": str(p.endpoint) if p.endpoint is not None else None,
                "allowed_ips": [str(n) for n in p.allowed_ips],
                "latest_handshake": p.last_handshake_time_sec,
                "latest_handshake_nsec": p.last_handshake_time_nsec,
                "transfer_rx": p.rx_bytes,
                "transfer_tx": p.tx_bytes,
                "persistent_keepalive": p.persistent_keepalive or None,
                "counters": {k: _counter(v) for k, v in p.extra.items()},
            }
            for p in state.peers
        ],
    }


def list_interfaces(directory: str = SOCKET_DIRECTORY) -> list[str]:
    """Names of interfaces with a UAPI socket, sorted (what `wg show interfaces` lists for
    userspace implementations)."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return sorted(e[: -len(".sock")] for e in entries if e.endswith(".sock"))
