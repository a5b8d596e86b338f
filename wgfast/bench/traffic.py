"""The built-in traffic tool `wgfast bench` falls back to when iperf3 is not installed.

    python -m wgfast.bench.traffic recv --proto tcp --bind 10.0.0.2 --port 5201 --streams 2 \
        --duration 5
    python -m wgfast.bench.traffic send --proto tcp --to 10.0.0.2 --port 5201 --streams 2 \
        --duration 5 --size 131072

The receiver prints `ready` once it listens, then one JSON line when done: the bytes (and, for
UDP, datagrams) it received, the seconds between the first and the last byte, and the bytes
received in each INTERVAL_SECONDS slice, for throughput over time. The sender prints one JSON
line with what it sent. TCP: one connection per stream, the receiver finishes when every stream
has closed. UDP: one socket per stream, sending as fast as the socket takes datagrams; the
receiver stops UDP_IDLE_SECONDS after the last datagram (or at duration + UDP_IDLE_SECONDS).
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import threading
import time

INTERVAL_SECONDS = 0.5
UDP_IDLE_SECONDS = 1.0
ACCEPT_TIMEOUT_SECONDS = 15.0
RECV_BUFFER = 1 << 18
SOCKET_BUFFER = 4 << 20


class _Tally:
    """Received bytes in total and per interval, timed from the first byte."""

    def __init__(self) -> None:
        self.bytes = 0
        self.datagrams = 0
        self.first: float | None = None
        self.last = 0.0
        self.slices: list[int] = []

    def add(self, n: int, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now
        self.bytes += n
        self.datagrams += 1
        index = int((now - self.first) / INTERVAL_SECONDS)
        while len(self.slices) <= index:
            self.slices.append(0)
        self.slices[index] += n

    def report(self) -> dict:
        seconds = self.last - self.first if self.first is not None else 0.0
        return {"bytes": self.bytes, "datagrams": self.datagrams, "seconds": seconds,
                "interval_s": INTERVAL_SECONDS, "interval_bytes": self.slices}


def _receive_tcp(args: argparse.Namespace) -> dict:
    server = socket.create_server((args.bind, args.port), backlog=args.streams)
    server.settimeout(ACCEPT_TIMEOUT_SECONDS)
    print("ready", flush=True)
    tally = _Tally()
    selector = selectors.DefaultSelector()
    open_streams = 0
    for _ in range(args.streams):
        conn, _addr = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
        open_streams += 1
    server.close()
    deadline = time.monotonic() + args.duration + ACCEPT_TIMEOUT_SECONDS
    while open_streams and time.monotonic() < deadline:
        for key, _events in selector.select(timeout=1.0):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(RECV_BUFFER)
            except BlockingIOError:
                continue
            if data:
                tally.add(len(data), time.monotonic())
            else:
                selector.unregister(conn)
                conn.close()
                open_streams -= 1
    return tally.report()


def _receive_udp(args: argparse.Namespace) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.bind((args.bind, args.port))
    print("ready", flush=True)
    tally = _Tally()
    sock.settimeout(ACCEPT_TIMEOUT_SECONDS)
    end = None
    while True:
        try:
            n = sock.recv_into(bytearray(RECV_BUFFER))
        except TimeoutError:
            break
        now = time.monotonic()
        tally.add(n, now)
        if end is None:
            end = now + args.duration + UDP_IDLE_SECONDS
        sock.settimeout(max(0.01, min(UDP_IDLE_SECONDS, end - now)))
        if now >= end:
            break
    return tally.report()


def _send_stream(args: argparse.Namespace, totals: list[int], slot: int) -> None:
    payload = memoryview(bytes(args.size))
    stop = time.monotonic() + args.duration
    sent = 0
    if args.proto == "tcp":
        with socket.create_connection((args.to, args.port), timeout=ACCEPT_TIMEOUT_SECONDS) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            while time.monotonic() < stop:
                sent += s.send(payload)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((args.to, args.port))
            while time.monotonic() < stop:
                try:
                    sent += s.send(payload)
                except (BlockingIOError, ConnectionRefusedError):
                    continue  # an ICMP error from an earlier datagram: keep going
    totals[slot] = sent


def _send(args: argparse.Namespace) -> dict:
    totals = [0] * args.streams
    threads = [threading.Thread(target=_send_stream, args=(args, totals, i))
               for i in range(args.streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"bytes": sum(totals)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wgfast.bench.traffic")
    parser.add_argument("role", choices=("send", "recv"))
    parser.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--to", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=131072)
    args = parser.parse_args(argv)
    if args.role == "recv":
        report = _receive_tcp(args) if args.proto == "tcp" else _receive_udp(args)
    else:
        report = _send(args)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
