"""`wgfast exporter`: Prometheus metrics of the interfaces reachable over UAPI.

The exporter runs as an operator would run it: `python -m wgfast.cli exporter` in the root
namespace (the UAPI sockets are files, reachable from there), scraped over HTTP. Tunnels are
support.tunnel pairs: two wgfastd, and wireguard-go facing wgfastd. Checked: the per-peer
metrics of prometheus_wireguard_exporter with its labels for every peer of every interface,
byte counters that follow the traffic, a recent handshake time, wgfastd's own counters (and
none invented for wireguard-go), interfaces found at each scrape, and an interface that does
not answer counted, not fatal. Also without a tunnel: the mapping of wgfastd's keys, --listen,
IPv6, and the systemd unit.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import require
from support.daemons import WGFASTD, daemon_env
from support.netns import unique_name
from support.tunnel import Side, first_ping, make_pair, tcp_transfer
from wgfast.api.device import state_from_text
from wgfast.cli import exporter
from wgfast.cli.main import build_parser
from wgfast.uapi import SOCKET_DIRECTORY

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "wgfast-exporter.service"
START_SECONDS = 15
MiB = 1024 * 1024

# Samples by (name, frozen labels) -> value.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def needs_prometheus_client() -> None:
    require(importlib.util.find_spec("prometheus_client") is not None,
            "needs prometheus_client (a dependency of wgfast: pip install .)")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Exporter:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=15) as response:
            return response.read().decode()

    def scrape(self) -> Samples:
        from prometheus_client.parser import text_string_to_metric_families

        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(self.text())
                for s in family.samples}

    def types(self) -> dict[str, str]:
        from prometheus_client.parser import text_string_to_metric_families

        return {f.name: f.type for f in text_string_to_metric_families(self.text())}


@contextlib.contextmanager
def running_exporter(tmp_path: Path, *names: str, host: str = "127.0.0.1") -> Iterator[Exporter]:
    """`wgfast exporter --listen HOST:PORT NAMES` in the root namespace until the block ends;
    always stopped (SIGTERM, then SIGKILL), and a clean exit on SIGTERM is checked."""
    needs_prometheus_client()
    port = free_port(host)
    shown = f"[{host}]" if ":" in host else host
    log = tmp_path / f"exporter-{port}.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wgfast.cli", "exporter", "--listen", f"{shown}:{port}",
             "--timeout", "3", *names],
            env=daemon_env(WGFASTD), stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    url = f"http://{shown}:{port}/metrics"
    clean_exit = False
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert proc.poll() is None, f"exporter exited: {log.read_text()}"
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"exporter never answered: {log.read_text()}"
                time.sleep(0.1)
        yield Exporter(proc, url, log)
        assert proc.poll() is None, f"exporter died: {log.read_text()}"
        clean_exit = True
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            code = None
    if clean_exit:
        assert code == 0, f"exporter exited {code} on SIGTERM: {log.read_text()}"


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def peer_labels(me: Side, other: Side) -> dict[str, str]:
    """The labels `me`'s peer (`other`) has, as prometheus_wireguard_exporter writes them."""
    return {"interface": me.interface, "public_key": other.public_key,
            "allowed_ips": f"{other.inner4}/32,{other.inner6}/128"}


def peer_values(samples: Samples, me: Side, other: Side) -> tuple[float, float, float]:
    """(sent, received, latest handshake) of `me`'s peer; each must be there."""
    labels = peer_labels(me, other)
    names = ("wireguard_sent_bytes_total", "wireguard_received_bytes_total",
             "wireguard_latest_handshake_seconds")
    missing = [n for n in names if key(n, **labels) not in samples]
    assert not missing, (missing, labels, sorted(k for k in samples if k[0].startswith("wire")))
    sent, received, handshake = (samples[key(n, **labels)] for n in names)
    return sent, received, handshake


def interface_series(samples: Samples, interface: str, prefix: str) -> dict:
    return {k: v for k, v in samples.items()
            if k[0].startswith(prefix) and ("interface", interface) in k[1]}


