"""wgfast: a userspace WireGuard for Linux with a batched, compiled data plane."""

__version__ = "0.1.0"

from wgfast.errors import (
    ConfigError,
    DaemonStartError,
    DeviceUnreachableError,
    KeyFormatError,
    LinkError,
    NotSupportedError,
    PeerNotFoundError,
    UAPIError,
    WgfastError,
)

# The Python API, imported on first use so that `import wgfast` stays cheap.
_LAZY = {name: "wgfast.api" for name in (
    "Device", "AsyncDevice", "Peer", "DeviceState",
    "Event", "PeerEvent", "HandshakeCompleted", "EndpointChanged", "SessionExpired", "PeerAdded",
    "PeerRemoved", "DropSummary", "UnknownEvent", "StreamEnd", "StreamCutOff", "DaemonStopping",
    "EventStream", "AsyncEventStream",
)}
__all__ = [
    "__version__",
    "WgfastError", "ConfigError", "KeyFormatError", "UAPIError", "DeviceUnreachableError",
    "DaemonStartError", "LinkError", "PeerNotFoundError", "NotSupportedError",
    *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wgfast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
