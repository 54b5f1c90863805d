"""A struct's layout from an ELF object's DWARF, rebuilt as BTF.

clang puts a type in an object's BTF only when something BTF describes reaches it
(maps, globals, function signatures). A struct a program only reaches through a cast
of ctx->data_meta, as the kernel's xdp_hw_metadata does, is in the DWARF (-g) alone.
`struct_from_dwarf` finds it there and rebuilds it, with everything it reaches, with
the BTF writer, so the decoder, the tables and the C renderer treat it as any BTF
struct.

What must stay true:
- Only the struct asked for and the types it reaches are converted, in one pass over
  a work list, never by recursion. A DIE gets its BTF id when first referenced and the
  writer accepts references to ids not yet written, so a pointer back to a struct still
  being converted costs nothing and cycles end.
- The result mirrors what clang's BTF generator emits for the same DWARF (type names,
  FWD for declarations, an `__ARRAY_SIZE_TYPE__` index type, bitfield members in a
  kind_flag struct), so a struct in both compares equal, member for member.
- DIE trees are walked linearly with strictly increasing offsets (DW_AT_sibling is
  ignored), so a damaged sibling link cannot loop. Whatever pyelftools raises on a
  damaged file becomes BTFError.
"""

from __future__ import annotations

import difflib
from collections import deque
from typing import Deque, Dict, Iterator, List, Optional, Tuple

from ..errors import BTFError, NotFoundError, XdpHintsError
from . import sources
from .reader import parse
from .spec import Spec
from .writer import Builder

_COMPOSITE_TAGS = {"DW_TAG_structure_type": False, "DW_TAG_class_type": False,
                   "DW_TAG_union_type": True}  # tag -> is a union
# Tags BTF has no record for and that do not change the layout of what they wrap.
_TRANSPARENT_TAGS = ("DW_TAG_atomic_type", "DW_TAG_immutable_type", "DW_TAG_shared_type")
_QUALIFIERS = {"DW_TAG_const_type": "add_const", "DW_TAG_volatile_type": "add_volatile",
               "DW_TAG_restrict_type": "add_restrict"}
_POINTER_TAGS = ("DW_TAG_pointer_type", "DW_TAG_reference_type",
                 "DW_TAG_rvalue_reference_type")

# DW_ATE_* base type encodings.
_ATE_ADDRESS, _ATE_BOOLEAN, _ATE_FLOAT = 0x1, 0x2, 0x4
_ATE_SIGNED, _ATE_SIGNED_CHAR, _ATE_UNSIGNED, _ATE_UNSIGNED_CHAR = 0x5, 0x6, 0x7, 0x8
_ATE_UTF = 0x10
_SIGNED_ATES = (_ATE_SIGNED, _ATE_SIGNED_CHAR)
_INT_ATES = (_ATE_ADDRESS, _ATE_SIGNED, _ATE_SIGNED_CHAR, _ATE_UNSIGNED,
             _ATE_UNSIGNED_CHAR, _ATE_UTF)

_BLOCK_FORMS = ("DW_FORM_exprloc", "DW_FORM_block", "DW_FORM_block1", "DW_FORM_block2",
                "DW_FORM_block4")
_DATA_FORM_BYTES = {"DW_FORM_data1": 1, "DW_FORM_data2": 2, "DW_FORM_data4": 4,
                    "DW_FORM_data8": 8}
_INT_FORMS = ("DW_FORM_data1", "DW_FORM_data2", "DW_FORM_data4", "DW_FORM_data8",
              "DW_FORM_data16", "DW_FORM_sdata", "DW_FORM_udata",
              "DW_FORM_implicit_const")
# Chains of typedef-free wrappers (atomic, ...) are short in real DWARF.
_MAX_CHAIN = 64
ARRAY_INDEX_TYPE = "__ARRAY_SIZE_TYPE__"  # clang's name for BTF arrays' index type


class NoDwarfError(NotFoundError):
    """The file carries no DWARF to take a layout from."""


