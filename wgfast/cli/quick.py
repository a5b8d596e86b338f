"""`wgfast up` / `wgfast down`: wg-quick's job for a userspace WireGuard, through pyroute2.

up: PreUp hooks, start the daemon ($WGFAST_DAEMON, default `wgfastd`, run as `DAEMON NAME` like
wg-quick runs wireguard-go), WireGuard settings over UAPI, addresses, MTU and link up, DNS via
resolvconf, a route per allowed IP (a default route gets wg-quick's fwmark table and policy
rules, plus src_valid_mark), PostUp hooks.

Every change is appended to a journal, written to /run/wgfast/NAME.json as it happens. If any
step fails, the journal is undone in reverse and nothing is left behind; `down` undoes exactly
the journal (PreDown hooks first, PostDown last), so it removes what `up` added and nothing else.

For a default route, as wg-quick does with nft: a table `wgfast-NAME` per address family with
an anti-spoofing rule (packets to the interface's addresses arriving on any other interface,
not from a local address, are dropped before conntrack) and the conntrack mark save/restore that
lets replies to the fwmarked UDP packets pass rp_filter. Without `nft` this is skipped with a
warning. The rules go where the interface and its policy rules are.

`up --netns NS`: the daemon (and so its UDP sockets) starts here, in the namespace `wgfast` runs
in; the interface is then moved into NS, and addresses, routes, rules and sysctls go there. A
namespace whose only interface is the tunnel reaches the world through the daemon outside it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from wgfast import wgquick
from wgfast.api.device import Device, config_changes
from wgfast.netlink import RT_TABLE_MAIN, Netlink
from wgfast.netns import (
    NetnsId,
    current_netns,
    describe_netns,
    netns_alive,
    netns_exists,
    netns_path,
    run_in_netns,
)
from wgfast.process import process_alive, socket_owner_pid
from wgfast.uapi import ChangeSet, UAPIError, socket_path

log = logging.getLogger(__name__)

RUN_DIRECTORY = os.environ.get("WGFAST_RUN_DIR", "/run/wgfast")
DEFAULT_DAEMON = "wgfastd"
DEFAULT_TABLE = 51820  # wg-quick's first choice of table (and fwmark) for default routes
MTU_OVERHEAD = 80  # wg-quick: IPv6 header 40 + UDP 8 + WireGuard 32
FALLBACK_MTU = 1500
FIB_RULE_INVERT = 0x2
CAP_NET_ADMIN = 12
DAEMON_START_TIMEOUT = 15.0
BIND_ERROR_KEY = "wgfast_bind_error"  # what wgfastd says in get=1 when its port would not bind
SRC_VALID_MARK = "/proc/sys/net/ipv4/conf/all/src_valid_mark"



class QuickError(Exception):
    """A failure a person can act on; the message says what and how."""


@dataclass
class Journal:
    """What `up` did, in order; saved after every step."""

    interface: str
    config_path: str
    path: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    pre_down: list[str] = field(default_factory=list)
    post_down: list[str] = field(default_factory=list)
    save_config: bool = False
    netns: str | None = None  # the namespace the interface was moved into (--netns)
    # The namespace `up` ran in (the daemon's): `down` must run there too.
    home: NetnsId = field(default_factory=current_netns)

    def record(self, kind: str, **details: Any) -> None:
        self.actions.append({"kind": kind, **details})
        self.save()

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        data = {"interface": self.interface, "config_path": self.config_path,
                "actions": self.actions, "pre_down": self.pre_down,
                "post_down": self.post_down, "save_config": self.save_config,
                "netns": self.netns, "home": list(self.home)}
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: str) -> Journal:
        with open(path) as f:
            data = json.load(f)
        home = tuple(data["home"]) if "home" in data else current_netns()
        return cls(data["interface"], data["config_path"], path, data["actions"],
                   data.get("pre_down", []), data.get("post_down", []),
                   data.get("save_config", False), data.get("netns"), home)  # type: ignore[arg-type]

    def daemon_pid(self) -> int | None:
        return next((a.get("pid") for a in self.actions if a["kind"] == "daemon"), None)

    def stale(self) -> bool:
        """Its daemon and the namespace it ran in are both gone: nothing is left to undo."""
        pid = self.daemon_pid()
        return not (pid and process_alive(pid)) and not netns_alive(self.home)


def state_path(interface: str) -> str:
    return os.path.join(RUN_DIRECTORY, f"{interface}.json")


def check_privilege(what: str) -> None:
    """Both commands change the network configuration: they need CAP_NET_ADMIN."""
    try:
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        caps = ~0 if os.geteuid() == 0 else 0
    if not caps & (1 << CAP_NET_ADMIN):
        raise QuickError(f"`wgfast {what}` needs the CAP_NET_ADMIN capability (to add links, "
                         "addresses, routes and rules): run it as root, e.g. with sudo")


def run_hooks(hooks: list[str], interface: str, stage: str) -> None:
    for hook in hooks:
        command = hook.replace("%i", interface)
        log.info("[#] %s", command)
        result = subprocess.run(["bash", "-c", command], check=False)
        if result.returncode != 0:
            raise QuickError(f"{stage} command failed (exit {result.returncode}): {command}")


def check_netns(netns: str) -> None:
    if not netns_exists(netns):
        raise QuickError(f"network namespace {netns} does not exist ({netns_path(netns)}); "
                         f"create it first, e.g. with `ip netns add {netns}`")


def _family(prefix: str) -> int:
    return socket.AF_INET6 if ":" in prefix else socket.AF_INET


# --- up -----------------------------------------------------------------------------------


def _existing_journal(name: str) -> Journal | None:
    """The journal of an earlier `up` of this name, unless it is stale (its daemon and its
    namespace gone), in which case it is removed with a note."""
    path = state_path(name)
    try:
        journal = Journal.load(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        raise QuickError(f"cannot read the state file {path}: {exc}") from None
    if journal.stale():
        log.warning("note: removed the state of %s left by a daemon that is gone, in a "
                    "network namespace that is gone (%s)", name, path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return None
    return journal


def _check_port_free(port: int) -> None:
    """wg-quick hands the port to the daemon while the link is down and the daemon binds it at
    up; a port already taken is best refused before anything is started."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            continue  # no such family here
        with sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise QuickError(f"ListenPort {port} is already in use (another "
                                     "interface or program has it)") from None


