"""The tcx ingress program of `dump --pass` and `verify`: the stack's side.

The built-in XDP program's XDP_PASS variant (program.py) writes its hints struct in
front of the packets it matches (after a word with the RX queue:
PASS_PREFIX) and lets them go to the kernel stack. There, this
SCHED_CLS program, attached at tcx ingress with a BPF link, finds the struct through
`__sk_buff->data_meta` (a direct-packet-access pointer: the metadata area ends where
the packet begins); with the fingerprint transport (fingerprint.py), where there is
no metadata area, it looks the same bytes up in a map under the frame's fingerprint.
Either way it copies into a BPF ring buffer, as one record:

    struct xdphints_pass_record {       /* RECORD_HEADER bytes + the snap */
        __u32 len;                      /*  0  skb->len */
        __u32 caplen;                   /*  4  bytes of the packet in data[] */
        __u32 hash;                     /*  8  skb->hash (0: the stack has none) */
        __u32 queue_mapping;            /* 12  skb->queue_mapping (see pass_capture.StackView) */
        __u32 vlan_present;             /* 16  the skb carries a (stripped) tag */
        __u32 vlan_proto;               /* 20  __be16 in the low half */
        __u32 vlan_tci;                 /* 24 */
        __u32 rx_queue;                 /* 28  ctx->rx_queue_index in XDP */
        __u64 hwtstamp;                 /* 32  skb_hwtstamps(skb)->hwtstamp, 0: none */
        __u32 flags;                    /* 40  FLAG_L4_HASH, FLAG_L4_HASH_READ */
        __u32 pad;                      /* 44 */
        __u8  meta[META_SIZE];          /* 48  the XDP program's hints struct */
        __u8  data[];                   /* 88  the first caplen bytes (from the MAC header) */
    };

and lets the packet continue (TCX_NEXT), whatever happens. skb->l4_hash is not in
__sk_buff: when the kernel has bpf_cast_to_kern_ctx (6.3) and its BTF places the bit,
the program reads it through the kernel's struct sk_buff (FLAG_L4_HASH_READ says so). When the ring is full the
record is dropped and counts[COUNT_DROPPED] (per-CPU) says so: never the packet.
A packet without the hints struct (not matched, or another program's metadata) is
left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from xdphints_cli.bpf.insn import (
    AND, JEQ, JGT, JLE, JLT, JNE, OR, R0, R1, R2, R3, R4, R6, R7, R8, R9, RSH, Item, Label,
    add64_imm, alu64_imm, call_helper, call_kfunc, exit_, ja, jmp_imm, jmp_reg, ld_map_fd, ldx_mem, mov64_imm, mov64_reg, st_mem,
    stx_mem,
)
from xdphints_cli.hints import layout as L
from xdphints_cli.hints.program import COUNT_DROPPED, COUNT_RECORDS, PASS_PREFIX, count_code

HELPER_SKB_LOAD_BYTES = 26
HELPER_RINGBUF_RESERVE = 131
HELPER_RINGBUF_SUBMIT = 132
TCX_NEXT = -1
FUNC_NAME = "xdphints_tc"
RECORD_NAME = "xdphints_pass_record"

# struct __sk_buff (include/uapi/linux/bpf.h; checked with pahole on 6.18)
SKB_LEN, SKB_QUEUE_MAPPING, SKB_VLAN_PRESENT, SKB_VLAN_TCI, SKB_VLAN_PROTO = 0, 12, 20, 24, 28
SKB_HASH, SKB_DATA, SKB_DATA_META, SKB_HWTSTAMP = 68, 76, 140, 184

# (member, __sk_buff offset, size, record offset): the stack's view, copied as is
STACK_FIELDS = (
    ("len", SKB_LEN, 4, 0),
    ("hash", SKB_HASH, 4, 8),
    ("queue_mapping", SKB_QUEUE_MAPPING, 4, 12),
    ("vlan_present", SKB_VLAN_PRESENT, 4, 16),
    ("vlan_proto", SKB_VLAN_PROTO, 4, 20),
    ("vlan_tci", SKB_VLAN_TCI, 4, 24),
    ("hwtstamp", SKB_HWTSTAMP, 8, 32),
)
REC_CAPLEN, REC_RX_QUEUE, REC_FLAGS, REC_META = 4, 28, 40, 48
FLAG_L4_HASH, FLAG_L4_HASH_READ = 1, 2
RECORD_HEADER = REC_META + L.META_SIZE          # 88: data[] starts here
META_AREA = PASS_PREFIX + L.META_SIZE           # the XDP_PASS variant's metadata area
SLOT_KEY = -8


def record_size(snaplen: int) -> int:
    """Bytes reserved per record: the header and `snaplen` bytes, 8-byte aligned."""
    return (RECORD_HEADER + snaplen + 7) & ~7


@dataclass(frozen=True)
class L4HashBit:
    """Where skb->l4_hash is: bpf_cast_to_kern_ctx's BTF id, the bit's offset in
    struct sk_buff (bits, as BTF gives it: little-endian bit numbering)."""

    cast_kfunc: int
    bit_offset: int


def l4_hash_bit() -> Optional[L4HashBit]:
    """From the running kernel's BTF; None when it lacks the kfunc or the member."""
    from xdphints_cli.btf import types as T
    from xdphints_cli.btf.kfuncs import find_func_ids
    from xdphints_cli.btf.sources import kernel
    from xdphints_cli.errors import XdpHintsError

    try:
        kfunc = find_func_ids(["bpf_cast_to_kern_ctx"]).get("bpf_cast_to_kern_ctx")
        spec = kernel()
        skb = spec.find("sk_buff", "struct")
    except XdpHintsError:
        return None

    def walk(t, base: int, depth: int = 0) -> Optional[int]:
        for m in t.members:
            if m.name == "l4_hash" and m.bitfield_size == 1:
                return base + m.bit_offset
            inner = spec.resolve_type(m.type) if not m.name and depth < 4 else None
            if isinstance(inner, T.Composite):
                found = walk(inner, base + m.bit_offset, depth + 1)
                if found is not None:
                    return found
        return None

    bit = walk(skb, 0)
    return L4HashBit(kfunc, bit) if kfunc and bit is not None else None


