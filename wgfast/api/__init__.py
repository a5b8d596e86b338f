"""What other programs import: `Device`/`AsyncDevice` over the UAPI socket of any userspace
WireGuard (wgfastd or wireguard-go), and the pyroute2 drop-in (`wgfast.pyroute2`).

It never imports the daemon: it talks UAPI and starts the `wgfastd` command.
"""

from wgfast.api.device import AsyncDevice, Device, DeviceState, Peer

__all__ = ["AsyncDevice", "Device", "DeviceState", "Peer"]
