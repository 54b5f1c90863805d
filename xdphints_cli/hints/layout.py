"""The metadata struct the built-in program writes in front of every packet, and the
BTF that describes it.

The writing side (program.py) takes member offsets from FIELDS; the reading side
never does: it reads the trailing `btf_id` and decodes through the program's BTF.

    struct xdp_hints_xdphints {          /* 40 bytes, 8-byte aligned */
        __u64  rx_timestamp;             /*  0 */
        __u32  rx_hash;                  /*  8 */
        __u32  rx_hash_type;             /* 12  enum xdp_rss_hash_type */
        __be16 rx_vlan_proto;            /* 16 */
        __u16  rx_vlan_tci;              /* 18 */
        __s32  rx_timestamp_ret;         /* 20  0 or -errno from the kfunc */
        __s32  rx_hash_ret;              /* 24 */
        __s32  rx_vlan_ret;              /* 28 */
        __u32  kfuncs;                   /* 32  kfuncs called: 1 ts, 2 hash, 4 vlan */
        __u32  btf_id;                   /* 36  this struct's BTF type id */
    };
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

STRUCT_NAME = "xdp_hints_xdphints"
FUNC_NAME = "xdphints_rx"
META_SIZE = 40

# (member, C type, offset); C types are the typedefs added below
FIELDS: Tuple[Tuple[str, str, int], ...] = (
    ("rx_timestamp", "__u64", 0),
    ("rx_hash", "__u32", 8),
    ("rx_hash_type", "__u32", 12),
    ("rx_vlan_proto", "__be16", 16),
    ("rx_vlan_tci", "__u16", 18),
    ("rx_timestamp_ret", "__s32", 20),
    ("rx_hash_ret", "__s32", 24),
    ("rx_vlan_ret", "__s32", 28),
    ("kfuncs", "__u32", 32),
    ("btf_id", "__u32", 36),
)
OFFSET: Dict[str, int] = {name: off for name, _t, off in FIELDS}

# netdev xdp-rx-metadata-features bits, which are also the `kfuncs` member's bits
KFUNC_TIMESTAMP, KFUNC_HASH, KFUNC_VLAN = 1, 2, 4
KFUNC_BITS = {"bpf_xdp_metadata_rx_timestamp": KFUNC_TIMESTAMP,
              "bpf_xdp_metadata_rx_hash": KFUNC_HASH,
              "bpf_xdp_metadata_rx_vlan_tag": KFUNC_VLAN}


@dataclass(frozen=True)
class ProgramBtf:
    blob: bytes
    struct_id: int   # goes into the metadata's btf_id
    func_id: int     # for func_info: gives the loaded program a btf_id


def build_btf() -> ProgramBtf:
    """Standalone BTF: integer typedefs, the hints struct, and
    `int xdphints_rx(struct xdp_md *ctx)` as FUNC for the program's func_info."""
    from xdphints_cli.btf import wire
    from xdphints_cli.btf.writer import Builder

    b = Builder()
    ints = {
        "__u64": b.add_int("unsigned long long", 8),
        "__u32": b.add_int("unsigned int", 4),
        "__s32": b.add_int("int", 4, signed=True),
        "__u16": b.add_int("unsigned short", 2),
    }
    tdefs = {name: b.add_typedef(name, tid) for name, tid in ints.items()}
    tdefs["__be16"] = b.add_typedef("__be16", tdefs["__u16"])
    struct_id = b.add_struct(STRUCT_NAME, META_SIZE,
                             [(name, tdefs[ctype], off * 8) for name, ctype, off in FIELDS])
    xdp_md = b.add_fwd("xdp_md")
    ptr = b.add_ptr(xdp_md)
    proto = b.add_func_proto(ints["__s32"], [("ctx", ptr)])
    func_id = b.add_func(FUNC_NAME, proto, wire.LINKAGE_GLOBAL)
    return ProgramBtf(b.encode(), struct_id, func_id)
