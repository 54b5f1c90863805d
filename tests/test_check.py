"""`xdphints check`: exit codes and verdicts for scripts, on veth in throwaway namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Tuple

import pytest


pytestmark = pytest.mark.privileged
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args: str, ns: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    env.pop("XDPHINTS_DEV", None)
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "xdphints_cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def run_json(*args: str, ns: str) -> Tuple[int, dict]:
    p = run("-j", *args, ns=ns)
    assert p.stderr == "", p.stderr
    return p.returncode, json.loads(p.stdout)


def test_rx_vlan_ready(veth):
    p = run("check", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[:3] == [f"{veth.dev}:", "rx-vlan", "ready"]
    code, out = run_json("check", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert code == 0
    assert out["ifname"] == veth.dev and out["ifindex"] == veth.ifindex() and out["state"] == "ready"
    assert list(out["hints"]) == ["rx-vlan"]
    assert out["hints"]["rx-vlan"]["state"] == "ready" and "rx-vlan-hw-parse on" in out["hints"]["rx-vlan"]["reason"]


def test_needs_enable_after_disable_and_ready_again(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    code, out = run_json("check", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert code == 6
    assert out["state"] == "needs-enable"
    assert out["hints"]["rx-vlan"] == {"state": "needs-enable", "reason": "rx-vlan-hw-parse is off",
                                       "fix": f"xdphints enable rx-vlan -d {veth.dev}"}
    p = run("check", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 6 and p.stderr == "" and "needs-enable" in p.stdout
    assert run("enable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    assert run("check", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0


def test_rx_timestamp_unsupported(veth):
    code, out = run_json("check", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert code == 3
    assert out["state"] == "unsupported" and out["hints"]["rx-timestamp"]["state"] == "unsupported"
    assert "no hardware RX timestamping" in out["hints"]["rx-timestamp"]["reason"]


def test_unsupported_wins_over_needs_enable(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    code, out = run_json("check", "rx-vlan", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert code == 3 and out["state"] == "unsupported"
    assert list(out["hints"]) == ["rx-vlan", "rx-timestamp"]  # in the order asked for


def test_no_names_means_all_hints_same_verdicts_as_show(veth):
    code, out = run_json("check", "-d", veth.dev, ns=veth.ns)
    assert code == 3  # veth has no hardware timestamping
    assert list(out["hints"]) == ["rx-timestamp", "rx-hash", "rx-vlan"]
    show = json.loads(run("-j", "show", veth.dev, ns=veth.ns).stdout)
    assert out["hints"] == show["hints"]


def test_default_device(veth):
    code, out = run_json("check", "rx-hash", ns=veth.ns)
    assert code == 0 and out["ifname"] == veth.dev


def test_unknown_hint_and_missing_device(veth):
    p = run("check", "tx-timestamp", "-d", veth.dev, ns=veth.ns)  # a feature, not a hint
    assert p.returncode == 2 and p.stderr.startswith("xdphints: error: ") and "'rx-vlan'" in p.stderr
    p = run("check", "rx-vlan", "-d", "nosuchdev0", ns=veth.ns)
    assert p.returncode == 5
    assert p.stderr.strip() == "xdphints: error: no such device: nosuchdev0"
