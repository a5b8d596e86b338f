"""The systemd units scripts/install.sh installs: valid for systemd, and every command they run
is one the `wgfast` command line accepts."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from wgfast.cli.main import build_parser

UNITS = Path(__file__).resolve().parents[2] / "systemd"  # the repository's, beside tests/
INSTANCE = "wg0"


def unit_files() -> list[Path]:
    files = sorted(UNITS.glob("wgfast*@.*"))
    if not files:
        pytest.skip("no systemd/ directory beside the tests (installed package only)")
    return files


def exec_lines(path: Path) -> list[list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(path)
    if not parser.has_section("Service"):
        return []
    return [shlex.split(parser["Service"][key].replace("%i", INSTANCE))
            for key in ("ExecStart", "ExecStop", "ExecReload") if key in parser["Service"]]


def test_units_run_commands_wgfast_accepts():
    commands = [argv for path in unit_files() for argv in exec_lines(path)]
    assert [argv[1:2] for argv in commands] == [["reresolve"], ["up"], ["down"]]
    for argv in commands:
        assert argv[0] == "/usr/local/bin/wgfast"  # where install.sh links it
        args = build_parser().parse_args(argv[1:])
        assert args.config == INSTANCE and callable(args.func)


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze")
    for path in unit_files():
        instance = tmp_path / path.name.replace("@.", f"@{INSTANCE}.")
        instance.write_text(path.read_text())
    for path in sorted(tmp_path.iterdir()):
        result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                                check=False)
        # Only our own files may be complained about (the host may lack units we reference).
        complaints = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
        assert complaints == [], result.stderr
