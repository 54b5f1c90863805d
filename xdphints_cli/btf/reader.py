"""Parse BTF bytes into a Spec, in stages like libbpf's btf.c.

1. header: magic (either byte order), version, section bounds;
2. string section: starts (unless split) and ends with NUL;
3. type section: one pass that finds where each record starts, checking that it fits;
4. validation: every type id and string offset in range, kind-specific rules;
5. layout, as the kernel's btf_resolve: sizes fit 32 bits, no member ends past its
   struct or union, nothing contains itself by value.

Nothing else may look at a record before stages 4 and 5 succeeded, so the Spec can
index without re-checking. Only BTFError ever leaves this module on bad input.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from typing import Dict, List, Optional, Tuple

from ..errors import BTFError
from . import wire
from .spec import Spec

def parse(blob: bytes, base: Optional[Spec] = None, kernel_verified: bool = False) -> Spec:
    """Parse raw BTF (as in /sys/kernel/btf/* or an ELF .BTF section).

    With `base`, the blob is split BTF: its type ids and string offsets continue the
    base's (a kernel module's BTF over vmlinux). `kernel_verified` is for the BTF in
    /sys/kernel/btf only: the kernel ran its own verifier over it when it loaded it,
    so the whole-blob validation pass (stage 4, most of vmlinux's parse time) is
    skipped; every lookup still range-checks the ids and string offsets it follows.
    """
    try:
        return _parse(blob, memoryview(blob).cast("B"), base, kernel_verified)
    except BTFError:
        raise
    except (ValueError, IndexError, OverflowError, TypeError, MemoryError) as e:
        # Defensive: a check above should have caught this, but hostile input must
        # never surface as anything but BTFError.
        raise BTFError(f"malformed BTF: {e}") from None


def _parse(blob, mv: memoryview, base: Optional[Spec], kernel_verified: bool) -> Spec:
    if len(mv) < wire.HEADER_LEN:
        raise BTFError(f"BTF too short for a header: {len(mv)} bytes")
    magic_le = mv[0] | (mv[1] << 8)
    if magic_le == wire.MAGIC:
        order = "<"
    elif magic_le == 0x9FEB:
        order = ">"
    else:
        raise BTFError(f"bad BTF magic 0x{magic_le:04x} (want 0x{wire.MAGIC:04x})")
    _, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + "HBBIIIII", mv, 0)
    if version != wire.VERSION:
        raise BTFError(f"unsupported BTF version {version}")
    if flags != 0:
        raise BTFError(f"unsupported BTF flags 0x{flags:x}")
    if hdr_len < wire.HEADER_LEN or hdr_len > len(mv):
        raise BTFError(f"bad BTF header length {hdr_len} (blob is {len(mv)} bytes)")
    # A longer header is fine if the extra bytes are zero (as libbpf accepts).
    if any(mv[wire.HEADER_LEN:hdr_len]):
        raise BTFError("unknown non-zero fields in BTF header")
    data_len = len(mv) - hdr_len
    if type_off + type_len > data_len or str_off + str_len > data_len:
        raise BTFError("BTF section extends past the end of the data")
    if type_off % 4:
        raise BTFError(f"BTF type section offset {type_off} is not 4-byte aligned")
    if type_len % 4:
        raise BTFError(f"BTF type section length {type_len} is not a multiple of 4")
    if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
        raise BTFError("BTF type and string sections overlap")

    str_pos = hdr_len + str_off
    _check_strings(mv[str_pos:str_pos + str_len], base)
    # The sections of bytes that cannot change (bytes, a read-only mapping: vmlinux BTF
    # is mapped, not read, see sources.py) are used where they are, not copied: a fresh
    # process pays for a copy of vmlinux's 5 MB in page faults. Words in the other
    # byte order or off a 4-byte boundary are copied all the same.
    in_place = isinstance(blob, (bytes, mmap.mmap))
    if in_place:
        strs = blob
    else:
        strs, str_pos = bytes(mv[str_pos:str_pos + str_len]), 0

    type_pos = hdr_len + type_off
    if in_place and (order == "<") == (sys.byteorder == "little") and type_pos % 4 == 0:
        words = mv[type_pos:type_pos + type_len].cast("I")
    else:
        words = array("I")
        words.frombytes(mv[type_pos:type_pos + type_len])
        if (order == "<") != (sys.byteorder == "little"):
            words.byteswap()

    start_id = base.n_types if base is not None else 1
    str_start = base.str_end if base is not None else 0
    offs, names = _index(words)
    name_words = names.tobytes()
    n_types = start_id + len(offs)
    if n_types > wire.MAX_TYPES:
        raise BTFError(f"too many BTF types: {n_types}")
    if not kernel_verified:
        _validate(words, offs, start_id, n_types, str_start, str_start + str_len, base)
        _Layout(words, offs, start_id, base).check()
    return Spec(words, offs, strs, start_id=start_id, str_start=str_start, base=base,
                byteorder=order, name_words=name_words, str_pos=str_pos, str_len=str_len)


def _check_strings(strs: memoryview, base: Optional[Spec]) -> None:
    if not strs:
        if base is None:
            raise BTFError("BTF string section is empty")
        return
    if base is None and strs[0] != 0:
        raise BTFError("BTF string section does not start with an empty string")
    if strs[-1] != 0:
        raise BTFError("BTF string section is not NUL-terminated")
    if len(strs) > wire.MAX_NAME_OFFSET:
        raise BTFError("BTF string section too large")


class _RecordWords(dict):
    """info word -> words in its record, filled as info words turn up (vmlinux has a
    few hundred distinct ones): the walk pays one dict lookup per record."""

    def __missing__(self, info: int) -> int:
        kind = (info >> 24) & 0x1F
        if not wire.FIXED_BY_KIND[kind]:
            raise BTFError(f"BTF type has unknown kind {kind}")
        n = self[info] = wire.FIXED_BY_KIND[kind] + wire.PER_VLEN_BY_KIND[kind] * (info & 0xFFFF)
        return n


def _index(w) -> Tuple[array, array]:
    """Offsets (in words) of every type record, checking each record fits, and each
    record's name offset (what a lookup by name searches: Spec.index)."""
    offs = array("I")
    append = offs.append
    words_of = _RecordWords().__getitem__
    n = len(w)
    i = 0
    try:
        while i < n:
            append(i)
            i += words_of(w[i + 1])
    except IndexError:          # a record's info word is past the end of the section
        raise BTFError(f"BTF type {len(offs)} truncated") from None
    if i != n:
        raise BTFError(f"BTF type {len(offs)} (vlen {w[offs[-1] + 1] & 0xFFFF}) extends past the type section")
    return offs, array("I", map(w.__getitem__, offs))


def _validate(w: array, offs: array, start_id: int, n_types: int, str_start: int,
              str_end: int, base: Optional[Spec]) -> None:
    """Check ids, string offsets and per-kind rules of every record.

    Names and referenced ids are gathered with slices (C speed) and range-checked in
    bulk; only on failure do we go back to find which type was at fault.
    """
    names: List[int] = []
    refs: List[int] = []
    funcs: List[int] = []
    tags: List[int] = []
    na = names.append
    ra = refs.append
    tid = start_id
    for i in offs:
        info = w[i + 1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        na(w[i])
        if kind == wire.KIND_STRUCT or kind == wire.KIND_UNION:
            j = i + 3 + 3 * vlen
            names.extend(w[i + 3:j:3])
            refs.extend(w[i + 4:j:3])
        elif kind == wire.KIND_FUNC_PROTO:
            j = i + 3 + 2 * vlen
            ra(w[i + 2])
            names.extend(w[i + 3:j:2])
            refs.extend(w[i + 4:j:2])
        elif kind in wire.REF_KINDS:
            ra(w[i + 2])
            if kind == wire.KIND_FUNC:
                funcs.append(tid)
                if vlen > wire.LINKAGE_EXTERN:
                    raise BTFError(f"BTF FUNC {tid} has bad linkage {vlen}")
            elif kind == wire.KIND_DECL_TAG:
                tags.append(tid)
        elif kind == wire.KIND_ENUM:
            names.extend(w[i + 3:i + 3 + 2 * vlen:2])
            if w[i + 2] not in (1, 2, 4, 8):
                raise BTFError(f"BTF ENUM {tid} has bad size {w[i + 2]}")
        elif kind == wire.KIND_ENUM64:
            names.extend(w[i + 3:i + 3 + 3 * vlen:3])
            if w[i + 2] not in (1, 2, 4, 8):
                raise BTFError(f"BTF ENUM64 {tid} has bad size {w[i + 2]}")
        elif kind == wire.KIND_ARRAY:
            ra(w[i + 3])
            ra(w[i + 4])
        elif kind == wire.KIND_INT:
            size = w[i + 2]
            enc = w[i + 3]
            bits = enc & 0xFF
            off = (enc >> 16) & 0xFF
            if size not in (1, 2, 4, 8, 16) or bits == 0 or off + bits > size * 8 \
                    or enc & 0xF000FF00 or (enc >> 24) & ~7:
                raise BTFError(f"BTF INT {tid} has bad size/encoding "
                               f"(size {size}, encoding 0x{enc:08x})")
        elif kind == wire.KIND_DATASEC:
            refs.extend(w[i + 3:i + 3 + 3 * vlen:3])
        elif kind == wire.KIND_FLOAT:
            if w[i + 2] not in (2, 4, 8, 12, 16):
                raise BTFError(f"BTF FLOAT {tid} has bad size {w[i + 2]}")
        tid += 1

    if names and max(names) >= str_end:
        bad = max(names)
        raise BTFError(f"BTF string offset {bad} out of range (string section ends "
                       f"at {str_end}){_who(w, offs, start_id, bad, names=True)}")
    if refs and max(refs) >= n_types:
        bad = max(refs)
        raise BTFError(f"BTF type id {bad} out of range (have {n_types} types)"
                       f"{_who(w, offs, start_id, bad, names=False)}")

    def kind_of(t: int) -> int:
        if t < start_id:
            return base.kind_of(t) if base is not None else wire.KIND_UNKN
        return (w[offs[t - start_id] + 1] >> 24) & 0x1F

    for t in funcs:
        proto = w[offs[t - start_id] + 2]
        if kind_of(proto) != wire.KIND_FUNC_PROTO:
            raise BTFError(f"BTF FUNC {t} refers to type {proto}, not a FUNC_PROTO")
    for t in tags:
        i = offs[t - start_id]
        target = w[i + 2]
        comp = w[i + 3]
        if comp == 0xFFFFFFFF:
            continue
        tk = kind_of(target)
        if tk in (wire.KIND_STRUCT, wire.KIND_UNION):
            limit = _vlen_of(w, offs, start_id, base, target)
        elif tk == wire.KIND_FUNC:
            proto = (w[offs[target - start_id] + 2] if target >= start_id
                     else base[target].type)
            limit = _vlen_of(w, offs, start_id, base, proto)
        else:
            raise BTFError(f"BTF DECL_TAG {t} has component {comp} on a "
                           f"{wire.KIND_NAMES[tk]}")
        if comp >= limit:
            raise BTFError(f"BTF DECL_TAG {t} component {comp} out of range ({limit})")


def _vlen_of(w: array, offs: array, start_id: int, base: Optional[Spec], t: int) -> int:
    if t < start_id:
        return base.vlen_of(t) if base is not None else 0
    return w[offs[t - start_id] + 1] & 0xFFFF


def _who(w: array, offs: array, start_id: int, bad: int, names: bool) -> str:
    """Slow path for error messages: which type holds the bad value."""
    for n, i in enumerate(offs):
        end = offs[n + 1] if n + 1 < len(offs) else len(w)
        if bad in w[i:end]:
            kind = (w[i + 1] >> 24) & 0x1F
            return f" in {wire.KIND_NAMES.get(kind, kind)} type {start_id + n}"
    return ""


_U32_MAX = 0xFFFFFFFF
_SIZED = frozenset({wire.KIND_INT, wire.KIND_STRUCT, wire.KIND_UNION, wire.KIND_ENUM, wire.KIND_ENUM64,
                    wire.KIND_FLOAT, wire.KIND_DATASEC})
_COMPOSITE = frozenset({wire.KIND_STRUCT, wire.KIND_UNION})
_HELD_THROUGH = wire.MODIFIER_KINDS | {wire.KIND_ARRAY}  # what a by-value member sees through


class _Layout:
    """Stage 5 on the raw words of a blob that passed stage 4 (ids are in range).

    A base (vmlinux under a module's split BTF) was verified by the kernel and is only
    asked for sizes; cycles can only run through this blob's own types.
    """

    def __init__(self, w: array, offs: array, start_id: int, base: Optional[Spec]):
        self.w = w
        self.offs = offs
        self.start_id = start_id
        self.base = base
        self.sizes: Dict[int, Optional[int]] = {}

    def kind(self, t: int) -> int:
        if t == 0:
            return wire.KIND_UNKN
        if t < self.start_id:
            return self.base.kind_of(t) if self.base is not None else wire.KIND_UNKN
        return (self.w[self.offs[t - self.start_id] + 1] >> 24) & 0x1F

    def word(self, t: int, n: int) -> int:
        return self.w[self.offs[t - self.start_id] + n]

    def describe(self, t: int) -> str:
        return f"{wire.KIND_NAMES.get(self.kind(t), '?')} type {t}"

    def size(self, t: int) -> Optional[int]:
        """sizeof in bytes; None for what has no size (void, functions, forward
        declarations). BTFError for a size over 32 bits or a cyclic chain."""
        if t in self.sizes:
            return self.sizes[t]
        first, mult, size = t, 1, None
        for _ in range(wire.MAX_NESTING):
            if t < self.start_id:
                if self.base is not None and t:
                    try:
                        size = mult * self.base.size_of(t)
                    except BTFError:
                        size = None
                break
            k = self.kind(t)
            if k in wire.MODIFIER_KINDS:
                t = self.word(t, 2)
            elif k == wire.KIND_ARRAY:
                mult *= self.word(t, 5)
                t = self.word(t, 3)
            else:
                if k in _SIZED:
                    size = mult * self.word(t, 2)
                elif k == wire.KIND_PTR:
                    size = mult * wire.POINTER_SIZE
                break
        else:
            raise BTFError(f"{self.describe(first)}: typedef, qualifier or array chain too long or cyclic")
        if size is not None and size > _U32_MAX:
            raise BTFError(f"{self.describe(first)}: its size, {size} bytes, overflows 32 bits")
        self.sizes[first] = size
        return size

    def by_value(self, t: int) -> int:
        """The type a member of type `t` holds by value (typedefs, qualifiers, arrays skipped)."""
        first = t
        for _ in range(wire.MAX_NESTING):
            if t < self.start_id or self.kind(t) not in _HELD_THROUGH:
                return t
            t = self.word(t, 3 if self.kind(t) == wire.KIND_ARRAY else 2)
        raise BTFError(f"{self.describe(first)}: typedef, qualifier or array chain too long or cyclic")

    def check(self) -> None:
        contains: Dict[int, List[int]] = {}
        for n in range(len(self.offs)):
            t = self.start_id + n
            k = self.kind(t)
            if k == wire.KIND_ARRAY or k in wire.MODIFIER_KINDS:
                self.size(t)
            elif k in _COMPOSITE:
                contains[t] = self.members(t)
        self.no_cycles(contains)

    def members(self, t: int) -> List[int]:
        """Check that each member of composite `t` ends inside it; the composites it holds by value."""
        i = self.offs[t - self.start_id]
        info = self.w[i + 1]
        kflag = info >> 31
        struct_bits = self.w[i + 2] * 8
        inner: List[int] = []
        for j in range(i + 3, i + 3 + 3 * (info & 0xFFFF), 3):
            mtype, off = self.w[j + 1], self.w[j + 2]
            bits = off >> 24 if kflag else 0
            if kflag:
                off &= 0xFFFFFF
            size = self.size(mtype)
            end = off + (bits or (size or 0) * 8)
            if end > struct_bits:
                raise BTFError(f"{self.describe(t)}: member {(j - i - 3) // 3} ({self.describe(mtype)}) "
                               f"ends at bit {end}, past the {struct_bits // 8}-byte size")
            held = self.by_value(mtype)
            if self.kind(held) in _COMPOSITE and held >= self.start_id:
                inner.append(held)
        return inner

    def no_cycles(self, contains: Dict[int, List[int]]) -> None:
        """Depth-first over "holds by value": reaching a composite still on the path is a cycle."""
        done: set = set()
        for root in contains:
            if root in done:
                continue
            path = [root]
            on_path = {root}
            stack = [iter(contains[root])]
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    stack.pop()
                    node = path.pop()
                    on_path.discard(node)
                    done.add(node)
                    continue
                if nxt in on_path:
                    chain = " -> ".join(str(x) for x in path[path.index(nxt):] + [nxt])
                    raise BTFError(f"{self.describe(nxt)} contains itself by value ({chain})")
                if nxt in done:
                    continue
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(contains.get(nxt, ())))
