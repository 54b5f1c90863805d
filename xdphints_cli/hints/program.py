"""The built-in hints program, generated for one device.

It calls only the RX metadata kfuncs the device advertises (netdev
xdp-rx-metadata-features) and the kernel has, by their BTF ids in the running kernel,
into stack slots first (igc keeps its raw timestamp in the headroom that the
transport may overwrite), then makes room for the hints struct the way its transport
says (transport.py: the metadata area, the headroom or the tail), copies the results
and return codes there with the struct's own BTF id last, and redirects to the
XSKMAP entry of ctx->rx_queue_index (XDP_PASS, the frame as it came, when no socket is
there). A packet whose struct the transport could not place goes on to the stack
untouched and is counted in the per-CPU array (COUNT_UNPLACED, and the helper's errno
in COUNT_ERRNO), so a transport that fails at run time never looks like silence. Its
XDP_PASS variant (dump --pass, verify) hands the same metadata to the kernel stack
instead, where the tcx program of pass_program.py reads it.

Only what the user asked for is redirected (`Match`, run in the program, not in
Python): everything else, ARP and IPv6 neighbour discovery included (unless the match
is `all`), goes on to the kernel stack, so the device keeps answering its neighbours
and unrelated connections keep working. `sample` N redirects one in N matching packets
chosen at random: bpf_get_prandom_u32() % N == 0 (helper 7; no map, no state).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from xdphints_cli.bpf.insn import (
    ADD, AND, FP, JEQ, JGT, JLT, JNE, LSH, MOD, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, XDP_PASS,
    XDP_REDIRECT, Item, Label, add64_imm, alu32_imm, alu64_imm, alu64_reg, call_helper,
    call_kfunc, exit_, ja, jmp32_imm, jmp_imm, jmp_reg, ld_map_fd, ldx_mem, mov64_imm,
    mov64_reg, st_mem, stx_mem,
)
from xdphints_cli.hints import layout as L
from xdphints_cli.hints.transport import METADATA, Transport

HELPER_MAP_LOOKUP_ELEM = 1
HELPER_GET_PRANDOM_U32 = 7
HELPER_REDIRECT_MAP = 51
# struct xdp_md
MD_DATA, MD_DATA_END, MD_RX_QUEUE_INDEX = 0, 4, 16
# stack slots for the kfunc results, laid out like the first 20 bytes of the struct
SLOT_TS, SLOT_HASH, SLOT_HASH_TYPE, SLOT_VLAN_PROTO, SLOT_VLAN_TCI = -24, -16, -12, -8, -6
SLOT_KEY = -32                                   # a map key (the counters)
# the per-CPU u64 counters of a capture, shared by its XDP and tcx programs:
# XDP_PASS variants: packets marked (hints stored), records the tcx program made
# (pass_program.py) and records it dropped (ring full); every variant: packets whose
# struct the transport could not place, and the helper's errno (the last one, per
# CPU); the fingerprint transport (fingerprint.py): frames that found an identical
# frame's record waiting (XDP), poisoned and stale records and GRO-merged segments
# (tc), records XDP could not store
(COUNT_MARKED, COUNT_RECORDS, COUNT_DROPPED, COUNT_UNPLACED, COUNT_ERRNO, COUNT_IDENTICAL,
 COUNT_AMBIGUOUS, COUNT_MERGED, COUNT_STALE, COUNT_LOST) = range(10)
N_COUNTS = 10
PASS_PREFIX = 8                                  # u32 rx_queue_index, u32 zero
ETH_P_ARP_LE, ETH_P_IPV6_LE = 0x0608, 0xDD86   # htons() as a little-endian u16 load sees it
ETH_P_IP_LE, ETH_P_1588_LE = 0x0008, 0xF788
VLAN_TPIDS_LE = (0x0081, 0xA888)                 # 802.1Q, 802.1ad
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 6, 17, 58
ND_TYPES = (133, 137)                            # router solicitation .. redirect
PTP_PORTS = (319, 320)
MATCH_KINDS = ("ip", "all", "udp", "tcp", "ptp", "vlan")


def _le16(port: int) -> int:
    """htons(port) as a little-endian u16 load sees it."""
    return ((port & 0xFF) << 8) | (port >> 8)


@dataclass(frozen=True)
class Match:
    """What the program redirects: `ip` (IPv4 and IPv6 except neighbour discovery),
    `all`, `udp`/`tcp` (optionally one port, source or destination), `ptp` (UDP
    319/320 or ethertype 0x88f7), `vlan` (a VLAN tag in the metadata or the frame).
    One VLAN tag in the frame is looked through for ip/udp/tcp/ptp."""

    kind: str = "ip"
    port: Optional[int] = None

    @classmethod
    def parse(cls, text: str) -> "Match":
        kind, sep, port = text.strip().lower().partition(":")
        if kind not in MATCH_KINDS:
            raise ValueError(f"unknown match '{text}' (one of {', '.join(MATCH_KINDS)}, "
                             "udp:PORT, tcp:PORT)")
        if not sep:
            return cls(kind)
        if kind not in ("udp", "tcp"):
            raise ValueError(f"only udp and tcp take a port, not '{kind}'")
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:   # not "٣"
            raise ValueError(f"bad port '{port}' (1-65535)")
        return cls(kind, int(port))

    def __str__(self) -> str:
        return self.kind if self.port is None else f"{self.kind}:{self.port}"

    @property
    def after_kfuncs(self) -> bool:
        """vlan needs the rx_vlan_tag result, so it runs after the kfunc calls."""
        return self.kind == "vlan"


def usable_kfuncs(advertised: int, kfunc_ids: Dict[str, int]) -> Dict[str, int]:
    """{kfunc: BTF id} for the kfuncs both advertised by the device (bit mask as in
    netdev xdp-rx-metadata-features) and present in the kernel's BTF."""
    return {name: kfunc_ids[name] for name, bit in L.KFUNC_BITS.items()
            if advertised & bit and name in kfunc_ids}


