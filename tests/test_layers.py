"""The package's layers (README, Architecture): imports point down, and nothing goes in circles.

Every import statement of every module counts, including imports inside functions and under
`if TYPE_CHECKING:`. Checked twice: statically over the source of the installed package, and by
importing the lower layers in a fresh interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import wgfast

PACKAGE_DIR = Path(wgfast.__file__).resolve().parent
COMPILED = {"wgfast._native", "wgfast.bench._cbench"}

# The ground floor: what several layers share.
LEAVES = {"wgfast", "wgfast._native", "wgfast.keys", "wgfast.uapi", "wgfast.wgquick",
          "wgfast.netns", "wgfast.netlink", "wgfast.process", "wgfast.errors"}
# What each layer may import (besides the standard library and third-party packages).
ALLOWED = {
    "leaf": {"leaf"},
    "protocol": {"leaf", "protocol"},
    "daemon": {"leaf", "protocol", "daemon"},
    "api": {"leaf", "api"},
    "bench": {"leaf", "protocol", "bench"},
    "cli": {"leaf", "api", "bench", "cli"},
}


def layer_of(module: str) -> str:
    if module in LEAVES:
        return "leaf"
    if module == "wgfast.pyroute2":  # the name programs import the api's drop-in by
        return "api"
    parts = module.split(".")
    assert parts[0] == "wgfast" and len(parts) > 1 and parts[1] in ALLOWED, module
    return parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The wgfast modules `name` imports, resolved to modules (not attributes)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "wgfast"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "wgfast":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                out.add(full if full in known else source)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found) | COMPILED
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_every_module_has_a_layer():
    for name in [*graph(), *COMPILED]:
        layer_of(name)


def test_imports_point_down():
    wrong = [
        f"{name} ({layer_of(name)}) imports {target} ({layer_of(target)})"
        for name, targets in graph().items()
        for target in targets
        if layer_of(target) not in ALLOWED[layer_of(name)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def loaded_after_importing(targets: list[str]) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for name in {targets!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('wgfast'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/", timeout=60).stdout
    return set(json.loads(out))


def test_importing_the_protocol_loads_no_upper_layer():
    protocol = sorted(m for m in graph() if layer_of(m) == "protocol")
    loaded = loaded_after_importing(protocol)
    assert "wgfast.protocol.device_state" in loaded
    upper = [m for m in loaded if layer_of(m) in ("daemon", "cli", "api", "bench")]
    assert not upper, upper


def test_importing_the_api_loads_no_daemon_module():
    loaded = loaded_after_importing(["wgfast.api", "wgfast.pyroute2"])
    assert "wgfast.api.device" in loaded and "wgfast.api.pyroute2" in loaded
    assert not [m for m in loaded if layer_of(m) == "daemon"]
