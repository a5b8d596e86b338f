"""Fuzz target: the wg-quick configuration parser (wgfast.wgquick).

Each input is a file's bytes, decoded as wgquick.load decodes them (UTF-8; anything else is a
ConfigError there). parse() must either raise ConfigError or return a configuration; a returned
configuration must survive format_config -> parse unchanged (what SaveConfig relies on). (The
step to a UAPI set request, quick.config_changes, resolves host names, so it is not fuzzed here.)

A crash is any other exception, or a round trip that changes the configuration.

    python3 tests/fuzz/fuzz_config.py -runs=2000 NEW_DIR tests/fuzz/corpus/config
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_common import crash_on_logged_exceptions, wgfast_import_path  # noqa: E402

wgfast_import_path()
with atheris.instrument_imports(include=["wgfast"]):
    from wgfast import wgquick  # noqa: E402


def test_one_input(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        config = wgquick.parse(text, "fuzz.conf")
    except wgquick.ConfigError:
        return
    formatted = wgquick.format_config(config)
    try:
        again = wgquick.parse(formatted, "fuzz.conf")
    except wgquick.ConfigError as exc:
        raise AssertionError(f"format_config wrote a file parse() refuses ({exc}):\n"
                             f"{formatted}") from None
    if wgquick.format_config(again) != formatted:
        raise AssertionError(f"round trip changed the configuration:\n{formatted}")


def main() -> None:
    crash_on_logged_exceptions()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
