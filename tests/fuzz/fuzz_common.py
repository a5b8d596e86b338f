"""Shared pieces of the fuzz targets: the wireguard-go fixture keys and the input framing.

Packet-path inputs are a flags byte followed by datagrams, each framed as a little-endian u16
length and that many bytes (a short last frame takes what is left), so one input can carry a
handshake and the data that follows it, or the same packet twice (a replay).
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path

FIXTURE_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "wireguard_go_handshake.json"
FIXTURE = json.loads(FIXTURE_PATH.read_text())
KEYS = {name: base64.b64decode(value) for name, value in FIXTURE["keys"].items()}
CORPUS_ROOT = Path(__file__).resolve().parent / "corpus"

FLAG_UNDER_LOAD = 0x01
MAX_DATAGRAMS = 16
_LENGTH = struct.Struct("<H")


def split_datagrams(data: bytes) -> tuple[int, list[bytes]]:
    """(flags, datagrams) of a packet-path input; at most MAX_DATAGRAMS datagrams."""
    if not data:
        return 0, []
    flags, rest = data[0], data[1:]
    datagrams: list[bytes] = []
    while rest and len(datagrams) < MAX_DATAGRAMS:
        if len(rest) < _LENGTH.size:
            datagrams.append(rest)
            break
        (length,) = _LENGTH.unpack_from(rest)
        datagrams.append(rest[_LENGTH.size:_LENGTH.size + length])
        rest = rest[_LENGTH.size + length:]
    return flags, datagrams


def join_datagrams(flags: int, datagrams: list[bytes]) -> bytes:
    """The inverse of split_datagrams (for writing seeds)."""
    return bytes([flags]) + b"".join(_LENGTH.pack(len(d)) + d for d in datagrams)


def crash_on_logged_exceptions() -> None:
    """Make `log.exception(...)` anywhere in wgfast a crash: the code under test catches
    unexpected exceptions to stay up, which would otherwise hide the bug from the fuzzer."""
    import logging

    class _Raise(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info:
                raise AssertionError(f"wgfast logged an exception: {record.getMessage()}")

    root = logging.getLogger("wgfast")
    root.addHandler(_Raise(logging.ERROR))
    root.setLevel(logging.ERROR)
    root.propagate = False


def wgfast_import_path() -> None:
    """Import the wgfast named by WGFAST_FUZZ_PYTHONPATH (the test sets it to the wgfast it
    imported), else an installed one, else the source tree this file is in."""
    import importlib.util
    import sys

    extra = os.environ.get("WGFAST_FUZZ_PYTHONPATH")
    if extra:
        sys.path.insert(0, extra)
    elif importlib.util.find_spec("wgfast") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
