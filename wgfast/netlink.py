"""The rtnetlink operations `wgfast up`/`down` and the API need, through pyroute2, in the
current network namespace or in a named one (without ever creating it)."""

from __future__ import annotations

import ipaddress
import socket

from wgfast import wgquick
from wgfast.netns import netns_path

RT_TABLE_MAIN = 254


class Netlink:
    """rtnetlink through pyroute2, here or in the namespace `netns` (a name or a path)."""

    def __init__(self, netns: str | None = None) -> None:
        from pyroute2 import IPRoute

        self.netns = netns
        # flags=0: never create the namespace (pyroute2's default would, e.g. on a down after
        # the namespace was deleted).
        self.ipr = IPRoute(netns=netns_path(netns), flags=0) if netns else IPRoute()

    def close(self) -> None:
        self.ipr.close()

    def ifindex(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def link_mtu(self, index: int) -> int | None:
        links = self.ipr.link("get", index=index)
        return links[0].get("IFLA_MTU") if links else None

    def route_mtu(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int | None:
        """The MTU towards `address` (wg-quick: `ip route get`, then the device's MTU)."""
        try:
            routes = self.ipr.route("get", dst=str(address))
        except Exception:  # noqa: BLE001 - unreachable destination: no answer, not an error
            return None
        if not routes:
            return None
        metrics = routes[0].get("RTA_METRICS")
        if metrics is not None and metrics.get("RTAX_MTU"):
            return metrics.get("RTAX_MTU")
        oif = routes[0].get("RTA_OIF")
        return self.link_mtu(oif) if oif else None

    def default_route_mtu(self) -> int | None:
        for route in self.ipr.route("dump", family=socket.AF_INET, table=RT_TABLE_MAIN):
            if route["dst_len"] == 0 and route.get("RTA_OIF"):
                return self.link_mtu(route.get("RTA_OIF"))
        return None

    def table_in_use(self, table: int) -> bool:
        return any(True for family in (socket.AF_INET, socket.AF_INET6)
                   for _ in self.ipr.route("dump", family=family, table=table))

    def covered_by_route(self, index: int, prefix: wgquick.Network) -> bool:
        """wg-quick's `ip route show dev IF match PREFIX`: a main-table route on the interface
        already contains the prefix (e.g. the one an Address added)."""
        family = socket.AF_INET if prefix.version == 4 else socket.AF_INET6
        for route in self.ipr.route("dump", family=family, table=RT_TABLE_MAIN, oif=index):
            dst = route.get("RTA_DST") or ("0.0.0.0" if prefix.version == 4 else "::")
            network = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
            if prefix.subnet_of(network):  # type: ignore[arg-type]
                return True
        return False

    def next_rule_priority(self, family: int) -> int:
        """The priority the kernel picks when `ip rule add` names none: one below the first
        rule after priority 0."""
        priorities = [r.get("FRA_PRIORITY") or 0 for r in self.ipr.rule("dump", family=family)]
        nonzero = [p for p in priorities if p > 0]
        return (min(nonzero) - 1) if nonzero else 0


