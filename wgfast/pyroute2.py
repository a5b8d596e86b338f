"""`from wgfast.pyroute2 import WireGuard, IPRoute, NDB`: the pyroute2 drop-in, which lives in
`wgfast.api.pyroute2`; this name is the one programs import."""

from wgfast.api.pyroute2 import (
    NDB,
    AsyncIPRoute,
    AsyncWireGuard,
    IPRoute,
    NetlinkError,
    WireGuard,
)

__all__ = ["AsyncIPRoute", "AsyncWireGuard", "IPRoute", "NDB", "NetlinkError", "WireGuard"]
