"""`xdphints enable|disable` on veth in throwaway namespaces, checked with `ethtool -k` too."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from typing import Tuple

import pytest


pytestmark = pytest.mark.privileged
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- running the CLI -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _unprivileged_prefix() -> Tuple[str, ...]:
    """nobody without capabilities; where nobody cannot reach this interpreter (it lives
    under a 0700 /root here), uid 0 with every capability dropped instead."""
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
              "--bounding-set=-all")
    probe = subprocess.run([*nobody, sys.executable, "-c", "import xdphints_cli, click"],
                           capture_output=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    if probe.returncode == 0:
        return nobody
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all")


def run(*args: str, ns: str, unprivileged: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "xdphints_cli", *args]
    if unprivileged:
        cmd = [*_unprivileged_prefix(), *cmd]
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    env.pop("XDPHINTS_DEV", None)
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, env=env,
                          timeout=120)


def run_json(*args: str, ns: str) -> Tuple[int, dict]:
    p = run("-j", *args, ns=ns)
    return p.returncode, json.loads(p.stdout)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("xdphints: error: ") and "Traceback" not in p.stderr
    return lines[0]


def ethtool_k(veth, label: str) -> str:
    """The state `ethtool -k` (a peer tool) shows: 'on', 'off', maybe with ' [fixed]'."""
    out = veth.run("ethtool", "-k", veth.dev).stdout
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == label:
            return value
    raise AssertionError(f"{label} not in ethtool -k output:\n{out}")


def our_offload(veth, name: str) -> bool:
    code, out = run_json("show", veth.dev, ns=veth.ns)
    assert code == 0
    return out["offloads"][name]["active"]


# ethtool(8) shows rx-vlan-hw-parse under its legacy name
RXVLAN = "rx-vlan-offload"


# --- enable / disable really change the device ----------------------------------------

def test_disable_and_enable_rx_vlan(veth):
    assert ethtool_k(veth, RXVLAN) == "on"
    p = run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{veth.dev}: rx-vlan: rx-vlan-hw-parse on -> off"
    assert ethtool_k(veth, RXVLAN) == "off" and our_offload(veth, "rx-vlan-hw-parse") is False

    p = run("enable", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{veth.dev}: rx-vlan: rx-vlan-hw-parse off -> on"
    assert ethtool_k(veth, RXVLAN) == "on" and our_offload(veth, "rx-vlan-hw-parse") is True


def test_repeating_is_a_no_op(veth):
    for _ in range(2):
        code, out = run_json("enable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev, ns=veth.ns)
        assert code == 0
        assert out == {
            "ifname": veth.dev, "ifindex": veth.ifindex(), "action": "enable", "dry-run": False,
            "changed": False, "device-chosen-by": "argument", "features": {
                "rx-vlan": {"setting": "rx-vlan-hw-parse", "before": "on", "requested": "on", "after": "on",
                            "changed": False, "via": "ethtool-features"},
                "rx-vlan-stag": {"setting": "rx-vlan-stag-hw-parse", "before": "on", "requested": "on",
                                 "after": "on", "changed": False, "via": "ethtool-features"}}}
    p = run("enable", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0 and p.stdout.strip() == f"{veth.dev}: rx-vlan: rx-vlan-hw-parse on (unchanged)"
    assert ethtool_k(veth, RXVLAN) == "on"


def test_disable_json_lists_before_after_changed(veth):
    code, out = run_json("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert code == 0
    assert out["features"]["rx-vlan"] == {"setting": "rx-vlan-hw-parse", "before": "on", "requested": "off",
                                          "after": "off", "changed": True, "via": "ethtool-features"}
    code, out = run_json("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["features"]["rx-vlan"]["changed"] is False


def test_dry_run_changes_nothing(veth):
    p = run("disable", "rx-vlan", "--dry-run", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{veth.dev}: rx-vlan: rx-vlan-hw-parse on -> off (dry run: not changed)"
    assert ethtool_k(veth, RXVLAN) == "on" and our_offload(veth, "rx-vlan-hw-parse") is True
    code, out = run_json("disable", "rx-vlan", "--dry-run", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["dry-run"] is True and out["features"]["rx-vlan"]["changed"] is True
    assert ethtool_k(veth, RXVLAN) == "on"


def test_default_device_is_the_only_interface_up(veth):
    p = run("disable", "rx-vlan-stag", ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{veth.dev}: rx-vlan-stag:")
    assert ethtool_k(veth, "rx-vlan-stag-hw-parse") == "off"
    # said out loud, on stderr and in the JSON
    assert p.stderr == (f"xdphints: acting on {veth.dev}, the only non-loopback interface that is up "
                        "(-d DEV names another)\n")
    p = run("-j", "enable", "rx-vlan-stag", ns=veth.ns)
    assert p.returncode == 0 and json.loads(p.stdout)["device-chosen-by"] == "only-interface-up"
    assert p.stderr.startswith(f"xdphints: acting on {veth.dev}, ")
    env_run = subprocess.run(["ip", "netns", "exec", veth.ns, sys.executable, "-m", "xdphints_cli", "-j",
                              "enable", "rx-vlan"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT, XDPHINTS_DEV=veth.dev))
    assert env_run.returncode == 0 and json.loads(env_run.stdout)["device-chosen-by"] == "XDPHINTS_DEV"
    assert env_run.stderr == f"xdphints: acting on {veth.dev}, named by $XDPHINTS_DEV (-d DEV names another)\n"
    # a device given is not announced
    p = run("disable", "rx-vlan-stag", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0 and p.stderr == ""


# --- what veth cannot do ------------------------------------------------------------------

def test_rx_timestamp_is_unsupported_on_veth(veth):
    p = run("enable", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 3
    line = one_error_line(p)
    assert f"{veth.dev}: rx-timestamp: unsupported: driver veth has no hardware RX timestamping" in line
    # the reason is check's, word for word
    code, out = run_json("check", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert code == 3 and line.endswith(out["hints"]["rx-timestamp"]["reason"])
    assert "ethtool TSINFO: capabilities software-transmit" in line


def test_tx_timestamp_is_unsupported_on_veth(veth):
    p = run("enable", "tx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 3 and "no hardware TX timestamping" in one_error_line(p)


def test_disable_rx_timestamp_on_veth_is_a_no_op(veth):
    code, out = run_json("disable", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert code == 0
    step = out["features"]["rx-timestamp"]
    assert (step["before"], step["after"], step["changed"]) == ("none", "none", False)
    assert "no hardware timestamping" in step["note"]


def test_rx_hash_off_fixed_is_ready_so_enable_has_nothing_to_do(veth):
    # veth fills the hash although rx-hashing is off [fixed]: check calls it ready, so
    # enable leaves it (it used to refuse, which broke check-then-enable playbooks)
    code, out = run_json("check", "rx-hash", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["hints"]["rx-hash"]["state"] == "ready"
    code, out = run_json("enable", "rx-hash", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["changed"] is False
    step = out["features"]["rx-hash"]
    assert (step["before"], step["after"], step["changed"]) == ("off", "off", False)
    assert step["note"].startswith("ready: bpf_xdp_metadata_rx_hash implemented; rx-hashing is off [fixed]")
    assert ethtool_k(veth, "receive-hashing") == "off [fixed]"


def test_ready_hint_beside_one_that_needs_enable(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    p = run("enable", "rx-vlan", "rx-hash", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == f"{veth.dev}: rx-vlan: rx-vlan-hw-parse off -> on"
    assert p.stdout.splitlines()[1].startswith(f"{veth.dev}: rx-hash: rx-hashing off (unchanged); ready: ")
    assert ethtool_k(veth, RXVLAN) == "on"


def test_disable_of_an_offload_off_fixed_is_a_no_op(veth):
    p = run("disable", "rx-hash", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 0, p.stderr  # it is off already
    assert "rx-hashing off (unchanged); rx-hashing is off [fixed]" in p.stdout


def test_available_enables_what_the_device_can_give(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    code, out = run_json("check", "--available", "-d", veth.dev, ns=veth.ns)
    assert code == 6 and out["state"] == "needs-enable"
    assert out["hints"]["rx-timestamp"]["state"] == "unsupported"
    code, out = run_json("enable", "--available", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["changed"] is True
    assert set(out["features"]) == {"rx-hash", "rx-vlan"} and out["features"]["rx-vlan"]["changed"] is True
    assert "no hardware RX timestamping" in out["unsupported"]["rx-timestamp"]
    code, out = run_json("check", "--available", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["state"] == "ready"
    code, out = run_json("enable", "--available", "-d", veth.dev, ns=veth.ns)
    assert code == 0 and out["changed"] is False
    # without --available, check still says the device cannot give every hint
    assert run("check", "-d", veth.dev, ns=veth.ns).returncode == 3


def test_available_with_only_unsupported_hints_is_exit_3(veth):
    p = run("enable", "--available", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 3
    assert (f"{veth.dev}: rx-timestamp: unsupported: the device gives none of the hints asked for "
            "(driver veth has no hardware RX") in one_error_line(p)
    assert run("check", "--available", "rx-timestamp", "-d", veth.dev, ns=veth.ns).returncode == 3


def test_enable_needs_a_feature_or_available(veth):
    p = run("enable", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 2 and "no FEATURE given: name one or more of" in one_error_line(p)


def test_multi_feature_call_with_rx_timestamp_changes_nothing(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    p = run("enable", "rx-vlan", "rx-timestamp", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 3 and "rx-timestamp: unsupported" in one_error_line(p)
    assert ethtool_k(veth, RXVLAN) == "off"


def test_failure_after_a_change_restores_it_on_the_real_device(veth):
    """A failure the plan cannot foresee after rx-vlan really changed (a driver that
    takes only part of the request: stag is left out of the real FEATURES_SET): both
    are put back on the real veth."""
    from xdphints_cli.device import planner
    from xdphints_cli.process import netns
    from xdphints_cli.netlink import rtnl
    from xdphints_cli.netlink.session import Netlink

    assert run("disable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev, ns=veth.ns).returncode == 0

    class RefuseStag(planner.KernelBackend):
        def set_features(self, values):
            super().set_features({k: v for k, v in values.items() if k != "rx-vlan-stag-hw-parse" or not v})

    with netns.inside(veth.ns), Netlink() as nl:
        backend = RefuseStag(nl, rtnl.get_link(nl, veth.dev), "veth")
        planned = planner.plan(backend, "enable", ["rx-vlan", "rx-vlan-stag"])
        assert [s.changed for s in planned.steps] == [True, True]
        with pytest.raises(planner.FeatureError) as e:
            planner.apply(backend, planned)
        # in the middle of the call rx-vlan was on: the rollback turned it off again
    msg = str(e.value)
    assert msg.startswith(f"{veth.dev}: rx-vlan-stag: failed: the kernel accepted the change but "
                          "rx-vlan-stag-hw-parse is off")
    assert msg.endswith("restored rx-vlan to off, rx-vlan-stag to off")
    assert ethtool_k(veth, RXVLAN) == "off" and ethtool_k(veth, "rx-vlan-stag-hw-parse") == "off"


# --- signals never leave a device half-changed -------------------------------------------

# Runs the real CLI (main) in a child process on the real veth; the only thing added is
# a real signal the process sends itself right after the kernel applied its first
# FEATURES_SET, where a signal used to kill it with the device half-changed.
_SIGNAL_CHILD = """
import os, signal, sys
from xdphints_cli.netlink import ethtool
from xdphints_cli.cli.main import main
real, signum = ethtool.set_features, int(sys.argv[1])
def set_then_signal(*args, **kw):
    real(*args, **kw)
    if not getattr(set_then_signal, "sent", False):
        set_then_signal.sent = True
        os.kill(os.getpid(), signum)
