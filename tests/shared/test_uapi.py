"""UAPI text protocol: parser, formatter and the all-or-nothing configuration model."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgfast.daemon.config import DeviceConfig, PeerStats, clamp, public_key_of
from wgfast.uapi import (
    ERRNO_INVALID,
    ERRNO_PROTOCOL,
    ZERO_KEY,
    ChangeSet,
    DeviceStatus,
    Endpoint,
    PeerChange,
    PeerStatus,
    UAPIError,
    format_get,
    format_set,
    parse_allowed_ip,
    parse_get,
    parse_set,
)

PRIV = bytes(range(32))
PUB_A = bytes([0xA1]) * 32
PUB_B = bytes([0xB2]) * 32
PSK = bytes([0x5C]) * 32


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def full_request() -> str:
    return (
        "set=1\n"
        f"private_key={PRIV.hex()}\n"
        "listen_port=51820\n"
        "fwmark=4660\n"
        "replace_peers=true\n"
        f"public_key={PUB_A.hex()}\n"
        f"preshared_key={PSK.hex()}\n"
        "endpoint=192.0.2.1:51820\n"
        "persistent_keepalive_interval=25\n"
        "replace_allowed_ips=true\n"
        "allowed_ip=10.0.0.0/24\n"
        "allowed_ip=fd00::/64\n"
        "protocol_version=1\n"
        f"public_key={PUB_B.hex()}\n"
        "update_only=true\n"
        "endpoint=[2001:db8::1]:443\n"
        "\n"
    )


def test_every_set_key_parses_to_its_typed_field():
    changes = parse_set(full_request())
    assert changes.private_key == PRIV
    assert changes.listen_port == 51820
    assert changes.fwmark == 4660
    assert changes.replace_peers is True
    a, b = changes.peers
    assert a.public_key == PUB_A and a.preshared_key == PSK
    assert a.endpoint == Endpoint(ipaddress.ip_address("192.0.2.1"), 51820)
    assert a.persistent_keepalive_interval == 25
    assert a.replace_allowed_ips is True
    assert a.allowed_ips == [net("10.0.0.0/24"), net("fd00::/64")]
    assert a.protocol_version == 1
    assert b.public_key == PUB_B and b.update_only is True and not b.remove
    assert str(b.endpoint) == "[2001:db8::1]:443"


def test_format_set_round_trips():
    changes = parse_set(full_request())
    assert parse_set(format_set(changes)) == changes
    assert format_set(changes) == full_request()


def test_remove_voids_the_rest_of_its_section_but_still_validates_it():
    changes = parse_set(f"public_key={PUB_A.hex()}\nremove=true\nallowed_ip=10.0.0.0/8\n\n")
    assert changes.peers[0].remove and changes.peers[0].allowed_ips == []
    with pytest.raises(UAPIError) as err:
        parse_set(f"public_key={PUB_A.hex()}\nremove=true\nallowed_ip=10.0.0.0/99\n\n")
    assert err.value.errno == ERRNO_INVALID


def test_replace_allowed_ips_drops_earlier_ips_of_the_same_section():
    changes = parse_set(
        f"public_key={PUB_A.hex()}\nallowed_ip=10.0.0.0/8\nreplace_allowed_ips=true\n"
        "allowed_ip=10.1.0.0/16\n"
    )
    assert changes.peers[0].allowed_ips == [net("10.1.0.0/16")]


def test_allowed_ip_host_bits_are_masked():
    assert parse_allowed_ip("10.1.2.3/8") == net("10.0.0.0/8")
    assert parse_allowed_ip("fd00::1/0") == net("::/0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4:5", "1.2.3.4:5"),
        ("[::1]:51820", "[::1]:51820"),
        ("[::ffff:1.2.3.4]:5", "[::ffff:1.2.3.4]:5"),
        ("[fe80::1%eth0]:7", "[fe80::1%eth0]:7"),
        ("1.2.3.4:00080", "1.2.3.4:80"),
    ],
)
def test_endpoint_forms(text, expected):
    assert str(Endpoint.parse(text)) == expected


# (request body, expected errno). Each must also leave the configuration unchanged.
MALFORMED = [
    ("bogus_key=1", ERRNO_INVALID),
    ("listen_port", ERRNO_PROTOCOL),  # no '='
    ("private_key=" + "zz" * 32, ERRNO_INVALID),
    ("private_key=" + "11" * 31, ERRNO_INVALID),  # short key
    ("private_key=" + "11" * 33, ERRNO_INVALID),  # long key
    ("private_key= " + "11" * 32, ERRNO_INVALID),  # whitespace is not hex
    ("listen_port=65536", ERRNO_INVALID),
    ("listen_port=-1", ERRNO_INVALID),
    ("listen_port=", ERRNO_INVALID),
    ("listen_port=0x10", ERRNO_INVALID),
    ("fwmark=4294967296", ERRNO_INVALID),
    ("replace_peers=yes", ERRNO_INVALID),
    ("public_key=" + "ab" * 16, ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nlisten_port=1", ERRNO_INVALID),  # device key in a peer
    (f"public_key={PUB_A.hex()}\nbogus=1", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nremove=false", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nupdate_only=1", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\npreshared_key=00", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=example.com:51820", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=1.2.3.4", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=1.2.3.4:65536", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=::1:51820", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=[1.2.3.4]:5", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nendpoint=01.2.3.4:5", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\npersistent_keepalive_interval=65536", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nreplace_allowed_ips=false", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=10.0.0.0", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=10.0.0.0/33", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=10.0.0.0/255.0.0.0", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=fd00::/129", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=fe80::%eth0/64", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nallowed_ip=300.0.0.0/8", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nprotocol_version=2", ERRNO_INVALID),
    (f"public_key={PUB_A.hex()}\nprotocol_version=01", ERRNO_INVALID),
]


def base_config() -> DeviceConfig:
    return DeviceConfig().apply(
        parse_set(
            f"private_key={PRIV.hex()}\nlisten_port=1000\n"
            f"public_key={PUB_A.hex()}\nallowed_ip=10.0.0.0/24\n\n"
        )
    )


@pytest.mark.parametrize(("body", "expected"), MALFORMED)
def test_malformed_request_gets_its_errno_and_changes_nothing(body, expected):
    config = base_config()
    # Good lines before the bad one must not take effect either.
    request = f"listen_port=2000\npublic_key={PUB_B.hex()}\nallowed_ip=10.0.0.0/24\n"
    if body.startswith(("private_key", "listen_port", "fwmark", "replace_peers", "bogus_key")):
        request = "listen_port=2000\n"
    with pytest.raises(UAPIError) as err:
        config.apply(parse_set(request + body + "\n\n"))
    assert err.value.errno == expected
    assert config == base_config()


def test_apply_full_request():
    config = base_config().apply(parse_set(full_request()))
    assert config.private_key == clamp(PRIV)
    assert config.listen_port == 51820 and config.fwmark == 4660
    # replace_peers dropped the old A; the new A has the section's values; B was update_only
    # and did not exist, so it was not created.
    assert [p.public_key for p in config.peers] == [PUB_A]
    a = config.peers[0]
    assert a.preshared_key == PSK and a.persistent_keepalive_interval == 25
    assert a.allowed_ips == (net("10.0.0.0/24"), net("fd00::/64"))


def test_allowed_ip_moves_between_peers():
    config = base_config().apply(
        parse_set(f"public_key={PUB_B.hex()}\nallowed_ip=10.0.0.7/24\nallowed_ip=10.9.0.0/16\n")
    )
    assert config.peer(PUB_A).allowed_ips == ()
    assert config.peer(PUB_B).allowed_ips == (net("10.0.0.0/24"), net("10.9.0.0/16"))


def test_update_only_updates_existing_and_remove_removes():
    config = base_config().apply(
        parse_set(f"public_key={PUB_A.hex()}\nupdate_only=true\npersistent_keepalive_interval=5\n")
    )
    assert config.peer(PUB_A).persistent_keepalive_interval == 5
    config = config.apply(parse_set(f"public_key={PUB_A.hex()}\nremove=true\n"))
    assert config.peers == ()
    # Removing an absent peer is fine.
    assert config.apply(parse_set(f"public_key={PUB_B.hex()}\nremove=true\n")) == config


def test_peer_with_own_public_key_is_ignored_and_removed_on_key_change():
    own = public_key_of(clamp(PRIV))
    config = base_config().apply(parse_set(f"public_key={own.hex()}\nallowed_ip=1.0.0.0/8\n"))
    assert config.peer(own) is None
    other = bytes([7]) * 32
    config = config.apply(parse_set(f"public_key={public_key_of(other).hex()}\n"))
    assert config.peer(public_key_of(other)) is not None
    config = config.apply(parse_set(f"private_key={other.hex()}\n"))
    assert config.peer(public_key_of(other)) is None


def test_zero_private_key_and_fwmark_remove_them():
    config = base_config().apply(parse_set(f"private_key={ZERO_KEY.hex()}\nfwmark=0\n"))
    assert config.private_key is None and config.fwmark == 0
    assert "private_key" not in format_get(config.status())


def test_structured_change_set_is_validated():
    with pytest.raises(UAPIError):
        DeviceConfig().apply(ChangeSet(listen_port=70000))
    with pytest.raises(UAPIError):
        DeviceConfig().apply(ChangeSet(peers=[PeerChange(b"short")]))


def test_format_get_matches_wireguard_go_order():
    status = DeviceStatus(
        private_key=PRIV,
        listen_port=51820,
        peers=(
            PeerStatus(
                public_key=PUB_A,
                endpoint=Endpoint.parse("[::1]:9"),
                last_handshake_time_sec=3,
                last_handshake_time_nsec=4,
                tx_bytes=5,
                rx_bytes=6,
                persistent_keepalive_interval=7,
                allowed_ips=(net("10.0.0.0/8"),),
            ),
        ),
    )
    assert format_get(status) == (
        f"private_key={PRIV.hex()}\nlisten_port=51820\npublic_key={PUB_A.hex()}\n"
        f"preshared_key={ZERO_KEY.hex()}\nprotocol_version=1\nendpoint=[::1]:9\n"
        "last_handshake_time_sec=3\nlast_handshake_time_nsec=4\ntx_bytes=5\nrx_bytes=6\n"
        "persistent_keepalive_interval=7\nallowed_ip=10.0.0.0/8\n"
    )
    assert parse_get(format_get(status) + "errno=0\n\n") == status


def test_status_splits_handshake_time():
    config = base_config()
    status = config.status({PUB_A: PeerStats(1_700_000_000_123_456_789, 10, 20)})
    peer = status.peer(PUB_A)
    assert (peer.last_handshake_time_sec, peer.last_handshake_time_nsec) == (
        1_700_000_000,
        123_456_789,
    )
    assert (peer.rx_bytes, peer.tx_bytes) == (10, 20)


def test_parse_get_raises_on_error_reply():
    with pytest.raises(UAPIError) as err:
        parse_get("errno=-22\n\n")
    assert err.value.errno == -22


keys = st.binary(min_size=32, max_size=32)
prefixes = st.one_of(
    st.builds(
        lambda a, b: ipaddress.ip_network((ipaddress.IPv4Address(a), b), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    ),
    st.builds(
        lambda a, b: ipaddress.ip_network((ipaddress.IPv6Address(a), b), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
    ),
)
endpoints = st.one_of(
    st.none(),
    st.builds(
        lambda a, p: Endpoint(ipaddress.IPv4Address(a), p),
        st.integers(0, 2**32 - 1),
        st.integers(0, 65535),
    ),
    st.builds(
        lambda a, p: Endpoint(ipaddress.IPv6Address(a), p),
        st.integers(0, 2**128 - 1),
        st.integers(0, 65535),
    ),
)
peer_changes = st.builds(
    PeerChange,
    public_key=keys,
    update_only=st.booleans(),
    preshared_key=st.one_of(st.none(), keys),
    endpoint=endpoints,
    persistent_keepalive_interval=st.one_of(st.none(), st.integers(0, 65535)),
    replace_allowed_ips=st.booleans(),
    allowed_ips=st.lists(prefixes, max_size=4),
    protocol_version=st.sampled_from([None, 1]),
)
change_sets = st.builds(
    ChangeSet,
    private_key=st.one_of(st.none(), keys),
    listen_port=st.one_of(st.none(), st.integers(0, 65535)),
    fwmark=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    replace_peers=st.booleans(),
    peers=st.lists(peer_changes, max_size=4),
)


@given(change_sets)
def test_format_then_parse_is_identity(changes):
    assert parse_set(format_set(changes)) == changes


@given(st.lists(change_sets, max_size=4))
def test_applied_config_survives_get_round_trip(sequence):
    config = DeviceConfig()
    for changes in sequence:
        config = config.apply(changes)
    status = config.status()
    assert parse_get(format_get(status) + "errno=0\n\n") == status
    owners = [p for peer in config.peers for p in peer.allowed_ips]
    assert len(owners) == len(set(owners)), "an allowed IP belongs to one peer only"


@given(st.text(max_size=300))
def test_parser_never_crashes(text):
    try:
        changes = parse_set(text)
    except UAPIError as err:
        assert err.errno in (ERRNO_INVALID, ERRNO_PROTOCOL)
    else:
        DeviceConfig().apply(changes)
