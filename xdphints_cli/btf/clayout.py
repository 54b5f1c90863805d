"""How a struct or union must be written in C for a C compiler to give it the layout
its BTF describes. Logic only: cformat.py writes the text.

BTF keeps offsets and sizes, not the attributes behind them: `____cacheline_aligned`,
`__packed`, a 1-byte enum, the hole a `:0` leaves. Written as its members alone, a
struct often compiles smaller or shifted (struct Qdisc: 264 bytes, not 384).

What must stay true:
- The first plan is what bpftool writes (libbpf's src/btf_dump.c:
  btf_is_struct_packed, btf_dump_emit_bit_padding): `__attribute__((packed))` when a
  member sits off its alignment or the size is no multiple of it, and unnamed
  bitfields (`long: 64;`, `int: 20;`, `long: 0;`) for every gap the compiler would not
  leave by itself. So our C reads like a vmlinux.h.
- Every plan is laid out here as gcc and clang lay out C on x86-64 and BPF (`_place`),
  and kept only if that gives every member its BTF offset and the type its BTF size.
  Where bpftool's plan does not (a union longer than its members, a member the
  compiler aligns further than bpftool's guess), the second plan is taken: packed,
  each gap padded bit for bit, a union's tail by `aligned(N)` or one unnamed bitfield.
  When neither fits (members out of order or overlapping: no C has that layout),
  `Plan.exact` is False and the renderer says so in the C.
- Alignments are those of the C as written, not guessed from BTF: a struct written
  packed aligns to 1, an enum written with `mode(byte)` to 1, `__int128` to 16.
- One plan per type, memoised; by-value nesting is bounded, and a type that holds
  itself by value (no C can) gets an inexact plan, never a loop.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple, Union

from ..errors import BTFError
from . import types as T
from . import wire
from .spec import Spec

# bpftool's padding types, widest first, with their size in bits (LP64).
_PADS = (("long", 64), ("int", 32), ("short", 16), ("char", 8))
_PAD_BITS = dict(_PADS)


class Pad(T.Frozen):
    """An unnamed bitfield `ctype: bits;` (bits 0: align to ctype)."""

    __slots__ = ("ctype", "bits")


Item = Union[T.Member, Pad]


class Plan(T.Frozen):
    """A composite as C: `items` (its members, with Pads between them) in order, the
    attributes after its closing brace, and the alignment that C has."""

    __slots__ = ("items", "packed", "aligned", "align", "exact")


def enum_mode(t: T.Enum) -> Optional[str]:
    """The `mode` attribute that gives enum `t` its BTF size in C (C makes an enum 4
    bytes, or 8 when a value needs 64 bits), as bpftool writes it for 1 and 8 bytes;
    None when none is needed. gcc and clang take HI for 2 bytes, which bpftool lacks."""
    if not t.values:
        return None
    if t.size == 1:
        return "byte"
    if t.size == 2:
        return "HI"
    if t.size == 8 and all(-(1 << 31) <= v.value < (1 << 32) for v in t.values):
        return "word"
    return None


def _roundup(x: int, n: int) -> int:
    return -(-x // n) * n


class Layouts:
    """Plans of the composites of one Spec, and sizes and alignments of its types as C."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self._plans: Dict[int, Plan] = {}
        self._busy: Set[int] = set()

    # -- sizes and alignments of types as written ------------------------------------

    def size_align(self, tid: int, depth: int = 0) -> Tuple[int, int]:
        """(sizeof, _Alignof) in bytes of type `tid` as our C writes it."""
        spec = self.spec
        mult = 1
        for _ in range(wire.MAX_NESTING):
            t = spec.resolve_type(tid)
            if isinstance(t, T.Array):
                mult *= t.nelems
                tid = t.type
                continue
            if isinstance(t, (T.Int, T.Enum, T.Float)):
                align = t.size if t.size in (1, 2, 4, 8, 16) else 4
                return mult * t.size, align
            if isinstance(t, T.Ptr):
                return mult * wire.POINTER_SIZE, wire.POINTER_SIZE
            if isinstance(t, T.Composite):
                return mult * t.size, self.plan(t, depth + 1).align
            raise BTFError(f"BTF type {t.id} ({t.kind_name} {t.name}) has no size in C")
        raise BTFError(f"array nesting too deep or cyclic at type {tid}")

    # -- plans ----------------------------------------------------------------------

    def plan(self, t: T.Composite, depth: int = 0) -> Plan:
        p = self._plans.get(t.id)
        if p is not None:
            return p
        if depth > wire.MAX_NESTING:
            raise BTFError(f"type {t.id}: struct nesting too deep")
        if t.id in self._busy:
            raise BTFError(f"{t.kind_name} {t.name or t.id} contains itself by value")
        self._busy.add(t.id)
        try:
            p = self._choose(t, depth)
        finally:
            self._busy.discard(t.id)
        self._plans[t.id] = p
        return p

    def _choose(self, t: T.Composite, depth: int) -> Plan:
        try:
            sa = [self.size_align(m.type, depth) for m in t.members]
        except BTFError:
            # a member C cannot hold by value (void, a function, a forward declaration)
            return Plan(tuple(t.members), False, 0, 1, False)
        union = t.kind == wire.KIND_UNION
        if union:
            first = _union_tail(t, Plan(tuple(t.members), False, 0, 1, True), sa)
        else:
            first = _like_bpftool(t, sa)
        first = _checked(t, first, sa)
        if first.exact:
            return first
        if union:
            second = _union_tail(t, Plan(tuple(t.members), True, 0, 1, True), sa)
        else:
            second = _exact(t, sa)
        if second is not None:
            second = _checked(t, second, sa)
            if second.exact:
                return second
        return first


