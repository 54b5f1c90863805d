"""Looking through a libxdp dispatcher to the component program that owns the XSKMAP.

libxdp cannot build its dispatcher on this kind of VM (its freplace compatibility
check gets EPERM, as fentry does), so the kernel side is covered by parsing bpf_link
info in the kernel's layout and by listing real links; the choice is unit-tested.
"""

from __future__ import annotations

import struct
from collections import namedtuple

import pytest

from xdphints_cli.bpf import syscall as sc
from xdphints_cli.bpf.info import LinkInfo
from xdphints_cli.errors import NotSupportedError
from xdphints_cli.hints.attached import extension_programs, look_through_dispatcher

Prog = namedtuple("Prog", "id name map_ids")


def link_bytes(ltype: int, link_id: int, prog_id: int, a: int = 0, b: int = 0) -> bytes:
    """struct bpf_link_info: type, id, prog_id, then the union at offset 16 (64 bytes)."""
    return struct.pack("=III4xIII", ltype, link_id, prog_id, a, b, 0).ljust(64, b"\0")


def test_tracing_link_info_names_its_target():
    info = LinkInfo.from_bytes(link_bytes(sc.BPF_LINK_TYPE_TRACING, 7, 42, 0, 40))
    assert (info.prog_id, info.target_obj_id) == (42, 40)
    assert info.to_json()["target-obj-id"] == 40
    xdp = LinkInfo.from_bytes(link_bytes(sc.BPF_LINK_TYPE_XDP, 8, 40, 3))
    assert xdp.ifindex == 3 and xdp.target_obj_id is None


LINKS = [LinkInfo.from_bytes(b) for b in (
    link_bytes(sc.BPF_LINK_TYPE_XDP, 1, 40, 3),            # the dispatcher on the device
    link_bytes(sc.BPF_LINK_TYPE_TRACING, 2, 41, 0, 40),    # freplace component 41 of 40
    link_bytes(sc.BPF_LINK_TYPE_TRACING, 3, 42, 0, 40),    # freplace component 42 of 40
    link_bytes(sc.BPF_LINK_TYPE_TRACING, 4, 43, 0, 99),    # extends another program
)]
PROGS = {40: Prog(40, "xdp_dispatcher", (1,)), 41: Prog(41, "filter", (2,)),
         42: Prog(42, "hints_hook", (3, 4)), 43: Prog(43, "other", (5,))}
XSKMAPS = {4, 5}


def xskmaps_of(p):
    return [m for m in p.map_ids if m in XSKMAPS]


def test_components_of_a_dispatcher():
    assert extension_programs(40, LINKS) == [41, 42]
    assert extension_programs(41, LINKS) == []


def test_dispatcher_is_looked_through_to_the_xskmap_owner():
    got = look_through_dispatcher(PROGS[40], LINKS, xskmaps_of, PROGS.__getitem__)
    assert got.id == 42


def test_program_with_its_own_xskmap_is_used_as_is():
    assert look_through_dispatcher(PROGS[42], LINKS, xskmaps_of, PROGS.__getitem__).id == 42
    # not a dispatcher and no XSKMAP: left for the caller to refuse with its own message
    assert look_through_dispatcher(PROGS[41], LINKS, xskmaps_of, PROGS.__getitem__).id == 41


def test_two_components_with_xskmaps_ask_for_pinned():
    progs = {**PROGS, 41: Prog(41, "filter", (5,))}
    with pytest.raises(NotSupportedError, match="--pinned"):
        look_through_dispatcher(progs[40], LINKS, xskmaps_of, progs.__getitem__)


@pytest.mark.privileged
def test_real_links_are_listed_with_their_type(veth):
    from xdphints_cli.process import netns
    from xdphints_cli.bpf.insn import R0, exit_, mov64_imm
    from xdphints_cli.bpf.link import XdpLink
    from xdphints_cli.bpf.prog import Program
    from xdphints_cli.hints.attached import _all_links

    with netns.inside(veth.ns):
        prog = Program.load([mov64_imm(R0, 2), exit_()], name="xdph_pass")
        link = XdpLink.attach(prog.fd, veth.ifindex())
    with prog, link:
        mine = [li for li in _all_links() if li.prog_id == prog.id]
    assert [(li.type, li.ifindex) for li in mine] == [(sc.BPF_LINK_TYPE_XDP, veth.ifindex())]
