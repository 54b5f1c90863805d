"""The generated program's --match and --sample code: every match and kfunc subset
passes the verifier; each match selects the right frames (BPF_PROG_TEST_RUN on the
match code alone, with "yes" -> XDP_TX and "no" -> XDP_PASS)."""

from __future__ import annotations

import struct

import pytest

from xdphints_cli.process import netns
from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.insn import JEQ, R9, jmp_imm, XDP_PASS, XDP_TX, Label, exit_, mov64_imm, mov64_reg, R1, R6
from xdphints_cli.bpf.maps import Map
from xdphints_cli.bpf.prog import Program
from xdphints_cli.btf.kfuncs import xdp_metadata_kfunc_ids
from xdphints_cli.hints import program as P

MATCHES = ["ip", "all", "udp", "tcp", "udp:9999", "tcp:80", "ptp", "vlan"]
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"


def eth(etype: int, payload: bytes, vlan: bool = False) -> bytes:
    tag = struct.pack("!HH", 0x8100, 5) if vlan else b""
    return MAC + tag + struct.pack("!H", etype) + payload


def ipv4(proto: int, l4: bytes, ihl: int = 5, frag: int = 0) -> bytes:
    opts = b"\x01" * ((ihl - 5) * 4)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(l4), 1, frag, 64,
                       proto, 0, b"\x0a\0\0\1", b"\x0a\0\0\2") + opts + l4


def ipv6(nxt: int, l4: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), nxt, 64, b"\xfe\x80" + b"\0" * 14,
                       b"\xff\x02" + b"\0" * 14) + l4


def ports(sp: int, dp: int) -> bytes:
    return struct.pack("!HH", sp, dp) + b"\0" * 16


FRAMES = {
    "arp": eth(0x0806, b"\0" * 28),
    "nd": eth(0x86DD, ipv6(58, bytes([135]) + b"\0" * 23)),
    "icmpv6-echo": eth(0x86DD, ipv6(58, bytes([128]) + b"\0" * 23)),
    "udp4-9999": eth(0x0800, ipv4(17, ports(40000, 9999))),
    "udp4-src-9999": eth(0x0800, ipv4(17, ports(9999, 40000))),
    "udp4-53": eth(0x0800, ipv4(17, ports(40000, 53))),
    "udp4-opts-9999": eth(0x0800, ipv4(17, ports(40000, 9999), ihl=7)),
    "udp4-frag": eth(0x0800, ipv4(17, ports(40000, 9999), frag=10)),
    "udp6-9999": eth(0x86DD, ipv6(17, ports(40000, 9999))),
    "tcp4-80": eth(0x0800, ipv4(6, ports(40000, 80))),
    "tcp6-22": eth(0x86DD, ipv6(6, ports(40000, 22))),
    "vlan-udp4-9999": eth(0x0800, ipv4(17, ports(40000, 9999)), vlan=True),
    "ptp-udp-319": eth(0x0800, ipv4(17, ports(319, 319))),
    "ptp-udp-320": eth(0x86DD, ipv6(17, ports(320, 320))),
    "ptp-l2": eth(0x88F7, b"\0" * 44),
}
ALL = set(FRAMES)   # (test_run needs at least 14 bytes: no runt frames)
EXPECTED = {
    "all": set(FRAMES),
    "ip": ALL - {"arp", "nd", "ptp-l2"},
    "udp": {"udp4-9999", "udp4-src-9999", "udp4-53", "udp4-opts-9999", "udp4-frag", "udp6-9999",
            "vlan-udp4-9999", "ptp-udp-319", "ptp-udp-320"},
    "tcp": {"tcp4-80", "tcp6-22"},
    "udp:9999": {"udp4-9999", "udp4-src-9999", "udp4-opts-9999", "udp6-9999", "vlan-udp4-9999"},
    "tcp:80": {"tcp4-80"},
    "ptp": {"ptp-udp-319", "ptp-udp-320", "ptp-l2"},
    "vlan": {"vlan-udp4-9999"},
}


def test_parse():
    assert P.Match.parse("udp:319") == P.Match("udp", 319)
    assert str(P.Match.parse("TCP")) == "tcp"
    for bad in ("foo", "ip:80", "udp:0", "udp:70000", "udp:x"):
        with pytest.raises(ValueError):
            P.Match.parse(bad)




@pytest.mark.privileged
@pytest.mark.parametrize("match", MATCHES)
def test_match_selects_the_right_frames(match):
    m = P.Match.parse(match)
    prog = [mov64_reg(R6, R1), mov64_imm(R9, -61),              # rx_vlan_tag: ENODATA
            jmp_imm(JEQ, R1, 0, "no"),                          # keeps "no" reachable for `all`
            *P.match_code(m, "yes", "no"),
            Label("yes"), mov64_imm(0, XDP_TX), exit_(),
            Label("no"), mov64_imm(0, XDP_PASS), exit_()]
    with Program.load(prog, name="match_test") as p:
        got = {name for name, frame in FRAMES.items() if p.test_run(frame)[0] == XDP_TX}
    assert got == EXPECTED[match]


@pytest.mark.privileged
def test_vlan_match_takes_the_metadata_tag():
    prog = [mov64_reg(R6, R1), mov64_imm(R9, 0), *P.match_code(P.Match("vlan"), "yes", "no"),
            Label("yes"), mov64_imm(0, XDP_TX), exit_(),
            Label("no"), mov64_imm(0, XDP_PASS), exit_()]
    with Program.load(prog, name="match_test") as p:
        assert p.test_run(FRAMES["udp4-9999"])[0] == XDP_TX


@pytest.mark.privileged
def test_sample_keeps_about_one_in_n():
    prog = [*P.sample_code(10, "no"), mov64_imm(0, XDP_TX), exit_(),
            Label("no"), mov64_imm(0, XDP_PASS), exit_()]
    with Program.load(prog, name="sample_test") as p:
        kept = sum(p.test_run(FRAMES["udp4-9999"])[0] == XDP_TX for _ in range(1000))
    assert 30 <= kept <= 250


@pytest.mark.privileged
@pytest.mark.parametrize("transport", ["metadata", "headroom", "tail", "fingerprint"])
def test_program_loads_for_every_match_sample_and_kfunc_subset(veth, transport):
    from conftest import need_metadata_area
    from xdphints_cli.bpf import percpu
    from xdphints_cli.hints import fingerprint
    from xdphints_cli.hints.transport import TRANSPORTS

    if transport == "metadata":
        need_metadata_area()
    t = TRANSPORTS[transport]
    ids = xdp_metadata_kfunc_ids()
    ifindex = veth.ifindex()
    with netns.inside(veth.ns), Map.create(sc.BPF_MAP_TYPE_XSKMAP, 4, 4, 1) as xmap, \
            percpu.counters(P.N_COUNTS, "t_counts") as counts, fingerprint.create_map() as fmap:
        for match in MATCHES:
            for mask in range(8):
                for sample in (1, 10):
                    kf, m = P.usable_kfuncs(mask, ids), P.Match.parse(match)
                    if transport == "fingerprint":
                        prog, _ = P.load_items(ifindex, lambda sid: fingerprint.generate_xdp(
                            kf, fmap.fd, counts.fd, sid, m, sample), "t_fp")
                    else:
                        prog, _ = P.load(ifindex, kf, xmap.fd, match=m, sample=sample,
                                         counts_fd=counts.fd, transport=t)
                    prog.close()
