"""Decode bytes (per-packet metadata, map values) by their BTF type.

`decode` walks the type for every call: simple and obviously right. `compile_decoder`
turns one type into a single struct.Struct plus a generated function that builds the
dict from the unpacked tuple, for the ~1M packets/s path. Both give the same values:
ints (bool for BTF bools), enums as EnumInt (an int with .name), pointers as ints,
arrays of 1-byte ints as bytes, other arrays as lists, structs and unions as dicts with
anonymous members merged into their parent (as C lets you name them).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Optional, Set

from ..errors import BTFError
from . import types as T
from . import wire
from .spec import Spec, recursion_guard

Decoder = Callable[..., Any]

_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOAT_CODES = {2: "e", 4: "f", 8: "d"}
# Arrays of structs with more elements than this are decoded by the walker instead of
# being unrolled into the generated code.
_UNROLL_LIMIT = 64


class EnumInt(int):
    """An enum value that remembers its enumerator name (None if it has none)."""

    name: Optional[str] = None

    def __repr__(self) -> str:
        return f"{self.name}({int(self)})" if self.name else str(int(self))


def _enum_int(value: int, name: Optional[str]) -> EnumInt:
    e = EnumInt(value)
    e.name = name
    return e


def _sext(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def _short(spec_size: int, buf, offset: int) -> BTFError:
    return BTFError(f"buffer too short: need {spec_size} bytes at offset {offset}, "
                    f"have {len(buf)}")


# -- the walker -------------------------------------------------------------------------


@recursion_guard
def decode(spec: Spec, type_id: int, buf, offset: int = 0) -> Any:
    """Decode the value of type `type_id` found at `offset` in `buf`."""
    size = spec.size_of(type_id)
    mv = memoryview(buf).cast("B")
    if offset < 0 or offset + size > len(mv):
        raise _short(size, mv, offset)
    return _Walker(spec).value(type_id, mv, offset * 8, 0)


class _Walker:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.order = "little" if spec.byteorder == "<" else "big"
        self._enums: Dict[int, Dict[int, EnumInt]] = {}

    def _uint(self, mv, byte_off: int, size: int) -> int:
        self._need(mv, byte_off, size)
        return int.from_bytes(mv[byte_off:byte_off + size], self.order)

    @staticmethod
    def _need(mv, byte_off: int, size: int) -> None:
        # Member offsets in hostile BTF can point past the type's own size.
        if byte_off < 0 or byte_off + size > len(mv):
            raise BTFError(f"BTF field at byte {byte_off} (+{size}) lies outside the "
                           f"{len(mv)}-byte buffer")

    def value(self, tid: int, mv, bit_off: int, depth: int) -> Any:
        if depth > wire.MAX_NESTING:
            raise BTFError(f"type {tid}: nesting too deep or cyclic")
        spec = self.spec
        t = spec.resolve_type(tid)
        off = bit_off // 8
        if isinstance(t, T.Int):
            raw = self._uint(mv, off, t.size)
            if t.bits != t.size * 8 or t.bit_offset:
                raw = (raw >> t.bit_offset) & ((1 << t.bits) - 1)
            if t.is_bool:
                return bool(raw)
            return _sext(raw, t.bits) if t.is_signed else raw
        if isinstance(t, T.Enum):
            raw = self._uint(mv, off, t.size)
            if t.signed:
                raw = _sext(raw, t.size * 8)
            return self.enum_map(t).get(raw, raw)
        if isinstance(t, T.Ptr):
            return self._uint(mv, off, wire.POINTER_SIZE)
        if isinstance(t, T.Float):
            code = _FLOAT_CODES.get(t.size)
            self._need(mv, off, t.size)
            if code is None:
                return bytes(mv[off:off + t.size])
            return struct.unpack_from(self.spec.byteorder + code, mv, off)[0]
        if isinstance(t, T.Array):
            esz = spec.size_of(t.type)
            elem = spec.resolve_type(t.type)
            self._need(mv, off, esz * t.nelems)
            if isinstance(elem, T.Int) and elem.size == 1 and not elem.is_bool:
                return bytes(mv[off:off + t.nelems])
            if esz == 0 and t.nelems > len(mv):
                raise BTFError(f"array {t.id}: {t.nelems} elements of size 0")
            return [self.value(t.type, mv, bit_off + i * esz * 8, depth + 1)
                    for i in range(t.nelems)]
        if isinstance(t, T.Composite):
            out: Dict[str, Any] = {}
            self.members(t, mv, bit_off, out, depth + 1)
            return out
        raise BTFError(f"cannot decode BTF {t.kind_name} {t.name or t.id}")

    def members(self, t: T.Composite, mv, bit_off: int, out: Dict[str, Any],
                depth: int) -> None:
        if depth > wire.MAX_NESTING:
            raise BTFError(f"type {t.id}: nesting too deep or cyclic")
        for m in t.members:
            pos = bit_off + m.bit_offset
            if m.bitfield_size:
                if not m.name:
                    continue  # padding
                out[m.name] = self.bitfield(m, mv, pos)
            elif not m.name:
                inner = self.spec.resolve_type(m.type)
                if isinstance(inner, T.Composite):
                    self.members(inner, mv, pos, out, depth + 1)
            else:
                if pos % 8:
                    raise BTFError(f"member {m.name} of {t.name or t.id} is not "
                                   f"byte-aligned and not a bitfield")
                out[m.name] = self.value(m.type, mv, pos, depth + 1)

    def bitfield(self, m: T.Member, mv, pos: int) -> Any:
        n = m.bitfield_size
        first, last = pos // 8, (pos + n - 1) // 8
        self._need(mv, first, last + 1 - first)
        raw = int.from_bytes(mv[first:last + 1], "little")
        x = (raw >> (pos % 8)) & ((1 << n) - 1)
        t = self.spec.resolve_type(m.type)
        if isinstance(t, T.Int):
            if t.is_bool:
                return bool(x)
            return _sext(x, n) if t.is_signed else x
        if isinstance(t, T.Enum):
            if t.signed:
                x = _sext(x, n)
            return self.enum_map(t).get(x, x)
        return x

    def enum_map(self, t: T.Enum) -> Dict[int, EnumInt]:
        m = self._enums.get(t.id)
        if m is None:
            m = {}
            for v in t.values:
                m.setdefault(v.value, _enum_int(v.value, v.name))
            self._enums[t.id] = m
        return m


# -- the compiler -----------------------------------------------------------------------


class _Compiler:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.walker = _Walker(spec)
        self.fmt: List[str] = []
        self.pos = 0  # bytes covered by the format so far
        self.nvals = 0  # values the format unpacks so far
        self.ns: Dict[str, Any] = {"_sext": _sext, "_ib": int.from_bytes, "_bool": bool}
        self.active: Set[int] = set()
        # Unrolled struct-array elements left before falling back to the walker, so
        # nested arrays of structs cannot blow up the generated code.
        self.budget = 4096

    def slot(self, off: int, code: str, size: int, nvals: int = 1) -> Optional[int]:
        """Append a field at byte `off`; None if that would go backwards (overlap)."""
        if off < self.pos:
            return None
        if off > self.pos:
            self.fmt.append(f"{off - self.pos}x")
        self.fmt.append(code)
        self.pos = off + size
        idx = self.nvals
        self.nvals += nvals
        return idx

    def name(self, prefix: str, obj: Any) -> str:
        key = f"_{prefix}{len(self.ns)}"
        self.ns[key] = obj
        return key

    def slow(self, tid: int, off: int) -> str:
        """Fallback: let the walker decode this part straight from the buffer."""
        w = self.name("w", self.walker)
        return f"{w}.value({tid}, _mv, (offset + {off}) * 8, 0)"

    def expr(self, tid: int, off: int, depth: int) -> str:
        if depth > wire.MAX_NESTING:
            raise BTFError(f"type {tid}: nesting too deep or cyclic")
        spec = self.spec
        t = spec.resolve_type(tid)
        if isinstance(t, T.Int):
            if t.bit_offset or t.bits != t.size * 8:
                return self.slow(tid, off)
            if t.size == 16:
                i = self.slot(off, "2Q", 16, 2)
                if i is None:
                    return self.slow(tid, off)
                lo, hi = (i, i + 1) if spec.byteorder == "<" else (i + 1, i)
                e = f"(v[{lo}] | v[{hi}] << 64)"
                return f"_sext({e}, 128)" if t.is_signed else e
            code = _INT_CODES[t.size]
            i = self.slot(off, code if t.is_signed and not t.is_bool else code.upper(),
                          t.size)
            if i is None:
                return self.slow(tid, off)
            return f"_bool(v[{i}])" if t.is_bool else f"v[{i}]"
        if isinstance(t, T.Enum):
            code = _INT_CODES[t.size]
            i = self.slot(off, code if t.signed else code.upper(), t.size)
            if i is None:
                return self.slow(tid, off)
            e = self.name("e", self.walker.enum_map(t))
            return f"{e}.get(v[{i}], v[{i}])"
        if isinstance(t, T.Ptr):
            i = self.slot(off, "Q", 8)
            return self.slow(tid, off) if i is None else f"v[{i}]"
        if isinstance(t, T.Float):
            code = _FLOAT_CODES.get(t.size)
            i = self.slot(off, code, t.size) if code else None
            return self.slow(tid, off) if i is None else f"v[{i}]"
        if isinstance(t, T.Array):
            return self.array(t, off, depth)
        if isinstance(t, T.Struct):
            if t.id in self.active:
                raise BTFError(f"struct {t.name or t.id} contains itself")
            self.active.add(t.id)
            try:
                return "{" + ", ".join(self.entries(t, off, depth + 1)) + "}"
            finally:
                self.active.discard(t.id)
        if isinstance(t, T.Union):
            # Members overlap, which one format cannot express: take the union's bytes
            # as one field and decode every member from that with its own decoder.
            i = self.slot(off, f"{t.size}s", t.size)
            if i is None:
                return self.slow(tid, off)
            if t.id in self.active:
                raise BTFError(f"union {t.name or t.id} contains itself")
            parts = []
            for m in t.members:
                if m.bitfield_size or m.bit_offset % 8:
                    if not m.name:
                        continue
                    w = self.name("w", self.walker)
                    mm = self.name("m", m)
                    parts.append(f"{m.name!r}: {w}.bitfield({mm}, _memoryview(v[{i}]), "
                                 f"{m.bit_offset})")
                    continue
                inner = spec.resolve_type(m.type)
                if not m.name and not isinstance(inner, T.Composite):
                    continue
                sub = _compile(spec, m.type, self.active | {t.id}, depth + 1)
                d = self.name("d", sub)
                call = f"{d}(v[{i}], {m.bit_offset // 8})"
                parts.append(f"{m.name!r}: {call}" if m.name else f"**{call}")
            return "{" + ", ".join(parts) + "}"
        raise BTFError(f"cannot decode BTF {t.kind_name} {t.name or t.id}")

    def array(self, t: T.Array, off: int, depth: int) -> str:
        spec = self.spec
        n = t.nelems
        elem = spec.resolve_type(t.type)
        esz = spec.size_of(t.type)
        if n == 0 or esz == 0:
            isbytes = isinstance(elem, T.Int) and elem.size == 1 and not elem.is_bool
            return "b''" if isbytes else ("[]" if n == 0 else self.slow(t.id, off))
        if isinstance(elem, T.Int) and not elem.bit_offset and elem.bits == elem.size * 8 \
                and elem.size in _INT_CODES:
            if elem.size == 1 and not elem.is_bool:
                i = self.slot(off, f"{n}s", n)
                return self.slow(t.id, off) if i is None else f"v[{i}]"
            code = _INT_CODES[elem.size]
            if not elem.is_signed or elem.is_bool:
                code = code.upper()
            i = self.slot(off, f"{n}{code}", n * esz, n)
            if i is None:
                return self.slow(t.id, off)
            if elem.is_bool:
                return f"[_bool(x) for x in v[{i}:{i + n}]]"
            return f"list(v[{i}:{i + n}])"
        if n > _UNROLL_LIMIT or n > self.budget:
            return self.slow(t.id, off)
        self.budget -= n
        return "[" + ", ".join(self.expr(t.type, off + k * esz, depth + 1)
                               for k in range(n)) + "]"

    def entries(self, t: T.Composite, off: int, depth: int) -> List[str]:
        if depth > wire.MAX_NESTING:
            raise BTFError(f"type {t.id}: nesting too deep or cyclic")
        out: List[str] = []
        units = self.storage_units(t)
        unit_slot: Dict[int, Optional[int]] = {}
        for m in t.members:
            if m.bitfield_size:
                if not m.name:
                    continue
                out.append(f"{m.name!r}: {self.bitfield(t, m, off, units, unit_slot)}")
            elif not m.name:
                inner = self.spec.resolve_type(m.type)
                if isinstance(inner, T.Struct) and not m.bit_offset % 8:
                    if inner.id in self.active:
                        raise BTFError(f"struct {inner.id} contains itself")
                    self.active.add(inner.id)
                    out.extend(self.entries(inner, off + m.bit_offset // 8, depth + 1))
                    self.active.discard(inner.id)
                elif isinstance(inner, T.Composite):
                    out.append(f"**{self.expr(m.type, off + m.bit_offset // 8, depth + 1)}")
            elif m.bit_offset % 8:
                raise BTFError(f"member {m.name} of {t.name or t.id} is not "
                               f"byte-aligned and not a bitfield")
            else:
                out.append(f"{m.name!r}: {self.expr(m.type, off + m.bit_offset // 8, depth)}")
        return out

    @staticmethod
    def storage_units(t: T.Composite) -> List[List[int]]:
        """Byte ranges [start, end) holding bitfields, overlapping ones merged."""
        rngs = sorted((m.bit_offset // 8, (m.bit_offset + m.bitfield_size - 1) // 8 + 1)
                      for m in t.members if m.bitfield_size)
        units: List[List[int]] = []
        for a, b in rngs:
            if units and a < units[-1][1]:
                units[-1][1] = max(units[-1][1], b)
            else:
                units.append([a, b])
        return units

    def bitfield(self, t: T.Composite, m: T.Member, off: int, units: List[List[int]],
                 unit_slot: Dict[int, Optional[int]]) -> str:
        first = m.bit_offset // 8
        k = next(n for n, (a, b) in enumerate(units) if a <= first < b)
        a, b = units[k]
        if k not in unit_slot:
            size = b - a
            code = {1: "B", 2: "H", 4: "I", 8: "Q"}.get(size, f"{size}s")
            if self.spec.byteorder != "<" and size > 1:
                code = f"{size}s"  # bitfields are numbered from the LSB of LE storage
            unit_slot[k] = self.slot(off + a, code, size)
        i = unit_slot[k]
        if i is None:
            w = self.name("w", self.walker)
            src = f"{w}.bitfield({self.name('m', m)}, _mv, (offset + {off}) * 8 " \
                  f"+ {m.bit_offset})"
            return src
        raw = f"_ib(v[{i}], 'little')" if self._is_bytes_unit(b - a) else f"v[{i}]"
        shift = m.bit_offset - a * 8
        x = f"((({raw}) >> {shift}) & {(1 << m.bitfield_size) - 1})"
        bt = self.spec.resolve_type(m.type)
        if isinstance(bt, T.Int):
            if bt.is_bool:
                return f"_bool({x})"
            return f"_sext({x}, {m.bitfield_size})" if bt.is_signed else x
        if isinstance(bt, T.Enum):
            e = self.name("e", self.walker.enum_map(bt))
            if bt.signed:
                x = f"_sext({x}, {m.bitfield_size})"
            return f"{e}.get({x}, {x})"
        return x

    def _is_bytes_unit(self, size: int) -> bool:
        return size not in (1, 2, 4, 8) or (self.spec.byteorder != "<" and size > 1)


@recursion_guard
def compile_decoder(spec: Spec, type_id: int) -> Decoder:
    """A function `f(buf, offset=0)` equivalent to `decode(spec, type_id, buf, offset)`,
    doing one struct.unpack_from and one dict build per call."""
    return _compile(spec, type_id, set(), 0)


def _compile(spec: Spec, type_id: int, active: Set[int], depth: int) -> Decoder:
    if depth > wire.MAX_NESTING:
        raise BTFError(f"type {type_id}: nesting too deep or cyclic")
    size = spec.size_of(type_id)
    c = _Compiler(spec)
    c.active = set(active)
    body = c.expr(type_id, 0, depth)
    if size > c.pos:
        c.fmt.append(f"{size - c.pos}x")  # the whole type must be in the buffer
    fmt = struct.Struct(spec.byteorder + "".join(c.fmt))
    c.ns.update(_unpack=fmt.unpack_from, _struct_error=struct.error, _short=_short,
                _size=size, _memoryview=memoryview)
    needs_mv = "_mv" in body
    src = [
        "def _decode(buf, offset=0):",
        "    try:",
        "        v = _unpack(buf, offset)",
        "    except _struct_error:",
        "        raise _short(_size, buf, offset) from None",
    ]
    if needs_mv:
        src.append("    _mv = _memoryview(buf).cast('B')")
    src.append(f"    return {body}")
    code = "\n".join(src)
    try:
        exec(compile(code, f"<btf decoder for type {type_id}>", "exec"), c.ns)
    except (SyntaxError, RecursionError, MemoryError) as e:
        raise BTFError(f"type {type_id}: cannot compile decoder: {e}") from None
    fn = c.ns["_decode"]
    fn.format = fmt  # for tests and the curious
    fn.source = code
    return fn
