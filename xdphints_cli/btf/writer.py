"""An append-only BTF builder, in the manner of libbpf's btf__add_*().

Each add_* checks its arguments, appends one record and returns the new type id.
Strings are deduplicated. References to ids not yet added are allowed (C types are
often recursive through pointers) and checked when encoding.
"""

from __future__ import annotations

import struct
from array import array
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union as _U

from ..errors import BTFError
from . import wire
from .spec import Spec

# Members as (name, type_id, bit_offset) or (name, type_id, bit_offset, bitfield_size).
MemberSpec = _U[Tuple[str, int, int], Tuple[str, int, int, int]]


class Builder:
    def __init__(self, base: Optional[Spec] = None):
        """With `base`, build split BTF whose ids and strings continue the base's."""
        self.base = base
        self._start_id = base.n_types if base is not None else 1
        self._str_start = base.str_end if base is not None else 0
        self._strs = bytearray(b"" if base is not None else b"\0")
        self._str_off: Dict[str, int] = {} if base is not None else {"": 0}
        self._words = array("I")
        self._kinds: List[int] = []
        self._refs: List[Tuple[int, int]] = []  # (from id, referenced id)

    @property
    def next_id(self) -> int:
        return self._start_id + len(self._kinds)

    # -- strings ---------------------------------------------------------------------

    def add_string(self, s: str) -> int:
        if not isinstance(s, str):
            raise BTFError(f"BTF name must be a string, not {type(s).__name__}")
        off = self._str_off.get(s)
        if off is not None:
            return off
        if "\0" in s:
            raise BTFError(f"BTF name '{s}' contains NUL")
        if self.base is not None and s == "":
            return 0
        off = self._str_start + len(self._strs)
        self._strs += s.encode("utf-8") + b"\0"
        self._str_off[s] = off
        return off

    # -- records ---------------------------------------------------------------------

    def _add(self, kind: int, name: str, vlen: int, kflag: bool, x: int,
             extra: Sequence[int] = ()) -> int:
        if not 0 <= vlen <= wire.MAX_VLEN:
            raise BTFError(f"too many members/values/params: {vlen}")
        if self.next_id >= wire.MAX_TYPES:
            raise BTFError("too many BTF types")
        tid = self.next_id
        for v in (x, *extra):
            if not 0 <= v <= 0xFFFFFFFF:
                raise BTFError(f"value {v} does not fit 32 bits (type {tid})")
        self._words.extend((self.add_string(name), wire.info(kind, vlen, kflag), x))
        self._words.extend(extra)
        self._kinds.append(kind)
        return tid

    def _ref(self, type_id: int, allow_void: bool = True) -> int:
        if not isinstance(type_id, int) or type_id < 0 or (type_id == 0 and not allow_void):
            raise BTFError(f"bad type id {type_id!r}")
        self._refs.append((self.next_id, type_id))
        return type_id

    @staticmethod
    def _ident(name: str, what: str) -> str:
        if not name:
            raise BTFError(f"{what} needs a name")
        return name

    def add_int(self, name: str, size: int, signed: bool = False, char: bool = False,
                bool_: bool = False, bits: Optional[int] = None, bit_offset: int = 0) -> int:
        self._ident(name, "INT")
        if size not in (1, 2, 4, 8, 16):
            raise BTFError(f"INT {name}: size must be 1, 2, 4, 8 or 16, not {size}")
        bits = size * 8 if bits is None else bits
        if not 0 < bits or bit_offset < 0 or bits + bit_offset > size * 8:
            raise BTFError(f"INT {name}: bad bits {bits}/offset {bit_offset}")
        enc = (wire.INT_SIGNED if signed else 0) | (wire.INT_CHAR if char else 0) | \
            (wire.INT_BOOL if bool_ else 0)
        return self._add(wire.KIND_INT, name, 0, False, size,
                         [(enc << 24) | (bit_offset << 16) | bits])

    def add_float(self, name: str, size: int) -> int:
        self._ident(name, "FLOAT")
        if size not in (2, 4, 8, 12, 16):
            raise BTFError(f"FLOAT {name}: bad size {size}")
        return self._add(wire.KIND_FLOAT, name, 0, False, size)

    def add_ptr(self, type_id: int) -> int:
        return self._add(wire.KIND_PTR, "", 0, False, self._ref(type_id))

    def add_array(self, elem_type: int, index_type: int, nelems: int) -> int:
        self._ref(elem_type, allow_void=False)
        self._ref(index_type, allow_void=False)
        if not 0 <= nelems <= 0xFFFFFFFF:
            raise BTFError(f"ARRAY: bad element count {nelems}")
        return self._add(wire.KIND_ARRAY, "", 0, False, 0, [elem_type, index_type, nelems])

    def _composite(self, kind: int, name: str, size: int,
                   members: Iterable[MemberSpec]) -> int:
        ms = [tuple(m) for m in members]
        if size < 0:
            raise BTFError(f"{name}: negative size")
        kflag = any(len(m) > 3 and m[3] for m in ms)
        extra: List[int] = []
        for m in ms:
            if len(m) not in (3, 4):
                raise BTFError(f"{name}: member must be (name, type, bit_offset[, bits])")
            mname, mtype, boff = m[0], m[1], m[2]
            bits = m[3] if len(m) > 3 else 0
            self._ref(mtype, allow_void=False)
            if boff < 0 or not 0 <= bits <= 255:
                raise BTFError(f"{name}.{mname}: bad bit offset {boff} or size {bits}")
            if kflag:
                if boff > 0xFFFFFF:
                    raise BTFError(f"{name}.{mname}: bitfield offset {boff} too large")
                off = (bits << 24) | boff
            else:
                off = boff
            if boff + max(bits, 0) > size * 8 and size:
                raise BTFError(f"{name}.{mname}: bit offset {boff} beyond size {size}")
            extra.extend((self.add_string(mname), mtype, off))
        return self._add(kind, name, len(ms), kflag, size, extra)

    def add_struct(self, name: str, size: int, members: Iterable[MemberSpec] = ()) -> int:
        return self._composite(wire.KIND_STRUCT, name, size, members)

    def add_union(self, name: str, size: int, members: Iterable[MemberSpec] = ()) -> int:
        return self._composite(wire.KIND_UNION, name, size, members)

    def add_enum(self, name: str, values: Iterable[Tuple[str, int]], size: int = 4,
                 signed: Optional[bool] = None) -> int:
        vals = list(values)
        if size not in (1, 2, 4, 8):
            raise BTFError(f"ENUM {name}: bad size {size}")
        if signed is None:
            signed = any(v < 0 for _, v in vals)
        extra: List[int] = []
        for vname, v in vals:
            self._ident(vname, "enumerator")
            if not -(1 << 31) <= v < (1 << 32):
                raise BTFError(f"ENUM {name}: value {v} of {vname} needs ENUM64")
            extra.extend((self.add_string(vname), v & 0xFFFFFFFF))
        return self._add(wire.KIND_ENUM, name, len(vals), signed, size, extra)

    def add_enum64(self, name: str, values: Iterable[Tuple[str, int]], size: int = 8,
                   signed: Optional[bool] = None) -> int:
        vals = list(values)
        if size not in (1, 2, 4, 8):
            raise BTFError(f"ENUM64 {name}: bad size {size}")
        if signed is None:
            signed = any(v < 0 for _, v in vals)
        extra: List[int] = []
        for vname, v in vals:
            self._ident(vname, "enumerator")
            if not -(1 << 63) <= v < (1 << 64):
                raise BTFError(f"ENUM64 {name}: value {v} of {vname} out of range")
            v &= (1 << 64) - 1
            extra.extend((self.add_string(vname), v & 0xFFFFFFFF, v >> 32))
        return self._add(wire.KIND_ENUM64, name, len(vals), signed, size, extra)

    def add_fwd(self, name: str, union: bool = False) -> int:
        self._ident(name, "FWD")
        return self._add(wire.KIND_FWD, name, 0, union, 0)

    def add_typedef(self, name: str, type_id: int) -> int:
        self._ident(name, "TYPEDEF")
        return self._add(wire.KIND_TYPEDEF, name, 0, False, self._ref(type_id))

    def add_volatile(self, type_id: int) -> int:
        return self._add(wire.KIND_VOLATILE, "", 0, False, self._ref(type_id))

    def add_const(self, type_id: int) -> int:
        return self._add(wire.KIND_CONST, "", 0, False, self._ref(type_id))

    def add_restrict(self, type_id: int) -> int:
        return self._add(wire.KIND_RESTRICT, "", 0, False, self._ref(type_id))

    def add_type_tag(self, value: str, type_id: int) -> int:
        self._ident(value, "TYPE_TAG")
        return self._add(wire.KIND_TYPE_TAG, value, 0, False, self._ref(type_id))

    def add_func_proto(self, return_type: int, params: Iterable[Tuple[str, int]] = (),
                       variadic: bool = False) -> int:
        ps = list(params)
        self._ref(return_type)
        extra: List[int] = []
        for pname, ptype in ps:
            self._ref(ptype, allow_void=False)
            extra.extend((self.add_string(pname), ptype))
        if variadic:
            extra.extend((0, 0))
        return self._add(wire.KIND_FUNC_PROTO, "", len(extra) // 2, False, return_type, extra)

    def add_func(self, name: str, proto_id: int, linkage: int = wire.LINKAGE_STATIC) -> int:
        self._ident(name, "FUNC")
        if linkage not in wire.FUNC_LINKAGE_NAMES:
            raise BTFError(f"FUNC {name}: bad linkage {linkage}")
        self._check_kind(proto_id, wire.KIND_FUNC_PROTO, f"FUNC {name}")
        return self._add(wire.KIND_FUNC, name, linkage, False, self._ref(proto_id, False))

    def add_var(self, name: str, type_id: int, linkage: int = wire.LINKAGE_GLOBAL) -> int:
        self._ident(name, "VAR")
        if linkage not in wire.VAR_LINKAGE_NAMES:
            raise BTFError(f"VAR {name}: bad linkage {linkage}")
        return self._add(wire.KIND_VAR, name, 0, False, self._ref(type_id, False), [linkage])

    def add_datasec(self, name: str, size: int,
                    vars: Iterable[Tuple[int, int, int]] = ()) -> int:
        """`vars`: (var type id, offset, size) triples."""
        self._ident(name, "DATASEC")
        extra: List[int] = []
        vs = list(vars)
        for vid, off, vsize in vs:
            self._check_kind(vid, wire.KIND_VAR, f"DATASEC {name}")
            if off < 0 or vsize < 0 or off + vsize > size:
                raise BTFError(f"DATASEC {name}: var {vid} at {off}+{vsize} beyond {size}")
            extra.extend((vid, off, vsize))
        return self._add(wire.KIND_DATASEC, name, len(vs), False, size, extra)

    def add_decl_tag(self, value: str, type_id: int, component_idx: int = -1) -> int:
        self._ident(value, "DECL_TAG")
        if component_idx < -1:
            raise BTFError(f"DECL_TAG {value}: bad component index {component_idx}")
        return self._add(wire.KIND_DECL_TAG, value, 0, False, self._ref(type_id, False),
                         [component_idx & 0xFFFFFFFF])

    def add_raw(self, kind: int, name: str = "", vlen: int = 0, kind_flag: bool = False,
                size_or_type: int = 0, extra: Sequence[int] = ()) -> int:
        """Append a record without checks (tests use it to build hostile BTF)."""
        tid = self.next_id
        self._words.extend((self.add_string(name), wire.info(kind, vlen, kind_flag),
                            size_or_type & 0xFFFFFFFF))
        self._words.extend(v & 0xFFFFFFFF for v in extra)
        self._kinds.append(kind)
        return tid

    def _check_kind(self, type_id: int, kind: int, what: str) -> None:
        k = self._kind(type_id)
        if k is not None and k != kind:
            raise BTFError(f"{what}: type {type_id} is {wire.KIND_NAMES.get(k, k)}, "
                           f"not {wire.KIND_NAMES[kind]}")

    def _kind(self, type_id: int) -> Optional[int]:
        if type_id < self._start_id:
            return self.base.kind_of(type_id) if self.base is not None else wire.KIND_UNKN
        n = type_id - self._start_id
        return self._kinds[n] if n < len(self._kinds) else None

    # -- output ----------------------------------------------------------------------

    def encode(self, byteorder: str = "<") -> bytes:
        """The BTF blob: header, type section, string section."""
        for src, ref in self._refs:
            if ref >= self.next_id:
                raise BTFError(f"type {src} refers to type {ref}, which was never added")
        words = array("I", self._words)
        if (byteorder == "<") != (struct.pack("=I", 1) == struct.pack("<I", 1)):
            words.byteswap()
        types = words.tobytes()
        strs = bytes(self._strs)
        hdr = struct.pack(byteorder + "HBBIIIII", wire.MAGIC, wire.VERSION, 0,
                          wire.HEADER_LEN, 0, len(types), len(types), len(strs))
        return hdr + types + strs

    def spec(self) -> Spec:
        from .reader import parse

        return parse(self.encode(), base=self.base)