def send_junk(src: Side, dst: Side, bad_type: int, initiations: int) -> None:
    """From `src`'s namespace to `dst`'s listen port: datagrams of an unknown message type (the
    data plane drops them: bad_type) and initiations of random bytes (the data plane drops them
    too, before the protocol core: bad_mac1)."""
    code = """
import os, socket, sys
address, port, bad, inits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for _ in range(bad):
        s.sendto(bytes([9, 0, 0, 0]) + os.urandom(60), (address, port))
    for _ in range(inits):
        s.sendto(bytes([1, 0, 0, 0]) + os.urandom(144), (address, port))
"""
    src.ns.run(sys.executable, "-c", code, dst.outer4, str(dst.port), str(bad_type),
               str(initiations))


def wait_scrape(exp: Exporter, predicate, what: str, seconds: float = 10) -> Samples:
    """Scrape until predicate(samples) holds (the daemon counts asynchronously), bounded."""
    deadline = time.monotonic() + seconds
    while True:
        samples = exp.scrape()
        if predicate(samples):
            return samples
        assert time.monotonic() < deadline, f"{what}: {sorted(samples.items())}"
        time.sleep(0.2)


# --- with tunnels ---------------------------------------------------------------------------


def test_wgfastd_pair_peer_and_device_metrics(netns_pool, tmp_path):
    needs_prometheus_client()
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    missing = unique_name("wgx")
    with running_exporter(tmp_path, a.interface, b.interface, missing) as exp:
        before = exp.scrape()
        sent_a0, received_a0, handshake_a0 = peer_values(before, a, b)
        sent_b0, received_b0, handshake_b0 = peer_values(before, b, a)
        assert handshake_a0 == handshake_b0 == 0  # never: nothing was sent yet
        errors0 = before[key("wgfast_exporter_scrape_errors_total", interface=missing)]
        assert errors0 >= 1
        for name in (a.interface, b.interface):
            assert before[key("wgfast_exporter_scrape_errors_total", interface=name)] == 0

        first_ping(a, b.inner4)
        tcp_transfer(a, b, b.inner4, tmp_path)
        send_junk(b, a, bad_type=5, initiations=2)
        started = time.time()

        after = wait_scrape(exp, lambda s: s.get(key(
            "wgfast_dataplane_drops_total", interface=a.interface, reason="bad_mac1"), 0) >= 2,
            "the junk initiations were not counted")
        sent_a, received_a, handshake_a = peer_values(after, a, b)
        sent_b, received_b, handshake_b = peer_values(after, b, a)
        # 20 MiB went a -> b: the sender's tx and the receiver's rx cover it (with overhead).
        assert sent_a - sent_a0 >= 20 * MiB
        assert received_b - received_b0 >= 20 * MiB
        assert received_a > received_a0 and sent_b > sent_b0  # ACKs and echo replies
        for handshake in (handshake_a, handshake_b):
            assert started - 120 <= handshake <= started + 1, (handshake, started)

        # wgfastd's own counters, by interface; drops with their reason.
        assert after[key("wgfast_dataplane_drops_total", interface=a.interface,
                         reason="bad_type")] >= 5
        assert after[key("wgfast_dataplane_tx_packets_total", interface=a.interface)] > 0
        assert after[key("wgfast_dataplane_rx_packets_total", interface=b.interface)] > 0
        assert after[key("wgfast_dataplane_keypairs_live", interface=a.interface)] >= 1
        types = exp.types()
        assert types["wgfast_dataplane_drops"] == "counter"
        # (wgfast_handshake_drops appears once the protocol core drops something: the junk
        # here never reaches it, the data plane drops it first.)
        assert types.get("wgfast_handshake_drops", "counter") == "counter"
        assert types["wgfast_dataplane_keypairs_live"] == "gauge"
        assert types["wireguard_latest_handshake_seconds"] == "gauge"
        assert types["wireguard_sent_bytes"] == "counter"

        # The name that does not answer is counted at every scrape, and costs nothing else.
        assert after[key("wgfast_exporter_scrape_errors_total", interface=missing)] > errors0
        assert not interface_series(after, missing, "wireguard_")
        assert exp.proc.poll() is None
    assert f"{missing}: no answer over UAPI" in exp.log.read_text()