def _like_bpftool(t: T.Composite, sa: List[Tuple[int, int]]) -> Plan:
    """A struct as bpftool writes it (btf_dump_emit_struct_def), with the alignments
    of the C as written."""
    max_align = max([a for _, a in sa], default=1)
    packed = t.size % max_align != 0 or any(
        not m.bitfield_size and m.bit_offset % (8 * a) for m, (_, a) in zip(t.members, sa))
    items: List[Item] = []
    off, prev_bitfield = 0, False
    for m, (size, align) in zip(t.members, sa):
        items += _padding(off, m.bit_offset, 1 if packed else align,
                          prev_bitfield and m.bitfield_size != 0)
        items.append(m)
        if m.bitfield_size:
            off, prev_bitfield = m.bit_offset + m.bitfield_size, True
        else:
            off, prev_bitfield = m.bit_offset + 8 * size, False
    items += _padding(off, 8 * t.size, 1 if packed else max_align, False)
    return Plan(tuple(items), packed, 0, 1, True)


def _exact(t: T.Composite, sa: List[Tuple[int, int]]) -> Optional[Plan]:
    """Packed, every gap filled with unnamed bitfields of exactly its width (in a packed
    struct they take their width and no alignment); None for members overlapping."""
    items: List[Item] = []
    off = 0
    for m, (size, _) in zip(t.members, sa):
        if m.bit_offset < off:
            return None
        items += _exact_padding(off, m.bit_offset)
        items.append(m)
        off = m.bit_offset + (m.bitfield_size or 8 * size)
    if off > 8 * t.size:
        return None
    return Plan(tuple(items + _exact_padding(off, 8 * t.size)), True, 0, 1, True)


def _union_tail(t: T.Composite, plan: Plan, sa: List[Tuple[int, int]]) -> Plan:
    """A union is as long as its longest member, rounded up to its alignment. Where the
    BTF size is more (a union declared aligned): `aligned(N)`, else an unnamed bitfield
    of that many bytes (it adds size, not alignment). bpftool writes neither."""
    try:
        _, end, align = _place(plan, sa, True)
    except BTFError:
        return plan
    if _bytes(end, align) >= t.size:
        return plan
    n = align * 2
    while n <= t.size:
        if _bytes(end, n) == t.size:
            return Plan(plan.items, plan.packed, n, n, True)
        n *= 2
    if t.size <= 8 and align == 1:
        return Plan(plan.items + (Pad("long", 8 * t.size),), plan.packed, 0, 1, True)
    return plan


