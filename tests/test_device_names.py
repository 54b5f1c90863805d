"""A device argument (DEV, -d, $XDPHINTS_DEV) is an interface name, always; bad
device and namespace names fail in one line with the documented exit code."""

from __future__ import annotations

import json

import pytest

from conftest import sh, unique_name, xdphints

pytestmark = pytest.mark.privileged


@pytest.fixture
def digit_ns():
    """A namespace where the veth named "3" is not the device whose ifindex is 3:
    va and vb take ifindex 2 and 3, "3" and p3 come later."""
    ns = unique_name("xdph-n")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb")
        sh("ip", "-n", ns, "link", "add", "name", "3", "type", "veth", "peer", "name", "p3")
        for dev in ("va", "vb", "3", "p3"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def ifindex(ns: str, dev: str) -> int:
    return int(sh("cat", f"/sys/class/net/{dev}/ifindex", ns=ns).stdout)


def rx_vlan(ns: str, dev: str) -> str:
    out = sh("ethtool", "-k", dev, ns=ns).stdout
    return next(line.split(":")[1].split()[0] for line in out.splitlines()
                if line.startswith("rx-vlan-offload:"))


def test_all_digit_name_is_the_interface_of_that_name(digit_ns):
    ns = digit_ns
    other = next(d for d in ("va", "vb") if ifindex(ns, d) == 3)
    assert ifindex(ns, "3") != 3
    shown = json.loads(xdphints("-j", "show", "3", ns=ns).stdout)
    assert (shown["ifname"], shown["ifindex"]) == ("3", ifindex(ns, "3"))
    assert json.loads(xdphints("-j", "check", "-d", "3", ns=ns).stdout)["ifname"] == "3"

    # provisioning: the change lands on the device named 3, never on ifindex 3 (vb)
    res = xdphints("disable", "rx-vlan", "-d", "3", ns=ns)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("3: rx-vlan: ")
    assert rx_vlan(ns, "3") == "off"
    assert rx_vlan(ns, other) == "on"
    env_res = xdphints("enable", "rx-vlan", ns=ns, env={"XDPHINTS_DEV": "3"})
    assert env_res.returncode == 0, env_res.stderr
    assert rx_vlan(ns, "3") == "on"


@pytest.mark.parametrize("dev, code", [
    ("02", 5),                           # digits with a leading zero: no such name
    ("\u0662", 5),                       # ARABIC-INDIC DIGIT TWO: a name, not an index
    ("2", 5),                            # ifindex 2 is va or vb; no device is named 2
    ("0", 5),
    ("4294967297", 5),
    ("99999999999999999999", 5),         # was a struct.error traceback
    ("", 2),
])
@pytest.mark.parametrize("command", [["show"], ["show", "-d"], ["check", "-d"], ["enable", "rx-vlan", "-d"],
                                     ["btf", "-d"], ["dump", "-q", "0", "-d"]])
def test_bad_device_names(digit_ns, command, dev, code):
    if command == ["show"] and dev == "":
        command = ["show", "--"]
    res = xdphints(*command, dev, ns=digit_ns)
    assert res.returncode == code, res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xdphints: error: "), res.stderr
    assert "Traceback" not in res.stderr
    if code == 5:
        assert f"no such device: {dev}" in lines[0]
    res_j = xdphints("-j", *command, dev, ns=digit_ns)
    assert res_j.returncode == code
    assert json.loads(res_j.stdout)["exit-code"] == code


def test_device_from_environment_says_so(digit_ns):
    for command in (["check"], ["enable", "rx-vlan"], ["dump", "-q", "0"], ["btf"]):
        res = xdphints(*command, ns=digit_ns, env={"XDPHINTS_DEV": "nosuch"})
        assert res.returncode == 5, res.stderr
        assert res.stderr == "xdphints: error: no such device: nosuch (the name came from $XDPHINTS_DEV)\n"


@pytest.mark.parametrize("name, code", [("", 2), ("x" * 300, 5), ("nosuch-xdph", 5), ("../netns", 5)])
def test_bad_namespace_names(name, code):
    for args in (["-n", name, "show"], ["-j", "-n", name, "show"]):
        res = xdphints(*args)
        assert res.returncode == code, res.stderr
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("xdphints: error: ")
        if "-j" in args:
            assert json.loads(res.stdout)["exit-code"] == code