def test_wireguard_go_facing_wgfastd_found_at_each_scrape(netns_pool, tmp_path):
    needs_prometheus_client()
    # No names: every socket in /var/run/wireguard at each scrape, so the interfaces made
    # after the exporter started must show up.
    with running_exporter(tmp_path) as exp:
        go, fast = make_pair(netns_pool, ("wireguard-go", "wgfastd"), tmp_path, psk=True,
                             outer=4)
        found = wait_scrape(exp, lambda s: bool(interface_series(s, go.interface, "wireguard_"))
                            and bool(interface_series(s, fast.interface, "wireguard_")),
                            "new interfaces not found")
        sent_go0, _, handshake_go0 = peer_values(found, go, fast)
        _, received_fast0, _ = peer_values(found, fast, go)
        assert handshake_go0 == 0

        first_ping(go, fast.inner4)
        tcp_transfer(go, fast, fast.inner4, tmp_path)
        started = time.time()
        after = exp.scrape()
        sent_go, _, handshake_go = peer_values(after, go, fast)
        _, received_fast, handshake_fast = peer_values(after, fast, go)
        assert sent_go - sent_go0 >= 20 * MiB
        assert received_fast - received_fast0 >= 20 * MiB
        for handshake in (handshake_go, handshake_fast):
            assert started - 120 <= handshake <= started + 1, (handshake, started)
        # Device counters come from wgfastd only; none are made up for wireguard-go.
        assert not interface_series(after, go.interface, "wgfast_dataplane")
        assert interface_series(after, fast.interface, "wgfast_dataplane")
        for side in (go, fast):
            assert after[key("wgfast_exporter_scrape_errors_total", interface=side.interface)] == 0


# --- without tunnels ------------------------------------------------------------------------


def test_ipv6_listen_and_an_unreachable_name(tmp_path):
    needs_prometheus_client()
    try:
        free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    missing = unique_name("wgx")
    with running_exporter(tmp_path, missing, host="::1") as exp:
        first = exp.scrape()[key("wgfast_exporter_scrape_errors_total", interface=missing)]
        second = exp.scrape()[key("wgfast_exporter_scrape_errors_total", interface=missing)]
        assert 1 <= first < second
        text = exp.text()
        assert "# TYPE wireguard_sent_bytes_total counter" in text
        assert "# TYPE wireguard_latest_handshake_seconds gauge" in text
    # One warning per outage, not one per scrape.
    assert exp.log.read_text().count("no answer over UAPI") == 1


