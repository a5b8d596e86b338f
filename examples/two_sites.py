"""Two sites joined by a WireGuard tunnel, managed from Python: an example network daemon that
uses only wgfast's public API (the README's "For daemon authors" section and the docstrings).

    python3 examples/two_sites.py                      # wgfastd on both sites
    python3 examples/two_sites.py --daemon wireguard-go

It needs root. It plays both sites on one machine: two network namespaces joined by a veth pair
stand for the two hosts and their network. Then, with wgfast:

1. create one device per site (the daemon started in the site's namespace, address, MTU, up,
   keys, listen port and peer in one call);
2. read a snapshot of site A and subscribe to its events from that snapshot on, so that nothing
   is missed between the two;
3. send datagrams through the tunnel; the first starts the handshake, and the example waits for
   the handshake event (no polling) before it counts the echoes;
4. remove site A's peer and wait for that event;
5. close both devices (daemons stopped, links and sockets gone), delete the namespaces, and
   check that nothing is left.

With a daemon that has no events (wireguard-go), step 2 says so (NotSupportedError) and steps 3
and 4 go on without them. Exit status 0 when every step worked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import AsyncExitStack

from wgfast import AsyncDevice, NotSupportedError, Peer, WgfastError, keys
from wgfast.api import AsyncEventStream, HandshakeCompleted, PeerRemoved
from wgfast.netns import run_in_netns

TUNNEL = ("10.77.0.1", "10.77.0.2")  # the sites' addresses inside the tunnel
UNDERLAY = ("192.168.77.1", "192.168.77.2")  # the sites' "internet": the veth pair
LISTEN_PORT = 51820
ECHO_PORT = 7000
DATAGRAMS = 10
EVENT_TIMEOUT = 10.0  # seconds; a handshake takes milliseconds, a lost one is retried after 5 s


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def make_hosts(ns_a: str, ns_b: str) -> None:
    """Two hosts and a cable: namespaces joined by a veth pair with the underlay addresses."""
    ip("netns", "add", ns_a)
    ip("netns", "add", ns_b)
    ip("link", "add", "wgex-veth", "netns", ns_a, "type", "veth", "peer", "wgex-veth",
       "netns", ns_b)
    for ns, address in ((ns_a, UNDERLAY[0]), (ns_b, UNDERLAY[1])):
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "wgex-veth")
        ip("-n", ns, "link", "set", "wgex-veth", "up")
        ip("-n", ns, "link", "set", "lo", "up")


def remove_hosts(*namespaces: str) -> None:
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


def udp_socket(netns: str, bind: tuple[str, int]) -> socket.socket:
    """A UDP socket that lives in `netns` (a socket stays in the namespace it was made in)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(bind)
        return sock

    return run_in_netns(netns, make)


def describe(event: object) -> str:
    """An event for people: its kind, the peer's key in wg's base64, its other fields."""
    fields = {name: value for name, value in vars(event).items()
              if name not in ("sequence", "public_key")}
    peer = getattr(event, "public_key", None)
    text = type(event).__name__ + (f" peer {keys.to_base64(peer)}" if peer else "")
    return text + "".join(f" {name}={value}" for name, value in fields.items())