def kfunc_mask(kfuncs: Dict[str, int]) -> int:
    return sum(L.KFUNC_BITS[n] for n in kfuncs)


def _l2(nomatch: str) -> List[Item]:
    """r2 = data, r3 = data_end, r4 = ethertype (LE view), r5 = L3 start, looking
    through one VLAN tag in the frame; short frames go to `nomatch`."""
    return [
        ldx_mem(4, R2, R6, MD_DATA),
        ldx_mem(4, R3, R6, MD_DATA_END),
        mov64_reg(R0, R2), add64_imm(R0, 14),
        jmp_reg(JGT, R0, R3, nomatch),
        ldx_mem(2, R4, R2, 12),
        mov64_reg(R5, R2), add64_imm(R5, 14),
        jmp_imm(JEQ, R4, VLAN_TPIDS_LE[0], "m_vlan"),
        jmp_imm(JNE, R4, VLAN_TPIDS_LE[1], "m_l3"),
        Label("m_vlan"),
        mov64_reg(R0, R2), add64_imm(R0, 18),
        jmp_reg(JGT, R0, R3, nomatch),
        ldx_mem(2, R4, R2, 16),
        add64_imm(R5, 4),
        Label("m_l3"),
    ]


def _l4(proto: int, ports: Tuple[int, ...], yes: str, no: str) -> List[Item]:
    """After _l2: IPv4 or IPv6 (no extension headers) with this L4 protocol and, when
    `ports` is given, one of them as source or destination port."""
    out: List[Item] = [
        jmp_imm(JNE, R4, ETH_P_IP_LE, "m_ip6"),
        mov64_reg(R0, R5), add64_imm(R0, 20),
        jmp_reg(JGT, R0, R3, no),
        ldx_mem(1, R0, R5, 9),
        jmp_imm(JNE, R0, proto, no),
    ]
    if ports:
        out += [
            ldx_mem(2, R0, R5, 6), alu64_imm(AND, R0, 0xFF1F),   # fragment offset (LE view)
            jmp_imm(JNE, R0, 0, no),
            ldx_mem(1, R0, R5, 0), alu64_imm(AND, R0, 0xF), alu64_imm(LSH, R0, 2),
            jmp_imm(JLT, R0, 20, no),
            alu64_reg(ADD, R5, R0),                               # r5 += ihl
            ja("m_ports"),
        ]
    else:
        out.append(ja(yes))
    out += [
        Label("m_ip6"),
        jmp_imm(JNE, R4, ETH_P_IPV6_LE, no),
        mov64_reg(R0, R5), add64_imm(R0, 40),
        jmp_reg(JGT, R0, R3, no),
        ldx_mem(1, R0, R5, 6),
        jmp_imm(JNE, R0, proto, no),
    ]
    if not ports:
        return out + [ja(yes)]
    out += [add64_imm(R5, 40), Label("m_ports"),
            mov64_reg(R0, R5), add64_imm(R0, 4),
            jmp_reg(JGT, R0, R3, no),
            ldx_mem(2, R0, R5, 0), ldx_mem(2, R4, R5, 2)]
    for p in ports:
        out += [jmp_imm(JEQ, R0, _le16(p), yes), jmp_imm(JEQ, R4, _le16(p), yes)]
    return out + [ja(no)]


