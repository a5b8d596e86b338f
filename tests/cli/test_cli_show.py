"""`wgfast show` formatting rules (wg's pretty_time and bytes), without a device."""

from __future__ import annotations

import ipaddress

from wgfast import keys
from wgfast.api.device import DeviceState, Peer
from wgfast.cli.show import format_dump, format_show, handshake_ago, human_bytes, human_duration


def test_human_duration():
    assert human_duration(63) == "1 minute, 3 seconds"
    assert human_duration(1) == "1 second"
    assert human_duration(3600 * 25 + 2) == "1 day, 1 hour, 2 seconds"
    assert human_duration(365 * 86400 * 2) == "2 years"
    assert handshake_ago(100, now=163) == "1 minute, 3 seconds ago"
    assert handshake_ago(100, now=100) == "Now"
    assert "wound backward" in handshake_ago(100, now=50)


def test_human_bytes():
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1024) == "1.00 KiB"
    assert human_bytes(1536 * 1024) == "1.50 MiB"
    assert human_bytes(3 * 1024**3) == "3.00 GiB"
    assert human_bytes(5 * 1024**4) == "5.00 TiB"


def test_show_sorts_by_handshake_and_prints_live_fields():
    old = Peer(bytes(range(32)), allowed_ips=["10.0.0.1/32"], last_handshake_time_sec=1000,
               rx_bytes=2048, tx_bytes=100, persistent_keepalive=25)
    new = Peer(bytes(range(1, 33)), last_handshake_time_sec=1900,
               endpoint="192.0.2.1:51820")
    state = DeviceState("wg9", None, 51820, 0, (old, new))
    text = format_show(state, now=2000)
    assert text.index(new.public_key_base64) < text.index(old.public_key_base64)
    assert "  latest handshake: 1 minute, 40 seconds ago\n" in text
    assert "  transfer: 2.00 KiB received, 100 B sent\n" in text
    assert "  persistent keepalive: every 25 seconds\n" in text
    assert "  allowed ips: (none)\n" in text and "  endpoint: 192.0.2.1:51820\n" in text
    dump = format_dump(state).splitlines()
    assert dump[0] == "wg9\t(none)\t(none)\t51820\toff"
    assert dump[1].split("\t")[1:] == [old.public_key_base64, "(none)", "(none)", "10.0.0.1/32",
                                       "1000", "2048", "100", "25"]
    assert keys.KEY_LEN == len(old.public_key)
    assert isinstance(new.endpoint.address, ipaddress.IPv4Address)
