"""`xdphints demo` end to end: it runs, explains what it saw, and always cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, xdphints

pytestmark = pytest.mark.privileged


def demo_namespaces(pid: int) -> list:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"xdph-demo-{pid}-")]


def _env() -> dict:
    return dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)


def run_demo(*args: str):
    """(process, stdout, stderr) of a finished demo; the pid names its namespaces."""
    p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    out, err = p.communicate(timeout=300)
    return p, out, err


def test_demo_text():
    p, out, err = run_demo("demo")
    assert p.returncode == 0, err
    for heading in ("== 1. What the device offers ==", "== 2. Turn on the hardware side ==",
                    "== 3. Capture with the built-in hints program ==",
                    "== 4. Check the hints against the kernel stack ==", "== 5. What the hints show =="):
        assert heading in out
    assert "rx-hash       compared 12, agree 12, disagree 0" in out
    assert "rx-vlan       compared 3, agree 3, disagree 0, xdp-only 0, stack-only 0, neither 9" in out
    assert "verdict: agree (12 packets on xd0)" in out
    assert "RX metadata kfuncs:         timestamp hash vlan-tag" in out  # the real show view
    # veth cannot change rx-hashing, but fills the hash anyway: ready, so nothing to do
    assert "xd0: rx-hash: rx-hashing off (unchanged); ready: bpf_xdp_metadata_rx_hash implemented" in out
    assert "rx-timestamp: unsupported" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  400")]
    assert len(rows) == 12
    by_flow: dict = {}
    for row in rows:
        by_flow.setdefault(row[0], set()).add(row[1])
    assert all(len(h) == 1 for h in by_flow.values())  # one hash per flow
    assert len({next(iter(h)) for h in by_flow.values()}) == 4  # different across flows
    assert [r for r in rows if r[0] == "40004->7002"][0][3:7] == ["vid", "100", "pcp", "5"]
    assert "same for every packet of a flow and different across flows" in out
    # dump's start line comes before the packets it announces, its summary after them
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dumping xd0 queue 0"))
    first_row = next(i for i, line in enumerate(lines) if line.startswith("  400"))
    summary = next(i for i, line in enumerate(lines) if line.startswith("12 packets"))
    assert start < first_row < summary
    # on veth the hash is the kernel's software hash, as show says, not a device's RSS hash
    assert "software flow hash" in out and "the RSS hash the device computed" not in out
    assert demo_namespaces(p.pid) == []


def test_demo_json():
    p, out, err = run_demo("-j", "demo")
    assert p.returncode == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"namespaces", "device", "show", "enable", "packets", "dump-stderr",
                        "observations", "explanations"}
    assert doc["dump-stderr"][0].startswith("dumping xd0 queue 0")
    assert doc["dump-stderr"][1].startswith("12 packets, ")
    assert doc["show"]["xdp-rx-metadata-features"] == ["timestamp", "hash", "vlan-tag"]
    assert doc["enable"]["rx-vlan"]["exit-code"] == 0 and doc["enable"]["rx-vlan"]["after"] == "on"
    assert doc["enable"]["rx-timestamp"]["exit-code"] == 3
    assert doc["enable"]["rx-hash"]["exit-code"] == 0 and doc["enable"]["rx-hash"]["changed"] is False
    assert len(doc["packets"]) == 12
    obs = doc["observations"]
    assert obs["rx-hash"]["stable-within-flows"] and obs["rx-hash"]["differs-across-flows"]
    assert obs["rx-vlan"]["per-flow"]["40004->7002"] == ["vid 100 pcp 5 (0x8100)"] * 3
    assert obs["rx-vlan"]["per-flow"]["40001->7000"] == ["ENODATA"] * 3
    assert obs["rx-timestamp"]["values"] == ["none"]
    v = doc["verify"]
    assert v["verdict"] == "agree" and v["packets"] == 12
    assert v["hints"]["rx-vlan"]["agree"] == 3 and v["hints"]["rx-timestamp"]["neither"] == 12
    assert demo_namespaces(p.pid) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_removes_everything(sig):
    p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", "demo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    try:
        while not demo_namespaces(p.pid) and p.poll() is None:
            time.sleep(0.01)
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    # interrupted (130), or finished just before the signal landed (0): never a traceback
    assert p.returncode in (0, 130), err
    assert "Traceback" not in err
    assert demo_namespaces(p.pid) == []
    left = subprocess.run(["pgrep", "-f", f"xdph-demo-{p.pid}-"], capture_output=True, text=True).stdout
    assert left == ""  # no dump left running


def test_demo_without_privileges():
    res = xdphints("demo", unprivileged=True)
    assert res.returncode == 4
    assert res.stderr.startswith("xdphints: error: demo needs root: CAP_SYS_ADMIN")
    assert res.stderr.count("\n") == 1


def test_namespaces_left_by_a_killed_demo_are_removed_by_the_next():
    p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", "demo"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=_env())
    try:
        while len(demo_namespaces(p.pid)) < 2 and p.poll() is None:
            time.sleep(0.01)
    finally:
        p.kill()  # SIGKILL: no cleanup can run
        p.wait()
    subprocess.run(["pkill", "-9", "-f", f"xdph-demo-{p.pid}-"])  # a dump it may have started
    orphans = demo_namespaces(p.pid)
    try:
        q, _out, err = run_demo("demo")
        assert q.returncode == 0, err
        assert demo_namespaces(p.pid) == []
    finally:
        for name in demo_namespaces(p.pid):
            subprocess.run(["ip", "netns", "del", name])
    assert orphans  # the killed demo really left them (else this test proves nothing)


def test_interrupt_is_reported_on_one_line():
    p = subprocess.Popen([sys.executable, "-m", "xdphints_cli", "-j", "demo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    try:
        while not demo_namespaces(p.pid) and p.poll() is None:
            time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if p.returncode == 130:
        message = "interrupted by SIGTERM; the demo's namespaces were removed"
        assert err == f"xdphints: error: {message}\n"
        assert json.loads(out) == {"error": message, "exit-code": 130}
    else:  # finished before the signal landed
        assert p.returncode == 0


@pytest.mark.parametrize("json_mode", [True, False])
def test_failed_step_is_one_line_and_keeps_what_the_steps_before_found(monkeypatch, capsys,
                                                                       json_mode):
    """dump refused by its own usage check (an argument the demo does not pass, added
    here): one error line naming the step, the sub-command's own prefix not repeated;
    with -j the document keeps show and enable."""
    from xdphints_cli.cli.main import main
    from xdphints_cli.scenario import veth_demo

    argv = veth_demo.Lab._argv

    def bad_dump(self, args):
        args = list(args)
        return argv(self, args + ["--transport", "fingerprint"] if "dump" in args else args)

    monkeypatch.setattr(veth_demo.Lab, "_argv", bad_dump)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as ei:
            main((["-j"] if json_mode else []) + ["demo"])
    finally:                    # the demo's own handlers must not outlive it
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    assert ei.value.code == 1
    message = ("dump failed: did not start: --transport fingerprint is for --pass (the stack's "
               "side looks the hints up by the frame's bytes): use auto, metadata, headroom or tail")
    assert err.endswith(f"xdphints: error: {message}\n") and err.count("error:") == 1, err
    if json_mode:
        doc = json.loads(out)
        assert doc["error"] == message and doc["failed-step"] == "dump" and doc["exit-code"] == 1
        assert doc["show"]["ifname"] == "xd0" and doc["enable"]["rx-vlan"]["after"] == "on"
        assert "packets" not in doc
    else:
        assert "== 2. Turn on the hardware side ==" in out
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith(
                                              f"xdph-demo-{os.getpid()}-")]