def _l4_hash_code(l4: Optional[L4HashBit]) -> List[Item]:
    """record.flags from skb->l4_hash (r9 = the record); clobbers r0-r5."""
    if l4 is None:
        return [st_mem(8, R9, REC_FLAGS, 0)]
    return [mov64_reg(R1, R6), call_kfunc(l4.cast_kfunc),
            ldx_mem(1, R1, R0, l4.bit_offset // 8),
            alu64_imm(RSH, R1, l4.bit_offset % 8), alu64_imm(AND, R1, 1),
            alu64_imm(OR, R1, FLAG_L4_HASH_READ), stx_mem(8, R9, R1, REC_FLAGS)]


def generate(ringbuf_fd: int, counts_fd: int, struct_btf_id: int, snaplen: int,
             l4: Optional[L4HashBit] = None, fingerprints_fd: Optional[int] = None) -> List[Item]:
    """The program: see the module docstring. `snaplen` (1 or more) is fixed at load
    time: ring buffer reservations have a constant size. `l4`: where to read
    skb->l4_hash (None: not read). With `fingerprints_fd` (the fingerprint transport's
    map) a packet without the metadata area looks its record up there."""
    from xdphints_cli.hints import fingerprint

    if snaplen < 1:
        raise ValueError("snaplen must be 1 or more")
    nometa = "fingerprint" if fingerprints_fd is not None else "out"
    prog: List[Item] = [
        mov64_reg(R6, R1),
        ldx_mem(4, R7, R6, SKB_DATA_META),
        ldx_mem(4, R8, R6, SKB_DATA),
        mov64_reg(R0, R7), add64_imm(R0, META_AREA),
        jmp_reg(JGT, R0, R8, nometa),                      # gives the verifier the meta range
        jmp_reg(JNE, R0, R8, nometa),                      # exactly ours, nothing else
        ldx_mem(4, R1, R7, PASS_PREFIX + L.OFFSET["btf_id"]),
        jmp_imm(JNE, R1, struct_btf_id, nometa),
        # r7: the area (PASS_PREFIX, then the struct), in the packet or a copy on the stack
        Label("emit"),
        ld_map_fd(R1, ringbuf_fd), mov64_imm(R2, record_size(snaplen)), mov64_imm(R3, 0),
        call_helper(HELPER_RINGBUF_RESERVE),
        jmp_imm(JEQ, R0, 0, "dropped"),
        mov64_reg(R9, R0),
    ]
    for _name, skb_off, size, rec_off in STACK_FIELDS:
        prog += [ldx_mem(size, R1, R6, skb_off), stx_mem(size, R9, R1, rec_off)]
    # the metadata: META_SIZE is a multiple of 8 (layout.py)
    for off in range(0, L.META_SIZE, 8):
        prog += [ldx_mem(8, R1, R7, PASS_PREFIX + off), stx_mem(8, R9, R1, REC_META + off)]
    prog += [ldx_mem(4, R1, R7, 0), stx_mem(4, R9, R1, REC_RX_QUEUE)]
    prog += _l4_hash_code(l4)
    prog += [
        ldx_mem(4, R4, R6, SKB_LEN),
        jmp_imm(JLE, R4, snaplen, "snap_ok"),
        mov64_imm(R4, snaplen),
        Label("snap_ok"),
        st_mem(4, R9, REC_CAPLEN, 0),
        jmp_imm(JLT, R4, 1, "submit"),
        stx_mem(4, R9, R4, REC_CAPLEN),
        mov64_reg(R1, R6), mov64_imm(R2, 0),
        mov64_reg(R3, R9), add64_imm(R3, RECORD_HEADER),
        call_helper(HELPER_SKB_LOAD_BYTES),
        jmp_imm(JEQ, R0, 0, "submit"),
        st_mem(4, R9, REC_CAPLEN, 0),
        Label("submit"),
        mov64_reg(R1, R9), mov64_imm(R2, 0),
        call_helper(HELPER_RINGBUF_SUBMIT),
        *count_code(counts_fd, COUNT_RECORDS, "out", SLOT_KEY),
        ja("out"),
    ]
    if fingerprints_fd is not None:
        prog += [Label("fingerprint"),
                 *fingerprint.tc_lookup_code(fingerprints_fd, counts_fd, "emit", "out")]
    prog += [
        Label("dropped"),
        *count_code(counts_fd, COUNT_DROPPED, "out", SLOT_KEY),
        Label("out"),
        mov64_imm(R0, TCX_NEXT),
        exit_(),
    ]
    return prog


def build_btf(snaplen: int):
    """BTF for the program: `int xdphints_tc(struct __sk_buff *skb)` (func_info, so the
    loaded program has a btf_id) and the record struct, for whoever inspects it.
    Returns (blob, func_id)."""
    from xdphints_cli.btf import wire
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    u8 = b.add_int("unsigned char", 1)
    u32 = b.add_int("unsigned int", 4)
    u64 = b.add_int("unsigned long long", 8)
    s32 = b.add_int("int", 4, signed=True)
    members = [(name, u64 if size == 8 else u32, rec_off * 8)
               for name, _skb, size, rec_off in STACK_FIELDS]
    members.insert(1, ("caplen", u32, REC_CAPLEN * 8))
    members.insert(7, ("rx_queue", u32, REC_RX_QUEUE * 8))
    members += [("flags", u32, REC_FLAGS * 8), ("pad", u32, (REC_FLAGS + 4) * 8)]
    members.append(("meta", b.add_array(u8, u32, L.META_SIZE), REC_META * 8))
    members.append(("data", b.add_array(u8, u32, snaplen), RECORD_HEADER * 8))
    b.add_struct(RECORD_NAME, RECORD_HEADER + snaplen, members)
    ptr = b.add_ptr(b.add_fwd("__sk_buff"))
    proto = b.add_func_proto(s32, [("skb", ptr)])
    func_id = b.add_func(FUNC_NAME, proto, wire.LINKAGE_GLOBAL)
    return b.encode(), func_id


def load(ringbuf_fd: int, counts_fd: int, struct_btf_id: int, snaplen: int,
         name: str = "xdphints_pass", l4: Optional[L4HashBit] = None,
         fingerprints_fd: Optional[int] = None):
    """Load the program for tcx ingress, with its BTF. Returns the Program."""
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.btf_object import load_btf
    from xdphints_cli.bpf.prog import Program

    blob, func_id = build_btf(snaplen)
    with load_btf(blob) as btf_fd:
        return Program.load(generate(ringbuf_fd, counts_fd, struct_btf_id, snaplen, l4,
                                     fingerprints_fd),
                            prog_type=sc.BPF_PROG_TYPE_SCHED_CLS,
                            expected_attach_type=sc.BPF_TCX_INGRESS, name=name,
                            btf_fd=btf_fd.fd, func_info=[(0, func_id)])
