"""The `wgfast` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from wgfast import __version__


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be integers, got {text!r}") from None
    if not sizes or any(s < 0 or s > 65535 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be between 0 and 65535 bytes")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_bench_crypto(args: argparse.Namespace) -> int:
    from wgfast import bench_crypto

    def progress(msg: str) -> None:
        if not args.json:
            print(f"  measuring {msg} ...", file=sys.stderr, flush=True)

    rows, notes = bench_crypto.run(
        sizes=args.size, batch=args.batch, seconds=args.seconds, progress=progress
    )
    if args.json:
        print(json.dumps({"kind": "crypto", "notes": notes,
                          "results": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(bench_crypto.format_table(rows, notes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgfast", description="Userspace WireGuard with a batched, compiled data plane."
    )
    parser.add_argument("--version", action="version", version=f"wgfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = sub.add_parser("bench", help="measure throughput")
    bench_sub = bench.add_subparsers(dest="bench_mode", metavar="MODE")
    crypto = bench_sub.add_parser(
        "crypto", help="batched ChaCha20-Poly1305 against OpenSSL EVP and `cryptography`"
    )
    crypto.add_argument("--json", action="store_true", help="machine-readable output")
    crypto.add_argument("--size", type=_sizes, default=[64, 512, 1420, 8192],
                        help="packet sizes in bytes, comma-separated (default 64,512,1420,8192)")
    crypto.add_argument("--batch", type=_positive, default=64, help="packets per batch")
    crypto.add_argument("--seconds", type=float, default=0.3,
                        help="approximate time spent per row (default 0.3)")
    crypto.set_defaults(func=cmd_bench_crypto)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
