"""What other programs import: `Device`/`AsyncDevice` over the UAPI socket of any userspace
WireGuard (wgfastd or wireguard-go), and the pyroute2 drop-in (`wgfast.pyroute2`).

It never imports the daemon: it talks UAPI and starts the daemon by its command
(`Device.create`, wgfast.api.daemon_process, the drop-in's links of kind "wireguard").
"""

from wgfast.api.daemon_process import DaemonProcess
from wgfast.api.device import AsyncDevice, Device, DeviceState, Peer
from wgfast.api.events import (
    AsyncEventStream,
    DaemonStopping,
    DropSummary,
    EndpointChanged,
    Event,
    EventStream,
    HandshakeCompleted,
    PeerAdded,
    PeerEvent,
    PeerRemoved,
    SessionExpired,
    StreamCutOff,
    StreamEnd,
    UnknownEvent,
)

__all__ = [
    "AsyncDevice", "AsyncEventStream", "DaemonProcess", "DaemonStopping", "Device", "DeviceState",
    "DropSummary", "EndpointChanged", "Event", "EventStream", "HandshakeCompleted", "Peer",
    "PeerAdded", "PeerEvent", "PeerRemoved", "SessionExpired", "StreamCutOff", "StreamEnd",
    "UnknownEvent",
]
