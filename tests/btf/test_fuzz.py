"""Hostile BTF: mutated blobs must parse or raise BTFError, and never hang.

Seeded and deterministic. A SIGALRM guard turns a hang into a failure instead of a
stuck test run; nothing here measures time.
"""

from __future__ import annotations

import errno
import random
import struct

import pytest

from xdphints_cli.btf import cformat, decode, hints, reader, wire
from xdphints_cli.btf.writer import Builder
from xdphints_cli.errors import BTFError

from .test_writer import sample_builder


def exercise(spec) -> None:
    """Every query a command might run; each may only fail with BTFError."""
    for tid in range(spec.n_types):
        for op in (lambda: spec[tid], lambda: spec.resolve(tid), lambda: spec.size_of(tid),
                   lambda: spec.align_of(tid), lambda: spec.type_name(tid),
                   lambda: cformat.render(spec, tid, offsets=True)):
            try:
                op()
            except BTFError:
                pass
        try:
            size = spec.size_of(tid)
        except BTFError:
            continue
        if size <= 4096:
            buf = bytes(range(256)) * (size // 256 + 1)
            for op in (lambda: decode.decode(spec, tid, buf),
                       lambda: decode.compile_decoder(spec, tid)(buf)):
                try:
                    op()
                except BTFError:
                    pass
    for op in (lambda: cformat.dump_c(spec), lambda: hints.hints_structs(spec),
               lambda: spec.by_name("foo")):
        try:
            op()
        except BTFError:
            pass


def mutate(blob: bytes, rnd: random.Random) -> bytes:
    b = bytearray(blob)
    hdr = wire.HEADER_LEN
    _, _, _, _, _, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", b)
    what = rnd.randrange(7)
    if what == 0:  # truncate
        return bytes(b[:rnd.randrange(len(b))])
    if what == 1:  # any byte
        for _ in range(rnd.randrange(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
    elif what == 2:  # a type-section word: ids, offsets, sizes
        i = hdr + 4 * rnd.randrange(type_len // 4)
        val = rnd.choice([0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF, rnd.randrange(64),
                          rnd.getrandbits(32), len(b), str_len, str_len - 1])
        struct.pack_into("<I", b, i, val)
    elif what == 3:  # vlen / kind of some record's info word
        i = hdr + 4 * rnd.randrange(type_len // 4)
        info = struct.unpack_from("<I", b, i)[0]
        if rnd.random() < 0.5:
            info = (info & ~0xFFFF) | rnd.choice([0, 1, 2, 0xFFFF, rnd.randrange(40)])
        else:
            info = (info & ~(0x1F << 24)) | (rnd.randrange(32) << 24)
        struct.pack_into("<I", b, i, info)
    elif what == 4:  # header fields
        field = rnd.choice([("<H", 0), ("<B", 2), ("<B", 3), ("<I", 4), ("<I", 8),
                            ("<I", 12), ("<I", 16), ("<I", 20)])
        struct.pack_into(field[0], b, field[1],
                         rnd.choice([0, 1, 4, 24, rnd.getrandbits(8 * struct.calcsize(
                             field[0]))]))
    elif what == 5:  # strings without their final NUL
        b[hdr + str_off + str_len - 1] = ord("x")
    else:  # grow the last string past the end
        b += b"zz"
        struct.pack_into("<I", b, 20, str_len + 2)
    return bytes(b)


def test_mutated_blobs_raise_only_btferror(hang_guard):
    rnd = random.Random(0xB7F)
    seeds = [sample_builder().encode(), cyclic_builder().encode()]
    parsed = 0
    for n in range(3000):
        blob = mutate(rnd.choice(seeds), rnd)
        hang_guard(20)
        try:
            spec = reader.parse(blob)
        except BTFError:
            continue
        parsed += 1
        if n % 3 == 0:
            exercise(spec)
    assert parsed > 100  # the mutations do not all fail at the header


def test_random_bytes_after_valid_header(hang_guard):
    rnd = random.Random(7)
    for _ in range(500):
        types = bytes(rnd.getrandbits(8) for _ in range(4 * rnd.randrange(1, 40)))
        strs = b"\0a\0bb\0"
        blob = struct.pack("<HBBIIIII", wire.MAGIC, 1, 0, 24, 0, len(types), len(types),
                           len(strs)) + types + strs
        hang_guard(20)
        try:
            spec = reader.parse(blob)
        except BTFError:
            continue
        exercise(spec)


def cyclic_builder() -> Builder:
    b = Builder()
    i = b.add_int("int", 4, signed=True)
    b.add_raw(wire.KIND_TYPEDEF, "self_td", size_or_type=b.next_id)
    b.add_raw(wire.KIND_CONST, "", size_or_type=b.next_id + 1)
    b.add_raw(wire.KIND_VOLATILE, "", size_or_type=b.next_id - 1)
    s = b.next_id
    b.add_struct("self_struct", 8, [("x", s, 0), ("i", i, 32)])
    a = b.next_id
    b.add_raw(wire.KIND_ARRAY, "", extra=[a, i, 2])
    b.add_raw(wire.KIND_PTR, "", size_or_type=b.next_id)
    u = b.next_id
    b.add_union("self_union", 4, [("x", u + 1, 0)])
    b.add_struct("mutual", 4, [("u", u, 0)])
    b.add_struct("xdp_hints_loop", 8, [("me", b.next_id, 0), ("btf_id", i, 32)])
    return b


def test_cycles_built_with_the_writer(hang_guard):
    with pytest.raises(BTFError):
        reader.parse(cyclic_builder().encode())
    # the queries must stay finite on such BTF too (the kernel's own BTF skips stage 5)
    spec = reader.parse(cyclic_builder().encode(), kernel_verified=True)
    hang_guard(20)
    for tid in range(2, spec.n_types):
        for op in (spec.resolve, spec.size_of, spec.type_name,
                   lambda t: decode.decode(spec, t, bytes(64)),
                   lambda t: decode.compile_decoder(spec, t)):
            try:
                op(tid)
            except BTFError:
                pass
    with pytest.raises(BTFError):
        spec.resolve(2)
    with pytest.raises(BTFError):
        decode.compile_decoder(spec, spec.find("self_struct").id)
    with pytest.raises(BTFError):
        cformat.dump_c(spec)
    exercise(spec)


@pytest.mark.parametrize("blob", [
    b"", b"\x9f\xeb", b"\x00" * 24, struct.pack("<HBBIIIII", 0xEB9F, 2, 0, 24, 0, 0, 0, 1),
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1) + b"a",
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 1) + b"\0" * 12 + b"\0",
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 100) + b"\0" * 13,
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 1) +
    struct.pack("<III", 0, wire.info(wire.KIND_STRUCT, 0xFFFF), 4) + b"\0",
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 1) +
    struct.pack("<III", 99, wire.info(wire.KIND_PTR), 0) + b"\0",
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 1) +
    struct.pack("<III", 0, wire.info(wire.KIND_PTR), 5) + b"\0",
])
def test_corpus_of_broken_blobs(blob):
    with pytest.raises(BTFError):
        reader.parse(blob)


