"""The `wgfast` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from wgfast import __version__
from wgfast.errors import DeviceUnreachableError


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
    from wgfast.bench import crypto as bench_crypto

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


def cmd_bench_handshake(args: argparse.Namespace) -> int:
    from wgfast.bench import handshake as bench_handshake

    results = bench_handshake.run(seconds=args.seconds, progress=_bench_progress(args))
    if args.json:
        print(json.dumps({"kind": "handshake", "results": [r.as_dict() for r in results]},
                         indent=2))
    else:
        print(bench_handshake.format_table(results))
    return 0


def _bench_progress(args: argparse.Namespace):
    def progress(msg: str) -> None:
        if not args.json:
            print(f"  {msg} ...", file=sys.stderr, flush=True)

    return progress


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_bench_tunnel(args: argparse.Namespace) -> int:
    """The tunnel bench; without root or TUN, says what is missing and runs crypto and
    handshake instead (non-zero only if those fail too)."""
    import signal

    from wgfast.bench import testbed
    from wgfast.bench import tunnel as bench_tunnel

    missing = testbed.requirements_missing()
    if missing:
        print("wgfast bench: the tunnel benchmark needs " + "; ".join(missing) + ".\n"
              "Running what needs none of that: `wgfast bench crypto` and "
              "`wgfast bench handshake`.", file=sys.stderr)
        return _bench_fallback(args)
    try:
        impls = [bench_tunnel.Impl.wgfast(), *map(bench_tunnel.Impl.parse, args.against)]
        settings = bench_tunnel.Settings(
            impls=impls, repeat=args.repeat, streams=args.streams, udp=args.udp,
            sizes=args.size, duration=args.duration, tool=args.tool)
    except bench_tunnel.BenchError as exc:
        print(f"wgfast bench: {exc}", file=sys.stderr)
        return 2

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    # Ctrl-C and SIGTERM both unwind through the testbeds' cleanup.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    progress(f"tunnel bench: {', '.join(i.name for i in impls)}; {settings.repeat} round(s), "
             f"traffic by {settings.tool}")
    try:
        rows = bench_tunnel.run(settings, progress=progress)
    except bench_tunnel.BenchError as exc:
        print(f"wgfast bench: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"kind": "tunnel", "results": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(bench_tunnel.format_table(rows, settings))
    if args.plot:
        try:
            bench_tunnel.plot(rows, args.plot)
            progress(f"plot written to {args.plot}")
        except ImportError:
            print("wgfast bench: --plot needs matplotlib (pip install 'wgfast[plot]')",
                  file=sys.stderr)
            return 1
    return 0


def _bench_fallback(args: argparse.Namespace) -> int:
    from wgfast.bench import crypto as bench_crypto
    from wgfast.bench import handshake as bench_handshake

    reports = []
    ran = 0
    progress = _bench_progress(args)
    for name, runner in (("crypto", lambda: bench_crypto.run(
                              sizes=[64, 512, 1420, 8192], batch=64, seconds=0.3,
                              progress=progress)),
                         ("handshake", lambda: bench_handshake.run(progress=progress))):
        try:
            result = runner()
        except Exception as exc:  # report every part that could not run, go on with the rest
            print(f"wgfast bench {name}: could not run: {exc}", file=sys.stderr)
            continue
        ran += 1
        if name == "crypto":
            rows, notes = result
            reports.append({"kind": "crypto", "notes": notes,
                            "results": [r.as_dict() for r in rows]})
            text = bench_crypto.format_table(rows, notes)
        else:
            reports.append({"kind": "handshake", "results": [r.as_dict() for r in result]})
            text = bench_handshake.format_table(result)
        if not args.json:
            print(text)
    if args.json:
        print(json.dumps({"kind": "partial", "skipped": "tunnel", "reports": reports}, indent=2))
    return 0 if ran else 1


# --- keys, show, up/down (wg and wg-quick work-alikes) -------------------------------------

_KEY_ERROR = "Key is not the correct length or format"


def _warn_world_accessible_stdout() -> None:
    import os
    import stat

    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o007:
        print("Warning: writing to world accessible file.\n"
              "Consider setting the umask to 077 and trying again.", file=sys.stderr)


def cmd_genkey(args: argparse.Namespace) -> int:
    from wgfast import keys

    _warn_world_accessible_stdout()
    print(keys.to_base64(keys.generate_private_key()))
    return 0


def cmd_genpsk(args: argparse.Namespace) -> int:
    from wgfast import keys

    _warn_world_accessible_stdout()
    print(keys.to_base64(keys.generate_preshared_key()))
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    from wgfast import keys

    text = sys.stdin.read(1024)
    try:
        private = keys.from_base64(text)
    except keys.KeyFormatError:
        print(f"{parser_prog()}: {_KEY_ERROR}", file=sys.stderr)
        return 1
    print(keys.to_base64(keys.public_key(private)))
    return 0


def parser_prog() -> str:
    return "wgfast"


def _device_state(name: str):
    from wgfast.api.device import Device

    return Device(name).state()


def _uapi_failure(name: str, exc: Exception) -> int:
    if isinstance(exc, DeviceUnreachableError | FileNotFoundError | ConnectionRefusedError):
        print(f"Unable to access interface {name}: No such device", file=sys.stderr)
    elif isinstance(exc, PermissionError):
        print(f"Unable to access interface {name}: Permission denied (run as root)",
              file=sys.stderr)
    else:
        print(f"Unable to access interface {name}: {exc}", file=sys.stderr)
    return 1


def cmd_show(args: argparse.Namespace) -> int:
    from wgfast.cli import show
    from wgfast.uapi import UAPIError

    names = [args.name] if args.name and args.name != "all" else show.list_interfaces()
    states = []
    for name in names:
        try:
            states.append(_device_state(name))
        except (OSError, UAPIError) as exc:
            if args.name and args.name != "all":
                return _uapi_failure(name, exc)
            # A stale socket (or one from another network namespace): skip, as wg does.
    if args.json:
        print(json.dumps([show.as_json(s) for s in states] if not args.name or
                         args.name == "all" else show.as_json(states[0]), indent=2))
    elif args.dump:
        with_name = not args.name or args.name == "all"
        sys.stdout.write("".join(show.format_dump(s, with_name) for s in states))
    else:
        sys.stdout.write("\n".join(show.format_show(s) for s in states))
    return 0


def cmd_showconf(args: argparse.Namespace) -> int:
    from wgfast.cli import show
    from wgfast.uapi import UAPIError

    try:
        state = _device_state(args.name)
    except (OSError, UAPIError) as exc:
        return _uapi_failure(args.name, exc)
    sys.stdout.write(show.format_showconf(state))
    return 0


def _quick(action: str, target: str, netns: str | None = None) -> int:
    import logging

    from wgfast import wgquick
    from wgfast.cli import quick

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if action == "up":
            quick.up(target, netns=netns)
        else:
            quick.down(target, netns=netns)
    except (quick.QuickError, wgquick.ConfigError) as exc:
        print(f"wgfast {action}: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"wgfast {action}: permission denied: {exc.filename or exc} (run as root)",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wgfast {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    return _quick("up", args.config, args.netns)


def cmd_down(args: argparse.Namespace) -> int:
    return _quick("down", args.config, args.netns)


def cmd_reresolve(args: argparse.Namespace) -> int:
    import logging

    from wgfast import keys, wgquick
    from wgfast.cli import reresolve
    from wgfast.uapi import UAPIError

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        changes = reresolve.reresolve(args.config)
    except wgquick.ConfigError as exc:
        print(f"wgfast reresolve: {exc}", file=sys.stderr)
        return 1
    except (OSError, UAPIError) as exc:
        return _uapi_failure(wgquick.locate(args.config)[1], exc)
    for change in changes:
        print(f"{keys.to_base64(change.public_key)}: {change.host} now {change.new} "
              f"(was {change.old or '(none)'})")
    return 0


def _add_wg_commands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("genkey", help="print a new private key (as `wg genkey`)").set_defaults(
        func=cmd_genkey)
    sub.add_parser("genpsk", help="print a new preshared key (as `wg genpsk`)").set_defaults(
        func=cmd_genpsk)
    sub.add_parser("pubkey", help="read a private key on stdin, print its public key"
                   ).set_defaults(func=cmd_pubkey)
    show_parser = sub.add_parser("show", help="show interfaces (as `wg show`)")
    show_parser.add_argument("name", nargs="?", help="interface name, or all (default)")
    show_parser.add_argument("--json", action="store_true",
                             help="the fields of `wg show all dump` and wgfast's counters")
    show_parser.add_argument("--dump", action="store_true", help="as `wg show ... dump`")
    show_parser.set_defaults(func=cmd_show)
    showconf = sub.add_parser("showconf", help="print an interface's configuration")
    showconf.add_argument("name")
    showconf.set_defaults(func=cmd_showconf)
    for action, func in (("up", cmd_up), ("down", cmd_down)):
        p = sub.add_parser(action, help=f"bring a wg-quick configuration {action}",
                           epilog=QUICK_ENVIRONMENT,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("config", metavar="CONFIG|NAME",
                       help="a path to NAME.conf, or NAME for /etc/wireguard/NAME.conf")
        p.add_argument("--netns", metavar="NS",
                       help="the interface lives in network namespace NS (a name from `ip netns`"
                       " or a path); the daemon and its UDP socket stay here")
        p.set_defaults(func=func)
    again = sub.add_parser("reresolve", help="resolve the host-name endpoints of peers without a "
                           "handshake for 135 s again (as wireguard-tools' reresolve-dns)")
    again.add_argument("config", metavar="CONFIG|NAME",
                       help="the configuration the interface was brought up with")
    again.set_defaults(func=cmd_reresolve)


# Spelled out rather than imported from wgfast.cli.quick, which loads pyroute2: every command
# builds this parser (tests/cli/test_cli_fail_loudly.py checks the defaults against quick's).
QUICK_ENVIRONMENT = """\
environment (up, down):
  WGFAST_DAEMON=CMD   the userspace WireGuard daemon to start (default: wgfastd);
      any wireguard-go-compatible command, e.g. wireguard-go
  WGFAST_RUN_DIR=DIR  where up keeps what it did, for down (default: /run/wgfast)
  the daemon's own (LOG_LEVEL, WGFAST_LOG_FILE, ...): see `wgfastd --help`
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgfast", description="Userspace WireGuard with a batched, compiled data plane.",
        epilog=QUICK_ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wgfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = sub.add_parser(
        "bench", help="measure a wgfast tunnel (default), the crypto core or handshakes",
        description="Without MODE: build two network namespaces joined by a veth pair, run a "
        "wgfast tunnel across them (and each --against implementation), drive traffic both "
        "ways and print throughput, packets/s, CPU and handshake time. Needs root and TUN.")
    bench.add_argument("--against", action="append", default=[], metavar="CMD",
                       help="also measure a wireguard-go-compatible daemon command "
                       "(e.g. wireguard-go), or `none` for the bare veth path; repeatable")
    bench.add_argument("--repeat", type=_positive, default=3,
                       help="rounds, implementations interleaved A B A B (default 3)")
    bench.add_argument("--streams", type=_positive, default=1, help="parallel streams")
    bench.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    bench.add_argument("--size", type=_sizes, default=None,
                       help="write (TCP) or datagram (UDP) sizes in bytes, comma-separated "
                       "(default 131072 for TCP, 1392 for UDP)")
    bench.add_argument("--duration", type=float, default=5.0,
                       help="seconds of traffic per direction (default 5)")
    bench.add_argument("--tool", choices=("iperf3", "builtin"), default="",
                       help="traffic generator (default: iperf3 when installed)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="draw throughput over time (and over sizes); needs matplotlib")
    bench.set_defaults(func=cmd_bench_tunnel)
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
    handshake = bench_sub.add_parser(
        "handshake", help="handshakes per second through the Python control plane")
    handshake.add_argument("--json", action="store_true", help="machine-readable output")
    handshake.add_argument("--seconds", type=float, default=0.5,
                           help="approximate time spent per operation (default 0.5)")
    handshake.set_defaults(func=cmd_bench_handshake)
    _add_wg_commands(sub)
    from wgfast.cli import exporter  # the parser only; prometheus_client loads when it runs

    exporter.add_parser(sub)
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

