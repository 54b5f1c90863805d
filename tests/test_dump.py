"""`xdphints dump` end to end: veth in throwaway namespaces, UDP from the peer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from xdphints_cli.scenario.veth_demo import vlan_push_program

from conftest import REPO_ROOT

pytestmark = pytest.mark.privileged

SENDER = """
import socket, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for sp in [int(p) for p in sys.argv[4].split(',')]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('', sp))
    for i in range(count):
        s.sendto(b'x' * 32, (dst, port))
    s.close()
"""
PACKET_KEYS = {"time", "queue", "len", "summary", "eth-src", "eth-dst", "ethertype", "ip-src",
               "ip-dst", "ip-proto", "src-port", "dst-port", "btf-id", "rx-timestamp",
               "rx-hash", "rx-vlan"}


def _cmd(ns, *args, command="dump"):
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "xdphints_cli", command, *args]


def _env():
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=REPO_ROOT)
    env.pop("XDPHINTS_DEV", None)
    return env


def run_dump(pair, *args, command="dump"):
    return subprocess.run(_cmd(pair.ns, *args, command=command), capture_output=True, text=True,
                          env=_env(), timeout=120)


def start_dump(pair, *args, command="dump") -> subprocess.Popen:
    """Start dump and wait until its XDP program is attached (or it exited).
    The peer's IPv6 is turned off first: its MLD reports would be captured too and
    make the packet counts inexact."""
    pair.run_peer("sysctl", "-qw", f"net.ipv6.conf.{pair.peer}.disable_ipv6=1")
    p = subprocess.Popen(_cmd(pair.ns, *args, command=command), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    while not xdp_attached(pair):
        if p.poll() is not None:
            raise AssertionError(f"{command} exited early: {p.communicate()}")
        time.sleep(0.05)
    return p


def xdp_attached(pair) -> bool:
    return "prog/xdp" in pair.run("ip", "link", "show", pair.dev).stdout


def send_udp(pair, count, src_ports=(40000,), port=9999):
    pair.run_peer(sys.executable, "-c", SENDER, pair.addr, str(port), str(count),
                  ",".join(map(str, src_ports)))


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def test_udp_packets_arrive_with_hints(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "20", "-j")
    send_udp(veth, 10, src_ports=(40000, 40001))
    rc, out, err = finish(p)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == 20
    hashes = {40000: set(), 40001: set()}
    for pk in pkts:
        assert PACKET_KEYS <= set(pk), set(pk) ^ PACKET_KEYS
        assert pk["queue"] == 0 and pk["len"] == 74 and pk["ip-proto"] == "UDP"
        assert pk["dst-port"] == 9999 and pk["ip-src"] == veth.peer_addr
        assert pk["rx-timestamp"] == {"status": "none"}          # veth: value 0
        assert pk["rx-vlan"] == {"status": "none", "errno": "ENODATA"}
        h = pk["rx-hash"]
        assert h["status"] == "ok" and int(h["hash"], 16) != 0
        assert h["type"] & 8 and "XDP_RSS_L4" in h["type-bits"]
        assert h["type-name"].startswith("XDP_RSS_TYPE_")
        hashes[pk["src-port"]].add(h["hash"])
    assert all(len(s) == 1 for s in hashes.values())             # identical within a flow
    assert hashes[40000] != hashes[40001]                        # different across flows
    assert "20 packets" in err and "rx-hash: ok 20" in err and "rx-vlan: ENODATA 20" in err
    assert not xdp_attached(veth)


def test_text_output_and_exact_count(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "5", "--hex")
    send_udp(veth, 5)
    rc, out, err = finish(p)
    assert rc == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("  ")]
    assert len(lines) == 5
    for line in lines:
        assert f"{veth.peer_addr}:40000 > {veth.addr}:9999, UDP" in line
        assert "rx-timestamp none" in line and "rx-vlan ENODATA" in line
        assert "rx-hash 0x" in line
    assert "5 packets" in err and "rx_dropped 0" in err


def test_quiet_json_gives_only_the_summary(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "3", "--quiet", "-j")
    send_udp(veth, 3)
    rc, out, err = finish(p)
    assert rc == 0, err
    (summary,) = [json.loads(line) for line in out.splitlines()]
    assert summary["packets"] == 3 and summary["ifname"] == veth.dev
    assert summary["hints"]["rx-hash"] == {"ok": 3}
    assert summary["hints"]["rx-timestamp"] == {"none": 3}
    assert set(summary["xsk"]) == {"rx-dropped", "rx-ring-full", "rx-fill-ring-empty-descs",
                                   "rx-invalid-descs"}


def test_sigterm_exits_cleanly_with_summary(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0")
    send_udp(veth, 2)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert "packets" in err
    assert not xdp_attached(veth)


def test_kill_9_leaves_nothing_and_dump_restarts(veth):
    p = start_dump(veth, "-d", veth.dev, "--queue", "0")
    # kill the python process itself (ip netns exec execs it, so the pid is the same)
    p.kill()
    p.communicate(timeout=30)
    while xdp_attached(veth):  # the link goes with the last fd; give the kernel a moment
        time.sleep(0.05)
    p2 = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "1", "-j")
    send_udp(veth, 1)
    rc, out, err = finish(p2)
    assert rc == 0, err
    assert len(out.splitlines()) == 1


def test_device_with_program_is_refused_and_untouched(veth):
    first = start_dump(veth, "-d", veth.dev, "--queue", "0")
    before = veth.run("ip", "-d", "link", "show", veth.dev).stdout
    res = run_dump(veth, "-d", veth.dev, "--queue", "0")
    assert res.returncode == 1
    msg = res.stderr.strip().splitlines()[-1]
    assert msg.startswith("xdphints: error: xh0 already has an XDP program attached: id ")
    assert "name xdphints_dump" in msg and "mode" in msg and "ip link set dev xh0 xdp off" in msg
    assert "xdphints never replaces" in msg and "dump --attached" in msg
    # verify says the same, in words that fit it too
    res = run_dump(veth, "-d", veth.dev, "--queue", "0", command="verify")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == msg
    assert veth.run("ip", "-d", "link", "show", veth.dev).stdout == before
    first.send_signal(signal.SIGINT)
    assert finish(first)[0] == 0


def test_missing_queue(veth):
    res = run_dump(veth, "-d", veth.dev, "--queue", "4")
    assert res.returncode == 5
    assert res.stderr.strip() == "xdphints: error: xh0 has 1 active RX queue (0); queue 4 is not one of them"
    assert not xdp_attached(veth)


def test_device_without_native_xdp(veth):
    res = run_dump(veth, "-d", "lo", "--queue", "0")
    assert res.returncode == 3
    assert "the kernel reports no native XDP for lo" in res.stderr


def test_unprivileged_is_a_permission_error(veth):
    cmd = ["ip", "netns", "exec", veth.ns, "setpriv", "--inh-caps=-all", "--bounding-set=-all",
           sys.executable, "-m", "xdphints_cli", "dump", "-d", veth.dev, "--queue", "0"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
    assert res.returncode == 4, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not xdp_attached(veth)


def test_usage_errors():
    bad_numbers = (["--duration", "nan"], ["--duration", "inf"], ["--duration", "0"],
                   ["--sample", "4294967296"], ["--sample", "0"], ["--snaplen", "0"],
                   ["--snaplen", "262145"], ["--count", "0"])
    for args in [["--queue", "-1"], []] + [["-d", "lo", "--queue", "0", *b] for b in bad_numbers]:
        res = subprocess.run([sys.executable, "-m", "xdphints_cli", "dump", *args], capture_output=True,
                             text=True, env=_env(), timeout=60)
        assert res.returncode == 2, (args, res.stderr)
        assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr


# --- hints as the sender or the driver makes them; schema; legacy attachments ----------

SCHEMA_PATH = os.path.join(REPO_ROOT, "xdphints_cli", "hints", "dump.schema.json")


def test_json_lines_validate_against_the_schema(veth):
    import jsonschema

    with open(SCHEMA_PATH) as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "6", "-j", "--hex")
    send_udp(veth, 3, src_ports=(40000, 40001))
    rc, out, err = finish(p)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 6
    for line in lines:
        pk = json.loads(line)
        validator.validate(pk)
        assert len(pk["data"]) == 2 * 74


def test_tx_vlan_accel_tag_shows_in_rx_vlan(veth):
    """A tcx egress program on the sender pushes an accel (out-of-frame) VLAN tag:
    veth's vlan kfunc reports exactly the tag sent, and the frame itself is untagged."""
    import socket

    from xdphints_cli.process import netns
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.link import TcxLink
    from xdphints_cli.bpf.prog import Program

    tci = (5 << 13) | 100
    mac = veth.run("cat", f"/sys/class/net/{veth.dev}/address").stdout.strip()
    # ARP would be tagged too, and nobody answers tagged ARP
    veth.run_peer("ip", "neigh", "replace", veth.addr, "lladdr", mac, "dev", veth.peer,
                  "nud", "permanent")
    with netns.inside(veth.peer_ns):
        peer_ifindex = socket.if_nametoindex(veth.peer)
        tc = Program.load(vlan_push_program(0x8100, tci), prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                          expected_attach_type=sc.BPF_TCX_EGRESS, name="xh_vlan")
        link = TcxLink.attach(tc.fd, peer_ifindex, sc.BPF_TCX_EGRESS)
    with tc, link:
        p = start_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "4", "-j")
        send_udp(veth, 4)
        rc, out, err = finish(p)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == 4
    for pk in pkts:
        assert pk["rx-vlan"] == {"status": "ok", "proto": "0x8100", "tci": tci, "vid": 100,
                                 "pcp": 5, "dei": 0}
        assert "vlan-in-frame" not in pk and pk["ethertype"] == "0x0800"
    assert "rx-vlan: ok 4" in err


TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def test_tap_without_metadata_ops_reports_unsupported(veth):
    """tap has native XDP but no xdp_metadata_ops: every kfunc says EOPNOTSUPP.
    Frames are written into the tap from the test through /dev/net/tun."""
    import fcntl
    import struct

    from xdphints_cli.process import netns

    tap = "xhtap0"
    with netns.inside(veth.ns):
        fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        with netns.inside(veth.ns):
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
        veth.run("ip", "link", "set", tap, "up")
        veth.run("sysctl", "-qw", f"net.ipv6.conf.{tap}.disable_ipv6=1")
        mac = veth.run("cat", f"/sys/class/net/{tap}/address").stdout.strip()
        cmd = _cmd(veth.ns, "-d", tap, "--queue", "0", "--count", "3", "-j")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env())
        while "prog/xdp" not in veth.run("ip", "link", "show", tap).stdout:
            assert p.poll() is None, p.communicate()
            time.sleep(0.05)
        frame = (bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000002")
                 + b"\x08\x00" + bytes.fromhex("4500002e00004000401100000a0000020a000001")
                 + struct.pack("!HHHH", 40000, 9999, 26, 0) + b"x" * 18)
        for _ in range(3):
            os.write(fd, frame)
        rc, out, err = finish(p)
    finally:
        os.close(fd)
    assert rc == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == 3
    for pk in pkts:
        for h in ("rx-timestamp", "rx-hash", "rx-vlan"):
            assert pk[h] == {"status": "unsupported", "errno": "EOPNOTSUPP"}, pk
        assert pk["src-port"] == 40000 and pk["dst-port"] == 9999
    assert "rx-hash: EOPNOTSUPP 3" in err


