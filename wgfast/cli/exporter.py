"""`wgfast exporter`: Prometheus metrics for the WireGuard interfaces reachable over UAPI.

Every scrape reads each interface anew (`get=1` on /var/run/wireguard/NAME.sock: wgfastd,
wireguard-go or any other userspace implementation); nothing polls in between. Without names,
the interfaces are the sockets found in that directory at the scrape, so interfaces that come
and go are followed; with names, only those.

Per peer, the names and labels of prometheus_wireguard_exporter (MindFlavor), so that existing
dashboards work unchanged; labels `interface`, `public_key` (base64) and `allowed_ips` (the
peer's prefixes joined by commas as `wg show dump` writes them, "(none)" for none):

    wireguard_sent_bytes_total           counter  tx_bytes
    wireguard_received_bytes_total       counter  rx_bytes
    wireguard_latest_handshake_seconds   gauge    last_handshake_time_sec (unix time, 0: never)

Per device, wgfastd's own keys of the get=1 reply (wgfast/daemon/counters.py; wireguard-go
sends none), each with an `interface` label. The daemon lists only nonzero values, so a series
appears once it has counted something, and an absent one reads zero:

    wgfast_drop_<reason>             -> wgfast_dataplane_drops_total{reason}    counter
    wgfast_handshake_drop_<reason>   -> wgfast_handshake_drops_total{reason}    counter
    wgfast_dp_<stat>                 -> wgfast_dataplane_<stat>_total           counter
    wgfast_dp_keypairs_live          -> wgfast_dataplane_keypairs_live          gauge
    wgfast_dp_staged_held            -> wgfast_dataplane_staged_held            gauge
    wgfast_dp_sendmmsg_max, _recvmmsg_max -> wgfast_dataplane_*mmsg_max         gauge (largest
                                                                                batch so far)
    wgfast_handshakes_in_flight      -> wgfast_handshakes_in_flight             gauge
    wgfast_bind_error                -> wgfast_bind_error                       gauge (errno)
    any other wgfast_<name>          -> wgfast_<name>                           untyped

And the exporter's own:

    wgfast_exporter_scrape_errors_total{interface}  counter: reads of the interface that failed
        (no daemon behind the socket, a timeout, a reply that does not parse); the interface's
        other metrics are left out of that scrape, the others are unaffected.
    process_*                                       the exporter process (CPU, memory, fds).
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Iterator, Sequence

# Every `wgfast` command builds the parser (add_parser below) and so imports this module: it
# imports no more than that needs (no logging, dataclasses or wgfast.uapi, which loads asyncio);
# the rest comes in when the exporter runs.

SOCKET_DIRECTORY = "/var/run/wireguard"  # wgfast.uapi.SOCKET_DIRECTORY (tests check they agree)

# prometheus_wireguard_exporter's port; loopback unless told otherwise (see --help).
DEFAULT_LISTEN = "127.0.0.1:9586"
DEFAULT_TIMEOUT = 5.0
NO_ALLOWED_IPS = "(none)"  # what `wg show dump` prints, and so what that exporter labels
PEER_LABELS = ("interface", "public_key", "allowed_ips")

# wgfastd's device keys (wgfast/daemon/counters.py), spelled out: the command line does not
# import the daemon (tests/test_layers.py).
DEVICE_PREFIX = "wgfast_"
DATAPLANE_DROP = "wgfast_drop_"
HANDSHAKE_DROP = "wgfast_handshake_drop_"
DATAPLANE_STAT = "wgfast_dp_"
# Data-plane statistics that are current values or high-water marks, not counts.
DATAPLANE_GAUGES = frozenset({"keypairs_live", "staged_held", "sendmmsg_max", "recvmmsg_max"})
DEVICE_GAUGES = frozenset({"wgfast_handshakes_in_flight", "wgfast_bind_error"})

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class DeviceMetric:
    """Where one wgfast_ key of a get=1 reply goes: a metric name (counters without the
    `_total` the exposition adds), its kind, and labels beyond `interface`."""

    __slots__ = ("name", "kind", "help", "labels")

    def __init__(self, name: str, kind: str, help: str,
                 labels: tuple[tuple[str, str], ...] = ()) -> None:
        self.name = name
        self.kind = kind  # "counter", "gauge" or "unknown"
        self.help = help
        self.labels = labels


def device_metric(key: str) -> DeviceMetric | None:
    """The metric a device-level key of a get reply maps to; None for keys not wgfast's own."""
    if not key.startswith(DEVICE_PREFIX):
        return None
    if key.startswith(HANDSHAKE_DROP):
        return DeviceMetric("wgfast_handshake_drops", "counter",
                            "Handshake datagrams the protocol core rejected, by reason",
                            (("reason", key[len(HANDSHAKE_DROP):]),))
    if key.startswith(DATAPLANE_DROP):
        return DeviceMetric("wgfast_dataplane_drops", "counter",
                            "Packets or datagrams the data plane dropped, by reason",
                            (("reason", key[len(DATAPLANE_DROP):]),))
    if key.startswith(DATAPLANE_STAT):
        stat = key[len(DATAPLANE_STAT):]
        name = "wgfast_dataplane_" + stat
        if stat in DATAPLANE_GAUGES:
            return DeviceMetric(name, "gauge", f"Data plane: {stat} (current value)")
        return DeviceMetric(name, "counter", f"Data plane: {stat}")
    if key in DEVICE_GAUGES:
        return DeviceMetric(key, "gauge", f"wgfastd: {key[len(DEVICE_PREFIX):]}")
    return DeviceMetric(key, "unknown", f"wgfastd: {key[len(DEVICE_PREFIX):]}")