def up(config_or_name: str, netns: str | None = None) -> Journal:
    check_privilege("up")
    path, name = wgquick.locate(config_or_name)
    config = wgquick.load(path)
    if _existing_journal(name) is not None:
        raise QuickError(f"{name} is already up (state in {state_path(name)}); "
                         f"run `wgfast down {name}` first")
    if netns is not None:
        check_netns(netns)
    try:
        changes = config_changes(config)  # resolves endpoint host names, before any change
    except OSError as exc:
        raise QuickError(str(exc)) from None
    if config.interface.listen_port:
        _check_port_free(config.interface.listen_port)
    nets = _Nets(netns)
    try:
        for net in {id(n): n for n in (nets.here, nets.inside)}.values():
            if net.ifindex(name) is not None:
                where = f" in network namespace {net.netns}" if net.netns else ""
                raise QuickError(f"`{name}' already exists{where}")
        if config.interface.dns_servers or config.interface.dns_search:
            if netns is not None:
                raise QuickError("DNS= is not supported with --netns (resolvconf would change "
                                 "this namespace's resolver): remove DNS= or set up "
                                 f"/etc/netns/{netns}/resolv.conf yourself")
            if shutil.which("resolvconf") is None:
                log.warning("warning: DNS= is ignored: the `resolvconf` command is not installed "
                            "(install openresolv or resolvconf for it to take effect)")
        journal = Journal(name, os.path.abspath(path), state_path(name),
                          pre_down=config.interface.pre_down,
                          post_down=config.interface.post_down,
                          save_config=config.interface.save_config, netns=netns)
        journal.save()
        try:
            _bring_up(config, changes, name, journal, nets)
        except BaseException:
            log.info("[#] rolling back")
            _undo(journal, nets)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(journal.path)
            raise
        return journal
    finally:
        nets.close()


