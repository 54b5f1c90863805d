"""`xdphints verify` on veth: the kfuncs' hints against the kernel stack's view of the
same packets (the disagreement cases are unit-tested in tests/hints/test_verify_unit.py)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from conftest import need_metadata_area, xdphints
from test_dump import finish, send_udp, start_dump
from xdphints_cli.scenario.veth_demo import vlan_push_program

pytestmark = pytest.mark.privileged


TRANSPORTS = ["metadata", "fingerprint"]


def start_verify(pair, *args) -> subprocess.Popen:
    return start_dump(pair, *args, command="verify")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hash_agrees_over_several_flows_timestamps_are_neither(veth, transport):
    if transport == "metadata":
        need_metadata_area()
    ports = (40000, 40001, 40002, 40003)
    p = start_verify(veth, "-d", veth.dev, "--match", "udp", "--count", "20", "-j",
                     "--transport", transport)
    send_udp(veth, 5, src_ports=ports)
    rc, out, err = finish(p)
    assert rc == 0, err
    j = json.loads(out)
    assert set(j) == {"ifname", "ifindex", "packets", "hints", "verdict", "transport", "pass"}
    assert j["transport"] == {"name": transport, "why": "--transport", "unplaced": 0}
    assert j["pass"]["marked"] == j["pass"]["records"] == 20
    assert j["ifname"] == veth.dev and j["ifindex"] == veth.ifindex() and j["packets"] == 20
    h = j["hints"]["rx-hash"]
    assert (h["compared"], h["agree"], h["disagree"]) == (20, 20, 0)
    assert j["hints"]["rx-timestamp"]["neither"] == 20
    assert j["hints"]["rx-vlan"]["neither"] == 20
    assert j["verdict"] == "agree"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tx_vlan_offload_tag_agrees(veth, transport):
    """The tag the sender's offload put outside the frame: the kfunc's and the skb's
    agree, and the fingerprint (which leaves tags out) pairs the tagged packets too."""
    from xdphints_cli.process import netns
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.link import TcxLink
    from xdphints_cli.bpf.prog import Program

    mac = veth.run("cat", f"/sys/class/net/{veth.dev}/address").stdout.strip()
    veth.run_peer("ip", "neigh", "replace", veth.addr, "lladdr", mac, "dev", veth.peer,
                  "nud", "permanent")
    if transport == "metadata":
        need_metadata_area()
    p = start_verify(veth, "-d", veth.dev, "--match", "udp", "--count", "6", "--transport",
                     transport)
    send_udp(veth, 3, src_ports=(40000,))
    with netns.inside(veth.peer_ns):
        tc = Program.load(vlan_push_program(0x8100, (5 << 13) | 100),
                          prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                          expected_attach_type=sc.BPF_TCX_EGRESS, name="xh_vlan")
        with tc, TcxLink.attach(tc.fd, socket.if_nametoindex(veth.peer), sc.BPF_TCX_EGRESS):
            send_udp(veth, 3, src_ports=(40001,))
    rc, out, err = finish(p)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["rx-hash", "compared", "6,", "agree", "6,", "disagree", "0,",
                                "xdp-only", "0,", "stack-only", "0,", "neither", "0"]
    assert "rx-vlan       compared 3, agree 3, disagree 0, xdp-only 0, stack-only 0, neither 3" in lines
    assert lines[-2] == f"transport {transport} (--transport)"
    assert lines[-1] == f"verdict: agree (6 packets on {veth.dev})"


@pytest.mark.parametrize("args,message", [
    (("--match", "bogus"), "unknown match"),
    (("--count", "0"), "--count must be 1 or more"),
    (("--queue", "x"), "bad queue list"),
])
def test_bad_arguments_are_usage_errors(veth, args, message):
    res = xdphints("verify", "-d", veth.dev, *args, ns=veth.ns)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_queue_outside_the_device_is_exit_5(veth):
    res = xdphints("verify", "-d", veth.dev, "--queue", "3", "--count", "1", ns=veth.ns)
    assert res.returncode == 5, res.stderr