def struct_from_dwarf(path: str, name: str) -> Tuple[Spec, int]:
    """(standalone BTF, type id) of struct or union `name` as the DWARF of the ELF
    object at `path` describes it. `name` may carry a 'struct ' or 'union ' prefix.

    NotFoundError when the DWARF has no definition of it, NoDwarfError when the file
    has no DWARF, BTFError when the file or its DWARF is damaged or holds something
    BTF cannot express.
    """
    data = sources.read_file(path)
    if data[:4] != sources.ELF_MAGIC:
        raise NoDwarfError(f"{path}: not an ELF object, so no DWARF to read "
                           f"struct {name} from")
    try:
        return _convert(data, path, name)
    except BTFError as e:
        if str(e).startswith(path + ": "):
            raise
        raise BTFError(f"{path}: {e}") from None
    except XdpHintsError:
        raise
    except RecursionError:
        raise BTFError(f"{path}: DWARF nesting too deep") from None
    except Exception as e:  # pyelftools raises ELFError, DWARFError, struct and
        # construct errors, KeyError, IndexError, ... on damaged files.
        if isinstance(e, KeyError):  # an abbreviation, form or tag code pyelftools
            detail = f"unknown code {e.args[0]!r}"  # has no entry for
        else:
            detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise BTFError(f"{path}: malformed DWARF ({type(e).__name__}"
                       f"{': ' + detail if detail else ''})") from None


def _convert(data: bytes, path: str, name: str) -> Tuple[Spec, int]:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(sources.elf_stream(data))
    if elf.get_section_by_name(".debug_info") is None and \
            elf.get_section_by_name(".zdebug_info") is None:
        raise NoDwarfError(f"{path}: no DWARF debug info (compile with clang -g and "
                           "do not strip it)")
    try:
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=True)
    except Exception:
        # Relocation types pyelftools does not know: BPF's REL relocations hold their
        # addend in place, so the unrelocated sections are right for them.
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
    kind, want = _split_kind(name)
    die = _find(dwarf, want, kind, path)
    conv = _Converter(little_endian=elf.little_endian)
    root = conv.ref(die)
    conv.run()
    # The reader refuses what damaged DWARF can hold and the writer cannot see:
    # typedef loops, structs containing themselves, members past their struct.
    spec = parse(conv.build().encode("<" if elf.little_endian else ">"))
    return spec, root


def _split_kind(name: str) -> Tuple[Optional[bool], str]:
    """('struct foo' | 'union foo' | 'foo') -> (is_union or None for either, 'foo')."""
    parts = name.split(None, 1)
    if len(parts) == 2 and parts[0] in ("struct", "union"):
        return parts[0] == "union", parts[1].strip()
    return None, name.strip()


def _find(dwarf, name: str, union: Optional[bool], path: str):
    """The first defining DIE of struct/union `name`, in section order."""
    names = set()
    declared = False
    for cu in dwarf.iter_CUs():
        for die in cu.iter_DIEs():
            is_union = _COMPOSITE_TAGS.get(die.tag)
            if is_union is None or "DW_AT_name" not in die.attributes:
                continue
            dname = _name(die)
            if dname == name and (union is None or union == is_union):
                if "DW_AT_declaration" in die.attributes:
                    declared = True
                    continue
                return die
            if "DW_AT_declaration" not in die.attributes:
                names.add(dname)
    what = {None: "struct or union", False: "struct", True: "union"}[union]
    if declared:
        raise NotFoundError(f"{path}: {what} '{name}' is only declared in the DWARF, "
                            "not defined")
    close = difflib.get_close_matches(name, sorted(names), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise NotFoundError(f"{path}: no {what} '{name}' in the DWARF{hint}")


def _name(die) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    v = attr.value
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, str):
        return v
    raise BTFError(f"DWARF DIE at 0x{die.offset:x}: name in form {attr.form}")