# --- BTF that cannot be true: rejected at parse time, as the kernel's BTF_LOAD does -------

def _int(b: Builder) -> int:
    return b.add_int("int", 4, signed=True)


def contains_itself() -> Builder:
    b = Builder()
    i = _int(b)
    s = b.next_id
    b.add_struct("me", 8, [("i", i, 0), ("again", s, 0)])   # by value, at offset 0
    return b


def contains_itself_through_array_and_typedef() -> Builder:
    b = Builder()
    i = _int(b)
    s = b.next_id
    b.add_struct("outer", 4, [("i", i, 0), ("inner", s + 1, 32)])
    b.add_struct("inner", 0, [("back", s + 2, 0)])
    b.add_typedef("outer_t", s + 3)
    b.add_array(s, i, 0)                                     # outer_t is outer[0]
    return b


def huge_array_member() -> Builder:
    b = Builder()
    i = _int(b)
    arr = b.add_array(i, i, 0x110000000 // 4)                # 17 GiB of int
    b.add_struct("small", 8, [("i", i, 0)])
    b.add_raw(wire.KIND_STRUCT, "liar", vlen=1, size_or_type=8, extra=[b.add_string("a"), arr, 0])
    return b


def member_past_the_end() -> Builder:
    b = Builder()
    i = _int(b)
    b.add_raw(wire.KIND_STRUCT, "short", vlen=2, size_or_type=4,
              extra=[b.add_string("a"), i, 0, b.add_string("b"), i, 32])
    return b


def array_size_overflow() -> Builder:
    b = Builder()
    i = _int(b)
    inner = b.add_array(i, i, 0x10000)
    b.add_array(inner, i, 0x10000)                           # 16 GiB
    return b


def typedef_loop() -> Builder:
    b = Builder()
    i = _int(b)
    t = b.next_id
    b.add_typedef("a", t + 1)
    b.add_typedef("b", t)
    b.add_struct("s", 4, [("x", t, 0)])
    return b


def huge_struct_member_past_bit_range() -> Builder:
    """Size 0xffffffff, an 8-byte member at bit offset 0xfffffff0: it ends inside the
    struct (byte 0x1ffffffe + 8), so the kernel accepts it, and so do we."""
    b = Builder()
    i = b.add_int("long", 8, signed=True)
    b.add_raw(wire.KIND_STRUCT, "vast", vlen=1, size_or_type=0xFFFFFFFF,
              extra=[b.add_string("x"), i, 0xFFFFFFF0])
    return b


HOSTILE = {"contains itself": (contains_itself, "contains itself by value"),
           "contains itself through array and typedef": (contains_itself_through_array_and_typedef,
                                                         "contains itself by value"),
           "17 GiB array member in an 8-byte struct": (huge_array_member, "overflows 32 bits"),
           "member past the end": (member_past_the_end, "past the 4-byte size"),
           "array size overflow": (array_size_overflow, "overflows 32 bits"),
           "typedef loop": (typedef_loop, "cyclic")}


@pytest.mark.parametrize("name", HOSTILE)
def test_btf_that_cannot_be_true_is_rejected(name):
    build, why = HOSTILE[name]
    with pytest.raises(BTFError, match=why):
        reader.parse(build().encode())


def test_a_vast_but_consistent_struct_is_accepted():
    spec = reader.parse(huge_struct_member_past_bit_range().encode())
    assert spec.find("vast").size == 0xFFFFFFFF


@pytest.mark.privileged
@pytest.mark.parametrize("name", [*HOSTILE, "vast"])
def test_the_kernel_agrees(name):
    """The running kernel's BTF_LOAD verdict on the same blob is ours."""
    from xdphints_cli.bpf.btf_object import load_btf
    from xdphints_cli.errors import KernelError

    blob = (huge_struct_member_past_bit_range if name == "vast" else HOSTILE[name][0])().encode()
    try:
        load_btf(blob).close()
        kernel_ok = True
    except KernelError as e:
        assert e.errno in (errno.EINVAL, errno.EEXIST), e  # EEXIST: "Loop detected"
        kernel_ok = False
    try:
        reader.parse(blob)
        ours_ok = True
    except BTFError:
        ours_ok = False
    assert ours_ok == kernel_ok