def _number(text: str) -> float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def allowed_ips_label(networks: Sequence[object]) -> str:
    return ",".join(str(n) for n in networks) or NO_ALLOWED_IPS


def _log():
    import logging

    return logging.getLogger("wgfast.exporter")


def list_interfaces(directory: str) -> list[str]:
    from wgfast.cli.show import list_interfaces as sockets_in

    return sockets_in(directory)


class WireGuardCollector:
    """A prometheus_client collector reading the interfaces over UAPI at each scrape.

    `names` empty: every interface with a socket in `socket_directory` at the time of the
    scrape. Scrapes may run concurrently (the HTTP server has a thread per request); only the
    error counts are shared between them.
    """

    def __init__(self, names: Sequence[str] = (), socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.names = tuple(names)
        self.socket_directory = socket_directory
        self.timeout = timeout
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        # Named interfaces have an error series from the start, so a rate() sees the first one.
        self._errors: dict[str, int] = dict.fromkeys(self.names, 0)

    def interfaces(self) -> list[str]:
        return list(self.names) if self.names else list_interfaces(self.socket_directory)

    def read(self, name: str):
        from wgfast.api.device import Device

        return Device(name, socket_directory=self.socket_directory,
                      timeout=self.timeout).state()

    def describe(self) -> list[object]:
        # Nothing is known before a scrape; returning no names also keeps registration from
        # reading every interface.
        return []

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            UnknownMetricFamily,
        )

        kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
                 "unknown": UnknownMetricFamily}
        sent = CounterMetricFamily("wireguard_sent_bytes", "Bytes sent to the peer",
                                   labels=PEER_LABELS)
        received = CounterMetricFamily("wireguard_received_bytes", "Bytes received from the peer",
                                       labels=PEER_LABELS)
        handshake = GaugeMetricFamily("wireguard_latest_handshake_seconds",
                                      "Seconds from the last handshake", labels=PEER_LABELS)
        device: dict[str, object] = {}
        listed = self.interfaces()
        for name in listed:
            try:
                state = self.read(name)
            except Exception as exc:  # one interface must not cost the others theirs
                self._failed(name, exc)
                continue
            self._answered(name)
            for peer in state.peers:
                labels = [name, peer.public_key_base64, allowed_ips_label(peer.allowed_ips)]
                sent.add_metric(labels, peer.tx_bytes)
                received.add_metric(labels, peer.rx_bytes)
                handshake.add_metric(labels, peer.last_handshake_time_sec)
            for key, text in state.extra.items():
                metric = device_metric(key)
                value = _number(text)
                if metric is None or value is None or not _METRIC_NAME.fullmatch(metric.name):
                    continue
                family = device.get(metric.name)
                if family is None:
                    family = device[metric.name] = kinds[metric.kind](
                        metric.name, metric.help,
                        labels=["interface", *(label for label, _ in metric.labels)])
                family.add_metric([name, *(v for _, v in metric.labels)], value)
        yield sent
        yield received
        yield handshake
        yield from (device[name] for name in sorted(device))
        yield self._error_family(CounterMetricFamily, listed)

    def _failed(self, name: str, exc: Exception) -> None:
        with self._lock:
            self._errors[name] = self._errors.get(name, 0) + 1
            first = name not in self._failing
            self._failing.add(name)
        if first:  # once per outage, not once per scrape
            _log().warning("%s: no answer over UAPI (%s); counting it in "
                           "wgfast_exporter_scrape_errors_total", name, exc)

    def _answered(self, name: str) -> None:
        with self._lock:
            self._errors.setdefault(name, 0)
            recovered = name in self._failing
            self._failing.discard(name)
        if recovered:
            _log().warning("%s: answers again", name)

    def _error_family(self, counter_family: type, listed: Sequence[str]) -> object:
        family = counter_family("wgfast_exporter_scrape_errors",
                                "Reads of an interface over UAPI that failed",
                                labels=["interface"])
        with self._lock:
            # Interfaces that went away without ever failing are forgotten; the rest are kept,
            # so a counter never goes back to nothing while its interface is still named.
            for name in [n for n, count in self._errors.items()
                         if count == 0 and n not in listed and n not in self.names]:
                del self._errors[name]
            for name, count in sorted(self._errors.items()):
                family.add_metric([name], count)
        return family


