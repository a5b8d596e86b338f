"""wgfast: a userspace WireGuard for Linux with a batched, compiled data plane."""

__version__ = "0.1.0"

# The Python API, imported on first use so that `import wgfast` stays cheap.
_LAZY = {"Device": "wgfast.api", "AsyncDevice": "wgfast.api", "Peer": "wgfast.api",
         "DeviceState": "wgfast.api"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wgfast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