ethtool.set_features = set_then_signal
main(sys.argv[2:])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_during_enable_rolls_back_on_the_real_device(veth, signum):
    assert run("disable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev, ns=veth.ns).returncode == 0
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    p = subprocess.run(["ip", "netns", "exec", veth.ns, sys.executable, "-c", _SIGNAL_CHILD, str(int(signum)),
                        "enable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 128 + signum, p.stderr
    assert one_error_line(p) == (f"xdphints: error: {veth.dev}: rx-vlan: interrupted: {signal.Signals(signum).name}; "
                                 "restored rx-vlan to off, rx-vlan-stag to off")
    assert ethtool_k(veth, RXVLAN) == "off" and ethtool_k(veth, "rx-vlan-stag-hw-parse") == "off"


def test_kill_at_any_moment_never_leaves_half(veth):
    """SIGKILL or SIGTERM at spread-out moments of `enable rx-vlan rx-vlan-stag`: the two
    offloads are always both on or both off, and a SIGTERM exit says what it restored."""
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    outcomes = set()
    for i in range(30):
        assert run("disable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev, ns=veth.ns).returncode == 0
        child = subprocess.Popen(["ip", "netns", "exec", veth.ns, sys.executable, "-m", "xdphints_cli",
                                  "enable", "rx-vlan", "rx-vlan-stag", "-d", veth.dev],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # `ip netns exec` execs the command, so the pid is the CLI's own
        time.sleep(0.1 + 0.4 * (i % 10) / 10)
        signum = signal.SIGKILL if i % 2 else signal.SIGTERM
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
        states = (ethtool_k(veth, RXVLAN), ethtool_k(veth, "rx-vlan-stag-hw-parse"))
        assert states in (("on", "on"), ("off", "off")), (child.returncode, err)
        if child.returncode == 128 + signal.SIGTERM:
            assert states == ("off", "off") and "restored rx-vlan to off, rx-vlan-stag to off" in err
        outcomes.add((child.returncode, states))
    assert len(outcomes) > 1  # the moments were spread over the command's run


# --- bad input ----------------------------------------------------------------------------

def test_unknown_feature(veth):
    p = run("enable", "rx-magic", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 2
    line = one_error_line(p)
    assert "'rx-magic' is not one of" in line and "'rx-vlan'" in line and "'rx-timestamp'" in line


def test_unknown_filter(veth):
    p = run("enable", "rx-timestamp", "--rx-filter", "ptp-everything", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 2
    line = one_error_line(p)
    assert "unknown rx-filter 'ptp-everything'" in line and "ptpv2-event" in line and "ntp-all" in line


def test_filter_option_without_rx_timestamp(veth):
    p = run("enable", "rx-vlan", "--rx-filter", "all", "-d", veth.dev, ns=veth.ns)
    assert p.returncode == 2 and "--rx-filter goes with 'enable rx-timestamp'" in one_error_line(p)


def test_missing_device(veth):
    p = run("enable", "rx-vlan", "-d", "nosuchdev0", ns=veth.ns)
    assert p.returncode == 5 and "no such device: nosuchdev0" in one_error_line(p)
    p = run("-j", "disable", "rx-vlan", "-d", "nosuchdev0", ns=veth.ns)
    assert p.returncode == 5 and json.loads(p.stdout)["exit-code"] == 5


def test_not_root_is_permission_denied(veth):
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns).returncode == 0
    p = run("enable", "rx-vlan", "-d", veth.dev, ns=veth.ns, unprivileged=True)
    assert p.returncode == 4, p.stderr
    line = one_error_line(p)
    assert f"{veth.dev}: rx-vlan: not permitted" in line and "CAP_NET_ADMIN" in line
    assert ethtool_k(veth, RXVLAN) == "off"
    # reading needs no privileges: a dry run and a no-op work unprivileged
    assert run("enable", "rx-vlan", "--dry-run", "-d", veth.dev, ns=veth.ns, unprivileged=True).returncode == 0
    assert run("disable", "rx-vlan", "-d", veth.dev, ns=veth.ns, unprivileged=True).returncode == 0


def test_dump_and_verify_name_the_device_they_picked(veth):
    # they attach a program to the device: as enable, they say which one when not given
    p = run("dump", "-q", "0", "-c", "1", "--duration", "0.5", ns=veth.ns)
    assert p.stderr.startswith(f"xdphints: acting on {veth.dev}, the only non-loopback interface that is up "
                               "(-d DEV names another)\n"), p.stderr
    p = run("verify", "--duration", "0.5", ns=veth.ns)
    assert p.stderr.startswith(f"xdphints: acting on {veth.dev}, the only non-loopback interface"), p.stderr
