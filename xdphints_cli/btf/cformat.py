"""C rendering of BTF types (presentation only: parsing lives in reader/spec).

`type_name` gives abstract C type names; `render` one definition; `dump_c` a set of
types with everything they depend on, in an order a C compiler accepts.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..errors import BTFError
from . import types as T
from . import wire
from .spec import Spec, recursion_guard

_NESTING = wire.MAX_NESTING
_QUALIFIERS = {wire.KIND_CONST: "const", wire.KIND_VOLATILE: "volatile",
               wire.KIND_RESTRICT: "restrict"}
# Where pahole puts its /* offset size */ comments: column 57, tabs counted as 8.
_COMMENT_COLUMN = 57
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_builtin(t: T.Type) -> bool:
    """A typedef of a compiler's built-in name. bpftool leaves its definition out (a
    second one is an error in clang); we also write its type where it is used, as
    the built-in differs by target (`__builtin_va_list` is 24 bytes on x86-64, 8 on
    BPF) and the layout must be the BTF's."""
    return t.kind == wire.KIND_TYPEDEF and t.name == "__builtin_va_list"


class NotCError(BTFError):
    """A name in the BTF is not a C identifier, so the types cannot be written as C."""


def _c_name(name: str, what: str) -> str:
    if name and not _C_IDENTIFIER.match(name):
        raise NotCError(f"{what} name {name!r} is not a C identifier: cannot write it as C")
    return name


