"""Where the hints struct travels with a packet to AF_XDP: one object per transport,
asked by both sides, the program generator (how to make room, where to write, how to
undo) and the reader (where the struct and the packet are in what the socket got).

    metadata  bpf_xdp_adjust_meta(-size): the XDP metadata area, right in front of
              the packet, which stays untouched. Needs a kernel whose verifier lets
              XDP programs call the helper, and a driver that gives the area
              (ena, mana, gve GQI and others answer -ENOTSUPP at run time).
    headroom  bpf_xdp_adjust_head(-size): the struct becomes the first bytes of the
              frame. Every XDP driver has headroom (256 bytes on most).
    tail      bpf_xdp_adjust_tail(+size): the struct becomes the last bytes of the
              frame, where the headroom is too small (gve GQI: 2 bytes).

headroom and tail change the frame, so the program undoes the change when the frame
does not go to a socket (none on its queue) and the stack never sees it, and the
reader strips the struct, so every output shows the packet byte for byte as it
arrived. A packet the program could not place the struct in goes on to the stack
untouched and is counted (COUNT_UNPLACED, with the helper's errno), never dropped.

`choose` picks the transport for `auto`: the metadata area unless the kernel refuses
the helper (metadata_area.py, a probe load), then headroom, then tail; `after` names
the next one when the chosen one fails at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from xdphints_cli.bpf.insn import (
    ADD, JGT, JLT, JNE, R0, R1, R2, R3, R4, R6, Item, add64_imm, alu64_reg, call_helper,
    jmp_imm, jmp_reg, ldx_mem, mov64_imm, mov64_reg,
)
from xdphints_cli.hints.metadata_area import auto_choice

HELPER_XDP_ADJUST_HEAD = 44
HELPER_XDP_ADJUST_META = 54
HELPER_XDP_ADJUST_TAIL = 65
HELPER_XDP_GET_BUFF_LEN = 188
# struct xdp_md
MD_DATA, MD_DATA_END, MD_DATA_META = 0, 4, 8
MAX_FRAME = 0xFFFF              # the verifier's bound on packet offsets (MAX_PACKET_OFF)
AUTO = "auto"


@dataclass(frozen=True)
class Transport:
    name: str
    helper: str                  # the helper that makes room, for messages
    modifies_frame: bool

    def reserve(self, size: int, fail: str, bad: str) -> List[Item]:
        """Make room for `size` bytes; leaves r2 pointing at them, checked for the
        verifier. Jumps to `fail` with r0 = -errno when the helper refuses (the frame
        is untouched), to `bad` when the check fails after it succeeded (cannot
        happen; the verifier needs the branch). Needs r6 = ctx; clobbers r0-r5."""
        raise NotImplementedError

    def undo(self, size: int) -> List[Item]:
        """Give the frame back its original shape (r6 = ctx); clobbers r0-r5."""
        return []

    def locate(self, addrs: Sequence[int], lengths: Sequence[int],
               size: int) -> Tuple[List[int], List[int], List[int]]:
        """(struct addresses, packet addresses, packet lengths) of received frames
        (descriptor addresses and lengths) that carry a `size`-byte struct. The lists
        given may come back as they are: do not change them."""
        raise NotImplementedError


def _in_front(helper: int, start: int, end: int, size: int, fail: str, bad: str) -> List[Item]:
    """helper(ctx, -size), then r2 = ctx->start, checked to have `size` bytes before
    ctx->end (the metadata area before data, the new frame start before data_end)."""
    return [mov64_reg(R1, R6), mov64_imm(R2, -size), call_helper(helper),
            jmp_imm(JNE, R0, 0, fail),
            ldx_mem(4, R2, R6, start), ldx_mem(4, R3, R6, end),
            mov64_reg(R4, R2), add64_imm(R4, size),
            jmp_reg(JGT, R4, R3, bad)]


class _Metadata(Transport):
    def reserve(self, size, fail, bad):
        return _in_front(HELPER_XDP_ADJUST_META, MD_DATA_META, MD_DATA, size, fail, bad)

    def locate(self, addrs, lengths, size):
        return [a - size for a in addrs], addrs, lengths


class _Headroom(Transport):
    def reserve(self, size, fail, bad):
        return _in_front(HELPER_XDP_ADJUST_HEAD, MD_DATA, MD_DATA_END, size, fail, bad)

    def undo(self, size):
        return [mov64_reg(R1, R6), mov64_imm(R2, size), call_helper(HELPER_XDP_ADJUST_HEAD)]

    def locate(self, addrs, lengths, size):
        return list(addrs), [a + size for a in addrs], [n - size for n in lengths]


class _Tail(Transport):
    def reserve(self, size, fail, bad):
        # the struct's offset is the frame's length (bpf_xdp_get_buff_len: a scalar the
        # verifier can bound, unlike data_end - data) less its size
        return [mov64_reg(R1, R6), mov64_imm(R2, size), call_helper(HELPER_XDP_ADJUST_TAIL),
                jmp_imm(JNE, R0, 0, fail),
                mov64_reg(R1, R6), call_helper(HELPER_XDP_GET_BUFF_LEN),
                jmp_imm(JGT, R0, MAX_FRAME, bad),
                jmp_imm(JLT, R0, size, bad),
                add64_imm(R0, -size),
                ldx_mem(4, R2, R6, MD_DATA), ldx_mem(4, R3, R6, MD_DATA_END),
                alu64_reg(ADD, R2, R0),                      # r2 += offset
                mov64_reg(R4, R2), add64_imm(R4, size),
                jmp_reg(JGT, R4, R3, bad)]

    def undo(self, size):
        return [mov64_reg(R1, R6), mov64_imm(R2, -size), call_helper(HELPER_XDP_ADJUST_TAIL)]

    def locate(self, addrs, lengths, size):
        return ([a + n - size for a, n in zip(addrs, lengths)], list(addrs),
                [n - size for n in lengths])


METADATA = _Metadata("metadata", "bpf_xdp_adjust_meta", False)
HEADROOM = _Headroom("headroom", "bpf_xdp_adjust_head", True)
TAIL = _Tail("tail", "bpf_xdp_adjust_tail", True)
# dump --pass and verify never change a packet: the stack's side finds the hints by
# the frame's bytes instead (fingerprint.py has both programs' code)
FINGERPRINT = Transport("fingerprint", "bpf_map_update_elem", False)
TRANSPORTS = {t.name: t for t in (METADATA, HEADROOM, TAIL, FINGERPRINT)}
ORDER = (METADATA, HEADROOM, TAIL)
PASS_ORDER = (METADATA, FINGERPRINT)
NAMES = (AUTO, METADATA.name, HEADROOM.name, TAIL.name)
PASS_NAMES = (AUTO, METADATA.name, FINGERPRINT.name)


def after(t: Transport, passing: bool = False) -> Optional[Transport]:
    """The transport auto tries when `t` fails at run time; None after the last.
    `passing`: for dump --pass and verify."""
    order = PASS_ORDER if passing else ORDER
    i = order.index(t)
    return order[i + 1] if i + 1 < len(order) else None


def choose(requested: str, passing: bool = False) -> Tuple[Transport, str]:
    """(transport, why) for --transport `requested` (metadata_area.auto_choice for
    auto). `passing`: for dump --pass and verify."""
    if requested != AUTO:
        return TRANSPORTS[requested], "--transport"
    name, why = auto_choice(passing)
    return TRANSPORTS[name], why