def match_code(match: Match, yes: str = "capture", no: str = "pass") -> List[Item]:
    """Instructions that jump to `yes` for packets the match selects, else to `no`.
    Uses r0, r2-r5 (and r9, the rx_vlan_tag return code, for `vlan`)."""
    k = match.kind
    if k == "all":
        return [ja(yes)]
    if k == "vlan":
        return [jmp_imm(JEQ, R9, 0, yes),
                ldx_mem(4, R2, R6, MD_DATA), ldx_mem(4, R3, R6, MD_DATA_END),
                mov64_reg(R0, R2), add64_imm(R0, 14),
                jmp_reg(JGT, R0, R3, no),
                ldx_mem(2, R4, R2, 12),
                jmp_imm(JEQ, R4, VLAN_TPIDS_LE[0], yes),
                jmp_imm(JEQ, R4, VLAN_TPIDS_LE[1], yes),
                ja(no)]
    out = _l2(no)
    if k == "ip":
        return out + [
            jmp_imm(JEQ, R4, ETH_P_IP_LE, yes),
            jmp_imm(JNE, R4, ETH_P_IPV6_LE, no),
            mov64_reg(R0, R5), add64_imm(R0, 40 + 1),
            jmp_reg(JGT, R0, R3, yes),
            ldx_mem(1, R0, R5, 6),                             # next header
            jmp_imm(JNE, R0, IPPROTO_ICMPV6, yes),
            ldx_mem(1, R0, R5, 40),                            # ICMPv6 type
            jmp_imm(JLT, R0, ND_TYPES[0], yes),
            jmp_imm(JGT, R0, ND_TYPES[1], yes),
            ja(no),
        ]
    if k == "ptp":
        return out + [jmp_imm(JEQ, R4, ETH_P_1588_LE, yes)] + _l4(IPPROTO_UDP, PTP_PORTS, yes, no)
    proto = IPPROTO_UDP if k == "udp" else IPPROTO_TCP
    return out + _l4(proto, (match.port,) if match.port else (), yes, no)


def sample_code(n: int, no: str = "pass") -> List[Item]:
    """Keep one in n at random: bpf_get_prandom_u32() % n == 0."""
    if n <= 1:
        return []
    return [call_helper(HELPER_GET_PRANDOM_U32), alu32_imm(MOD, R0, n), jmp32_imm(JNE, R0, 0, no)]


def _kfunc_call(kfuncs: Dict[str, int], name: str, ret_reg: int, slots) -> List[Item]:
    if name not in kfuncs:
        return [mov64_imm(ret_reg, -errno.EOPNOTSUPP)]
    out: List[Item] = [mov64_reg(R1, R6)]
    for reg, slot in zip((R2, R3), slots):
        out += [mov64_reg(reg, FP), add64_imm(reg, slot)]
    return out + [call_kfunc(kfuncs[name]), mov64_reg(ret_reg, R0)]


def kfunc_code(kfuncs: Dict[str, int]) -> List[Item]:
    """Call the kfuncs into the stack slots (zeroed first: the verifier wants them
    initialised), return codes in r7 (timestamp), r8 (hash), r9 (VLAN tag)."""
    return [
        st_mem(8, FP, SLOT_TS, 0), st_mem(8, FP, SLOT_HASH, 0), st_mem(8, FP, SLOT_VLAN_PROTO, 0),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_timestamp", R7, (SLOT_TS,)),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_hash", R8, (SLOT_HASH, SLOT_HASH_TYPE)),
        *_kfunc_call(kfuncs, "bpf_xdp_metadata_rx_vlan_tag", R9, (SLOT_VLAN_PROTO, SLOT_VLAN_TCI)),
    ]


