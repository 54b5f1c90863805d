"""The fingerprint transport of `dump --pass` and `verify`: the hints reach the kernel
stack's side without the XDP metadata area and without changing the packet.

XDP stores each matched frame's hints in an LRU hash map under the frame's
fingerprint; the tcx ingress program computes the same fingerprint from the skb, takes
the record out of the map and writes the usual ring record (pass_program.py). The
fingerprint is exact data, not a hash: the frame's length and its first KEY_BYTES
bytes, both counted without VLAN tags (XDP may see a tag in the frame that the NIC or
the stack moves into the skb before tc: leaving every tag out on both sides makes the
two agree, and keeps verify's rx-vlan comparison honest). For TCP and UDP the first
76 bytes hold the L4 checksum, which covers the whole payload.

What keeps a pairing from being wrong:
- every frame XDP sees, matched or not, of any queue, looks its fingerprint up first:
  a frame that finds a record still waiting (an identical frame in flight, or one the
  stack dropped) poisons it, and tc never pairs a poisoned record (COUNT_AMBIGUOUS);
  XDP counts the frame as COUNT_IDENTICAL;
- a record older than STALE_NS is not paired (COUNT_STALE): its frame was dropped;
- an skb that GRO merged (gso_segs > 1) is never looked up (COUNT_MERGED adds its
  segments): its bytes are no frame XDP saw;
- hints are written into a record only by the XDP run that created it.
Frames the stack dropped leave their records in the map until tc's stale check or
the LRU takes them; records_left() counts what is left when the capture ends.

    struct key   { __u32 len; __u8 bytes[KEY_BYTES]; }                        80 bytes
    struct value { __u32 rx_queue, zero;              /* PASS_PREFIX, as the metadata
                                                          variant's area */
                   __u8 meta[META_SIZE];              /* the hints struct */
                   __u64 time_ns; __u32 refs, poisoned; }                    64 bytes
"""

from __future__ import annotations

from typing import Dict, List, Optional

from xdphints_cli.bpf.insn import (
    FP, JEQ, JGT, JLT, JNE, R0, R1, R2, R3, R4, R6, R7, R8, SUB, XDP_PASS, Item, Label,
    add64_imm, alu64_reg, atomic_add, call_helper, exit_, ja, jmp_imm, jmp_reg, ld_map_fd,
    ldx_mem, mov64_imm, mov64_reg, st_mem, stx_mem,
)
from xdphints_cli.hints import layout as L
from xdphints_cli.hints.program import (
    COUNT_AMBIGUOUS, COUNT_IDENTICAL, COUNT_LOST, COUNT_MARKED, COUNT_MERGED, COUNT_STALE,
    PASS_PREFIX, Match, add_code, count_code, kfunc_code, match_code, queue_code,
    sample_code, write_struct,
)

HELPER_MAP_LOOKUP_ELEM, HELPER_MAP_UPDATE_ELEM, HELPER_MAP_DELETE_ELEM = 1, 2, 3
HELPER_KTIME_GET_NS = 5
HELPER_SKB_LOAD_BYTES = 26
HELPER_XDP_GET_BUFF_LEN, HELPER_XDP_LOAD_BYTES = 188, 189
BPF_NOEXIST = 1
KEY_BYTES = 76
KEY_SIZE = 4 + KEY_BYTES
MACS = 12
TAIL_BYTES = KEY_BYTES - MACS            # bytes after the MAC addresses in the key
V_TIME, V_REFS, V_POISONED = PASS_PREFIX + L.META_SIZE, PASS_PREFIX + L.META_SIZE + 8, \
    PASS_PREFIX + L.META_SIZE + 12