def _checked(t: T.Composite, plan: Plan, sa: List[Tuple[int, int]]) -> Plan:
    """`plan` with the alignment its C has, and whether that C has the BTF layout."""
    try:
        offsets, end, align = _place(plan, sa, t.kind == wire.KIND_UNION)
    except BTFError:
        return Plan(plan.items, plan.packed, plan.aligned, 1, False)
    exact = _bytes(end, align) == t.size and offsets == [m.bit_offset for m in t.members]
    return Plan(plan.items, plan.packed, plan.aligned, align, exact)


def _place(plan: Plan, sa: List[Tuple[int, int]], union: bool) -> Tuple[List[int], int, int]:
    """(bit offset of each member, bits up to the end of the last, _Alignof) of `plan`
    as gcc and clang lay it out (the x86-64 psABI, which BPF follows); `sa` is
    (sizeof, _Alignof) of each member; its sizeof is _bytes(end, align).
    - a member aligns to its type (to 1 in a packed struct or union);
    - a bitfield starts where the last one ended unless it would then straddle a unit
      of its type's size (in a packed struct it never moves); `:0` moves to the next
      unit of its type, packed or not;
    - unnamed bitfields add size, never alignment;
    - a union is its longest member, rounded up to its alignment."""
    packed = plan.packed
    cur = longest = 0
    align = 1
    offsets: List[int] = []
    members = iter(sa)
    for it in plan.items:
        pad = isinstance(it, Pad)
        if pad:
            tsize = talign = _PAD_BITS[it.ctype] // 8
            bits, bitfield, named = it.bits, True, False
        else:
            tsize, talign = next(members)
            bits, bitfield, named = it.bitfield_size, bool(it.bitfield_size), bool(it.name)
        if bitfield:
            if bits > 8 * tsize:
                raise BTFError(f"a {bits}-bit bitfield of a {tsize}-byte type")
            if bits == 0:                               # `type: 0`
                cur = cur if union else _roundup(cur, 8 * talign)
                continue
            if named and not packed:
                align = max(align, talign)
            if not union and not packed and cur // (8 * tsize) != (cur + bits - 1) // (8 * tsize):
                cur = _roundup(cur, 8 * tsize)
        else:
            bits = 8 * tsize
            a = 1 if packed else talign
            align = max(align, a)
            if not union:
                cur = _roundup(cur, 8 * a)
        if not pad:
            offsets.append(0 if union else cur)
        if union:
            longest = max(longest, bits)
        else:
            cur += bits
    return offsets, max(cur, longest), max(align, plan.aligned)


def _bytes(end_bits: int, align: int) -> int:
    """sizeof: the bits laid out, rounded up to the alignment."""
    return _roundup(end_bits, 8 * align) // 8


def _padding(cur: int, nxt: int, next_align: int, in_bitfield: bool) -> List[Pad]:
    """bpftool's btf_dump_emit_bit_padding: the unnamed bitfields that take a struct
    from bit `cur` to bit `nxt`, where the next member aligns to `next_align` bytes,
    leaning on the compiler's own alignment where it gets there by itself."""
    if cur >= nxt:
        return []
    out: List[Pad] = []
    ctype, bits = _PADS[-1]
    new_off = _roundup(cur, 8)
    for ctype, bits in _PADS:
        new_off = _roundup(cur, bits)
        if new_off <= nxt:
            break
    if cur < new_off <= nxt:
        # an explicit `type: 0` where the compiler would not align there by itself,
        # or where a `type: N` would vanish into the hole it is meant to fill
        if in_bitfield or (new_off == nxt and _roundup(cur, 8 * next_align) != new_off) \
                or (new_off != nxt and nxt - new_off <= new_off - cur):
            out.append(Pad(ctype, new_off - cur if in_bitfield else 0))
        cur = new_off
    while cur != nxt:
        n = min(nxt - cur, bits)
        if n != bits:
            ctype = next(c for c, b in reversed(_PADS) if b >= n)
        out.append(Pad(ctype, n))
        cur += n
    return out


def _exact_padding(cur: int, nxt: int) -> List[Pad]:
    out: List[Pad] = []
    while cur < nxt:
        n = min(nxt - cur, 64)
        out.append(Pad(next(c for c, b in reversed(_PADS) if b >= n), n))
        cur += n
    return out
