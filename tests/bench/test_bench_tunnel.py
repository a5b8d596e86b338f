"""`wgfast bench`: the testbed comes up and goes away completely (also when the traffic step
fails, and on Ctrl-C), the JSON has the documented fields with sane values and counters that
cover the traffic, a misrouted run fails the counter check, and a run against wireguard-go
gives rows for both. Timings are not asserted. Traffic runs 1 s per direction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support import needs_cmd, needs_tun
from support.daemons import REPO
from wgfast.bench import testbed, tunnel
from wgfast.bench.testbed import Testbed
from wgfast.bench.tunnel import BenchError, Impl, Settings
from wgfast.cli.main import main
from wgfast.process import process_alive
from wgfast.uapi import socket_path

ROW_FIELDS = {"impl", "stat", "round", "proto", "size", "streams", "direction", "gbit_s", "pps",
              "tunnel_rx_bytes", "tunnel_tx_bytes"}


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(testbed.NAME_PREFIX)}


def _links_everywhere() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout


def test_testbed_comes_up_and_is_removed_completely():
    needs_tun()
    with Testbed() as bed:
        bed.start_tunnel(testbed.WGFAST_COMMAND)
        assert {bed.a.namespace, bed.b.namespace} <= _namespaces()
        pids = [pid for host in bed.hosts for pid in bed.daemon_pids[host.namespace]]
        assert len(pids) == 2 and all(process_alive(p) for p in pids)
        for host in bed.hosts:
            assert os.path.exists(socket_path(host.tunnel))
            assert host.run("ip", "link", "show", "dev", host.tunnel).returncode == 0
            assert host.run("ip", "link", "show", "dev", host.veth).returncode == 0
        assert bed.leftovers() != []  # the probe sees a live testbed
    assert bed.leftovers() == []
    assert not any(process_alive(p) for p in pids)


def test_teardown_when_the_traffic_step_fails():
    """The traffic tool blows up mid-run: namespaces, links, sockets and daemons all go."""
    needs_tun()
    seen: dict[str, object] = {}

    def failing_traffic(settings, sender, receiver, address, size):
        seen["namespaces"] = [sender.namespace, receiver.namespace]
        seen["names"] = [sender.veth, receiver.veth, sender.tunnel, receiver.tunnel]
        seen["pids"] = sender.pids() + receiver.pids()
        # A real process of the traffic step, left running when the step fails.
        receiver.popen("sleep", "60")
        raise RuntimeError("injected traffic failure")

    settings = Settings(impls=[Impl.wgfast()], repeat=1, duration=1)
    with pytest.raises(RuntimeError, match="injected"):
        tunnel.run(settings, run_traffic=failing_traffic)
    assert len(seen["pids"]) == 2, seen  # one daemon per side was running
    assert not set(seen["namespaces"]) & _namespaces(), _namespaces()
    links = _links_everywhere()
    for name in seen["names"]:
        assert f" {name}:" not in links and f" {name}@" not in links
        assert not os.path.exists(socket_path(name))
    assert not [p for p in seen["pids"] if process_alive(p)], seen


def test_misrouted_traffic_fails_the_counter_check():
    """Traffic sent to the outer (veth) address never touches the tunnel: the run must fail
    rather than report the veth's speed as the tunnel's."""
    needs_tun()
    tool = tunnel.traffic_runner(Settings(impls=[], tool="builtin"))

    def around_the_tunnel(settings, sender, receiver, address, size):
        assert address == receiver.inner
        return tool(settings, sender, receiver, receiver.outer, size)

    settings = Settings(impls=[Impl.wgfast()], repeat=1, duration=1, tool="builtin")
    with pytest.raises(BenchError, match="COUNTER CHECK FAILED"):
        tunnel.run(settings, run_traffic=around_the_tunnel)


def _check_row(row: dict, impl: str, proto: str, size: int, streams: int) -> None:
    assert ROW_FIELDS <= row.keys()
    assert row["impl"] == impl and row["proto"] == proto
    assert row["size"] == size and row["streams"] == streams
    assert row["direction"] in ("a->b", "b->a")
    assert row["stat"] in ("round", "median")
    assert (row["round"] is None) == (row["stat"] == "median")
    assert 0 < row["gbit_s"] < 1000
    assert row["pps"] > 0
    assert row["tool_bytes"] > 0
    if impl == "veth":
        assert row["tunnel_rx_bytes"] is None and row["tunnel_tx_bytes"] is None
    else:
        # WireGuard counts whole encrypted datagrams: more than the payload that arrived.
        assert row["tunnel_rx_bytes"] >= row["tool_bytes"]
        assert row["tunnel_tx_bytes"] >= row["tool_bytes"]
        assert row["handshake_ms"] > 0
        assert row["cpu_sender_pct"] >= 0 and row["cpu_receiver_pct"] >= 0
        if row["stat"] == "round":
            before, after = row["counters_before"], row["counters_after"]
            assert (after["receiver"]["rx_bytes"] - before["receiver"]["rx_bytes"]
                    == row["tunnel_rx_bytes"])
            assert after["sender"]["tx_bytes"] - before["sender"]["tx_bytes"] == row[
                "tunnel_tx_bytes"]


def test_json_against_wireguard_go_has_both_rows():
    needs_tun()
    needs_cmd("iperf3")
    wireguard_go = needs_cmd("wireguard-go")
    result = subprocess.run(
        [sys.executable, "-m", "wgfast.cli", "bench", "--json", "--duration", "1", "--repeat",
         "1", "--against", wireguard_go, "--against", "none"],
        capture_output=True, text=True, timeout=120, env=_cli_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "tunnel"
    rows = report["results"]
    for row in rows:
        _check_row(row, row["impl"], "tcp", tunnel.DEFAULT_TCP_SIZE, 1)
    keys = {(r["impl"], r["stat"], r["direction"]) for r in rows}
    for impl in ("wgfast", "wireguard-go", "veth"):
        for stat in ("round", "median"):
            for direction in ("a->b", "b->a"):
                assert (impl, stat, direction) in keys
    assert len(rows) == 12
    medians = {(r["impl"], r["direction"]): r for r in rows if r["stat"] == "median"}
    assert medians[("wgfast", "a->b")]["ratio_vs_wgfast"] == 1.0
    assert medians[("wireguard-go", "a->b")]["ratio_vs_wgfast"] > 0
    assert "Tunnel throughput" not in result.stdout  # JSON only on stdout
    assert "wireguard-go round 1" in result.stderr  # progress on stderr


def test_builtin_tool_udp_two_sizes():
    """No iperf3: the built-in sender/receiver; UDP, two sizes, two streams."""
    needs_tun()
    settings = Settings(impls=[Impl.wgfast()], repeat=1, udp=True, sizes=[512, 1392],
                        streams=2, duration=1, tool="builtin")
    rows = [r.as_dict() for r in tunnel.run(settings)]
    assert len(rows) == 2 * 2 + 2 * 2
    for row in rows:
        _check_row(row, "wgfast", "udp", row["size"], 2)
        assert row["tool"] == "builtin"
    assert {r["round"] for r in rows} == {1, None}
    assert {r["size"] for r in rows} == {512, 1392}


def test_ctrl_c_removes_everything():
    needs_tun()
    before = _namespaces()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wgfast.cli", "bench", "--duration", "20", "--repeat", "1",
         "--tool", "builtin"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env())
    created: set[str] = set()
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        for line in proc.stderr:  # wait until the traffic runs through the tunnel
            if "for 20 s" in line:
                break
            assert time.monotonic() < deadline, "the bench never started its traffic"
        time.sleep(0.5)
        created = _namespaces() - before
        assert len(created) == 2
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert not created & _namespaces()


def test_without_root_runs_crypto_and_handshake(monkeypatch, capsys):
    from wgfast.bench import crypto, handshake

    monkeypatch.setattr(testbed, "requirements_missing", lambda: ["root (for the test)"])
    # The same code paths, timed briefly.
    crypto_run, handshake_run = crypto.run, handshake.run
    monkeypatch.setattr(crypto, "run",
                        lambda **kw: crypto_run(**{**kw, "sizes": [1420], "seconds": 0.02}))
    monkeypatch.setattr(handshake, "run", lambda **kw: handshake_run(seconds=0.05))
    assert main(["bench", "--json"]) == 0
    captured = capsys.readouterr()
    assert "needs root (for the test)" in captured.err
    report = json.loads(captured.out)
    kinds = [r["kind"] for r in report["reports"]]
    assert kinds == ["crypto", "handshake"]
    assert {r["impl"] for r in report["reports"][0]["results"]} >= {"wgfast"}
    handshake_rows = report["reports"][1]["results"]
    assert [r["op"] for r in handshake_rows] == ["initiation", "response", "full"]
    for r in handshake_rows:
        assert r["impl"] == "wgfast" and r["per_s"] > 0
        assert r["us_each"] == pytest.approx(1e6 / r["per_s"])


def _iperf3_json(seconds: list[float], rate: float = 1e9) -> str:
    return json.dumps({"intervals": [{"sum": {"seconds": s, "bits_per_second": rate}}
                                     for s in seconds]})


def test_iperf3_trailing_partial_interval_is_not_a_point():
    # iperf3 ends with whatever was left after the last full second (here 4 ms): not a point.
    points = tunnel.iperf3_intervals(_iperf3_json([1.0, 1.0, 0.999, 0.004], 4e9), {}, 3)
    assert points == [4.0, 4.0, 4.0]
    # More full seconds than the run's duration (a late server start): capped at the duration,
    # so every implementation's line has the same number of points.
    assert len(tunnel.iperf3_intervals(_iperf3_json([1.0] * 6), {}, 5)) == 5
    # The server said nothing parseable: the client's intervals, by the same rules.
    client = json.loads(_iperf3_json([1.0, 0.01]))
    assert tunnel.iperf3_intervals("not json", client, 2) == [1.0]


FAILING_DAEMON = """#!/bin/sh
echo "boom: this daemon cannot start ($1)" >&2
exit 3
"""


def test_a_daemon_that_fails_to_start_shows_its_reason(tmp_path):
    needs_tun()
    script = tmp_path / "failing-daemon"
    script.write_text(FAILING_DAEMON)
    script.chmod(0o755)
    with Testbed() as bed, pytest.raises(testbed.TestbedError) as failed:
        bed.start_tunnel((str(script),))
    message = str(failed.value)
    assert "exited with status 3" in message
    assert "boom: this daemon cannot start" in message
    assert bed.leftovers() == []