# --- the command ----------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT or [IPv6]:PORT -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"put an IPv6 address in brackets: [{host}]:{port_text}")
    if not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port_text!r} in {text!r}")
    return host, int(port_text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `exporter` subcommand, for wgfast.cli.main's parser."""
    parser = sub.add_parser(
        "exporter", help="serve Prometheus metrics of every interface reachable over UAPI",
        description="Serve Prometheus metrics on http://ADDR:PORT/metrics: per peer the "
        "metrics of prometheus_wireguard_exporter (wireguard_sent_bytes_total, "
        "wireguard_received_bytes_total, wireguard_latest_handshake_seconds), and wgfastd's "
        "own counters (wgfast_*). Each scrape reads the interfaces over UAPI: wgfastd and "
        "wireguard-go alike. Needs root to reach the sockets in " + SOCKET_DIRECTORY + ".")
    parser.add_argument(
        "--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN), metavar="ADDR:PORT",
        help=f"where to serve (default {DEFAULT_LISTEN}; [::1]:9586 for IPv6). Loopback by "
        "default because the metrics name every peer's public key and allowed IPs: listen "
        "wider only where no one else can reach the port")
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS", help="give up on an interface that does not answer "
                        f"within this long (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="interfaces to export (default: every socket in "
                        f"{SOCKET_DIRECTORY}, looked up at each scrape)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import logging
    import signal

    logging.basicConfig(level=logging.INFO, format="wgfast exporter: %(message)s",
                        stream=sys.stderr)
    try:
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    except ImportError:
        print("wgfast exporter: needs the prometheus_client package "
              "(pip install prometheus_client; scripts/install.sh installs it)", file=sys.stderr)
        return 1
    host, port = args.listen
    registry = CollectorRegistry()
    registry.register(WireGuardCollector(tuple(args.names), timeout=args.timeout))
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        print(f"wgfast exporter: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    shown = f"[{host}]" if ":" in host else host
    what = ", ".join(args.names) if args.names else f"every interface in {SOCKET_DIRECTORY}"
    _log().info("serving http://%s:%d/metrics for %s", shown, port, what)
    while not stop.wait(3600):  # a signal interrupts the wait at once
        pass
    server.shutdown()
    server.server_close()
    thread.join(5)
    return 0
