"""Arguments and environment mean what they say (an empty value is no value, a repeated
-n or -d is an error, a device word is looked up where -n points, digits are ASCII,
a big file is not read whole), and a name that is not UTF-8 has one text form (\\xff)
and one lossless JSON form (the text form plus KEY-bytes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, xdphints


def one_error(res, code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    return res.stderr


# --- empty, repeated, non-ASCII --------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["btf", "--kernel", "--struct", ""], ["btf", "--file", ""], ["btf", "--module", ""], ["btf", "--pinned", ""],
    ["enable", "rx-timestamp", "--rx-filter", "", "-d", "lo"], ["enable", "tx-timestamp", "--tx-type", "", "-d", "lo"],
    ["dump", "-d", "lo", "-q", "0", "-w", ""], ["dump", "-d", "lo", "-q", "0", "--attached", "--struct", ""],
    ["dump", "-d", "lo", "-q", "0", "--attached", "--pinned", ""],
], ids=" ".join)
def test_an_empty_value_is_a_usage_error_not_no_value(argv):
    assert "cannot be empty" in one_error(xdphints(*argv), 2)


@pytest.mark.parametrize("argv", [
    ["dump", "-d", "lo", "-q", "٣"], ["dump", "-d", "lo", "-q", "0,١"], ["dump", "-d", "lo", "-q", "1_0"],
    ["dump", "-d", "lo", "-q", "0", "--match", "udp:٣"], ["dump", "-d", "lo", "-q", "0", "-c", "٣"],
    ["dump", "-d", "lo", "-q", "0", "--snaplen", "1_28"], ["dump", "-d", "lo", "-q", "0", "--duration", "٣"],
    ["verify", "-d", "lo", "-c", " 3"], ["btf", "--prog-id", "٣"],
], ids=" ".join)
def test_numbers_are_ascii_digits(argv):
    one_error(xdphints(*argv), 2)


def test_a_name_that_is_not_utf8_is_looked_up_and_not_found():
    name = os.fsdecode(b"xdp_md\xff")
    err = one_error(xdphints("btf", "--kernel", "--struct", name), 5)
    assert err.startswith("xdphints: error: no type named 'xdp_md\\xff'")
    res = xdphints("-j", "btf", "--kernel", "--struct", name)
    assert json.loads(res.stdout)["error"].startswith("no type named 'xdp_md\\xff'")


# the peak RSS of the command (KiB), as measured from a small fresh process: a child
# forked from pytest itself would count pytest's pages too
_PEAK_RSS = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(f"{p.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n" + p.stderr)
"""


def test_a_sparse_file_of_gigabytes_is_not_read_whole(tmp_path):
    big = tmp_path / "big"
    for magic in (b"\x7fELF", b"\x9f\xeb\x01\x00"):
        with open(big, "wb") as f:
            f.write(magic)
            f.truncate(2 << 30)
        res = subprocess.run([sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "xdphints_cli", "btf",
                              "--file", str(big)], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT, NO_COLOR="1"))
        status, err = res.stdout.split("\n", 1)
        rc, peak = map(int, status.split())
        assert rc == 1 and err.count("\n") == 1, err
        assert peak < 100 * 1024, peak                   # KiB: far from 2 GiB


@pytest.mark.privileged
def test_empty_xdphints_dev_is_an_empty_name(veth):
    """Not "unset": with one interface up (xh0), an empty $XDPHINTS_DEV used to mean it."""
    err = one_error(xdphints("check", ns=veth.ns, env={"XDPHINTS_DEV": ""}), 2)
    assert "$XDPHINTS_DEV" in err
    assert xdphints("check", ns=veth.ns).returncode == 3     # unset: the only device up