def _children(die) -> Iterator:
    """The direct children of `die`, read linearly: each DIE after the previous one,
    nesting counted from has_children and the null entries that end a list."""
    if not die.has_children:
        return
    cu = die.cu
    end = cu.cu_offset + cu.size
    pos = die.offset + die.size
    depth = 1
    while pos < end:
        child = cu.get_DIE_from_refaddr(pos)
        if child.size <= 0:
            raise BTFError(f"DWARF DIE at 0x{pos:x} has no size")
        if child.is_null():
            depth -= 1
            if depth == 0:
                return
        else:
            if depth == 1:
                yield child
            if child.has_children:
                depth += 1
        pos += child.size
    raise BTFError(f"DWARF children of DIE 0x{die.offset:x} run past their unit")


def _int_attr(die, attr_name: str, default: Optional[int] = None) -> Optional[int]:
    attr = die.attributes.get(attr_name)
    if attr is None:
        return default
    if attr.form not in _INT_FORMS or not isinstance(attr.value, int):
        raise BTFError(f"DWARF {die.tag} at 0x{die.offset:x}: {attr_name} in form "
                       f"{attr.form} is not a constant")
    return attr.value


def _signed_const(attr, signed: bool) -> int:
    """An enumerator's value: DW_FORM_dataN holds raw bits, sign-extended by the
    enum's signedness; sdata and udata carry their own."""
    v = attr.value
    if not isinstance(v, int):
        raise BTFError(f"enumerator value in form {attr.form}")
    n = _DATA_FORM_BYTES.get(attr.form)
    if signed and n and v >> (8 * n - 1) & 1:
        v -= 1 << (8 * n)
    return v