def test_device_keys_map_to_metrics():
    needs_prometheus_client()
    reply = "\n".join([
        "private_key=" + "11" * 32, "listen_port=51820",
        "wgfast_drop_bad_type=7", "wgfast_drop_replay=2", "wgfast_dp_tx_packets=100",
        "wgfast_dp_sendmmsg_max=64", "wgfast_handshake_drop_decrypt_failed=3",
        "wgfast_handshakes_in_flight=1", "wgfast_dp_keypairs_live=2", "wgfast_bind_error=98",
        "wgfast_something_new=5", "wgfast_not_a_number=abc", "other_vendor_key=1",
        "public_key=" + "22" * 32, "preshared_key=" + "00" * 32, "protocol_version=1",
        "last_handshake_time_sec=1700000000", "last_handshake_time_nsec=5", "tx_bytes=10",
        "rx_bytes=20", "persistent_keepalive_interval=0", "allowed_ip=10.0.0.2/32",
        "allowed_ip=fd00::2/128",
        "public_key=" + "33" * 32, "last_handshake_time_sec=0", "tx_bytes=0", "rx_bytes=0",
        "errno=0", "", ""])

    class Fixed(exporter.WireGuardCollector):
        def read(self, name):
            return state_from_text(name, reply)

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    registry.register(Fixed(("wg0",)))
    text = generate_latest(registry).decode()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    peer = {"interface": "wg0", "public_key": "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=",
            "allowed_ips": "10.0.0.2/32,fd00::2/128"}
    quiet = {"interface": "wg0", "public_key": "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=",
             "allowed_ips": "(none)"}
    assert samples == {
        key("wireguard_sent_bytes_total", **peer): 10,
        key("wireguard_received_bytes_total", **peer): 20,
        key("wireguard_latest_handshake_seconds", **peer): 1700000000,
        key("wireguard_sent_bytes_total", **quiet): 0,
        key("wireguard_received_bytes_total", **quiet): 0,
        key("wireguard_latest_handshake_seconds", **quiet): 0,
        key("wgfast_dataplane_drops_total", interface="wg0", reason="bad_type"): 7,
        key("wgfast_dataplane_drops_total", interface="wg0", reason="replay"): 2,
        key("wgfast_dataplane_tx_packets_total", interface="wg0"): 100,
        key("wgfast_dataplane_sendmmsg_max", interface="wg0"): 64,
        key("wgfast_handshake_drops_total", interface="wg0", reason="decrypt_failed"): 3,
        key("wgfast_handshakes_in_flight", interface="wg0"): 1,
        key("wgfast_dataplane_keypairs_live", interface="wg0"): 2,
        key("wgfast_bind_error", interface="wg0"): 98,
        key("wgfast_something_new", interface="wg0"): 5,
        key("wgfast_exporter_scrape_errors_total", interface="wg0"): 0,
    }
    for line in ("# TYPE wireguard_sent_bytes_total counter",
                 "# TYPE wireguard_received_bytes_total counter",
                 "# TYPE wireguard_latest_handshake_seconds gauge",
                 "# TYPE wgfast_dataplane_drops_total counter",
                 "# TYPE wgfast_handshake_drops_total counter",
                 "# TYPE wgfast_dataplane_tx_packets_total counter",
                 "# TYPE wgfast_dataplane_sendmmsg_max gauge",
                 "# TYPE wgfast_dataplane_keypairs_live gauge",
                 "# TYPE wgfast_handshakes_in_flight gauge",
                 "# TYPE wgfast_bind_error gauge",
                 "# TYPE wgfast_something_new untyped"):
        assert line in text, text


def test_listen_forms():
    assert exporter.parse_listen("127.0.0.1:9586") == ("127.0.0.1", 9586)
    assert exporter.parse_listen("[::1]:9586") == ("::1", 9586)
    assert exporter.parse_listen("localhost:1") == ("localhost", 1)
    for bad in ("9586", ":9586", "::1:9586", "127.0.0.1:0", "127.0.0.1:65536", "1.2.3.4:x"):
        with pytest.raises(Exception, match=r"ADDR:PORT|brackets|port"):
            exporter.parse_listen(bad)
    args = build_parser().parse_args(["exporter"])
    assert args.listen == ("127.0.0.1", 9586) and args.names == []
    # Spelled out there to keep every command's start cheap; it must be the same directory.
    assert exporter.SOCKET_DIRECTORY == SOCKET_DIRECTORY
    help_text = subprocess.run([sys.executable, "-m", "wgfast.cli", "exporter", "--help"],
                               capture_output=True, text=True, timeout=30,
                               env=daemon_env(WGFASTD)).stdout
    assert "127.0.0.1:9586" in help_text and "Loopback" in help_text


def test_systemd_unit_runs_the_exporter(tmp_path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(UNIT)
    service = parser["Service"]
    argv = shlex.split(service["ExecStart"].replace("$WGFAST_EXPORTER_ARGS", ""))
    assert argv[:2] == ["/usr/local/bin/wgfast", "exporter"]
    args = build_parser().parse_args(argv[1:] + ["--listen", "[::1]:9586", "wg0"])
    assert args.func is exporter.main and args.names == ["wg0"]
    assert service["CapabilityBoundingSet"] == "" and service["ProtectSystem"] == "strict"
    install = (UNIT.parents[1] / "scripts" / "install.sh").read_text()
    assert "systemd/wgfast-exporter.service" in install
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert [line for line in result.stderr.splitlines() if str(tmp_path) in line] == [], \
        result.stderr