VALUE_SIZE = V_POISONED + 4
STALE_NS = 1_000_000_000
MAP_ENTRIES = 65536
VLAN_TPIDS_LE = (0x0081, 0xA888)         # 802.1Q, 802.1ad as a little-endian u16 load sees them
# stack: the key, and (tc) a copy of the record's value taken before it is deleted
KEY_SLOT = -112                          # [-112, -32): program.py's slots are above
VALUE_SLOT = -176                        # [-176, -112)
TMP_SLOT = -184                          # tc: a loaded ethertype
# struct __sk_buff (include/uapi/linux/bpf.h)
SKB_LEN, SKB_GSO_SEGS = 0, 164
# struct xdp_md
MD_DATA, MD_DATA_END, MD_RX_QUEUE_INDEX = 0, 4, 16


def create_map():
    """The LRU hash map of records, key -> value."""
    from xdphints_cli.bpf import syscall as sc
    from xdphints_cli.bpf.maps import Map

    return Map.create(sc.BPF_MAP_TYPE_LRU_HASH, KEY_SIZE, VALUE_SIZE, MAP_ENTRIES,
                      name="xdphints_fprint")


def records_left(m) -> int:
    """Records no tc run took: frames the stack dropped or merged, or still in flight."""
    return sum(1 for _ in m.keys())


def _zero_key() -> List[Item]:
    return [st_mem(8, FP, KEY_SLOT + i, 0) for i in range(0, KEY_SIZE, 8)]


def _tags(load_type, nokey: str) -> List[Item]:
    """r7 = offset of the ethertype after up to two VLAN tags in the frame (12, 16 or
    20). `load_type(offset)` loads the u16 at offset into r0 (or jumps to nokey)."""
    out: List[Item] = [mov64_imm(R7, MACS)]
    for depth, label in ((1, "fp_tag1"), (2, "fp_tag2")):
        out += [*load_type(MACS + 4 * (depth - 1)),
                jmp_imm(JEQ, R0, VLAN_TPIDS_LE[0], label),
                jmp_imm(JNE, R0, VLAN_TPIDS_LE[1], "fp_tags_done"),
                Label(label), mov64_imm(R7, MACS + 4 * depth)]
    return out + [Label("fp_tags_done")]


def _length_and_tail(load_tail) -> List[Item]:
    """With r8 = the frame's length and r7 = the offset after its tags: key.len =
    r8 - (r7 - 12); key.bytes[12..] = up to TAIL_BYTES bytes from r7 (load_tail(r0 =
    how many, 1..TAIL_BYTES))."""
    return [mov64_reg(R0, R8), alu64_reg(SUB, R0, R7),         # bytes after the tags
            mov64_reg(R1, R0), add64_imm(R1, MACS), stx_mem(4, FP, R1, KEY_SLOT),
            jmp_imm(JLT, R0, 1, "fp_keyed"),
            jmp_imm(JLT, R0, TAIL_BYTES + 1, "fp_tail_n"),
            mov64_imm(R0, TAIL_BYTES),
            Label("fp_tail_n"),
            *load_tail(),
            Label("fp_keyed")]


def xdp_key_code(nokey: str) -> List[Item]:
    """The key of the frame (r6 = xdp_md) at KEY_SLOT; frames shorter than an Ethernet
    header go to `nokey`. Clobbers r0-r5, r7, r8."""
    def load_type(off: int) -> List[Item]:
        return [ldx_mem(4, R2, R6, MD_DATA), ldx_mem(4, R3, R6, MD_DATA_END),
                mov64_reg(R4, R2), add64_imm(R4, off + 2), jmp_reg(JGT, R4, R3, nokey),
                ldx_mem(2, R0, R2, off)]

    def load_tail() -> List[Item]:
        return [mov64_reg(R4, R0), mov64_reg(R1, R6), mov64_reg(R2, R7),
                mov64_reg(R3, FP), add64_imm(R3, KEY_SLOT + 4 + MACS),
                call_helper(HELPER_XDP_LOAD_BYTES)]

    return [*_zero_key(),
            mov64_reg(R1, R6), call_helper(HELPER_XDP_GET_BUFF_LEN), mov64_reg(R8, R0),
            ldx_mem(4, R2, R6, MD_DATA), ldx_mem(4, R3, R6, MD_DATA_END),
            mov64_reg(R4, R2), add64_imm(R4, MACS + 2), jmp_reg(JGT, R4, R3, nokey),
            ldx_mem(4, R0, R2, 0), stx_mem(4, FP, R0, KEY_SLOT + 4),    # (stack stores
            ldx_mem(8, R0, R2, 4), stx_mem(8, FP, R0, KEY_SLOT + 8),    # are aligned)
            *_tags(load_type, nokey), *_length_and_tail(load_tail)]