class _Nets:
    """Netlink here (where the daemon and its UDP sockets live) and in the namespace the
    interface lives in (the same one unless --netns)."""

    def __init__(self, netns: str | None) -> None:
        self.here = Netlink()
        try:
            self.inside = Netlink(netns) if netns else self.here
        except BaseException:
            self.here.close()
            raise

    def close(self) -> None:
        if self.inside is not self.here:
            self.inside.close()
        self.here.close()


def _bring_up(config: wgquick.QuickConfig, changes: ChangeSet, name: str, journal: Journal,
              nets: _Nets) -> None:
    iface = config.interface
    run_hooks(iface.pre_up, name, "PreUp")
    _start_daemon(name, journal)
    index = nets.here.ifindex(name)
    if index is None:
        raise QuickError(f"the daemon did not create the interface {name}")
    net = nets.inside
    if journal.netns is not None:
        log.info("[#] ip link set %s netns %s", name, journal.netns)
        nets.here.ipr.link("set", index=index, net_ns_fd=netns_path(journal.netns))
        journal.record("netns", interface=name, netns=journal.netns)
        index = net.ifindex(name)
        if index is None:
            raise QuickError(f"{name} did not arrive in network namespace {journal.netns}")
    try:
        Device(name).client.set(changes)
    except UAPIError as exc:
        raise QuickError(f"the daemon refused the WireGuard settings of {config.path}: "
                         f"{exc}") from None
    for address in iface.addresses:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        log.info("[#] ip address add %s dev %s", address, name)
        net.ipr.addr("add", index=index, family=family, address=str(address.ip),
                      prefixlen=address.network.prefixlen)
        journal.record("address", index=index, family=family, address=str(address.ip),
                       prefixlen=address.network.prefixlen)
    mtu = iface.mtu or _automatic_mtu(changes, nets.here)  # the UDP packets leave from here
    before = net.ipr.link("get", index=index)[0]
    log.info("[#] ip link set mtu %d up dev %s", mtu, name)
    net.ipr.link("set", index=index, mtu=mtu, state="up")
    journal.record("link", index=index, mtu_before=before.get("IFLA_MTU"),
                   was_up=bool(before["flags"] & 1))
    _check_listening(name, config)
    if (iface.dns_servers or iface.dns_search) and shutil.which("resolvconf") is not None:
        _set_dns(name, iface, journal)
    prefixes = sorted({n for p in config.peers for n in p.allowed_ips},
                      key=lambda n: (n.prefixlen, n.version, str(n)), reverse=True)
    fwmark_table: list[int] = []  # the table chosen for default routes, once
    for prefix in prefixes:
        _add_route(prefix, name, index, iface, net, journal, fwmark_table)
    run_hooks(iface.post_up, name, "PostUp")


def _start_daemon(name: str, journal: Journal) -> None:
    command = shlex.split(os.environ.get("WGFAST_DAEMON", DEFAULT_DAEMON)) + [name]
    log.info("[#] %s", " ".join(command))
    env = dict(os.environ)
    env.pop("WG_PROCESS_FOREGROUND", None)  # the daemon must detach and return when ready
    # Its output is ours, not a pipe: the daemon prints why it failed, and with LOG_LEVEL set
    # it keeps that output for its log (to the terminal or, under systemd, to the journal),
    # which a pipe read to its end would wait for.
    try:
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL,
                                timeout=DAEMON_START_TIMEOUT, check=False)
    except FileNotFoundError:
        raise QuickError(f"cannot start the daemon: `{command[0]}` not found (set "
                         "WGFAST_DAEMON to the userspace WireGuard to run)") from None
    except subprocess.TimeoutExpired:
        raise QuickError(f"`{' '.join(command)}` did not return within "
                         f"{DAEMON_START_TIMEOUT:.0f} s") from None
    path = socket_path(name)
    deadline = time.monotonic() + 5
    while not os.path.exists(path) and time.monotonic() < deadline and result.returncode == 0:
        time.sleep(0.02)
    pid = socket_owner_pid(path) if os.path.exists(path) else None
    # Recorded even on failure, so a half-started daemon is cleaned up too.
    journal.record("daemon", interface=name, socket=path, pid=pid)
    if result.returncode != 0 or pid is None:
        raise QuickError(f"`{' '.join(command)}` failed (exit {result.returncode}); its reason "
                         "is above")