class Names:
    """C names for types, with `___N` suffixes where BTF has several types (or
    enumerators) with one name, as bpftool's btf_dump does. Every name must be a C
    identifier (NotCError otherwise): BTF names may hold any byte, and one such as
    "x; } evil; struct {" would otherwise turn into other C."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self._tags: Dict[int, str] = {}
        self._idents: Dict[Tuple[int, int], str] = {}
        self._tag_count: Dict[str, int] = {}
        self._ident_count: Dict[str, int] = {}

    @staticmethod
    def _unique(count: Dict[str, int], name: str) -> str:
        n = count.get(name, 0) + 1
        count[name] = n
        return name if n == 1 else f"{name}___{n}"

    def tag(self, t: T.Type) -> str:
        name = self._tags.get(t.id)
        if name is None:
            _c_name(t.name, t.kind_name.lower())
            if isinstance(t, T.Fwd):
                # A forward declaration names the same tag as its definition.
                name = t.name
            else:
                name = self._unique(self._tag_count, t.name)
            self._tags[t.id] = name
        return name

    def ident(self, t: T.Type, index: int = -1) -> str:
        key = (t.id, index)
        name = self._idents.get(key)
        if name is None:
            raw = t.name if index < 0 else t.values[index].name  # type: ignore[attr-defined]
            name = self._unique(self._ident_count, _c_name(raw, t.kind_name.lower()))
            self._idents[key] = name
        return name

    def field(self, name: str, what: str = "member") -> str:
        """A member, parameter or variable name."""
        return _c_name(name, what)


class _Plain(Names):
    """No renaming and no checks: for one-off type names shown as text."""

    def tag(self, t: T.Type) -> str:
        return t.name

    def ident(self, t: T.Type, index: int = -1) -> str:
        return t.name if index < 0 else t.values[index].name  # type: ignore[attr-defined]

    def field(self, name: str, what: str = "member") -> str:
        return name


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner[0] == "[" or base.endswith("*"):
        return base + inner
    return f"{base} {inner}"


class _Renderer:
    def __init__(self, spec: Spec, names: Optional[Names] = None, offsets: bool = False):
        self.spec = spec
        self.names = names or _Plain(spec)
        self.offsets = offsets
        self._layouts = None
        self.anon_enums: Set[int] = set()
        # bit offset, from the outermost struct, of the composite being rendered: an
        # anonymous struct/union is written inline, and pahole gives its members'
        # offsets from the outer struct, not from the anonymous one (but from 0 behind
        # a pointer: that one is another object)
        self._base_bits = 0

    @property
    def layouts(self):
        """clayout's plans, made on the first struct body: a type name (the member
        table of `btf --kernel --struct`, the light path) needs none."""
        if self._layouts is None:
            from .clayout import Layouts

            self._layouts = Layouts(self.spec)
        return self._layouts

    # -- declarators -------------------------------------------------------------------

    def decl(self, tid: int, inner: str = "", indent: int = 0, depth: int = 0) -> str:
        """`tid` declared as `inner` ('' for an abstract type name)."""
        if depth > _NESTING:
            raise BTFError(f"type {tid}: declarator nesting too deep or cyclic")
        spec = self.spec
        t = spec[tid]
        k = t.kind
        if k == wire.KIND_PTR:
            target = self._skip_tags(t.type, depth)  # type: ignore[attr-defined]
            tk = spec.kind_of(target)
            star = "*" + inner
            if tk in (wire.KIND_ARRAY, wire.KIND_FUNC_PROTO):
                star = f"({star})"
            base, self._base_bits = self._base_bits, 0
            try:
                return self.decl(target, star, indent, depth + 1)
            finally:
                self._base_bits = base
        if k == wire.KIND_ARRAY:
            if inner.startswith("*"):
                inner = f"({inner})"
            return self.decl(t.type, f"{inner}[{t.nelems}]", indent, depth + 1)  # type: ignore
        if k == wire.KIND_FUNC_PROTO:
            return self.decl(t.return_type, f"{inner}({self.params(t, depth)})",  # type: ignore
                             indent, depth + 1)
        if k in _QUALIFIERS:
            return self._qualified(tid, inner, indent, depth)
        if k == wire.KIND_TYPE_TAG or is_builtin(t):
            return self.decl(t.type, inner, indent, depth + 1)  # type: ignore[attr-defined]
        if k == wire.KIND_FUNC:
            return self.decl(t.type, inner or self.names.ident(t), indent, depth + 1)  # type: ignore
        if k == wire.KIND_VAR or k == wire.KIND_DECL_TAG:
            return self.decl(t.type, inner or self.names.field(t.name, "variable"), indent, depth + 1)  # type: ignore
        return _join(self.base_name(t, indent, depth), inner)

    def _qualified(self, tid: int, inner: str, indent: int, depth: int) -> str:
        """A run of qualifiers, each written once (gcc's BTF repeats const on an array
        and on its elements: `const const char iname[0]`) and none on an array or a
        function type, where C has no place for them (bpftool drops them too)."""
        quals: List[str] = []
        for _ in range(wire.MAX_RESOLVE_DEPTH):
            k = self.spec.kind_of(tid)
            if k == wire.KIND_TYPE_TAG:
                tid = self.spec[tid].type  # type: ignore[attr-defined]
            elif k in _QUALIFIERS:
                if _QUALIFIERS[k] not in quals:
                    quals.append(_QUALIFIERS[k])
                tid = self.spec[tid].type  # type: ignore[attr-defined]
            else:
                break
        else:
            raise BTFError(f"qualifier chain too long or cyclic at type {tid}")
        k = self.spec.kind_of(tid)
        if k in (wire.KIND_ARRAY, wire.KIND_FUNC_PROTO):
            return self.decl(tid, inner, indent, depth + 1)
        q = " ".join(quals)
        if k == wire.KIND_PTR:
            return self.decl(tid, f"{q} {inner}".rstrip(), indent, depth + 1)
        return f"{q} " + self.decl(tid, inner, indent, depth + 1)

    def _skip_tags(self, tid: int, depth: int) -> int:
        for _ in range(wire.MAX_RESOLVE_DEPTH):
            if self.spec.kind_of(tid) != wire.KIND_TYPE_TAG:
                return tid
            tid = self.spec[tid].type  # type: ignore[attr-defined]
        raise BTFError(f"type tag chain too long or cyclic at {tid}")

    def params(self, proto: T.FuncProto, depth: int) -> str:
        ps = [self.decl(p.type, self.names.field(p.name, "parameter"), 0, depth + 1) for p in proto.params]
        if proto.variadic:
            ps.append("...")
        return ", ".join(ps) or "void"

    def base_name(self, t: T.Type, indent: int, depth: int) -> str:
        if isinstance(t, T.Void):
            return "void"
        if isinstance(t, T.Composite):
            kw = "struct" if t.kind == wire.KIND_STRUCT else "union"
            if t.name:
                return f"{kw} {self.names.tag(t)}"
            if indent < 0:
                return f"{kw} {{...}}"
            return self.composite_body(t, indent, depth + 1)
        if isinstance(t, T.Enum):
            if t.name:
                return f"enum {self.names.tag(t)}"
            if indent < 0:
                return "enum {...}"
            if t.id in self.anon_enums:
                # Its enumerators exist already; defining them twice is an error in C.
                u = "" if t.signed else "unsigned "
                return {1: f"{u}char", 2: f"{u}short", 8: f"{u}long long"}.get(
                    t.size, f"{u}int")
            self.anon_enums.add(t.id)
            return self.enum_body(t, indent)
        if isinstance(t, T.Fwd):
            return f"{'union' if t.union else 'struct'} {self.names.tag(t)}"
        if isinstance(t, T.Typedef):
            return self.names.ident(t)
        if isinstance(t, T.Datasec):
            return f"/* DATASEC {t.name} */"
        return t.name or "void"

    # -- bodies ------------------------------------------------------------------------

    def composite_body(self, t: T.Composite, indent: int, depth: int = 0) -> str:
        if depth > _NESTING:
            raise BTFError(f"type {t.id}: anonymous struct nesting too deep or cyclic")
        kw = "struct" if t.kind == wire.KIND_STRUCT else "union"
        head = f"{kw} {self.names.tag(t)} {{" if t.name else f"{kw} {{"
        pad = "\t" * (indent + 1)
        lines = [head]
        plan = self.layouts.plan(t)
        if not plan.exact:
            lines.append(f"{pad}/* no C found that gives this {kw} its BTF layout: members "
                         "overlap, are out of order or have no size */")
        base = self._base_bits
        for m in plan.items:
            if not isinstance(m, T.Member):                 # an unnamed padding bitfield
                lines.append(f"{pad}{m.ctype}: {m.bits};")
                continue
            self._base_bits = base + m.bit_offset
            try:
                d = self.decl(m.type, self.names.field(m.name), indent + 1, depth + 1)
            finally:
                self._base_bits = base
            if m.bitfield_size:
                d += f": {m.bitfield_size}"
            line = f"{pad}{d};"
            if self.offsets:
                # an anonymous member's comment goes on its closing line, as pahole's does
                last = len(line.rsplit("\n", 1)[-1].expandtabs(8))
                line += " " * max(1, _COMMENT_COLUMN - last) + self._offset_comment(m, base)
            lines.append(line)
        tail = "\t" * indent + "}"
        if plan.packed:
            tail += " __attribute__((packed))"
        if plan.aligned:
            tail += f" __attribute__((aligned({plan.aligned})))"
        if self.offsets and indent == 0:
            lines.append(f"{pad}/* size: {t.size} */")
        lines.append(tail)
        return "\n".join(lines)

    def _offset_comment(self, m: T.Member, base_bits: int) -> str:
        """pahole's `/* offset size */`, the offset counted from the start of the
        outermost struct; for a bitfield `/* unit:bit size */`, the byte offset of its
        storage unit (a whole one of its type's size) and the bit offset in that unit."""
        try:
            size = self.spec.size_of(m.type)
        except BTFError:
            size = 0
        bits = base_bits + m.bit_offset
        if m.bitfield_size:
            unit = 8 * size or 8
            return f"/* {bits // unit * (unit // 8):5d}:{bits % unit:2d} {size:2d} */"
        return f"/* {bits // 8:5d} {size:5d} */"

    def enum_body(self, t: T.Enum, indent: int) -> str:
        head = f"enum {self.names.tag(t)} {{" if t.name else "enum {"
        pad = "\t" * (indent + 1)
        lines = [head]
        big = t.kind == wire.KIND_ENUM64
        for i, v in enumerate(t.values):
            val = str(v.value)
            if big and (v.value > 0x7FFFFFFF or v.value < -0x80000000):
                val += "LL" if v.value < 0 else "ULL"
            lines.append(f"{pad}{self.names.ident(t, i)} = {val},")
        from .clayout import enum_mode

        mode = enum_mode(t)
        lines.append("\t" * indent + "}" + (f" __attribute__((mode({mode})))" if mode else ""))
        return "\n".join(lines)

    def definition(self, tid: int) -> str:
        t = self.spec[tid]
        if isinstance(t, T.Composite):
            return self.composite_body(t, 0) + ";"
        if isinstance(t, T.Enum):
            return self.enum_body(t, 0) + ";"
        if isinstance(t, T.Fwd):
            return f"{'union' if t.union else 'struct'} {self.names.tag(t)};"
        if isinstance(t, T.Typedef):
            return f"typedef {self.decl(t.type, self.names.ident(t))};"
        if isinstance(t, T.Func):
            proto = self.spec[t.type]
            # A declaration without a body: 'extern' whatever the BTF linkage says
            # ('static' would declare a function this file never defines).
            return "extern " + self.decl(t.type, self.names.ident(t)) + ";" \
                if isinstance(proto, T.FuncProto) else f"/* FUNC {t.name}: bad prototype */"
        if isinstance(t, T.Var):
            return f"extern {self.decl(t.type, self.names.field(t.name, 'variable'))};"
        return self.decl(tid) + ";"


@recursion_guard
def type_name(spec: Spec, type_id: int) -> str:
    """An abstract C type name: 'struct foo *', 'unsigned int[4]', 'int (*)(void)'."""
    r = _Renderer(spec)
    return r.decl(type_id, "", indent=-1)


@recursion_guard
def declaration(spec: Spec, type_id: int, name: str) -> str:
    """`type_id` declared as `name`: 'char comm[16]', 'int (*fn)(void)'."""
    return _Renderer(spec).decl(type_id, name, indent=-1)


@recursion_guard
def render(spec: Spec, type_id: int, offsets: bool = False) -> str:
    """One definition, bpftool style ('struct foo {...};'), optionally with pahole-like
    /* offset size */ comments. Functions render as prototypes."""
    return _Renderer(spec, offsets=offsets).definition(type_id)


@recursion_guard
def func_prototype(spec: Spec, func_id: int) -> str:
    """'int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, u32 *hash, ...)'."""
    t = spec[func_id]
    if not isinstance(t, T.Func):
        raise BTFError(f"type {func_id} is {t.kind_name}, not FUNC")
    return _Renderer(spec).decl(t.type, t.name, indent=-1)


# -- dependency-ordered dumps -------------------------------------------------------------

_DECLARED, _DEFINED, _BUSY = 1, 2, 3


class _Dumper:
    """Emit types so that every use follows what it needs.

    A by-value use needs the complete type; a use behind a pointer needs only a
    declaration (a forward 'struct foo;' or the typedef). That is the whole ordering
    rule; anything by value that reaches itself again is not valid C and is reported.
    """

    def __init__(self, spec: Spec, offsets: bool, names: Optional[Names] = None):
        self.spec = spec
        self.r = _Renderer(spec, names or Names(spec), offsets)
        self.state: Dict[int, int] = {}
        self.declared: Set[int] = set()
        self.forward_at: Dict[int, int] = {}  # type id -> index in out of its 'struct foo;'
        self.out: List[str] = []
        self.depth = 0
        # (type id, complete) needs met: asking again changes nothing (a header of
        # vmlinux asks some 200k times for 60k types)
        self.met: Set[Tuple[int, bool]] = set()

    def need(self, tid: int, complete: bool, depth: int = 0) -> None:
        if (tid, complete) in self.met:
            return
        self._need(tid, complete, depth)
        self.met.add((tid, complete))

    def _need(self, tid: int, complete: bool, depth: int) -> None:
        if depth > _NESTING:
            raise BTFError(f"type {tid}: dependency chain too deep or cyclic")
        spec = self.spec
        t = spec[tid]
        if isinstance(t, T.Ptr):
            self.need(t.type, False, depth + 1)
        elif isinstance(t, T.Array):
            self.need(t.type, True, depth + 1)
        elif isinstance(t, (T.Const, T.Volatile, T.Restrict, T.TypeTag)):
            self.need(t.type, complete, depth + 1)
        elif isinstance(t, T.FuncProto):
            self.need(t.return_type, False, depth + 1)
            for p in t.params:
                self.need(p.type, False, depth + 1)
        elif isinstance(t, T.Func):
            self.need(t.type, False, depth + 1)
        elif isinstance(t, T.Var):
            self.need(t.type, True, depth + 1)
        elif is_builtin(t):
            self.need(t.type, complete, depth + 1)
        elif isinstance(t, T.Typedef):
            self.typedef(t, depth + 1)
            if complete:
                self.need(t.type, True, depth + 1)
        elif isinstance(t, T.Composite):
            if not t.name:
                for m in t.members:  # emitted inline: needs what its members need
                    self.need(m.type, True, depth + 1)
            elif complete:
                self.define(t, depth + 1)
            elif tid not in self.declared and self.state.get(tid) != _DEFINED:
                self.declared.add(tid)
                self.forward_at[tid] = len(self.out)
                self.out.append(f"{'struct' if t.kind == wire.KIND_STRUCT else 'union'} "
                                f"{self.r.names.tag(t)};")
        elif isinstance(t, T.Enum):
            if t.name and tid not in self.state:
                self.state[tid] = _DEFINED
                self.out.append(self.r.definition(tid))
        elif isinstance(t, T.Fwd):
            if tid not in self.state:
                self.state[tid] = _DECLARED
                self.out.append(self.r.definition(tid))

    def define(self, t: T.Composite, depth: int) -> None:
        st = self.state.get(t.id)
        if st == _DEFINED:
            return
        if st == _BUSY:
            raise BTFError(f"{t.kind_name} {t.name} ({t.id}) contains itself by value")
        self.state[t.id] = _BUSY
        for m in t.members:
            self.need(m.type, True, depth + 1)
        if self.forward_at.get(t.id) == len(self.out) - 1:
            # declared (by a pointer to itself) with nothing in between that needs it:
            # the definition declares the tag itself
            self.out.pop()
        self.out.append(self.r.definition(t.id))
        self.state[t.id] = _DEFINED

    def typedef(self, t: T.Typedef, depth: int) -> None:
        st = self.state.get(t.id)
        if st == _DEFINED:
            return
        if st == _BUSY:
            raise BTFError(f"typedef {t.name} ({t.id}) refers to itself")
        self.state[t.id] = _BUSY
        # The typedef line itself: a struct tag is enough, arrays need complete types.
        self.need(t.type, False, depth + 1)
        if self.spec.kind_of(self.spec.resolve(t.type)) == wire.KIND_ARRAY:
            self.need(t.type, True, depth + 1)
        self.out.append(self.r.definition(t.id))
        self.state[t.id] = _DEFINED

    def top(self, tid: int) -> None:
        t = self.spec[tid]
        if isinstance(t, T.Composite) and t.name:
            self.define(t, 0)
        elif isinstance(t, T.Enum) and not t.name:
            if tid not in self.r.anon_enums:  # anonymous enums carry constants: keep them
                self.r.anon_enums.add(tid)
                self.out.append(self.r.definition(tid))
        elif isinstance(t, (T.Func, T.Var)):
            self.need(tid, True)
            if tid not in self.state:
                self.state[tid] = _DEFINED
                self.out.append(self.r.definition(tid))
        elif isinstance(t, (T.Typedef, T.Enum, T.Fwd)):
            self.need(tid, True)


_TOP_KINDS = frozenset({wire.KIND_STRUCT, wire.KIND_UNION, wire.KIND_ENUM, wire.KIND_ENUM64,
                        wire.KIND_TYPEDEF, wire.KIND_FWD})
_ACCESS_INDEX = "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute {}{}\n#endif\n"
_PUSH = " (__attribute__((preserve_access_index)), apply_to = record)"


@recursion_guard
def dump_c(spec: Spec, type_ids: Optional[Iterable[int]] = None, offsets: bool = False,
           guard: Optional[str] = None, access_index: bool = False,
           names: Optional[Names] = None) -> str:
    """C source for `type_ids` (default: every type) and all their dependencies,
    ordered so that it compiles; forward declarations only where needed.
    `access_index`: between the pragmas bpftool's vmlinux.h has, which make clang
    record CO-RE relocations for every access to these structs. `names`: the C names
    given (where several types share one), to ask afterwards."""
    d = _Dumper(spec, offsets, names)
    if type_ids is None:
        # like bpftool: a header of types, not of functions or variables; the other
        # kinds are written where they are used (`top` has nothing to do for them)
        kind_of = spec.kind_of
        type_ids = (t for t in spec.own_ids() if kind_of(t) in _TOP_KINDS)
    for tid in type_ids:
        d.top(tid)
    body = "\n\n".join(d.out) + "\n"
    if access_index:
        body = f"{_ACCESS_INDEX.format('push', _PUSH)}\n{body}\n{_ACCESS_INDEX.format('pop', '')}"
    if guard:
        return f"#ifndef {guard}\n#define {guard}\n\n{body}\n#endif /* {guard} */\n"
    return body
