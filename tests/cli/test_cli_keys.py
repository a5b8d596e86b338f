"""`wgfast genkey | wgfast pubkey` and `wgfast genpsk` behave as `wg` does."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import wgfast
from support import needs_cmd

# Where the imported (installed or in-place built) package lives, for subprocesses.
REPO = str(Path(wgfast.__file__).resolve().parent.parent)


def wgfast(*args: str, stdin: str | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO)
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "wgfast.cli", *args], input=stdin,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=30, **kw)


def test_genkey_pubkey_agree_with_wg():
    wg = needs_cmd("wg")
    private = wgfast("genkey").stdout
    assert len(private) == 45 and private.endswith("=\n")
    raw = base64.b64decode(private)
    assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40  # clamped
    ours = wgfast("pubkey", stdin=private).stdout
    theirs = subprocess.run([wg, "pubkey"], input=private, capture_output=True, text=True,
                            check=True).stdout
    assert ours == theirs and len(ours) == 45


def test_pubkey_of_wg_genkey():
    wg = needs_cmd("wg")
    private = subprocess.run([wg, "genkey"], capture_output=True, text=True, check=True).stdout
    theirs = subprocess.run([wg, "pubkey"], input=private, capture_output=True, text=True,
                            check=True).stdout
    assert wgfast("pubkey", stdin=private).stdout == theirs
    # Trailing whitespace is fine, as for wg.
    assert wgfast("pubkey", stdin=private.strip() + "\n\n  ").stdout == theirs


def test_pubkey_rejects_what_wg_rejects():
    wg = needs_cmd("wg")
    good = base64.b64encode(bytes(range(32))).decode()
    for bad in ("", "junk\n", good[:-2] + "B=", good[:-1], good + "A"):
        ours = wgfast("pubkey", stdin=bad)
        theirs = subprocess.run([wg, "pubkey"], input=bad, capture_output=True, text=True)
        assert (ours.returncode != 0) == (theirs.returncode != 0), bad
        assert ours.returncode == 1 and ours.stdout == ""
        assert ours.stderr == "wgfast: Key is not the correct length or format\n"


def test_genpsk_is_random_32_bytes():
    first, second = wgfast("genpsk").stdout, wgfast("genpsk").stdout
    assert len(base64.b64decode(first)) == 32 and first != second


def test_genkey_warns_about_world_accessible_file(tmp_path):
    target = tmp_path / "key"
    with open(target, "w") as out:
        os.chmod(target, 0o644)
        result = wgfast("genkey", stdout=out)
    assert "Warning: writing to world accessible file." in result.stderr
    os.chmod(target, 0o600)
    with open(target, "w") as out:
        result = wgfast("genkey", stdout=out)
    assert result.stderr == ""
    assert len(target.read_text()) == 45
