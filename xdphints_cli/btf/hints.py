"""Finding and describing XDP hints structs (metadata layouts) in BTF."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..errors import BTFError, NotFoundError
from . import types as T
from . import wire
from .spec import Spec

HINTS_PREFIX = "xdp_hints"


def _is_btf_id_member(spec: Spec, m: T.Member) -> bool:
    if m.name != "btf_id" or m.bitfield_size:
        return False
    try:
        t = spec.resolve_type(m.type)
    except BTFError:
        return False
    return isinstance(t, T.Int) and t.size == 4 and t.bits == 32


def is_hints_struct(spec: Spec, t: T.Type) -> bool:
    """Named `xdp_hints*`, or a named struct whose last 4 bytes are a 32-bit integer
    `btf_id`: the convention that makes metadata self-describing, as those are the 4
    bytes right before the packet. A `btf_id` followed by tail padding (as in vmlinux's
    btf_field_kptr and bpf_iter_target_info) is not at the packet, so it does not count."""
    if not isinstance(t, T.Struct) or not t.name:
        return False
    if t.name.startswith(HINTS_PREFIX):
        return True
    if not t.members:
        return False
    last = t.members[-1]
    return _is_btf_id_member(spec, last) and last.bit_offset == (t.size - 4) * 8


def hints_structs(spec: Spec) -> List[T.Struct]:
    """Hints structs defined by `spec` itself (not its base), by id."""
    out = []
    for tid in spec.own_ids():
        if spec.kind_of(tid) == wire.KIND_STRUCT:
            t = spec[tid]
            if is_hints_struct(spec, t):
                out.append(t)  # type: ignore[arg-type]
    return out


class FieldRow(T.Frozen):
    """One member: its name, C type name, byte offset and size, bit offset and size, type id."""

    __slots__ = ("name", "type", "offset", "size", "bit_offset", "bit_size", "type_id")

    @property
    def is_bitfield(self) -> bool:
        return self.bit_size != self.size * 8 or self.bit_offset % 8 != 0

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.type, "type-id": self.type_id,
                "offset": self.offset, "size": self.size,
                "bit-offset": self.bit_offset, "bit-size": self.bit_size}


def describe(spec: Spec, type_id: int, flatten: bool = False) -> List[FieldRow]:
    """One row per member of a struct/union (offsets in bytes and in bits from the
    start of the outer type). Anonymous structs/unions are always expanded; with
    `flatten`, named nested ones too, as `outer.inner`."""
    t = spec.resolve_type(type_id)
    if not isinstance(t, T.Composite):
        raise NotFoundError(f"BTF type {type_id} is {t.kind_name}, not a struct/union")
    rows: List[FieldRow] = []
    _rows(spec, t, 0, "", flatten, rows, 0)
    return rows


def _rows(spec: Spec, t: T.Composite, base_bits: int, prefix: str, flatten: bool,
          rows: List[FieldRow], depth: int) -> None:
    if depth > wire.MAX_NESTING:
        raise BTFError(f"type {t.id}: nesting too deep or cyclic")
    for m in t.members:
        bits = base_bits + m.bit_offset
        inner = spec.resolve_type(m.type)
        if not m.name and isinstance(inner, T.Composite) and not m.bitfield_size:
            _rows(spec, inner, bits, prefix, flatten, rows, depth + 1)
            continue
        if not m.name:
            continue  # bitfield padding
        name = prefix + m.name
        if flatten and isinstance(inner, T.Composite) and not m.bitfield_size:
            _rows(spec, inner, bits, name + ".", flatten, rows, depth + 1)
            continue
        try:
            size = spec.size_of(m.type)
        except BTFError:
            size = 0
        rows.append(FieldRow(name, spec.type_name(m.type), bits // 8, size, bits,
                             m.bitfield_size or size * 8, m.type))


def find_hints_struct(spec: Spec, name: Optional[str] = None) -> T.Struct:
    """The hints struct called `name`, or the only one there is."""
    found = hints_structs(spec)
    if name is not None:
        for t in found:
            if t.name == name:
                return t
        raise NotFoundError(f"no hints struct '{name}'")
    if len(found) != 1:
        names = ", ".join(t.name for t in found) or "none"
        raise NotFoundError(f"expected one hints struct, found {len(found)}: {names}")
    return found[0]