def skb_key_code(nokey: str) -> List[Item]:
    """The key of the skb (r6 = __sk_buff, its data from the MAC header as at tc
    ingress) at KEY_SLOT. Clobbers r0-r5, r7, r8."""
    def load(off: int, to: int, n: int) -> List[Item]:
        return [mov64_reg(R1, R6), mov64_imm(R2, off), mov64_reg(R3, FP), add64_imm(R3, to),
                mov64_imm(R4, n), call_helper(HELPER_SKB_LOAD_BYTES)]

    def load_type(off: int) -> List[Item]:
        return [*load(off, TMP_SLOT, 2), jmp_imm(JNE, R0, 0, nokey),
                ldx_mem(2, R0, FP, TMP_SLOT)]

    def load_tail() -> List[Item]:      # r0 bytes from offset r7
        return [mov64_reg(R4, R0), mov64_reg(R1, R6), mov64_reg(R2, R7),
                mov64_reg(R3, FP), add64_imm(R3, KEY_SLOT + 4 + MACS),
                call_helper(HELPER_SKB_LOAD_BYTES)]

    return [*_zero_key(), st_mem(8, FP, TMP_SLOT, 0),
            ldx_mem(4, R8, R6, SKB_LEN),
            jmp_imm(JLT, R8, MACS + 2, nokey),
            *load(0, KEY_SLOT + 4, MACS), jmp_imm(JNE, R0, 0, nokey),
            *_tags(load_type, nokey), *_length_and_tail(load_tail)]


def _lookup(map_fd: int) -> List[Item]:
    return [ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, KEY_SLOT),
            call_helper(HELPER_MAP_LOOKUP_ELEM)]


def _delete(map_fd: int) -> List[Item]:
    return [ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, KEY_SLOT),
            call_helper(HELPER_MAP_DELETE_ELEM)]


def generate_xdp(kfuncs: Dict[str, int], map_fd: int, counts_fd: int, struct_btf_id: int,
                 match: Optional[Match] = None, sample: int = 1,
                 queues: Optional[List[int]] = None) -> List[Item]:
    """The XDP program of the fingerprint transport: every frame's key is looked up
    (a waiting record with it is poisoned); the matched frames of `queues` (None: all)
    get a record with their hints. Every frame goes on to the stack as it came."""
    from xdphints_cli.hints.program import kfunc_mask

    match = match or Match()
    prog: List[Item] = [mov64_reg(R6, R1), *xdp_key_code("pass"), *_lookup(map_fd),
                        jmp_imm(JNE, R0, 0, "found"), *queue_code(queues)]
    if not match.after_kfuncs:
        prog += [*match_code(match, "sample"), Label("sample"), *sample_code(sample)]
    prog += kfunc_code(kfuncs)
    if match.after_kfuncs:
        prog += [*match_code(match, "sample"), Label("sample"), *sample_code(sample)]
    prog += [
        Label("capture"),
        call_helper(HELPER_KTIME_GET_NS), stx_mem(8, FP, R0, VALUE_SLOT + V_TIME),
        ldx_mem(4, R1, R6, MD_RX_QUEUE_INDEX), stx_mem(4, FP, R1, VALUE_SLOT),
        st_mem(4, FP, VALUE_SLOT + 4, 0),
        st_mem(4, FP, VALUE_SLOT + V_REFS, 1), st_mem(4, FP, VALUE_SLOT + V_POISONED, 0),
        mov64_reg(R2, FP), add64_imm(R2, VALUE_SLOT + PASS_PREFIX),
        *write_struct(struct_btf_id, kfunc_mask(kfuncs)),
        ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, KEY_SLOT),
        mov64_reg(R3, FP), add64_imm(R3, VALUE_SLOT), mov64_imm(R4, BPF_NOEXIST),
        call_helper(HELPER_MAP_UPDATE_ELEM),
        jmp_imm(JEQ, R0, 0, "marked"),
        # an identical frame on another CPU stored its record first: poison it
        *_lookup(map_fd), jmp_imm(JNE, R0, 0, "found"),
        *count_code(counts_fd, COUNT_LOST, "pass"), ja("pass"),
        Label("marked"), *count_code(counts_fd, COUNT_MARKED, "pass"), ja("pass"),
        Label("found"),
        st_mem(4, R0, V_POISONED, 1), mov64_imm(R1, 1), atomic_add(4, R0, R1, V_REFS),
        *count_code(counts_fd, COUNT_IDENTICAL, "pass"),
        Label("pass"), mov64_imm(R0, XDP_PASS), exit_(),
    ]
    return prog


