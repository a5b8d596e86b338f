"""`from wgfast.pyroute2 import WireGuard`: the pyroute2 drop-in, which lives in
`wgfast.api.pyroute2`; this name is the one programs import."""

from wgfast.api.pyroute2 import AsyncWireGuard, NetlinkError, WireGuard

__all__ = ["AsyncWireGuard", "NetlinkError", "WireGuard"]