def _check_listening(name: str, config: wgquick.QuickConfig) -> None:
    """The link is up: the daemon has bound its port, or says why not (wgfastd reports it;
    another daemon's failure shows as a missing port)."""
    try:
        state = Device(name).state()
    except (OSError, UAPIError) as exc:
        raise QuickError(f"the daemon does not answer after {name} came up: {exc}") from None
    failed = state.extra.get(BIND_ERROR_KEY)
    if failed is not None or state.listen_port == 0:
        port = config.interface.listen_port or "(any)"
        reason = os.strerror(int(failed)) if failed is not None else "nothing listens"
        raise QuickError(f"the daemon cannot listen on UDP port {port}: {reason}")


def _automatic_mtu(changes: ChangeSet, net: Netlink) -> int:
    """wg-quick's rule: the largest MTU towards any endpoint (else the default route's
    device), less the WireGuard overhead."""
    mtu = 0
    for peer in changes.peers:
        if peer.endpoint is not None:
            mtu = max(mtu, net.route_mtu(peer.endpoint.address) or 0)
    if not mtu:
        mtu = net.default_route_mtu() or FALLBACK_MTU
    return mtu - MTU_OVERHEAD


def _set_dns(name: str, iface: wgquick.InterfaceConfig, journal: Journal) -> None:
    lines = [f"nameserver {a}" for a in iface.dns_servers]
    if iface.dns_search:
        lines.append(f"search {' '.join(iface.dns_search)}")
    log.info("[#] resolvconf -a tun.%s -m 0 -x", name)
    result = subprocess.run(["resolvconf", "-a", f"tun.{name}", "-m", "0", "-x"],
                            input="\n".join(lines) + "\n", text=True, capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise QuickError(f"resolvconf failed: {result.stderr.strip()}")
    journal.record("dns", interface=name)


def _add_route(prefix: wgquick.Network, name: str, index: int,
               iface: wgquick.InterfaceConfig, net: Netlink, journal: Journal,
               fwmark_table: list[int]) -> None:
    family = socket.AF_INET if prefix.version == 4 else socket.AF_INET6
    if iface.table == "off":
        return
    if iface.table_id is not None:
        _route(net, journal, family, str(prefix), index, iface.table_id)
    elif prefix.prefixlen == 0:
        _add_default(prefix, name, index, iface, net, journal, fwmark_table)
    elif not net.covered_by_route(index, prefix):
        _route(net, journal, family, str(prefix), index, RT_TABLE_MAIN)


def _route(net: Netlink, journal: Journal, family: int, dst: str, index: int,
           table: int) -> None:
    log.info("[#] ip route add %s dev %s table %d", dst, journal.interface, table)
    net.ipr.route("add", family=family, dst=dst, oif=index, table=table)
    journal.record("route", family=family, dst=dst, oif=index, table=table)


def _add_default(prefix: wgquick.Network, name: str, index: int,
                 iface: wgquick.InterfaceConfig, net: Netlink, journal: Journal,
                 fwmark_table: list[int]) -> None:
    if not fwmark_table:
        if iface.fwmark:
            table = iface.fwmark
        else:
            table = DEFAULT_TABLE
            while net.table_in_use(table):
                table += 1
            log.info("[#] wg set %s fwmark %d", name, table)
            Device(name).configure(fwmark=table)
        fwmark_table.append(table)
    table = fwmark_table[0]
    family = socket.AF_INET if prefix.version == 4 else socket.AF_INET6
    done = {(a["family"]) for a in journal.actions if a["kind"] == "rule"}
    if family not in done:
        priority = net.next_rule_priority(family)
        log.info("[#] ip rule add not fwmark %d table %d", table, table)
        net.ipr.rule("add", family=family, fwmark=table, table=table, flags=FIB_RULE_INVERT,
                     priority=priority)
        journal.record("rule", family=family, priority=priority, table=table, fwmark=table,
                       flags=FIB_RULE_INVERT)
        priority = net.next_rule_priority(family)
        log.info("[#] ip rule add table main suppress_prefixlength 0")
        net.ipr.rule("add", family=family, table=RT_TABLE_MAIN, suppress_prefixlen=0,
                     priority=priority)
        journal.record("rule", family=family, priority=priority, table=RT_TABLE_MAIN,
                       suppress_prefixlen=0)
    _route(net, journal, family, str(prefix), index, table)
    if not any(a["kind"] == "nft" and a["family"] == family for a in journal.actions):
        addresses = [str(a.ip) for a in iface.addresses if a.version == prefix.version]
        _add_nft_table(name, family, addresses, table, journal)
    if family == socket.AF_INET and not any(a["kind"] == "sysctl" for a in journal.actions):
        old = run_in_netns(journal.netns, lambda: _write_sysctl(SRC_VALID_MARK, "1"))
        if old != "1":
            log.info("[#] sysctl -q net.ipv4.conf.all.src_valid_mark=1")
            journal.record("sysctl", path=SRC_VALID_MARK, old=old, netns=journal.netns)


def nft_table_name(interface: str) -> str:
    return f"wgfast-{interface}"


def _add_nft_table(name: str, family: int, addresses: list[str], fwmark: int,
                   journal: Journal) -> None:
    """wg-quick's nftables rules for a default route, in one transaction (`nft -f -`)."""
    if shutil.which("nft") is None:
        log.warning("Warning: `nft` is not installed: no anti-spoofing rule for the addresses "
                    "of %s and no conntrack fwmark restore (install nftables)", name)
        return
    nf = "ip" if family == socket.AF_INET else "ip6"
    table = nft_table_name(name)
    lines = [
        f"add table {nf} {table}",
        f"add chain {nf} {table} preraw {{ type filter hook prerouting priority -300; }}",
        f"add chain {nf} {table} premangle {{ type filter hook prerouting priority -150; }}",
        f"add chain {nf} {table} postmangle {{ type filter hook postrouting priority -150; }}",
    ]
    lines += [f'add rule {nf} {table} preraw iifname != "{name}" {nf} daddr {address} '
              "fib saddr type != local drop" for address in addresses]
    lines += [
        f"add rule {nf} {table} postmangle meta l4proto udp mark {fwmark:#x} ct mark set mark",
        f"add rule {nf} {table} premangle meta l4proto udp meta mark set ct mark",
    ]
    script = "\n".join(lines) + "\n"
    log.info("[#] nft -f -\n%s", script.rstrip())
    result = run_in_netns(journal.netns, lambda: subprocess.run(
        ["nft", "-f", "-"], input=script, text=True, capture_output=True, check=False))
    if result.returncode != 0:
        # The transaction is all or nothing: nothing to undo.
        raise QuickError(f"nft refused the rules for {name}: {result.stderr.strip()}")
    journal.record("nft", family=family, table=table, netns=journal.netns)


def _delete_nft_table(action: dict[str, Any]) -> None:
    nf = "ip" if action["family"] == socket.AF_INET else "ip6"
    log.info("[#] nft delete table %s %s", nf, action["table"])
    result = run_in_netns(action.get("netns"), lambda: subprocess.run(
        ["nft", "delete", "table", nf, action["table"]], text=True, capture_output=True,
        check=False))
    if result.returncode != 0 and "No such file or directory" not in result.stderr:
        raise QuickError(f"nft delete table {nf} {action['table']}: {result.stderr.strip()}")


def _write_sysctl(path: str, value: str) -> str:
    """Set a sysctl (of the calling thread's namespace) unless it has `value`; returns the old
    value."""
    with open(path) as f:
        old = f.read().strip()
    if old != value:
        with open(path, "w") as f:
            f.write(value + "\n")
    return old


# --- down / undo --------------------------------------------------------------------------


def down(config_or_name: str, netns: str | None = None) -> None:
    check_privilege("down")
    _, name = wgquick.locate(config_or_name)
    path = state_path(name)
    journal = _existing_journal(name)
    if journal is None:
        raise QuickError(f"{name} is not up through wgfast (no {path})")
    if journal.home != current_netns():
        where = describe_netns(journal.home)
        raise QuickError(f"{name} was brought up in {where}, not in this one: run `wgfast "
                         f"down` there (e.g. `ip netns exec NAME wgfast down {name}`)")
    if netns is not None and netns != journal.netns:
        where = f"network namespace {journal.netns}" if journal.netns else "this namespace"
        raise QuickError(f"{name} was brought up in {where}, not in {netns}")
    run_hooks(journal.pre_down, name, "PreDown")
    if journal.save_config:
        try:
            save_config(journal)
        except (OSError, UAPIError) as exc:
            log.error("SaveConfig: could not save %s: %s", journal.config_path, exc)
    try:
        nets = _Nets(journal.netns)
    except OSError as exc:  # the namespace is gone, and the interface with it
        log.warning("network namespace %s: %s", journal.netns, exc)
        nets = _Nets(None)
        journal.actions = [a for a in journal.actions if a["kind"] in ("daemon", "nft")
                           and not a.get("netns")]
    try:
        failures = _undo(journal, nets)
    finally:
        nets.close()
    os.unlink(path)
    run_hooks(journal.post_down, name, "PostDown")
    if failures:
        raise QuickError("some changes could not be undone: " + "; ".join(failures))


def _undo(journal: Journal, nets: _Nets) -> list[str]:
    """Undo the journal in reverse. Things already gone are fine; anything else is reported."""
    failures = []
    for action in reversed(journal.actions):
        try:
            _undo_one(action, nets)
        except Exception as exc:  # noqa: BLE001 - keep undoing the rest
            # IPv6 addresses leave with the link going down (EADDRNOTAVAIL): also gone.
            if getattr(exc, "code", None) in (errno.ENOENT, errno.ESRCH, errno.ENODEV,
                                              errno.EADDRNOTAVAIL):
                continue
            failures.append(f"{action['kind']}: {exc}")
            log.error("could not undo %s: %s", action, exc)
    return failures


def _undo_one(action: dict[str, Any], nets: _Nets) -> None:
    kind = action["kind"]
    net = nets.inside  # rules, routes, addresses and the link live with the interface
    if kind == "rule":
        extra = {k: action[k] for k in ("fwmark", "flags", "suppress_prefixlen") if k in action}
        log.info("[#] ip rule del priority %d", action["priority"])
        net.ipr.rule("del", family=action["family"], priority=action["priority"],
                     table=action["table"], **extra)
    elif kind == "route":
        if _link_present(net, action["oif"]):
            log.info("[#] ip route del %s table %d", action["dst"], action["table"])
            net.ipr.route("del", family=action["family"], dst=action["dst"],
                          oif=action["oif"], table=action["table"])
    elif kind == "address":
        if _link_present(net, action["index"]):
            log.info("[#] ip address del %s/%d dev %s", action["address"], action["prefixlen"],
                     _link_name(net, action["index"]))
            net.ipr.addr("del", index=action["index"], family=action["family"],
                         address=action["address"], prefixlen=action["prefixlen"])
    elif kind == "link":
        if _link_present(net, action["index"]):
            log.info("[#] ip link set mtu %s %s dev %s", action["mtu_before"],
                     "up" if action["was_up"] else "down", _link_name(net, action["index"]))
            net.ipr.link("set", index=action["index"], mtu=action["mtu_before"],
                         state="up" if action["was_up"] else "down")
    elif kind == "sysctl":
        log.info("[#] sysctl -q %s=%s", action["path"].removeprefix("/proc/sys/").replace(
            "/", "."), action["old"])
        run_in_netns(action.get("netns"), lambda: _write_sysctl(action["path"], action["old"]))
    elif kind == "dns":
        log.info("[#] resolvconf -d tun.%s -f", action["interface"])
        subprocess.run(["resolvconf", "-d", f"tun.{action['interface']}", "-f"], check=False)
    elif kind == "daemon":
        _stop_daemon(action, nets)
    elif kind == "nft":
        _delete_nft_table(action)
    # "netns" (the move): nothing to undo; the link goes with the daemon wherever it is.


def _link_name(net: Netlink, index: int) -> str:
    try:
        return net.ipr.link("get", index=index)[0].get("IFLA_IFNAME") or str(index)
    except Exception:  # noqa: BLE001 - it went meanwhile: the index says which it was
        return str(index)


def _link_present(net: Netlink, index: int) -> bool:
    try:
        return bool(net.ipr.link("get", index=index))
    except Exception:  # noqa: BLE001 - ENODEV
        return False


def _stop_daemon(action: dict[str, Any], nets: _Nets) -> None:
    """wg-quick's way for userspace: remove the UAPI socket (the daemon notices and exits,
    taking its TUN with it), then delete the link if it is still there."""
    name, pid = action["interface"], action.get("pid")
    log.info("[#] rm -f %s", action["socket"])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(action["socket"])
    places = list({id(n): n for n in (nets.inside, nets.here)}.values())
    deadline = time.monotonic() + 3
    while (any(net.ifindex(name) is not None for net in places)
           and time.monotonic() < deadline):
        time.sleep(0.05)
    for net in places:
        index = net.ifindex(name)
        if index is not None:
            log.info("[#] ip link delete dev %s", name)
            with contextlib.suppress(Exception):
                net.ipr.link("del", index=index)
    if pid:
        deadline = time.monotonic() + 3
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid) and _is_daemon_for(pid, name):
            log.warning("daemon %d still running; sending SIGTERM", pid)
            os.kill(pid, signal.SIGTERM)