def test_program_attached_through_netlink_is_refused_and_kept(veth):
    """A program attached the legacy way (IFLA_XDP over rtnetlink, as `ip link set
    xdpdrv` does) stays after its loader exits; dump must refuse and leave it."""
    from pyroute2 import IPRoute

    from xdphints_cli.process import netns
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.prog import Program

    XDP_FLAGS_DRV_MODE = 1 << 2
    with netns.inside(veth.ns), Program.load([mov64_imm(R0, 2), exit_()], name="xh_legacy") as prog, \
            IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=veth.dev)[0]
        ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", prog.fd),
                                                  ("IFLA_XDP_FLAGS", XDP_FLAGS_DRV_MODE)]})
    before = veth.run("ip", "-d", "link", "show", veth.dev).stdout
    assert "xdp" in before
    res = run_dump(veth, "-d", veth.dev, "--queue", "0")
    assert res.returncode == 1, res.stderr
    msg = res.stderr.strip().splitlines()[-1]
    assert "already has an XDP program attached" in msg and "name xh_legacy" in msg
    assert f"ip link set dev {veth.dev} xdp off" in msg
    assert veth.run("ip", "-d", "link", "show", veth.dev).stdout == before
    veth.run("ip", "link", "set", "dev", veth.dev, "xdp", "off")