def queue_code(queues: Optional[List[int]], no: str = "pass") -> List[Item]:
    """Only packets received on one of `queues` (None: every queue) go on."""
    if queues is None:
        return []
    out: List[Item] = [ldx_mem(4, R0, R6, MD_RX_QUEUE_INDEX)]
    out += [jmp_imm(JEQ, R0, q, "queue_ok") for q in queues]
    return out + [ja(no), Label("queue_ok")]


def _counter(counts_fd: int, index: int, skip: str, slot: int) -> List[Item]:
    """r0 = this CPU's counts[index] in the per-CPU array `counts_fd`, the key at stack
    `slot`; jumps to `skip` if the lookup fails. Clobbers r0-r5."""
    return [st_mem(4, FP, slot, index), ld_map_fd(R1, counts_fd),
            mov64_reg(R2, FP), add64_imm(R2, slot), call_helper(HELPER_MAP_LOOKUP_ELEM),
            jmp_imm(JEQ, R0, 0, skip)]


def count_code(counts_fd: int, index: int, skip: str, slot: int = SLOT_KEY) -> List[Item]:
    """counts[index] += 1 (per-CPU: no atomics needed); see _counter."""
    return [*_counter(counts_fd, index, skip, slot),
            ldx_mem(8, R1, R0, 0), add64_imm(R1, 1), stx_mem(8, R0, R1, 0)]


def add_code(counts_fd: int, index: int, reg: int, skip: str, slot: int = SLOT_KEY) -> List[Item]:
    """counts[index] += reg (callee-saved, r6-r9); see _counter."""
    return [*_counter(counts_fd, index, skip, slot),
            ldx_mem(8, R1, R0, 0), alu64_reg(ADD, R1, reg), stx_mem(8, R0, R1, 0)]


def store_code(counts_fd: int, index: int, reg: int, skip: str, slot: int = SLOT_KEY) -> List[Item]:
    """counts[index] = reg (callee-saved, r6-r9); see _counter."""
    return [*_counter(counts_fd, index, skip, slot), stx_mem(8, R0, reg, 0)]


def unplaced_code(counts_fd: Optional[int], out: str = "pass") -> List[Item]:
    """From r0 = -errno of the transport's helper: count the packet as unplaced and
    keep the errno; then on to `out`. Clobbers r0-r5 and r7."""
    if counts_fd is None:
        return [ja(out)]
    return [mov64_reg(R7, R0), *count_code(counts_fd, COUNT_UNPLACED, out),
            *store_code(counts_fd, COUNT_ERRNO, R7, out), ja(out)]


def generate(kfuncs: Dict[str, int], xskmap_fd: Optional[int], struct_btf_id: int,
             match: Optional[Match] = None, sample: int = 1, counts_fd: Optional[int] = None,
             queues: Optional[List[int]] = None, transport: Transport = METADATA) -> List[Item]:
    """The program's instructions. `kfuncs`: {kfunc name: BTF id} to call (see
    usable_kfuncs); the others are recorded as -EOPNOTSUPP. `match` (default `ip`)
    selects the packets redirected, `sample` keeps one in N of those. `transport`
    places the struct; `counts_fd` (a per-CPU array of N_COUNTS) counts what it could
    not place.

    With no `xskmap_fd` it is the XDP_PASS variant (dump --pass, metadata transport
    only: the packet must reach the stack as it came): the matching packets of
    `queues` (None: all) get the metadata and go on to the stack, and
    counts[COUNT_MARKED] counts them."""
    match = match or Match()
    prog: List[Item] = [mov64_reg(R6, R1)]
    if xskmap_fd is None:
        if transport.modifies_frame:
            raise ValueError(f"the XDP_PASS variant cannot use the {transport.name} transport")
        prog += queue_code(queues)
    if not match.after_kfuncs:
        prog += match_code(match, "sample")
        prog += [Label("sample"), *sample_code(sample)]
    prog += kfunc_code(kfuncs)
    if match.after_kfuncs:
        prog += match_code(match, "sample")
        prog += [Label("sample"), *sample_code(sample)]
    # the XDP_PASS variant puts the RX queue in a word of its own in front of the
    # struct (the stack may not record it): PASS_PREFIX bytes the tcx program reads
    size = L.META_SIZE + (PASS_PREFIX if xskmap_fd is None else 0)
    prog += [Label("capture"), *transport.reserve(size, "unplaced", "misplaced")]
    if xskmap_fd is None:
        prog += [ldx_mem(4, R1, R6, MD_RX_QUEUE_INDEX), stx_mem(4, R2, R1, 0),
                 st_mem(4, R2, 4, 0), add64_imm(R2, PASS_PREFIX)]
    prog += write_struct(struct_btf_id, kfunc_mask(kfuncs))
    if xskmap_fd is None:
        prog += count_code(counts_fd, COUNT_MARKED, "pass") if counts_fd is not None else []
        prog.append(ja("pass"))
    else:
        prog += [ldx_mem(4, R2, R6, MD_RX_QUEUE_INDEX),
                 ld_map_fd(R1, xskmap_fd),
                 mov64_imm(R3, XDP_PASS),
                 call_helper(HELPER_REDIRECT_MAP)]
        if transport.modifies_frame:     # no socket on this queue: the frame as it came
            prog += [jmp_imm(JEQ, R0, XDP_REDIRECT, "redirected"), *transport.undo(size),
                     ja("pass"), Label("redirected")]
        prog.append(exit_())
    prog += [Label("misplaced"), *transport.undo(size), mov64_imm(R0, -errno.EFAULT),
             Label("unplaced"), *unplaced_code(counts_fd)]
    return prog + [Label("pass"), mov64_imm(R0, XDP_PASS), exit_()]