def _is_daemon_for(pid: int, name: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return name.encode() in f.read().split(b"\0")
    except OSError:
        return False


def save_config(journal: Journal) -> None:
    """SaveConfig = true: write the live settings back to the file before going down."""
    config = wgquick.load(journal.config_path)
    state = Device(journal.interface).state()
    net = Netlink(journal.netns)
    try:
        index = net.ifindex(journal.interface)
        addresses = []
        if index is not None:
            for msg in net.ipr.addr("dump", index=index):
                ip = ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
                if not ip.is_link_local:
                    addresses.append(ip)
    finally:
        net.close()
    iface = config.interface
    iface.addresses = addresses
    iface.private_key = state.private_key
    iface.listen_port = state.listen_port or None
    iface.fwmark = state.fwmark or None
    config.peers = [
        wgquick.PeerConfig(
            public_key=p.public_key, preshared_key=p.preshared_key,
            allowed_ips=list(p.allowed_ips),
            endpoint=(wgquick.EndpointSpec(str(p.endpoint.address), p.endpoint.port)
                      if p.endpoint else None),
            persistent_keepalive=p.persistent_keepalive or None,
        )
        for p in state.peers
    ]  # fmt: skip
    directory = os.path.dirname(os.path.abspath(journal.config_path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".wgfast-save-")
    with os.fdopen(fd, "w") as f:
        f.write(wgquick.format_config(config))
    os.chmod(tmp, 0o600)
    os.replace(tmp, journal.config_path)
