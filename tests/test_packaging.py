"""What the normal (non-editable) install ships: every package of the source tree, and metadata
that current setuptools accepts without a deprecation warning."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_of_the_tree_is_installed():
    listed = set(_project()["tool"]["setuptools"]["packages"])
    # A folder of sources is a package whether it holds Python or only Cython declarations
    # (wgfast/includes has just .pxd files, which a build of the extension needs).
    on_disk = {".".join(source.parent.relative_to(REPO).parts)
               for pattern in ("*.py", "*.pxd", "*.pyx")
               for source in (REPO / "wgfast").rglob(pattern)
               if "__pycache__" not in source.parts}
    assert on_disk <= listed, f"not installed: {sorted(on_disk - listed)}"


def test_license_is_an_spdx_expression():
    # A TOML table ({text = ...}) is deprecated and makes every build warn.
    assert isinstance(_project()["project"]["license"], str)