def write_struct(struct_btf_id: int, kfunc_bits: int, at: int = R2) -> List[Item]:
    """Copy the kfunc results (stack slots, return codes in r7-r9) into the hints
    struct at register `at`, its btf_id last. Clobbers r1."""
    off = L.OFFSET
    return [
        ldx_mem(8, R1, FP, SLOT_TS), stx_mem(8, at, R1, off["rx_timestamp"]),
        ldx_mem(8, R1, FP, SLOT_HASH), stx_mem(8, at, R1, off["rx_hash"]),        # + hash_type
        ldx_mem(4, R1, FP, SLOT_VLAN_PROTO), stx_mem(4, at, R1, off["rx_vlan_proto"]),  # + tci
        stx_mem(4, at, R7, off["rx_timestamp_ret"]),
        stx_mem(4, at, R8, off["rx_hash_ret"]),
        stx_mem(4, at, R9, off["rx_vlan_ret"]),
        st_mem(4, at, off["kfuncs"], kfunc_bits),
        st_mem(4, at, off["btf_id"], struct_btf_id),
    ]


def load(ifindex: int, kfuncs: Dict[str, int], xskmap_fd: Optional[int],
         name: str = "xdphints_dump", match: Optional[Match] = None, sample: int = 1,
         counts_fd: Optional[int] = None, queues: Optional[List[int]] = None,
         transport: Transport = METADATA):
    """Generate, then load dev-bound to `ifindex` with the program BTF (so bpftool and
    other tools see a btf_id). Returns (Program, ProgramBtf). No `xskmap_fd`: the
    XDP_PASS variant (see generate)."""
    return load_items(ifindex, lambda struct_id: generate(
        kfuncs, xskmap_fd, struct_id, match, sample, counts_fd, queues, transport), name)


def load_items(ifindex: int, make, name: str):
    """Load `make(struct_btf_id)`'s instructions dev-bound to `ifindex` with the
    program BTF (layout.build_btf). Returns (Program, ProgramBtf)."""
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.btf_object import load_btf
    from xdphints_cli.bpf.prog import Program

    from xdphints_cli.bpf.prog import VerifierError
    from xdphints_cli.errors import NotSupportedError

    pbtf = L.build_btf()
    with load_btf(pbtf.blob) as btf_fd:
        try:
            prog = Program.load(make(pbtf.struct_id), ifindex=ifindex,
                                flags=sc.BPF_F_XDP_DEV_BOUND_ONLY, name=name,
                                btf_fd=btf_fd.fd, func_info=[(0, pbtf.func_id)])
        except VerifierError as e:
            if "bpf_xdp_adjust_meta" not in (e.extack or ""):
                raise
            raise NotSupportedError(
                f"the metadata transport needs bpf_xdp_adjust_meta, which this kernel refuses in "
                f"XDP programs ({e.extack}): use --transport auto (the headroom; for --pass and "
                "verify, fingerprints)") from None
    return prog, pbtf
