"""`wgfast reresolve NAME|CONFIG`: look host-name endpoints up again for peers gone quiet.

What wireguard-tools' reresolve-dns script does for wg-quick: a peer whose Endpoint is a host
name is resolved once, at `up`. If the name later points elsewhere (a dynamic address, a
moved server), the tunnel stays dead until someone looks the name up again. Run periodically
(systemd/wgfast-reresolve@.timer), this re-resolves the Endpoint of every peer in the file whose
latest handshake is older than QUIET_AFTER (or that never had one) and configures the new
address when it changed. Peers with IP-literal endpoints, and peers that handshake recently, are
left alone: their endpoint may have roamed on purpose.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from wgfast import keys, wgquick
from wgfast.api.device import Device, Peer
from wgfast.cli import quick
from wgfast.uapi import Endpoint

log = logging.getLogger(__name__)

# A live session re-handshakes every REKEY_AFTER_TIME (120 s); three REKEY_TIMEOUTs (5 s) on
# top and it has had every chance: the reresolve-dns script's 135 s. Fixed, not taken from
# wgfast.messages: this judges any UAPI speaker's peers, by the protocol's own times.
QUIET_AFTER = 120.0 + 3 * 5.0


@dataclass(frozen=True)
class Reresolved:
    public_key: bytes
    host: str
    old: Endpoint | None
    new: Endpoint


def is_host_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def plan(config: wgquick.QuickConfig, live: list[Peer], now: float,
         resolve: Callable[[wgquick.EndpointSpec], Endpoint]) -> list[Reresolved]:
    """The endpoint changes to make: quiet peers whose host name now resolves elsewhere."""
    by_key = {p.public_key: p for p in live}
    changes = []
    for peer in config.peers:
        spec = peer.endpoint
        current = by_key.get(peer.public_key)
        if spec is None or current is None or not is_host_name(spec.host):
            continue
        handshake = current.latest_handshake
        if handshake is not None and now - handshake.timestamp() < QUIET_AFTER:
            continue
        try:
            endpoint = resolve(spec)
        except OSError as exc:  # try again next time; other peers still get their turn
            log.warning("%s: %s", keys_text(peer.public_key), exc)
            continue
        if endpoint != current.endpoint:
            changes.append(Reresolved(peer.public_key, spec.host, current.endpoint, endpoint))
    return changes


def keys_text(public_key: bytes) -> str:
    return keys.to_base64(public_key)


def reresolve(config_or_name: str, now: float | None = None) -> list[Reresolved]:
    """Re-resolve the quiet peers of a running interface; returns what was changed. A bare
    NAME means the file `wgfast up NAME` used (else /etc/wireguard/NAME.conf)."""
    path, name = wgquick.locate(config_or_name)
    if not os.path.exists(config_or_name):
        # A bare NAME that `wgfast up` brought up: the file it was brought up from.
        with contextlib.suppress(OSError, ValueError, KeyError):
            path = quick.Journal.load(quick.state_path(name)).config_path
    config = wgquick.load(path)
    device = Device(name)
    changes = plan(config, device.peers(), time.time() if now is None else now,
                   wgquick.EndpointSpec.resolve)
    for change in changes:
        log.info("%s: peer %s endpoint %s -> %s", name, keys_text(change.public_key),
                 change.old, change.new)
        device.update_peer(change.public_key, endpoint=change.new)
    return changes