@pytest.mark.privileged
def test_two_namespaces_or_two_devices_are_a_usage_error(veth):
    a, b = veth.ns, veth.peer_ns
    for argv in (["-n", a, "-n", b, "show"], ["show", "-n", a, "-n", b], ["-n", a, "show", "-n", b]):
        assert f"two network namespaces given: -n {a} and -n {b}" in one_error(xdphints(*argv), 2), argv
    assert xdphints("-n", a, "show", "-n", a, "-d", veth.dev, "-d", veth.dev).returncode == 0
    err = one_error(xdphints("-n", a, "show", "-d", veth.dev, "-d", "lo"), 2)
    assert f"two devices given: -d {veth.dev} and -d lo" in err


@pytest.mark.privileged
def test_a_device_word_is_looked_up_in_the_namespace_of_n(veth):
    """`xdphints sho -n NS` with a device `sho` only where the command runs, and then
    only in NS: the word means the device of NS, else the prefix of show."""
    here, there = veth.ns, veth.peer_ns
    veth.run("ip", "link", "add", "sho", "type", "veth", "peer", "name", "sho-peer")
    res = xdphints("sho", "-n", there, "-j", ns=here)       # no `sho` in there: show's list
    assert res.returncode == 0, res.stderr
    assert {d["ifname"] for d in json.loads(res.stdout)} == {"lo", veth.peer}
    veth.run("ip", "link", "set", "sho", "netns", there)
    res = xdphints("sho", "-j", "-n", there)                 # `sho` is there: that device
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["ifname"] == "sho"


# --- a name that is not UTF-8 ----------------------------------------------------------

@pytest.mark.privileged
def test_an_interface_name_that_is_not_utf8_in_text_and_json(veth):
    name = os.fsdecode(b"v\xff")
    veth.run("ip", "link", "add", "name", name, "type", "veth", "peer", "name", "vp")
    veth.run("ethtool", "-K", name, "rxvlan", "off")
    exact = {"ifname": "v\\xff", "ifname-bytes": "76ff"}
    for argv in (["show", name], ["check", "-d", name], ["enable", "rx-vlan", "-d", name, "--dry-run"]):
        res = xdphints("-j", *argv, ns=veth.ns)
        assert res.returncode in (0, 3, 6), res.stderr
        assert "\\udc" not in res.stdout                        # no lone surrogate on the wire
        got = json.loads(res.stdout)
        assert {k: got[k] for k in exact} == exact, argv
    listed = [d for d in json.loads(xdphints("-j", "show", ns=veth.ns).stdout) if "ifname-bytes" in d]
    assert [(d["ifname"], d["ifname-bytes"]) for d in listed] == [("v\\xff", "76ff")]
    fix = json.loads(xdphints("-j", "check", "rx-vlan", "-d", name, ns=veth.ns).stdout)["hints"]["rx-vlan"]["fix"]
    assert fix == "xdphints enable rx-vlan -d $'v\\xff'"
    # the fix, pasted into bash, reaches that very device
    pasted = subprocess.run(["bash", "-c", "printf %s " + fix.rpartition(" -d ")[2]], capture_output=True)
    assert pasted.stdout == b"v\xff"
    text = xdphints("show", name, ns=veth.ns)
    assert text.stdout.startswith("v\\xff: ifindex ")
    err = one_error(xdphints("-j", "show", os.fsdecode(b"w\xff"), ns=veth.ns), 5)
    assert err == "xdphints: error: no such device: w\\xff\n"
    assert json.loads(xdphints("-j", "show", os.fsdecode(b"w\xff"), ns=veth.ns).stdout)["error"] == \
        "no such device: w\\xff"


@pytest.mark.parametrize("argv", [["enable", "x\udcff", "-d", "lo"], ["-n", "n\udcff", "show"],
                                  ["dump", "-d", "lo", "-q", "0", "--match", "udp:\udcff"]], ids=str)
def test_messages_show_a_byte_that_is_not_utf8_as_xff(argv):
    res = xdphints(*argv)
    assert res.returncode in (2, 5) and "\\xff" in res.stderr and "\\udc" not in res.stderr, res.stderr
