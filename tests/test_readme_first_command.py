"""The README's first command, run as written from the root of a fresh copy of the repository.

A new user's first step once failed there and nowhere else: from the repo root, `python -m`
put the source tree (which has no built extension after a normal install) ahead of the installed
package, so every daemon the bench started died on import. The suite runs from tests/ against
the installed package, so only running the command itself, where a user runs it, covers this.

The copy holds the repository's tracked files as they are in the working tree. The command
installs into a private tmpfs mounted over the install prefix (a mount namespace of its own), so
the suite's own installation is untouched and the install really is a fresh one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support import needs_cmd, needs_root, needs_tun

REPO = Path(__file__).resolve().parents[1]
PREFIX = "/opt/wgfast"  # scripts/install.sh's default, which the command uses as written
TIMEOUT_SECONDS = 900  # apt (usually nothing to do), a build from source, three bench rounds


def first_command(readme: str) -> str:
    """The first ```sh block under "## Set up"."""
    section = readme.split("## Set up", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block under ## Set up"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def copy_tracked_files(destination: Path) -> None:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def clean_environment() -> dict[str, str]:
    """What a login shell as root has: none of the suite's PYTHONPATH or knobs."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WGFAST_", "PYTHON", "VIRTUAL_ENV", "PYTEST"))
           and key not in ("LOG_LEVEL", "WG_PROCESS_FOREGROUND")}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def test_first_command_works_from_a_fresh_clone(tmp_path: Path):
    needs_root()
    needs_tun()
    needs_cmd("git")
    needs_cmd("unshare")
    command = first_command((REPO / "README.md").read_text())
    assert "wgfast bench" in command
    clone = tmp_path / "wgfast"
    copy_tracked_files(clone)
    assert not list(clone.glob("wgfast/_native*.so")), "a fresh clone has no built extension"
    os.makedirs(PREFIX, exist_ok=True)
    script = f"mount -t tmpfs fresh-install {PREFIX} && cd {clone} && {command}"
    try:
        ran = subprocess.run(["unshare", "--mount", "--propagation", "private",
                              "bash", "-c", script],
                             capture_output=True, text=True, env=clean_environment(),
                             stdin=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{command}` did not finish in {TIMEOUT_SECONDS} s: {exc.stderr!r}")
    report = f"rc={ran.returncode}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr[-4000:]}"
    output_file = os.environ.get("WGFAST_FIRST_COMMAND_OUTPUT")
    if output_file:  # for a closing note: the output as it ran
        Path(output_file).write_text(f"$ {command}\n{ran.stdout}{ran.stderr}")
    assert ran.returncode == 0, report
    assert "Tunnel throughput" in ran.stdout, report
    assert re.search(r"wgfast\s.*\d+\.\d+", ran.stdout), report
