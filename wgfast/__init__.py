"""wgfast: a userspace WireGuard for Linux with a batched, compiled data plane."""

__version__ = "0.1.0"
