"""The BTF type model: one small immutable record class per kind.

Types refer to other types by id, never by object, so a cyclic (or hostile) graph is
just numbers; walking it is the Spec's job, with depth limits.

The classes are `Frozen` records rather than frozen dataclasses: @dataclass generates
its methods with exec at import, about 0.4 ms a class, which for these 27 classes
(plus importing dataclasses and inspect) was most of the start-up of a
`btf --kernel --struct NAME`. `Frozen` gives what the dataclasses gave: construction
by position or keyword with defaults, equality and hash by value, a repr, no
assignment after construction, copy and pickle.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Tuple

from . import wire


class Frozen:
    """An immutable record whose fields are the `__slots__` of its classes, base first.

    `_defaults` maps the trailing fields that may be left out to their values."""

    __slots__ = ()
    _fields: ClassVar[Tuple[str, ...]] = ()
    _defaults: ClassVar[Dict[str, Any]] = {}

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls._fields = tuple(f for k in reversed(cls.__mro__) for f in k.__dict__.get("__slots__", ()))

    def __init__(self, *args, **kw) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, got {len(args)}")
        setter = object.__setattr__
        for name, value in zip(fields, args):
            setter(self, name, value)
        defaults = self._defaults
        for name in fields[len(args):]:
            if name in kw:
                setter(self, name, kw.pop(name))
            elif name in defaults:
                setter(self, name, defaults[name])
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
        if kw:
            raise TypeError(f"{type(self).__name__}() got unexpected or repeated arguments {sorted(kw)}")

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def __reduce__(self):
        return type(self), self._values()


class Type(Frozen):
    __slots__ = ("id", "name")
    kind: ClassVar[int] = wire.KIND_UNKN

    @property
    def kind_name(self) -> str:
        return wire.KIND_NAMES[self.kind]


class Void(Type):
    __slots__ = ()
    kind: ClassVar[int] = wire.KIND_UNKN


class Int(Type):
    __slots__ = ("size", "encoding", "bit_offset", "bits")
    kind: ClassVar[int] = wire.KIND_INT

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & wire.INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & wire.INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & wire.INT_BOOL)


class Ptr(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_PTR


class Array(Type):
    __slots__ = ("type", "index_type", "nelems")
    kind: ClassVar[int] = wire.KIND_ARRAY


class Member(Frozen):
    __slots__ = ("name", "type", "bit_offset", "bitfield_size")
    _defaults = {"bitfield_size": 0}

    @property
    def offset(self) -> int:
        """Byte offset of the member (of the byte holding a bitfield's first bit)."""
        return self.bit_offset // 8


class Composite(Type):
    __slots__ = ("size", "members")


class Struct(Composite):
    __slots__ = ()
    kind: ClassVar[int] = wire.KIND_STRUCT


class Union(Composite):
    __slots__ = ()
    kind: ClassVar[int] = wire.KIND_UNION


class EnumValue(Frozen):
    __slots__ = ("name", "value")


class Enum(Type):
    __slots__ = ("size", "values", "signed")
    _defaults = {"signed": False}
    kind: ClassVar[int] = wire.KIND_ENUM


class Enum64(Enum):
    __slots__ = ()
    kind: ClassVar[int] = wire.KIND_ENUM64


class Fwd(Type):
    __slots__ = ("union",)
    _defaults = {"union": False}
    kind: ClassVar[int] = wire.KIND_FWD


class Typedef(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_TYPEDEF


class Volatile(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_VOLATILE


class Const(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_CONST


class Restrict(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_RESTRICT


class TypeTag(Type):
    __slots__ = ("type",)
    kind: ClassVar[int] = wire.KIND_TYPE_TAG


class Func(Type):
    __slots__ = ("type", "linkage")
    _defaults = {"linkage": wire.LINKAGE_STATIC}
    kind: ClassVar[int] = wire.KIND_FUNC


class Param(Frozen):
    __slots__ = ("name", "type")


class FuncProto(Type):
    __slots__ = ("return_type", "params", "variadic")
    _defaults = {"variadic": False}
    kind: ClassVar[int] = wire.KIND_FUNC_PROTO


class Var(Type):
    __slots__ = ("type", "linkage")
    _defaults = {"linkage": wire.LINKAGE_STATIC}
    kind: ClassVar[int] = wire.KIND_VAR


class VarSecinfo(Frozen):
    __slots__ = ("type", "offset", "size")


class Datasec(Type):
    __slots__ = ("size", "vars")
    kind: ClassVar[int] = wire.KIND_DATASEC


class Float(Type):
    __slots__ = ("size",)
    kind: ClassVar[int] = wire.KIND_FLOAT


class DeclTag(Type):
    __slots__ = ("type", "component_idx")
    _defaults = {"component_idx": -1}
    kind: ClassVar[int] = wire.KIND_DECL_TAG


# Kinds that wrap another type without changing its layout.
QUALIFIERS = (Volatile, Const, Restrict, TypeTag)
