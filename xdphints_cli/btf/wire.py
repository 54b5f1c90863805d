"""BTF wire format: kind ids, record layouts and limits (include/uapi/linux/btf.h)."""

from __future__ import annotations

import struct

MAGIC = 0xEB9F
VERSION = 1
HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off+len
HEADER_LEN = HEADER.size  # 24

KIND_UNKN = 0
KIND_INT = 1
KIND_PTR = 2
KIND_ARRAY = 3
KIND_STRUCT = 4
KIND_UNION = 5
KIND_ENUM = 6
KIND_FWD = 7
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_FUNC_PROTO = 13
KIND_VAR = 14
KIND_DATASEC = 15
KIND_FLOAT = 16
KIND_DECL_TAG = 17
KIND_TYPE_TAG = 18
KIND_ENUM64 = 19
KIND_MAX = KIND_ENUM64

# Names as bpftool prints them in raw and JSON dumps.
KIND_NAMES = {
    KIND_UNKN: "UNKNOWN", KIND_INT: "INT", KIND_PTR: "PTR", KIND_ARRAY: "ARRAY",
    KIND_STRUCT: "STRUCT", KIND_UNION: "UNION", KIND_ENUM: "ENUM", KIND_FWD: "FWD",
    KIND_TYPEDEF: "TYPEDEF", KIND_VOLATILE: "VOLATILE", KIND_CONST: "CONST",
    KIND_RESTRICT: "RESTRICT", KIND_FUNC: "FUNC", KIND_FUNC_PROTO: "FUNC_PROTO",
    KIND_VAR: "VAR", KIND_DATASEC: "DATASEC", KIND_FLOAT: "FLOAT",
    KIND_DECL_TAG: "DECL_TAG", KIND_TYPE_TAG: "TYPE_TAG", KIND_ENUM64: "ENUM64",
}
KIND_BY_NAME = {v.lower(): k for k, v in KIND_NAMES.items()}

# Record size in 32-bit words: the common btf_type, fixed trailing data, per-vlen entries.
# Every BTF record is a whole number of u32 words, so the type section can be read (and
# byte-swapped) as one array of u32.
TYPE_WORDS = 3
EXTRA_WORDS = {KIND_INT: 1, KIND_ARRAY: 3, KIND_VAR: 1, KIND_DECL_TAG: 1}
VLEN_WORDS = {KIND_STRUCT: 3, KIND_UNION: 3, KIND_ENUM: 2, KIND_FUNC_PROTO: 2,
              KIND_DATASEC: 3, KIND_ENUM64: 3}
# The same as lists indexed by kind, for walks over every record (a list index costs
# less than a dict lookup): record words = FIXED_BY_KIND[k] + PER_VLEN_BY_KIND[k] * vlen;
# 0 fixed words for a kind we do not know.
FIXED_BY_KIND = [0] * 32
PER_VLEN_BY_KIND = [0] * 32
for _k in range(1, KIND_MAX + 1):
    FIXED_BY_KIND[_k] = TYPE_WORDS + EXTRA_WORDS.get(_k, 0)
    PER_VLEN_BY_KIND[_k] = VLEN_WORDS.get(_k, 0)
del _k

# Kinds whose third word is a type id (the rest use it as a size or not at all).
REF_KINDS = frozenset({KIND_PTR, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT,
                       KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DECL_TAG, KIND_TYPE_TAG})
MODIFIER_KINDS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT,
                            KIND_TYPE_TAG})

INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

LINKAGE_STATIC = 0
LINKAGE_GLOBAL = 1
LINKAGE_EXTERN = 2
FUNC_LINKAGE_NAMES = {0: "static", 1: "global", 2: "extern"}
VAR_LINKAGE_NAMES = {0: "static", 1: "global-alloc", 2: "global-extern"}

MAX_VLEN = 0xFFFF
MAX_TYPES = 0x7FFFFFFF
MAX_NAME_OFFSET = 0x7FFFFFFF
# How many typedef/qualifier/array hops any walk follows before calling the input cyclic.
MAX_RESOLVE_DEPTH = 32
# Nesting of structs by value (and arrays) a walk follows before giving up.
MAX_NESTING = 256
POINTER_SIZE = 8


def info(kind: int, vlen: int = 0, kind_flag: bool = False) -> int:
    return (int(bool(kind_flag)) << 31) | ((kind & 0x1F) << 24) | (vlen & 0xFFFF)