class _Converter:
    """DIEs in, Builder calls out. Records are planned first (ids in the order DIEs
    are first referenced) and written afterwards, so any DIE can refer to any other."""

    def __init__(self, little_endian: bool = True):
        self.little_endian = little_endian
        self.records: List[Optional[Tuple]] = []  # id - 1 -> (Builder method, args)
        self.ids: Dict[int, int] = {}  # DIE offset -> BTF id
        self.todo: Deque[Tuple[int, object]] = deque()
        self._index_type = 0
        self._expr_parser = None

    def _reserve(self) -> int:
        self.records.append(None)
        return len(self.records)

    def _new(self, method: str, *args) -> int:
        """A record no DIE stands for alone (inner array dimensions, the index type)."""
        tid = self._reserve()
        self.records[tid - 1] = (method, args)
        return tid

    def ref(self, die) -> int:
        """The BTF id `die` gets; 0 (void) for none. Wrappers BTF cannot express are
        looked through."""
        for _ in range(_MAX_CHAIN):
            if die is None or die.tag == "DW_TAG_unspecified_type":
                return 0
            if die.tag not in _TRANSPARENT_TAGS:
                break
            die = self._target(die)
        else:
            raise BTFError("DWARF type chain too long or cyclic")
        tid = self.ids.get(die.offset)
        if tid is None:
            tid = self._reserve()
            self.ids[die.offset] = tid
            self.todo.append((tid, die))
        return tid

    @staticmethod
    def _target(die):
        if "DW_AT_type" not in die.attributes:
            return None
        return die.get_DIE_from_attribute("DW_AT_type")

    def type_of(self, die) -> int:
        return self.ref(self._target(die))

    def index_type(self) -> int:
        if not self._index_type:
            self._index_type = self._new("add_int", ARRAY_INDEX_TYPE, 4)
        return self._index_type

    def run(self) -> None:
        while self.todo:
            tid, die = self.todo.popleft()
            self.convert(tid, die)

    def build(self) -> Builder:
        b = Builder()
        for tid, rec in enumerate(self.records, 1):
            if rec is None:  # cannot happen unless convert() forgot a planned id
                raise BTFError(f"BTF type {tid} was never planned")
            method, args = rec
            got = getattr(b, method)(*args)
            assert got == tid, (got, tid)
        return b

    # -- one DIE ---------------------------------------------------------------------

    def convert(self, tid: int, die) -> None:
        tag = die.tag
        if tag == "DW_TAG_base_type":
            rec = self.base_type(die)
        elif tag == "DW_TAG_typedef":
            rec = "add_typedef", (_name(die), self.type_of(die))
        elif tag in _POINTER_TAGS:
            rec = "add_ptr", (self.type_of(die),)
        elif tag in _QUALIFIERS:
            rec = _QUALIFIERS[tag], (self.type_of(die),)
        elif tag in _COMPOSITE_TAGS:
            rec = self.composite(die)
        elif tag == "DW_TAG_enumeration_type":
            rec = self.enum(die)
        elif tag == "DW_TAG_array_type":
            rec = self.array(die)
        elif tag == "DW_TAG_subroutine_type":
            rec = self.func_proto(die)
        elif tag is None:
            raise BTFError(f"a DWARF type reference points at an empty entry "
                           f"(0x{die.offset:x})")
        else:
            raise BTFError(f"cannot express DWARF {tag} (DIE 0x{die.offset:x}) in BTF")
        self.records[tid - 1] = rec

    def base_type(self, die) -> Tuple:
        name = _name(die)
        enc = _int_attr(die, "DW_AT_encoding")
        size = _int_attr(die, "DW_AT_byte_size")
        if size is None:
            raise BTFError(f"DWARF base type '{name}' has no size")
        if enc == _ATE_FLOAT:
            return "add_float", (name, size)
        if enc == _ATE_BOOLEAN:
            return "add_int", (name, size, False, False, True)
        if enc in _INT_ATES:
            bits = _int_attr(die, "DW_AT_bit_size")
            # clang's BTF marks signed chars SIGNED and never sets BTF_INT_CHAR.
            return "add_int", (name, size, enc in _SIGNED_ATES, False, False, bits)
        raise BTFError(f"cannot express DWARF base type '{name}' (encoding "
                       f"{enc}) in BTF")

    def composite(self, die) -> Tuple:
        name = _name(die)
        union = _COMPOSITE_TAGS[die.tag]
        size = _int_attr(die, "DW_AT_byte_size")
        if "DW_AT_declaration" in die.attributes or size is None:
            if not name:
                raise BTFError(f"DWARF DIE 0x{die.offset:x}: anonymous declaration")
            return "add_fwd", (name, union)
        members = []
        for m in _children(die):
            if m.tag != "DW_TAG_member" or "DW_AT_external" in m.attributes or \
                    "DW_AT_declaration" in m.attributes:
                continue  # nested type definitions, C++ statics and methods
            if "DW_AT_type" not in m.attributes:
                raise BTFError(f"member '{_name(m)}' of {name or 'anonymous'} has no type")
            bit_off, bits = self.member_position(m)
            mtype = self.type_of(m)
            members.append((_name(m), mtype, bit_off, bits) if bits else
                           (_name(m), mtype, bit_off))
        return ("add_union" if union else "add_struct"), (name, size, members)

    def member_position(self, m) -> Tuple[int, int]:
        """(bit offset from the start of the struct, bitfield size or 0)."""
        byte_off = self.member_location(m)
        bits = _int_attr(m, "DW_AT_bit_size", 0)
        if "DW_AT_data_bit_offset" in m.attributes:  # DWARF 4+
            return _int_attr(m, "DW_AT_data_bit_offset"), bits
        old = _int_attr(m, "DW_AT_bit_offset")
        if bits and old is not None:
            # DWARF 2/3 (and clang's default "gdb" tuning): the storage unit is
            # DW_AT_byte_size bytes at the member location and DW_AT_bit_offset counts
            # from its most significant bit. In a packed struct a bitfield can start
            # before that unit's high end: clang then writes a negative count, as a
            # DW_FORM_data8 of 0xfffffffffffffffe (-2), sign-extended here.
            old = _signed_const(m.attributes["DW_AT_bit_offset"], True)
            unit = _int_attr(m, "DW_AT_byte_size")
            if unit is None:
                unit = self.dwarf_size(self._target(m))
            if self.little_endian:
                return byte_off * 8 + unit * 8 - old - bits, bits
            return byte_off * 8 + old, bits
        return byte_off * 8, bits

    def member_location(self, m) -> int:
        attr = m.attributes.get("DW_AT_data_member_location")
        if attr is None:
            return 0  # union members, and struct members at offset 0 for some producers
        if attr.form in _BLOCK_FORMS:
            return self.location_expr(m, attr.value)
        return _int_attr(m, "DW_AT_data_member_location")

    def location_expr(self, m, expr) -> int:
        """DW_OP_plus_uconst N, or DW_OP_constu N DW_OP_plus: the forms a member
        offset takes as an expression."""
        from elftools.dwarf.dwarf_expr import DWARFExprParser

        if self._expr_parser is None:
            self._expr_parser = DWARFExprParser(m.cu.structs)
        ops = [(op.op_name, op.args) for op in self._expr_parser.parse_expr(expr)]
        if len(ops) == 1 and ops[0][0] == "DW_OP_plus_uconst":
            return ops[0][1][0]
        if len(ops) == 2 and ops[0][0] == "DW_OP_constu" and ops[1][0] == "DW_OP_plus":
            return ops[0][1][0]
        raise BTFError(f"member '{_name(m)}': location expression "
                       f"{' '.join(o for o, _ in ops)} is not a constant offset")

    def dwarf_size(self, die) -> int:
        """Byte size of a DWARF type, through typedefs and qualifiers."""
        for _ in range(_MAX_CHAIN):
            if die is None:
                break
            size = _int_attr(die, "DW_AT_byte_size")
            if size is not None:
                return size
            die = self._target(die)
        raise BTFError("bitfield storage unit without a size")

    def enum(self, die) -> Tuple:
        name = _name(die)
        size = _int_attr(die, "DW_AT_byte_size", 4)
        under = self._target(die)
        for _ in range(_MAX_CHAIN):  # the underlying type, through typedefs
            if under is None or under.tag == "DW_TAG_base_type":
                break
            under = self._target(under)
        signed = under is not None and _int_attr(under, "DW_AT_encoding") in _SIGNED_ATES
        values = []
        for e in _children(die):
            if e.tag != "DW_TAG_enumerator":
                continue
            attr = e.attributes.get("DW_AT_const_value")
            if attr is None:
                raise BTFError(f"enumerator '{_name(e)}' of {name or 'anonymous enum'} "
                               "has no value")
            values.append((_name(e), _signed_const(attr, signed)))
        signed = signed or any(v < 0 for _, v in values)
        lo, hi = (-(1 << 31), (1 << 31) - 1) if signed else (0, (1 << 32) - 1)
        wide = any(not lo <= v <= hi for _, v in values)
        return ("add_enum64" if wide else "add_enum"), (name, values, size, signed)

    def array(self, die) -> Tuple:
        dims: List[int] = []
        for sub in _children(die):
            if sub.tag != "DW_TAG_subrange_type":
                continue
            count = _int_attr(sub, "DW_AT_count")
            if count is None:
                upper = _int_attr(sub, "DW_AT_upper_bound")
                lower = _int_attr(sub, "DW_AT_lower_bound", 0)
                # No bound at all: a flexible array member, as BTF writes it.
                count = 0 if upper is None else upper - lower + 1
            if count == -1:
                count = 0  # how some producers write a flexible array member
            if count < 0:
                raise BTFError(f"DWARF array at 0x{die.offset:x}: {count} elements")
            dims.append(count)
        if not dims:
            dims = [0]
        elem = self.type_of(die)
        if elem == 0:
            raise BTFError(f"DWARF array at 0x{die.offset:x} has no element type")
        index = self.index_type()
        # a[2][3] is BTF ARRAY(2) of ARRAY(3) of the element.
        for n in reversed(dims[1:]):
            elem = self._new("add_array", elem, index, n)
        return "add_array", (elem, index, dims[0])

    def func_proto(self, die) -> Tuple:
        params = []
        variadic = False
        for p in _children(die):
            if p.tag == "DW_TAG_formal_parameter":
                ptype = self.type_of(p)
                if ptype == 0:
                    raise BTFError("DWARF function parameter without a type")
                params.append((_name(p), ptype))
            elif p.tag == "DW_TAG_unspecified_parameters":
                variadic = True
        return "add_func_proto", (self.type_of(die), params, variadic)


__all__ = ["struct_from_dwarf", "NoDwarfError", "ARRAY_INDEX_TYPE"]
