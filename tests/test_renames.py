"""A device is resolved once and then addressed by ifindex: the ioctls that can only
name it (ETHTOOL_GDRVINFO, SIOC[GS]HWTSTAMP) and sysfs are made to reach that very
device while devices are renamed, even two swapping names, on the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, unique_name, sh
from xdphints_cli.errors import KernelError

pytestmark = pytest.mark.privileged

SWAP = [["ip", "link", "set", "a0", "name", "swap0"], ["ip", "link", "set", "b0", "name", "a0"],
        ["ip", "link", "set", "swap0", "name", "b0"]]


@pytest.fixture
def pair_ns():
    """A namespace with a veth a0 (driver veth) and a bridge b0 (driver bridge)."""
    ns = unique_name("xdph-r")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "a0p")
        sh("ip", "-n", ns, "link", "add", "b0", "type", "bridge")
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def _ifindex(ns: str, name: str) -> int:
    return int(sh("cat", f"/sys/class/net/{name}/ifindex", ns=ns).stdout)


# The real CLI in a child process: the two devices swap names right after netlink
# resolved the one asked for, before anything else reads it.
_SWAP_CHILD = """
import json, subprocess, sys
from xdphints_cli.netlink import rtnl
from xdphints_cli.cli.main import main
swap, real = json.loads(sys.argv[1]), rtnl.get_link
def then_swap(nl, dev):
    link = real(nl, dev)
    for cmd in swap:
        subprocess.run(cmd, check=True)
    return link
rtnl.get_link = then_swap
main(sys.argv[2:])
"""


def test_show_reads_the_driver_of_the_device_it_resolved(pair_ns):
    veth = _ifindex(pair_ns, "a0")
    p = subprocess.run(["ip", "netns", "exec", pair_ns, sys.executable, "-c", _SWAP_CHILD, json.dumps(SWAP),
                        "-j", "show", "a0"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT))
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert (got["ifindex"], got["driver"]) == (veth, "veth")
    assert _ifindex(pair_ns, "b0") == veth           # the swap did happen


# sysfs as the namespace mounts it (ip netns exec); the names swap right after the
# device's ifindex was read from it, before its queues are
_SYSFS_CHILD = """
import builtins, json, subprocess, sys
from xdphints_cli.device import queues
swap, ifindex = json.loads(sys.argv[1]), int(sys.argv[2])
def int_then_swap(text):
    for cmd in swap:
        subprocess.run(cmd, check=True)
    return builtins.int(text)
queues.int = int_then_swap
print(queues.from_sysfs("a0", ifindex))
"""


def test_queues_from_sysfs_are_of_the_device_resolved(pair_ns):
    sh("ip", "-n", pair_ns, "link", "del", "a0")
    sh("ip", "-n", pair_ns, "link", "add", "a0", "numrxqueues", "3", "type", "veth", "peer", "name", "a0p")
    veth = _ifindex(pair_ns, "a0")
    out = sh("ip", "netns", "exec", pair_ns, sys.executable, "-c", _SYSFS_CHILD, json.dumps(SWAP), str(veth)).stdout
    assert out.strip() == "3"                        # the veth's, not the bridge's one queue
    assert _ifindex(pair_ns, "b0") == veth


def _inside(ns: str):
    from xdphints_cli.process import netns

    return netns.inside(ns)


def test_a_read_answered_by_another_device_is_made_again(pair_ns):
    from xdphints_cli.ioctl import ifname

    veth = _ifindex(pair_ns, "a0")
    asked = []

    def call(name: str) -> str:
        asked.append(name)
        if len(asked) == 1:                           # the names swap as the ioctl runs
            for cmd in SWAP:
                subprocess.run(cmd, check=True)
        return name

    with _inside(pair_ns):
        assert ifname.read(veth, "a0", call) == "b0"  # made again under the veth's new name
    assert asked == ["a0", "b0"]


def test_a_change_that_may_have_reached_another_device_is_an_error(pair_ns):
    from xdphints_cli.ioctl import ifname

    veth = _ifindex(pair_ns, "a0")

    def call(name: str) -> None:
        for cmd in SWAP:
            subprocess.run(cmd, check=True)

    with _inside(pair_ns):
        with pytest.raises(KernelError) as e:
            ifname.change(veth, "a0", call, "SIOCSHWTSTAMP")
        assert "renamed while it was changed" in str(e.value) and "had the name a0" in str(e.value)
        # renamed before the change: made under the new name, and that is no error
        for cmd in SWAP:
            subprocess.run(cmd, check=True)
        for cmd in SWAP:
            subprocess.run(cmd, check=True)      # the veth is b0 now
        got = []
        ifname.change(veth, "a0", got.append, "SIOCSHWTSTAMP")
        assert got == ["b0"]
