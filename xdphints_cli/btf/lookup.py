"""A type by the name a user gives (`foo`, `struct foo`, `enum foo`), and the other
types that share that name.

Several types can have one name: vmlinux has two `struct console`, four
`struct workspace` (one per compilation unit that defines its own). C keeps tags
(struct, union, enum) and typedef names in two namespaces, so a typedef `foo` beside a
`struct foo` is no clash, but two structs `foo` are: `same_name` lists them all and
the caller says so, and offers to pick one by id.
"""

from __future__ import annotations

from typing import Optional

from ..errors import NotFoundError
from . import wire
from .spec import Spec
from .types import Frozen

_TAG_WORDS = ("struct", "union", "enum")
_TAGS = frozenset({wire.KIND_STRUCT, wire.KIND_UNION, wire.KIND_ENUM, wire.KIND_ENUM64})
# which type a bare name means when several kinds have it: a definition over a
# typedef of the same name, a typedef over a forward declaration
_RANK = {wire.KIND_STRUCT: 0, wire.KIND_UNION: 0, wire.KIND_ENUM: 1, wire.KIND_ENUM64: 1,
         wire.KIND_TYPEDEF: 2, wire.KIND_FWD: 4}


class Found(Frozen):
    """`tid`, the type meant; `same_name`, every type of its namespace with its name
    (tid among them) when there are several, else ()."""

    __slots__ = ("tid", "same_name")
    _defaults = {"same_name": ()}


def find_type(spec: Spec, name: str) -> Found:
    kind: Optional[str] = None
    words = name.split()
    if len(words) == 2 and words[0] in _TAG_WORDS:
        kind, name = words[0], words[1]
    ids = spec.ids_by_name(name, kind)
    if kind == "enum":
        ids += spec.ids_by_name(name, wire.KIND_ENUM64)
    if not ids:
        raise not_found(spec, name)
    tid = min(ids, key=lambda i: (_RANK.get(spec.kind_of(i), 3), i))
    namespace = _namespace(spec.kind_of(tid))
    rivals = tuple(sorted(i for i in ids if _namespace(spec.kind_of(i)) == namespace))
    return Found(tid, rivals if len(rivals) > 1 and namespace is not None else ())


def _namespace(kind: int) -> Optional[str]:
    """C's: struct, union and enum tags share one, typedef names another. Forward
    declarations of one struct repeat harmlessly: they clash with nothing."""
    if kind in _TAGS:
        return "tag"
    if kind == wire.KIND_TYPEDEF:
        return "typedef"
    return None


def not_found(spec: Spec, name: str) -> NotFoundError:
    import difflib

    if name.isdigit():
        return NotFoundError(f"no type named '{name}': a type id is given with --id {name}")
    kinds = _TAGS | {wire.KIND_TYPEDEF}
    names = set()
    s: Optional[Spec] = spec
    while s is not None:
        for tid in s.own_ids():
            if s.kind_of(tid) in kinds:
                names.add(s.name_of(tid))
        s = s.base
    names.discard("")
    close = difflib.get_close_matches(name, sorted(names), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return NotFoundError(f"no type named '{name}'{hint}")
