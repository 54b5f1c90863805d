"""The BTF type model: one small frozen dataclass per kind.

Types refer to other types by id, never by object, so a cyclic (or hostile) graph is
just numbers; walking it is the Spec's job, with depth limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Tuple

from . import wire


@dataclass(frozen=True)
class Type:
    id: int
    name: str
    kind: ClassVar[int] = wire.KIND_UNKN

    @property
    def kind_name(self) -> str:
        return wire.KIND_NAMES[self.kind]


@dataclass(frozen=True)
class Void(Type):
    kind: ClassVar[int] = wire.KIND_UNKN


@dataclass(frozen=True)
class Int(Type):
    size: int
    encoding: int
    bit_offset: int
    bits: int
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


@dataclass(frozen=True)
class Ptr(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_PTR


@dataclass(frozen=True)
class Array(Type):
    type: int
    index_type: int
    nelems: int
    kind: ClassVar[int] = wire.KIND_ARRAY


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def offset(self) -> int:
        """Byte offset of the member (of the byte holding a bitfield's first bit)."""
        return self.bit_offset // 8


@dataclass(frozen=True)
class Composite(Type):
    size: int
    members: Tuple[Member, ...]


@dataclass(frozen=True)
class Struct(Composite):
    kind: ClassVar[int] = wire.KIND_STRUCT


@dataclass(frozen=True)
class Union(Composite):
    kind: ClassVar[int] = wire.KIND_UNION


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True)
class Enum(Type):
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool = False
    kind: ClassVar[int] = wire.KIND_ENUM


@dataclass(frozen=True)
class Enum64(Enum):
    kind: ClassVar[int] = wire.KIND_ENUM64


@dataclass(frozen=True)
class Fwd(Type):
    union: bool = False
    kind: ClassVar[int] = wire.KIND_FWD


@dataclass(frozen=True)
class Typedef(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_TYPEDEF


@dataclass(frozen=True)
class Volatile(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_VOLATILE


@dataclass(frozen=True)
class Const(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_CONST


@dataclass(frozen=True)
class Restrict(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_RESTRICT


@dataclass(frozen=True)
class TypeTag(Type):
    type: int
    kind: ClassVar[int] = wire.KIND_TYPE_TAG


@dataclass(frozen=True)
class Func(Type):
    type: int
    linkage: int = wire.LINKAGE_STATIC
    kind: ClassVar[int] = wire.KIND_FUNC


@dataclass(frozen=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True)
class FuncProto(Type):
    return_type: int
    params: Tuple[Param, ...]
    variadic: bool = False
    kind: ClassVar[int] = wire.KIND_FUNC_PROTO


@dataclass(frozen=True)
class Var(Type):
    type: int
    linkage: int = wire.LINKAGE_STATIC
    kind: ClassVar[int] = wire.KIND_VAR


@dataclass(frozen=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class Datasec(Type):
    size: int
    vars: Tuple[VarSecinfo, ...]
    kind: ClassVar[int] = wire.KIND_DATASEC


@dataclass(frozen=True)
class Float(Type):
    size: int
    kind: ClassVar[int] = wire.KIND_FLOAT


@dataclass(frozen=True)
class DeclTag(Type):
    type: int
    component_idx: int = -1
    kind: ClassVar[int] = wire.KIND_DECL_TAG


# Kinds that wrap another type without changing its layout.
QUALIFIERS = (Volatile, Const, Restrict, TypeTag)
