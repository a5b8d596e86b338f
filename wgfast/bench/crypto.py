"""`wgfast bench crypto`: the batched AEAD core against two baselines, in one run on one thread.

Rows: "wgfast" (batched in place, one C call per batch), "openssl-evp" (OpenSSL's EVP interface
driven one packet per call from C, libcrypto loaded at run time) and "cryptography" (one packet
per Python call through the `cryptography` package). Ratios are against those baselines.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from wgfast import _native as native
from wgfast.bench import _cbench

DEFAULT_SIZES = (64, 512, 1420, 8192)
DEFAULT_BATCH = 64
TAG_LEN = 16


@dataclass
class CryptoResult:
    impl: str
    op: str
    size: int
    batch: int
    threads: int
    gbit_s: float
    ns_per_packet: float
    gbyte_s: float
    path: str  # SIMD path for wgfast rows, "" otherwise

    def as_dict(self) -> dict:
        return asdict(self)


def pin_to_one_cpu() -> int | None:
    """Pin this thread to one CPU so the figures are one core's; returns the CPU or None."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[-1]
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def _calibrate(run_once: Callable[[int], float], min_seconds: float) -> float:
    """Seconds per operation: grows the iteration count until one timing lasts min_seconds,
    then keeps the best of three timings (the least disturbed by the rest of the machine)."""
    iterations = 1
    while True:
        per_op = run_once(iterations)
        if per_op * iterations >= min_seconds / 4 or iterations >= 1 << 22:
            break
        iterations *= 4
    iterations = max(1, int(min_seconds / 3 / max(per_op, 1e-9)))
    return min(run_once(iterations) for _ in range(3))


def _native_row(engine: str, op: str, size: int, batch: int, seconds: float) -> float:
    key = os.urandom(32)
    buffers = [bytearray(os.urandom(size) + bytes(TAG_LEN)) for _ in range(batch)]
    packets = native.PacketBatch(buffers, [size] * batch, range(batch))
    return _calibrate(lambda it: _cbench.time_batch(packets, key, op, engine, it), seconds)


def _cryptography_row(op: str, size: int, batch: int, seconds: float) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(os.urandom(32))
    nonces = [b"\0" * 4 + struct.pack("<Q", i) for i in range(batch)]
    payloads = [os.urandom(size) for _ in range(batch)]
    if op == "open":
        payloads = [aead.encrypt(n, p, None) for n, p in zip(nonces, payloads, strict=True)]
        fn = aead.decrypt
    else:
        fn = aead.encrypt
    pairs = list(zip(nonces, payloads, strict=True))

    def run(iterations: int) -> float:
        start = time.perf_counter()
        for _ in range(iterations):
            for nonce, payload in pairs:
                fn(nonce, payload, None)
        return (time.perf_counter() - start) / iterations

    return _calibrate(run, seconds)


def _row(impl: str, op: str, size: int, batch: int, per_batch: float, path: str) -> CryptoResult:
    per_packet = per_batch / batch
    return CryptoResult(
        impl=impl,
        op=op,
        size=size,
        batch=batch,
        threads=1,
        gbit_s=size * 8 / per_packet / 1e9,
        ns_per_packet=per_packet * 1e9,
        gbyte_s=size / per_packet / 1e9,
        path=path,
    )


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    batch: int = DEFAULT_BATCH,
    ops: Sequence[str] = ("seal", "open"),
    seconds: float = 0.3,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[CryptoResult], list[str]]:
    """Measure every (impl, op, size); returns the rows and notes (skipped baselines...)."""
    notes: list[str] = []
    cpu = pin_to_one_cpu()
    if cpu is not None:
        notes.append(f"pinned to CPU {cpu}")
    evp_ok, evp_reason = _cbench.openssl_available()
    if not evp_ok:
        notes.append(f"openssl-evp rows skipped: {evp_reason}")
    path = native.impl_active()
    rows: list[CryptoResult] = []
    for op in ops:
        for size in sizes:
            if progress:
                progress(f"{op} {size} B")
            rows.append(
                _row("wgfast", op, size, batch, _native_row("wgfast", op, size, batch, seconds),
                     path)
            )
            if evp_ok:
                per = _native_row("openssl-evp", op, size, batch, seconds)
                rows.append(_row("openssl-evp", op, size, batch, per, ""))
            per = _cryptography_row(op, size, batch, seconds)
            rows.append(_row("cryptography", op, size, batch, per, ""))
    return rows, notes


def ratios(rows: Sequence[CryptoResult]) -> dict[tuple[str, int, str], float]:
    """wgfast's throughput over each baseline's, keyed by (op, size, baseline)."""
    by_key = {(r.impl, r.op, r.size): r for r in rows}
    out = {}
    for r in rows:
        if r.impl != "wgfast":
            continue
        for base in ("openssl-evp", "cryptography"):
            b = by_key.get((base, r.op, r.size))
            if b:
                out[(r.op, r.size, base)] = r.gbit_s / b.gbit_s
    return out


def format_table(rows: Sequence[CryptoResult], notes: Sequence[str]) -> str:
    rat = ratios(rows)
    lines = [
        f"{'impl':<13} {'op':<5} {'size':>6} {'batch':>5} {'Gbit/s':>8} {'GB/s':>6} "
        f"{'ns/pkt':>9}  vs openssl-evp  vs cryptography",
    ]
    for r in rows:
        extra = ""
        if r.impl == "wgfast":
            e = rat.get((r.op, r.size, "openssl-evp"))
            c = rat.get((r.op, r.size, "cryptography"))
            extra = f"  {f'{e:.2f}x' if e else '-':>13}  {f'{c:.2f}x' if c else '-':>15}"
            extra += f"  [{r.path}]"
        lines.append(
            f"{r.impl:<13} {r.op:<5} {r.size:>6} {r.batch:>5} {r.gbit_s:>8.2f} {r.gbyte_s:>6.2f} "
            f"{r.ns_per_packet:>9.1f}{extra}"
        )
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