async def next_event(stream: AsyncEventStream, kind: type, public_key: bytes) -> object:
    """The next event of `kind` about `public_key` (others are printed and skipped)."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        async for event in stream:
            print(f"    event {event.sequence}: {describe(event)}")
            if isinstance(event, kind) and getattr(event, "public_key", None) == public_key:
                return event
    raise RuntimeError(f"the event stream ended before a {kind.__name__} event")


async def echo_through_tunnel(ns_a: str, ns_b: str) -> int:
    """Send DATAGRAMS datagrams from site A to an echo on site B through the tunnel; the number
    that came back."""
    loop = asyncio.get_running_loop()
    server = udp_socket(ns_b, (TUNNEL[1], ECHO_PORT))
    client = udp_socket(ns_a, (TUNNEL[0], 0))
    server.setblocking(False)
    client.setblocking(False)
    echoed = 0
    try:
        for number in range(DATAGRAMS):
            payload = f"datagram {number}".encode()
            await loop.sock_sendto(client, payload, (TUNNEL[1], ECHO_PORT))
            async with asyncio.timeout(EVENT_TIMEOUT):  # the first waits for the handshake
                data, sender = await loop.sock_recvfrom(server, 2048)
                await loop.sock_sendto(server, data, sender)
                reply = await loop.sock_recv(client, 2048)
            echoed += reply == payload
    finally:
        server.close()
        client.close()
    return echoed


async def run(daemon: str | None, ns_a: str, ns_b: str, tag: str) -> None:
    key_a, key_b = keys.generate_private_key(), keys.generate_private_key()
    public_a, public_b = keys.public_key(key_a), keys.public_key(key_b)
    async with AsyncExitStack() as stack:
        print(f"[1] creating site A (wgexa{tag} in {ns_a}) and site B (wgexb{tag} in {ns_b})")
        site_a = await stack.enter_async_context(await AsyncDevice.create(
            f"wgexa{tag}", netns=ns_a, daemon=daemon, addresses=[f"{TUNNEL[0]}/24"], mtu=1420,
            private_key=key_a, listen_port=LISTEN_PORT,
            peers=[Peer(public_b, allowed_ips=[f"{TUNNEL[1]}/32"],
                        endpoint=f"{UNDERLAY[1]}:{LISTEN_PORT}")]))
        site_b = await stack.enter_async_context(await AsyncDevice.create(
            f"wgexb{tag}", netns=ns_b, daemon=daemon, addresses=[f"{TUNNEL[1]}/24"], mtu=1420,
            private_key=key_b, listen_port=LISTEN_PORT,
            peers=[Peer(public_a, allowed_ips=[f"{TUNNEL[0]}/32"])]))
        print(f"    {site_a!r}: daemon pid {site_a.daemon.pid}, {site_b!r}: daemon pid "
              f"{site_b.daemon.pid}")

        print("[2] snapshot of site A, then its events from there on")
        snapshot = await site_a.state()
        events: AsyncEventStream | None = site_a.events(since=snapshot.event_sequence)
        try:
            await stack.enter_async_context(events)
            print(f"    subscribed after event {snapshot.event_sequence}")
        except NotSupportedError as exc:
            print(f"    no events: {exc}")
            events = None

        print(f"[3] {DATAGRAMS} datagrams A -> B through the tunnel")
        started = time.monotonic()
        echoed = await echo_through_tunnel(ns_a, ns_b)
        if events is not None:
            await next_event(events, HandshakeCompleted, public_b)
        print(f"    {echoed}/{DATAGRAMS} echoed in {time.monotonic() - started:.3f} s")
        peer = (await site_a.state()).peer(public_b)
        assert peer is not None
        print(f"    site A's peer: {peer.tx_bytes} bytes sent, {peer.rx_bytes} received, "
              f"latest handshake {peer.latest_handshake}")
        if echoed != DATAGRAMS:
            raise RuntimeError(f"only {echoed} of {DATAGRAMS} datagrams came back")

        print("[4] removing site A's peer")
        await site_a.remove_peer(public_b)
        if events is not None:
            await next_event(events, PeerRemoved, public_b)
        print(f"    site A has {len(await site_a.peers())} peers")
        print("[5] closing both devices")
    # Leaving the `async with` closed the stream and both devices: daemons stopped, links gone.


def leftovers(tag: str, namespaces: tuple[str, str]) -> list[str]:
    found = [path for path in (f"/var/run/wireguard/wgexa{tag}.sock",
                               f"/var/run/wireguard/wgexb{tag}.sock") if os.path.exists(path)]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [ns for ns in namespaces if ns in listed.split()]
    daemons = subprocess.run(["pgrep", "-f", f"wgex[ab]{tag}"], capture_output=True, text=True)
    found += [f"process {pid}" for pid in daemons.stdout.split()]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemon", help="a wireguard-go-compatible command (default: wgfastd)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("two_sites.py: needs root (namespaces, TUN devices)", file=sys.stderr)
        return 1
    tag = str(os.getpid() % 100000)
    namespaces = (f"wgex-a-{tag}", f"wgex-b-{tag}")
    status = 0
    try:
        make_hosts(*namespaces)
        asyncio.run(run(args.daemon, *namespaces, tag))
    except (WgfastError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"two_sites.py: FAILED: {exc!r}", file=sys.stderr)
        status = 1
    finally:
        remove_hosts(*namespaces)
    left = leftovers(tag, namespaces)
    print(f"[6] left behind: {left or 'nothing'}")
    return 1 if left else status


if __name__ == "__main__":
    sys.exit(main())
