"""Kernel functions (kfuncs) in BTF: a fast id lookup and a full listing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from ..errors import BTFError, NotFoundError
from . import types as T
from . import wire
from .spec import Spec

XDP_METADATA_KFUNCS = (
    "bpf_xdp_metadata_rx_timestamp",
    "bpf_xdp_metadata_rx_hash",
    "bpf_xdp_metadata_rx_vlan_tag",
)
KFUNC_TAG = "bpf_kfunc"


def find_func_ids(names: Iterable[str], blob: Optional[bytes] = None) -> Dict[str, int]:
    """BTF ids of the FUNCs called `names` in vmlinux BTF, without building a Spec.

    Finds each name in the string section with bytes.find, then walks the type
    section as u32 words, comparing only name offsets. Names not found are left out.
    """
    if blob is None:
        from .sources import kernel_blob

        blob = kernel_blob()
    if len(blob) < wire.HEADER_LEN or blob[:2] != b"\x9f\xeb":
        raise BTFError("not little-endian raw BTF")
    _, version, _, hdr_len, type_off, type_len, str_off, str_len = wire.HEADER.unpack_from(
        blob, 0)
    if version != wire.VERSION or hdr_len < wire.HEADER_LEN or \
            hdr_len + max(type_off + type_len, str_off + str_len) > len(blob) or \
            (hdr_len + type_off) % 4 or type_len % 4:
        raise BTFError("bad BTF header")
    strs_start = hdr_len + str_off
    strs_end = strs_start + str_len
    wanted: Dict[int, str] = {}
    for name in names:
        needle = b"\0" + name.encode() + b"\0"
        pos = blob.find(needle, strs_start, strs_end)
        while pos >= 0:
            wanted[pos + 1 - strs_start] = name
            pos = blob.find(needle, pos + 1, strs_end)
    if not wanted:
        return {}
    mv = memoryview(blob)[hdr_len + type_off:hdr_len + type_off + type_len]
    if sys.byteorder != "little":
        raise BTFError("fast kfunc lookup needs a little-endian host")
    w = mv.cast("I")
    n = len(w)
    fixed, per = wire.FIXED_BY_KIND, wire.PER_VLEN_BY_KIND
    func_kind = wire.KIND_FUNC
    found: Dict[str, int] = {}
    i = 0
    tid = 1
    left = len(set(wanted.values()))
    while i < n - 2:
        info = w[i + 1]
        k = (info >> 24) & 0x1F
        if w[i] in wanted and k == func_kind:
            name = wanted[w[i]]
            if name not in found:
                found[name] = tid
                left -= 1
                if not left:
                    break
        step = fixed[k] + per[k] * (info & 0xFFFF)
        if not step:
            raise BTFError(f"BTF type {tid} has unknown kind {k}")
        i += step
        tid += 1
    return found


def xdp_metadata_kfunc_ids(blob: Optional[bytes] = None) -> Dict[str, int]:
    """{kfunc name: BTF id} for the XDP RX metadata kfuncs this kernel has."""
    return find_func_ids(XDP_METADATA_KFUNCS, blob)


@dataclass(frozen=True)
class Kfunc:
    id: int
    name: str
    prototype: str

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "prototype": self.prototype}


def list_kfuncs(spec: Spec, prefix: str = "") -> List[Kfunc]:
    """FUNCs tagged with DECL_TAG "bpf_kfunc", optionally only names with `prefix`,
    with their C prototypes; sorted by name."""
    from .cformat import func_prototype

    out: Dict[int, Kfunc] = {}
    for tid in spec.ids_by_name(KFUNC_TAG, wire.KIND_DECL_TAG):
        tag = spec[tid]
        if not isinstance(tag, T.DeclTag) or tag.component_idx != -1:
            continue
        if spec.kind_of(tag.type) != wire.KIND_FUNC:
            continue
        fname = spec.name_of(tag.type)
        if fname.startswith(prefix) and tag.type not in out:
            out[tag.type] = Kfunc(tag.type, fname, func_prototype(spec, tag.type))
    return sorted(out.values(), key=lambda k: (k.name, k.id))


def enum_values(spec: Spec, enum_name: str) -> Dict[str, int]:
    """{enumerator: value} of `enum enum_name` (ENUM or ENUM64)."""
    ids = spec.ids_by_name(enum_name, wire.KIND_ENUM) or \
        spec.ids_by_name(enum_name, wire.KIND_ENUM64)
    if not ids:
        raise NotFoundError(f"no enum {enum_name!r} in BTF")
    t = spec[ids[0]]
    return {v.name: v.value for v in t.values}  # type: ignore[attr-defined]


def xdp_rss_hash_types(spec: Optional[Spec] = None) -> Dict[str, int]:
    """`enum xdp_rss_hash_type` from kernel BTF: {'XDP_RSS_TYPE_L4_IPV4_UDP': 41, ...}."""
    if spec is None:
        from .sources import kernel

        spec = kernel()
    return enum_values(spec, "xdp_rss_hash_type")


def rss_hash_type_name(value: int, table: Dict[str, int]) -> str:
    """The exact enumerator for `value`, else its L3/L4 bits joined with '|'."""
    exact = [n for n, v in table.items() if v == value]
    if exact:
        # Several names can share a value; prefer the most specific (longest).
        return max(exact, key=len)
    by_bit: Dict[int, str] = {}
    for n, v in table.items():
        if v and v & (v - 1) == 0:
            by_bit.setdefault(v, n)  # first declared name of each bit (XDP_RSS_L3_IPV4)
    bits = [n for v, n in sorted(by_bit.items()) if value & v]
    rest = value & ~sum(v for v in by_bit if value & v)
    if rest:
        bits.append(hex(rest))
    return "|".join(bits) or str(value)