def tc_lookup_code(map_fd: int, counts_fd: int, emit: str, out: str) -> List[Item]:
    """The tcx program's fingerprint path (r6 = __sk_buff): a record for this skb is
    copied to VALUE_SLOT and taken out of the map, then on to `emit` with r7 pointing
    at the copy (laid out as the metadata area: PASS_PREFIX, then the struct); an skb
    with no record, a poisoned or stale one, or a GRO-merged skb goes to `out`,
    counted. Clobbers r0-r5, r7, r8."""
    copy = []
    for off in range(0, V_TIME, 8):
        copy += [ldx_mem(8, R1, R7, off), stx_mem(8, FP, R1, VALUE_SLOT + off)]
    return [
        ldx_mem(4, R8, R6, SKB_GSO_SEGS), jmp_imm(JGT, R8, 1, "fp_merged"),
        *skb_key_code(out), *_lookup(map_fd), jmp_imm(JEQ, R0, 0, out),
        mov64_reg(R7, R0),
        ldx_mem(4, R1, R7, V_POISONED), jmp_imm(JNE, R1, 0, "fp_poisoned"),
        call_helper(HELPER_KTIME_GET_NS), ldx_mem(8, R1, R7, V_TIME),
        alu64_reg(SUB, R0, R1), jmp_imm(JGT, R0, STALE_NS, "fp_stale"),
        *copy, *_delete(map_fd),
        mov64_reg(R7, FP), add64_imm(R7, VALUE_SLOT), ja(emit),
        Label("fp_poisoned"),
        mov64_imm(R8, -1), atomic_add(4, R7, R8, V_REFS, fetch=True),   # r8 = refs before
        *count_code(counts_fd, COUNT_AMBIGUOUS, out),
        jmp_imm(JGT, R8, 1, out), *_delete(map_fd), ja(out),
        Label("fp_stale"), *count_code(counts_fd, COUNT_STALE, out), *_delete(map_fd), ja(out),
        Label("fp_merged"), *add_code(counts_fd, COUNT_MERGED, R8, out), ja(out),
    ]


def counters_json(counts: List[int], left: Optional[int]) -> Dict[str, int]:
    """The fingerprint transport's counters, for the summary."""
    out = {"identical": counts[COUNT_IDENTICAL], "ambiguous": counts[COUNT_AMBIGUOUS],
           "merged": counts[COUNT_MERGED], "stale": counts[COUNT_STALE],
           "lost": counts[COUNT_LOST]}
    if left is not None:
        out["left"] = left
    return out

