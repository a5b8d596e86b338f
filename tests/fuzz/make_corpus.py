"""Writes the seed corpora in tests/fuzz/corpus/ (run it again after changing the framing):

    python3 tests/fuzz/make_corpus.py

packet/: the fixture's real wireguard-go messages, alone, under load, replayed, truncated, a
cookie reply addressed to the fixture's initiator; uapi/: valid get and set requests; config/:
valid wg-quick files.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_common import (  # noqa: E402
    CORPUS_ROOT,
    FIXTURE,
    KEYS,
    join_datagrams,
    wgfast_import_path,
)

wgfast_import_path()
from wgfast import _native  # noqa: E402

INITIATION = bytes.fromhex(FIXTURE["initiation_from_wireguard_go"]["message"])
OWN_INITIATION = bytes.fromhex(FIXTURE["response_from_wireguard_go"]["initiation"])
RESPONSE = bytes.fromhex(FIXTURE["response_from_wireguard_go"]["message"])
TRANSPORT = bytes.fromhex(FIXTURE["transport_from_wireguard_go"]["message"])
SENDER_INDEX = FIXTURE["response_from_wireguard_go"]["initiation_sender_index"]


def b64(name: str) -> str:
    return base64.b64encode(KEYS[name]).decode()


def packet_seeds() -> dict[str, bytes]:
    # The reply the data plane's C makes (source 192.0.2.1:51820 as cookies hash it).
    cookie_reply = _native.CookieChecker(KEYS["b_public"]).make_reply(
        OWN_INITIATION, bytes([192, 0, 2, 1]) + (51820).to_bytes(2, "big"), 0)
    return {
        "initiation": join_datagrams(0, [INITIATION]),
        "response": join_datagrams(0, [RESPONSE]),
        "transport": join_datagrams(0, [TRANSPORT]),
        "transport_replayed": join_datagrams(0, [TRANSPORT, TRANSPORT]),
        "cookie_reply": join_datagrams(0, [cookie_reply]),
        "cookie_then_response": join_datagrams(0, [cookie_reply, RESPONSE, TRANSPORT]),
        "truncated": join_datagrams(0, [INITIATION[:100], RESPONSE[:91], TRANSPORT[:31]]),
        "empty_and_keepalive_sized": join_datagrams(0, [b"", TRANSPORT[:32]]),
    }


def uapi_seeds() -> dict[str, bytes]:
    hex_key = KEYS["a_private"].hex()
    peer = KEYS["b_public"].hex()
    psk = KEYS["preshared"].hex()
    return {
        "get": b"get=1\n\n",
        "set_device": f"set=1\nprivate_key={hex_key}\nlisten_port=51820\nfwmark=0\n\n".encode(),
        "set_peer": (f"set=1\nreplace_peers=true\npublic_key={peer}\npreshared_key={psk}\n"
                     "endpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\n"
                     "replace_allowed_ips=true\nallowed_ip=10.0.0.0/24\nallowed_ip=fd00::/64\n"
                     "\n").encode(),
        "set_peer_v6_endpoint": (f"set=1\npublic_key={peer}\nendpoint=[fd00::1]:51820\n"
                                 "protocol_version=1\n\n").encode(),
        "remove_peer": f"set=1\npublic_key={peer}\nremove=true\n\n".encode(),
        "update_only": f"set=1\npublic_key={peer}\nupdate_only=true\n\nget=1\n\n".encode(),
    }


def config_seeds() -> dict[str, bytes]:
    return {
        "minimal": f"[Interface]\nPrivateKey = {b64('a_private')}\n".encode(),
        "full": (
            "# a comment\n[Interface]\n"
            f"PrivateKey = {b64('a_private')}\nListenPort = 51820\nFwMark = 0x1234\n"
            "Address = 10.0.0.1/24, fd00::1/64\nDNS = 10.0.0.53, example.com\nMTU = 1420\n"
            "Table = off\nPreUp = echo up\nPostDown = echo down # hook\nSaveConfig = false\n"
            "\n[Peer]\n"
            f"PublicKey = {b64('b_public')}\nPresharedKey = {b64('preshared')}\n"
            "AllowedIPs = 10.0.0.0/24, ::/0\nEndpoint = [fd00::2]:51820\n"
            "PersistentKeepalive = 25\n"
        ).encode(),
        "two_peers": (
            f"[Interface]\nPrivateKey={b64('b_private')}\nTable=1234\n"
            f"[Peer]\nPublicKey={b64('a_public')}\nEndpoint=example.com:1\nAllowedIPs=0.0.0.0/0\n"
            f"[peer]\npublickey={b64('b_public')}\n"
        ).encode(),
    }


def main() -> None:
    for target, seeds in (("packet", packet_seeds()), ("uapi", uapi_seeds()),
                          ("config", config_seeds())):
        directory = CORPUS_ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{directory}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
