"""Spec: a parsed, validated BTF blob with lazy type objects and layout queries.

The reader leaves the raw type words in place and only records where each record
starts; a type object is built the first time someone asks for it. Parsing vmlinux
therefore costs one walk over the words, not 100k+ dataclass constructions.
"""

from __future__ import annotations

import sys
from array import array
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union as _U

from ..errors import BTFError, NotFoundError
from . import types as T
from . import wire

KindArg = _U[int, str, None]


def recursion_guard(fn):
    """Depth limits keep walks finite; this turns a Python stack overflow on absurdly
    deep (hostile) nesting into the BTFError callers expect."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        try:
            return fn(*args, **kw)
        except RecursionError:
            raise BTFError("BTF nesting too deep") from None

    return wrapper


def _kind_id(kind: KindArg) -> Optional[int]:
    if kind is None or isinstance(kind, int):
        return kind
    try:
        return wire.KIND_BY_NAME[kind.lower()]
    except KeyError:
        raise NotFoundError(f"unknown BTF kind {kind!r}") from None


class _Types(Sequence):
    """`spec.types`: every type by id (0 = void), built on access."""

    def __init__(self, spec: "Spec"):
        self._spec = spec

    def __len__(self) -> int:
        return self._spec.n_types

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._spec[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self._spec[i]

    def __iter__(self) -> Iterator[T.Type]:
        spec = self._spec
        for i in range(spec.n_types):
            yield spec[i]


class Spec:
    def __init__(self, words: Sequence[int], offs: Sequence[int], strs: bytes, *, start_id: int = 1,
                 str_start: int = 0, base: Optional["Spec"] = None, byteorder: str = "<",
                 name_words: Optional[bytes] = None, str_pos: int = 0, str_len: Optional[int] = None):
        """`words`: the type section as u32 in host order (an array, or a memoryview of
        the blob); `offs`: where each record starts in it; the string section is
        strs[str_pos:str_pos + str_len] (strs: bytes, or the mapping of the blob)."""
        self._w = words
        self._offs = offs
        self._strs = strs
        self._s0 = str_pos
        self._s1 = str_pos + (len(strs) - str_pos if str_len is None else str_len)
        self.start_id = start_id
        self.str_start = str_start
        self.str_end = str_start + self._s1 - self._s0
        self.base = base
        self.byteorder = byteorder
        self.n_types = start_id + len(offs)
        self._cache: Dict[int, T.Type] = {}
        self._name_words: Optional[bytes] = name_words
        self.types = _Types(self)

    # -- raw access (no object construction) ---------------------------------------

    def __len__(self) -> int:
        return self.n_types

    def _rec(self, type_id: int) -> int:
        if not 0 < type_id < self.n_types or type_id < self.start_id:
            raise NotFoundError(f"no BTF type with id {type_id}")
        return self._offs[type_id - self.start_id]

    def kind_of(self, type_id: int) -> int:
        if type_id == 0:
            return wire.KIND_UNKN
        if type_id < self.start_id and self.base is not None:
            return self.base.kind_of(type_id)
        return (self._w[self._rec(type_id) + 1] >> 24) & 0x1F

    def vlen_of(self, type_id: int) -> int:
        if type_id < self.start_id and self.base is not None:
            return self.base.vlen_of(type_id)
        return self._w[self._rec(type_id) + 1] & 0xFFFF

    def name_of(self, type_id: int) -> str:
        if type_id == 0:
            return ""
        if type_id < self.start_id and self.base is not None:
            return self.base.name_of(type_id)
        return self.string(self._w[self._rec(type_id)])

    def string(self, off: int) -> str:
        if off < self.str_start:
            if self.base is None:
                raise BTFError(f"string offset {off} out of range")
            return self.base.string(off)
        o = off - self.str_start + self._s0
        s = self._strs
        end = s.find(b"\0", o, self._s1)
        if o >= self._s1 or end < 0:
            raise BTFError(f"string offset {off} out of range")
        return s[o:end].decode("utf-8", "replace")

    # -- type objects ----------------------------------------------------------------

    def __getitem__(self, type_id: int) -> T.Type:
        t = self._cache.get(type_id)
        if t is not None:
            return t
        if type_id == 0:
            t = T.Void(0, "")
        elif type_id < self.start_id and self.base is not None:
            return self.base[type_id]
        else:
            t = self._build(type_id, self._rec(type_id))
        self._cache[type_id] = t
        return t

    def __iter__(self) -> Iterator[T.Type]:
        return iter(self.types)

    def own_ids(self) -> range:
        """Ids defined by this blob (for split BTF: not the base's)."""
        return range(self.start_id, self.n_types)

    def _build(self, tid: int, i: int) -> T.Type:
        w = self._w
        s = self.string
        info = w[i + 1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        name = s(w[i])
        x = w[i + 2]
        if kind == wire.KIND_STRUCT or kind == wire.KIND_UNION:
            ms = []
            for j in range(i + 3, i + 3 + 3 * vlen, 3):
                off = w[j + 2]
                if kflag:
                    ms.append(T.Member(s(w[j]), w[j + 1], off & 0xFFFFFF, off >> 24))
                else:
                    ms.append(T.Member(s(w[j]), w[j + 1], off, 0))
            cls = T.Struct if kind == wire.KIND_STRUCT else T.Union
            return cls(tid, name, x, tuple(ms))
        if kind == wire.KIND_INT:
            enc = w[i + 3]
            return T.Int(tid, name, x, enc >> 24, (enc >> 16) & 0xFF, enc & 0xFF)
        if kind == wire.KIND_PTR:
            return T.Ptr(tid, name, x)
        if kind == wire.KIND_ARRAY:
            return T.Array(tid, name, w[i + 3], w[i + 4], w[i + 5])
        if kind == wire.KIND_ENUM:
            vals = []
            for j in range(i + 3, i + 3 + 2 * vlen, 2):
                v = w[j + 1]
                if kflag and v & 0x80000000:
                    v -= 1 << 32
                vals.append(T.EnumValue(s(w[j]), v))
            return T.Enum(tid, name, x, tuple(vals), kflag)
        if kind == wire.KIND_ENUM64:
            vals = []
            for j in range(i + 3, i + 3 + 3 * vlen, 3):
                v = w[j + 1] | (w[j + 2] << 32)
                if kflag and v & (1 << 63):
                    v -= 1 << 64
                vals.append(T.EnumValue(s(w[j]), v))
            return T.Enum64(tid, name, x, tuple(vals), kflag)
        if kind == wire.KIND_FWD:
            return T.Fwd(tid, name, kflag)
        if kind == wire.KIND_TYPEDEF:
            return T.Typedef(tid, name, x)
        if kind == wire.KIND_VOLATILE:
            return T.Volatile(tid, name, x)
        if kind == wire.KIND_CONST:
            return T.Const(tid, name, x)
        if kind == wire.KIND_RESTRICT:
            return T.Restrict(tid, name, x)
        if kind == wire.KIND_TYPE_TAG:
            return T.TypeTag(tid, name, x)
        if kind == wire.KIND_FUNC:
            return T.Func(tid, name, x, vlen)
        if kind == wire.KIND_FUNC_PROTO:
            ps = [T.Param(s(w[j]), w[j + 1]) for j in range(i + 3, i + 3 + 2 * vlen, 2)]
            variadic = bool(ps) and ps[-1].type == 0 and w[i + 1 + 2 * vlen] == 0
            if variadic:
                ps.pop()
            return T.FuncProto(tid, name, x, tuple(ps), variadic)
        if kind == wire.KIND_VAR:
            return T.Var(tid, name, x, w[i + 3])
        if kind == wire.KIND_DATASEC:
            vs = tuple(T.VarSecinfo(w[j], w[j + 1], w[j + 2])
                       for j in range(i + 3, i + 3 + 3 * vlen, 3))
            return T.Datasec(tid, name, x, vs)
        if kind == wire.KIND_FLOAT:
            return T.Float(tid, name, x)
        if kind == wire.KIND_DECL_TAG:
            comp = w[i + 3]
            return T.DeclTag(tid, name, x, comp - (1 << 32) if comp & 0x80000000 else comp)
        raise BTFError(f"BTF type {tid} has unknown kind {kind}")

    # -- lookup by name --------------------------------------------------------------

    def _string_offsets(self, name: str) -> List[int]:
        """Every offset in our own string section where exactly `name` starts."""
        needle = name.encode("utf-8", "surrogateescape") + b"\0"   # a name from argv: any bytes
        s, lo, hi = self._strs, self._s0, self._s1
        out = []
        # An offset may also point into the middle of a longer string (suffix sharing).
        pos = s.find(needle, lo, hi)
        while pos >= 0:
            out.append(pos - lo + self.str_start)
            pos = s.find(needle, pos + 1, hi)
        return out

    def _ids_named_at(self, name_offs: List[int]) -> List[int]:
        """Own type ids whose name starts at one of `name_offs`.

        The packed name words are searched with bytes.find (C speed): a dict over
        every type would cost vmlinux more than the few lookups a command makes.
        """
        words = self.index()[1]
        out: List[int] = []
        for off in name_offs:
            needle = off.to_bytes(4, sys.byteorder)
            pos = words.find(needle)
            while pos >= 0:
                if pos % 4 == 0:
                    out.append(self.start_id + pos // 4)
                pos = words.find(needle, pos + 1)
        return out

    def index(self) -> Tuple[array, bytes]:
        """(offset of each own type record in words, each record's name offset as
        packed words): everything a lookup needs that a walk over the types finds."""
        if self._name_words is None:
            self._name_words = array("I", map(self._w.__getitem__, self._offs)).tobytes()
        return self._offs, self._name_words

    def ids_by_name(self, name: str, kind: KindArg = None) -> List[int]:
        if not name:
            return []
        k = _kind_id(kind)
        found: List[int] = []
        if self.base is not None:
            found.extend(self.base.ids_by_name(name, k))
        offs = self._string_offsets(name)
        if self.base is not None:
            offs.extend(o for o in self.base._string_offsets(name))
        own = sorted(self._ids_named_at(offs))
        found.extend(t for t in own if k is None or self.kind_of(t) == k)
        return found

    def by_name(self, name: str, kind: KindArg = None) -> List[T.Type]:
        """All types called `name` (optionally of one kind: int id or 'struct' etc.)."""
        return [self[t] for t in self.ids_by_name(name, kind)]

    def find(self, name: str, kind: KindArg = None) -> T.Type:
        """The first type called `name`; NotFoundError if there is none."""
        ids = self.ids_by_name(name, kind)
        if not ids:
            what = f"{kind} {name}" if isinstance(kind, str) else name
            raise NotFoundError(f"no BTF type {what!r}")
        return self[ids[0]]

    # -- layout ------------------------------------------------------------------------

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers; the id of the underlying type."""
        for _ in range(wire.MAX_RESOLVE_DEPTH):
            k = self.kind_of(type_id)
            if k not in wire.MODIFIER_KINDS:
                return type_id
            type_id = self[type_id].type  # type: ignore[attr-defined]
        raise BTFError(f"typedef/qualifier chain too long or cyclic at type {type_id}")

    def resolve_type(self, type_id: int) -> T.Type:
        return self[self.resolve(type_id)]

    def size_of(self, type_id: int) -> int:
        """Size in bytes, like sizeof(); BTFError for sizeless types (void, functions)."""
        mult = 1
        for _ in range(wire.MAX_NESTING):
            type_id = self.resolve(type_id)
            t = self[type_id]
            if isinstance(t, (T.Int, T.Composite, T.Enum, T.Float, T.Datasec)):
                return mult * t.size
            if isinstance(t, T.Ptr):
                return mult * wire.POINTER_SIZE
            if isinstance(t, T.Array):
                mult *= t.nelems
                type_id = t.type
                continue
            raise BTFError(f"BTF type {type_id} ({t.kind_name} {t.name}) has no size")
        raise BTFError(f"array nesting too deep or cyclic at type {type_id}")

    def align_of(self, type_id: int) -> int:
        """Natural alignment (C rules on a 64-bit target); 1 for sizeless types."""
        for _ in range(wire.MAX_NESTING):
            type_id = self.resolve(type_id)
            t = self[type_id]
            if isinstance(t, T.Array):
                type_id = t.type
                continue
            if isinstance(t, T.Ptr):
                return wire.POINTER_SIZE
            if isinstance(t, (T.Int, T.Enum, T.Float)):
                return min(t.size, 8) or 1
            if isinstance(t, T.Composite):
                return self._composite_align(t)
            return 1
        raise BTFError(f"array nesting too deep or cyclic at type {type_id}")

    def _composite_align(self, t: T.Composite, depth: int = 0) -> int:
        if depth > wire.MAX_NESTING:
            raise BTFError(f"struct nesting too deep or cyclic at type {t.id}")
        a = 1
        for m in t.members:
            r = self[self._strip_arrays(m.type)]
            if isinstance(r, T.Composite):
                if r.id == t.id:
                    raise BTFError(f"BTF {t.kind_name} {t.id} contains itself")
                ma = self._composite_align(r, depth + 1)
            else:
                ma = self.align_of(m.type)
            if m.bit_offset % (ma * 8) and not m.bitfield_size:
                return 1  # packed: a member sits off its natural alignment
            a = max(a, ma)
        if t.size % a:
            return 1
        return a

    def _strip_arrays(self, type_id: int) -> int:
        for _ in range(wire.MAX_NESTING):
            type_id = self.resolve(type_id)
            if self.kind_of(type_id) != wire.KIND_ARRAY:
                return type_id
            type_id = self[type_id].type  # type: ignore[attr-defined]
        raise BTFError(f"array nesting too deep or cyclic at type {type_id}")

    def members(self, type_id: int) -> tuple:
        """Members of the struct/union `type_id` (typedefs and qualifiers skipped)."""
        t = self.resolve_type(type_id)
        if not isinstance(t, T.Composite):
            raise NotFoundError(f"BTF type {type_id} is {t.kind_name}, not a struct/union")
        return t.members

    def type_name(self, type_id: int) -> str:
        """A C-ish name: 'struct foo *', 'unsigned int[4]', 'int (*)(void)'."""
        from .cformat import type_name

        return type_name(self, type_id)

    def __repr__(self) -> str:
        split = f", split over {self.base.n_types} base types" if self.base else ""
        return f"<Spec {self.n_types - self.start_id} types{split}>"
