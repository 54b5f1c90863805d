"""The built-in hints program, generated for one device.

It calls only the RX metadata kfuncs the device advertises (netdev
xdp-rx-metadata-features) and the kernel has, by their BTF ids in the running kernel,
into stack slots first (igc keeps its raw timestamp in the headroom that
bpf_xdp_adjust_meta would overwrite), then reserves the metadata area, copies the
results and return codes there with the struct's own BTF id last, and redirects to the
XSKMAP entry of ctx->rx_queue_index (XDP_PASS when no socket is there).

ARP and IPv6 neighbour discovery are passed to the kernel, so the captured device
keeps answering its neighbours.
"""

from __future__ import annotations

import errno
from typing import Dict, List

from xdphints_cli.bpf.insn import (
    FP, JGT, JLT, JNE, R0, R1, R2, R3, R4, R6, R7, R8, R9, XDP_PASS, Item, Label,
    add64_imm, call_helper, call_kfunc, exit_, ja, jmp_imm, jmp_reg, ld_map_fd, ldx_mem,
    mov64_imm, mov64_reg, st_mem, stx_mem,
)
from xdphints_cli.hints import layout as L

HELPER_REDIRECT_MAP = 51
HELPER_XDP_ADJUST_META = 54
# struct xdp_md
MD_DATA, MD_DATA_END, MD_DATA_META, MD_RX_QUEUE_INDEX = 0, 4, 8, 16
# stack slots for the kfunc results, laid out like the first 20 bytes of the struct
SLOT_TS, SLOT_HASH, SLOT_HASH_TYPE, SLOT_VLAN_PROTO, SLOT_VLAN_TCI = -24, -16, -12, -8, -6
ETH_P_ARP_LE, ETH_P_IPV6_LE = 0x0608, 0xDD86   # htons() as a little-endian u16 load sees it
IPPROTO_ICMPV6 = 58
ND_TYPES = (133, 137)                            # router solicitation .. redirect


def usable_kfuncs(advertised: int, kfunc_ids: Dict[str, int]) -> Dict[str, int]:
    """{kfunc: BTF id} for the kfuncs both advertised by the device (bit mask as in
    netdev xdp-rx-metadata-features) and present in the kernel's BTF."""
    return {name: kfunc_ids[name] for name, bit in L.KFUNC_BITS.items()
            if advertised & bit and name in kfunc_ids}


def kfunc_mask(kfuncs: Dict[str, int]) -> int:
    return sum(L.KFUNC_BITS[n] for n in kfuncs)


def _filter() -> List[Item]:
    """Jump to "pass" for ARP and ICMPv6 neighbour discovery (untagged frames)."""
    return [
        ldx_mem(4, R2, R6, MD_DATA),
        ldx_mem(4, R3, R6, MD_DATA_END),
        mov64_reg(R4, R2), add64_imm(R4, 14),
        jmp_reg(JGT, R4, R3, "capture"),
        ldx_mem(2, R4, R2, 12),
        jmp_imm(0x10, R4, ETH_P_ARP_LE, "pass"),          # JEQ
        jmp_imm(JNE, R4, ETH_P_IPV6_LE, "capture"),
        mov64_reg(R4, R2), add64_imm(R4, 14 + 40 + 1),
        jmp_reg(JGT, R4, R3, "capture"),
        ldx_mem(1, R4, R2, 14 + 6),                        # next header
        jmp_imm(JNE, R4, IPPROTO_ICMPV6, "capture"),
        ldx_mem(1, R4, R2, 14 + 40),                       # ICMPv6 type
        jmp_imm(JLT, R4, ND_TYPES[0], "capture"),
        jmp_imm(JGT, R4, ND_TYPES[1], "capture"),
        ja("pass"),
    ]


def _kfunc_call(kfuncs: Dict[str, int], name: str, ret_reg: int, slots) -> List[Item]:
    if name not in kfuncs:
        return [mov64_imm(ret_reg, -errno.EOPNOTSUPP)]
    out: List[Item] = [mov64_reg(R1, R6)]
    for reg, slot in zip((R2, R3), slots):
        out += [mov64_reg(reg, FP), add64_imm(reg, slot)]
    return out + [call_kfunc(kfuncs[name]), mov64_reg(ret_reg, R0)]


def generate(kfuncs: Dict[str, int], xskmap_fd: int, struct_btf_id: int,
             pass_neighbour_discovery: bool = True) -> List[Item]:
    """The program's instructions. `kfuncs`: {kfunc name: BTF id} to call (see
    usable_kfuncs); the others are recorded as -EOPNOTSUPP."""
    off = L.OFFSET
    prog: List[Item] = [mov64_reg(R6, R1)]
    if pass_neighbour_discovery:
        prog += _filter()
    prog += [
        Label("capture"),
        st_mem(8, FP, SLOT_TS, 0), st_mem(8, FP, SLOT_HASH, 0), st_mem(8, FP, SLOT_VLAN_PROTO, 0),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_timestamp", R7, (SLOT_TS,)),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_hash", R8, (SLOT_HASH, SLOT_HASH_TYPE)),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_vlan_tag", R9, (SLOT_VLAN_PROTO, SLOT_VLAN_TCI)),
        mov64_reg(R1, R6), mov64_imm(R2, -L.META_SIZE), call_helper(HELPER_XDP_ADJUST_META),
        jmp_imm(JNE, R0, 0, "pass"),
        ldx_mem(4, R2, R6, MD_DATA_META),
        ldx_mem(4, R3, R6, MD_DATA),
        mov64_reg(R4, R2), add64_imm(R4, L.META_SIZE),
        jmp_reg(JGT, R4, R3, "pass"),
        ldx_mem(8, R1, FP, SLOT_TS), stx_mem(8, R2, R1, off["rx_timestamp"]),
        ldx_mem(8, R1, FP, SLOT_HASH), stx_mem(8, R2, R1, off["rx_hash"]),        # + hash_type
        ldx_mem(4, R1, FP, SLOT_VLAN_PROTO), stx_mem(4, R2, R1, off["rx_vlan_proto"]),  # + tci
        stx_mem(4, R2, R7, off["rx_timestamp_ret"]),
        stx_mem(4, R2, R8, off["rx_hash_ret"]),
        stx_mem(4, R2, R9, off["rx_vlan_ret"]),
        st_mem(4, R2, off["kfuncs"], kfunc_mask(kfuncs)),
        st_mem(4, R2, off["btf_id"], struct_btf_id),
        ldx_mem(4, R2, R6, MD_RX_QUEUE_INDEX),
        ld_map_fd(R1, xskmap_fd),
        mov64_imm(R3, XDP_PASS),
        call_helper(HELPER_REDIRECT_MAP),
        exit_(),
        Label("pass"),
        mov64_imm(R0, XDP_PASS),
        exit_(),
    ]
    return prog


def load(ifindex: int, kfuncs: Dict[str, int], xskmap_fd: int,
         name: str = "xdphints_dump"):
    """Generate, then load dev-bound to `ifindex` with the program BTF (so bpftool and
    other tools see a btf_id). Returns (Program, ProgramBtf)."""
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.btf import load_btf
    from xdphints_cli.bpf.prog import Program

    pbtf = L.build_btf()
    with load_btf(pbtf.blob) as btf_fd:
        prog = Program.load(generate(kfuncs, xskmap_fd, pbtf.struct_id), ifindex=ifindex,
                            flags=sc.BPF_F_XDP_DEV_BOUND_ONLY, name=name,
                            btf_fd=btf_fd.fd, func_info=[(0, pbtf.func_id)])
    return prog, pbtf
